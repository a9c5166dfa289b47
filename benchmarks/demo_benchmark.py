"""A Chinese benchmark in the shared benchmarks' format, cut from the demo data by time.

The demo dataset (``demo.generator.generate``) is split by ``posted_at``: the newest ``--test-share`` of the solved
problems become queries (their solvers are the expected workers, their ``solved_by`` and outcomes removed),
everything older stays in the dataset. Each query gets ``--candidates`` candidates: its solvers plus workers
drawn at random from those with history (``--negatives random``, like the public benchmarks) or the workers
of most similar popularity and recent activity (``--negatives hard``, where that prior is useless, as in the
held-out Chinese incident set). Then, like any benchmark::

    .venv/bin/python benchmarks/demo_benchmark.py /tmp/demo-bench --negatives hard
    .venv/bin/jianglian evaluate /tmp/demo-bench --queries /tmp/demo-bench/queries-test.jsonl \\
        --out /tmp/demo-ranked.jsonl --ablation [--encoder none]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.ranking_bench import time_split  # noqa: E402
from demo.generator import generate  # noqa: E402
from graph.dataset import load_dataset  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from graph.projection import Projection  # noqa: E402
from recommender.training import worker_priors  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--test-share", type=float, default=0.1)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--negatives", choices=("random", "hard"), default="random")
    args = parser.parse_args(argv)

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="jianglian-demo-bench-") as tmp:
        generate(Path(tmp) / "demo", scale=args.scale, seed=args.seed)
        store = MemoryStore(None)
        load_dataset(store, Path(tmp) / "demo")
        proj = Projection.from_store(store)
        test, history = time_split(proj, args.test_share)
        solved = proj.matrix("SOLVED", "Worker", "Problem").tocsc()
        test_ids = {proj.ids["Problem"][int(p)] for p in test}
        later = {proj.ids["Problem"][int(p)] for p in np.flatnonzero(~history)}
        for path in sorted((Path(tmp) / "demo").glob("*.jsonl")):
            with open(path, encoding="utf-8") as src, open(out / path.name, "w", encoding="utf-8") as dst:
                for line in src:
                    row = json.loads(line)
                    if path.name == "problems.jsonl" and row["id"] in later:
                        continue  # the test window (and anything posted in it) is not history
                    dst.write(json.dumps(row, ensure_ascii=False) + "\n")
    priors = worker_priors(proj, history)
    pool = np.flatnonzero(priors[:, 0] > 0)
    z = (priors - priors[pool].mean(axis=0)) / np.maximum(priors[pool].std(axis=0), 1e-9)
    rng = np.random.default_rng(args.seed)
    ids = proj.ids["Worker"]
    written = 0
    with open(out / "queries-test.jsonl", "w", encoding="utf-8") as fh:
        for p in test:
            pid = proj.ids["Problem"][int(p)]
            assert pid in test_ids
            solvers = solved.indices[solved.indptr[p]:solved.indptr[p + 1]]
            others = np.setdiff1d(pool, solvers)
            k = min(args.candidates - len(solvers), len(others))
            if args.negatives == "hard":
                centre = z[solvers].mean(axis=0)
                near = others[np.argsort(np.linalg.norm(z[others] - centre, axis=1), kind="stable")[:max(40, k)]]
                negatives = rng.choice(near, size=k, replace=False)
            else:
                negatives = rng.choice(others, size=k, replace=False)
            problem = {key: value for key, value in proj.props["Problem"][int(p)].items()
                       if key not in ("solved_by", "solved_at", "outcomes", "status", "extra")}
            problem["id"] = pid
            candidates = [ids[int(w)] for w in np.concatenate([solvers, negatives])]
            rng.shuffle(candidates)
            fh.write(json.dumps({"id": pid, "problem": problem, "candidates": candidates,
                                 "expected": [ids[int(w)] for w in solvers]}, ensure_ascii=False) + "\n")
            written += 1
    print(f"{out}: history of {int(history.sum())} problems, {written} queries ({args.negatives} negatives)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
