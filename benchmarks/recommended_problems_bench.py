"""CPU time of ``Recommender.recommended_problems`` (open problems for one worker), kept rows vs from scratch.

The demo generator writes the dataset (``--scale 1``: 300 workers, 2,000 solved and 200 open problems),
loaded into an in-memory store; one :class:`~recommender.engine.Recommender` is built with the served
dense encoder (``--encoder none``: TF-IDF only). Then, in the same process and on the same workers:

* **from scratch** (``Recommender._recommended_problems_direct``, the implementation before issue 16's
  finding 8): every open problem's full features for the worker on every call;
* **kept rows** (``Recommender.recommended_problems``): the open problems' query rows computed once per
  store revision, one worker's ranking a few products over that worker's rows;
* what keeping the rows costs: the first call after a build, and the first call after a problem is posted
  (only that problem is analysed).

Both rankings are compared (same problems in the same order). Times are CPU seconds of this process
(``time.process_time``), not wall clock, so other jobs on the machine do not count.

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/recommended_problems_bench.py [--scale 1] [--calls 50]
        [--encoder none]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.generator import generate  # noqa: E402
from graph.dataset import load_dataset  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from graph.store import NodeRow, WriteBatch  # noqa: E402
from recommender.engine import RankConfig, Recommender  # noqa: E402

__all__ = ["main"]


def _cpu(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.process_time()
    out = fn()
    return out, time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--calls", type=int, default=50, help="workers asked with kept rows")
    parser.add_argument("--direct-calls", type=int, default=10, help="workers asked from scratch")
    parser.add_argument("--top-k", type=int, default=10)
    parser.add_argument("--encoder", default="use-multilingual-v3", help="dense encoder, or none")
    args = parser.parse_args(argv)

    encoder = None
    if args.encoder.lower() != "none":
        from embeddings.encoder import load_encoder

        encoder = load_encoder(args.encoder)
    with tempfile.TemporaryDirectory(prefix="jianglian-rp-") as tmp:
        generate(Path(tmp) / "demo", scale=args.scale, seed=args.seed)
        store = MemoryStore(None)
        load_dataset(store, Path(tmp) / "demo")
        rec, build = _cpu(lambda: Recommender(store, encoder=encoder,
                                              config=RankConfig(model_dir=Path(tmp) / "models")))
        n_open = len(store.list_nodes("Problem", where={"status": "open"}, limit=1_000_000))
        workers = [w["id"] for w in store.list_nodes("Worker", limit=1_000_000)]
        print(f"scale {args.scale:g}: {len(workers)} workers, {n_open} open problems, "
              f"encoder {args.encoder}; recommender built in {build:.1f} s CPU")
        _ = rec._linear  # calibrated on first use by either path: not part of either's cost
        _, first = _cpu(lambda: rec.recommended_problems(workers[0], args.top_k))

        asked = [workers[i % len(workers)] for i in range(1, args.calls + 1)]
        fast: list[float] = []
        for w in asked:
            fast.append(_cpu(lambda w=w: rec.recommended_problems(w, args.top_k))[1])
        direct: list[float] = []
        for w in asked[:args.direct_calls]:
            direct.append(_cpu(lambda w=w: rec._recommended_problems_direct(w, args.top_k))[1])

        same = sum(
            [s.problem_id for s in rec.recommended_problems(w, args.top_k)]
            == [s.problem_id for s in rec._recommended_problems_direct(w, args.top_k)]
            for w in asked[:args.direct_calls])

        skill = store.list_nodes("Skill", limit=1)[0]["id"]
        store.apply(WriteBatch(nodes=[NodeRow("Problem", "P-bench-new", {
            "title": "伺服电机过热报警", "description": "产线频繁停机", "skills": [skill], "status": "open",
            "posted_at": "2024-05-02"})]))
        _, after_post = _cpu(lambda: rec.recommended_problems(workers[0], args.top_k))

        f_ms, d_ms = np.mean(fast) * 1000, np.mean(direct) * 1000
        print(f"from scratch : {d_ms:8.1f} ms CPU per call (mean of {len(direct)}; "
              f"p95 {np.percentile(direct, 95) * 1000:.1f})")
        print(f"kept rows    : {f_ms:8.1f} ms CPU per call (mean of {len(fast)}; "
              f"p95 {np.percentile(fast, 95) * 1000:.1f})")
        print(f"ratio        : {d_ms / f_ms:8.1f}x less CPU per call")
        print(f"first call after the build (all {n_open} open problems' rows): {first * 1000:.0f} ms CPU")
        print(f"first call after a problem is posted (that problem's rows):   {after_post * 1000:.0f} ms CPU")
        print(f"same top {args.top_k} in the same order for {same} of {min(len(asked), args.direct_calls)} workers")
        print("load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
