"""Freshness across processes: from a write acknowledged in process A to the new problem in process B's ranking.

The demo dataset (``--scale``) is loaded into the store; process B (``spawn``, its own store connection, the
code of ``tests/store_process.py``) builds a :class:`~recommender.engine.Recommender`, ranks once (as a served
process does before ``/readyz``), then for each trial ranks the open problems for one worker in a loop (the
engine refreshes itself from the store's change feed on each call, as on each request) until the new problem
is there. Process A (this one) posts the problem through ``graph.dataset.save_row`` (what ``POST /problems``
does, a ``201`` once it returns) and notes the time the call returned; B notes the time it first ranked the
problem. Freshness is the difference (wall clocks of one machine). ``--trials`` of them, then p50 / p95 / max.

The embedded store is on a data directory both processes open; with ``--neo4j`` a private Neo4j server is
started (the Neo4j store reads the feed position at most every 0.5 s, ``REVISION_TTL``).

Run::

    .venv/bin/python benchmarks/freshness_bench.py [--scale 1] [--trials 20] [--neo4j]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bulk_load_bench import machine  # noqa: E402
from demo.generator import generate  # noqa: E402
from graph.dataset import load_dataset  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from graph.store import GraphStore  # noqa: E402
from tests import store_process  # noqa: E402
from tests.test_store_processes import post_problem  # noqa: E402

__all__ = ["main", "trials"]

REPO = Path(__file__).resolve().parent.parent


def trials(store: GraphStore, target: str, n: int) -> tuple[list[float], float]:
    """Run ``n`` trials against a follower process on ``target``; return the delays (s) and its build time."""
    worker = store.list_nodes("Worker", where={"active": True}, limit=1)[0]["id"]
    ctx = mp.get_context("spawn")
    commands: Any = ctx.Queue()
    results: Any = ctx.Queue()
    proc = ctx.Process(target=store_process.follower, args=(target, worker, commands, results), daemon=True)
    proc.start()
    delays: list[float] = []
    try:
        ready = results.get(timeout=600)
        if ready[0] != "ready":
            raise RuntimeError(f"the follower failed: {ready}")
        for trial in range(n):
            pid = f"PFRESH{time.time_ns()}"
            commands.put(("watch", pid))
            assert results.get(timeout=60)[:2] == ("watching", pid)
            time.sleep(0.1 + 0.05 * (trial % 5))  # land the write at different moments of B's loop
            post_problem(store, pid, worker)  # type: ignore[arg-type]
            posted = time.time()
            seen = results.get(timeout=60)
            if seen[0] != "seen":
                raise RuntimeError(f"trial {trial}: {seen}")
            delays.append(max(0.0, seen[2] - posted))
    finally:
        commands.put(None)
        proc.join(timeout=30)
        if proc.is_alive():
            proc.kill()
    return delays, float(ready[2])


def _report(name: str, delays: list[float], build: float) -> None:
    ms = np.array(delays) * 1000
    p50, p95 = np.percentile(ms, [50, 95])
    print(f"  {name:8s} | {len(ms)} trials | p50 {p50:.0f} ms | p95 {p95:.0f} ms | max {ms.max():.0f} ms | "
          f"B's recommender built in {build:.1f} s", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--neo4j", action="store_true", help="also on a private Neo4j server")
    parser.add_argument("--heap", default="1g")
    args = parser.parse_args(argv)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    print(f"commit {head.stdout.strip()}; demo scale {args.scale:g}; {machine()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="jl-fresh-") as tmp:
        data = Path(tmp) / "demo"
        generate(data, scale=args.scale, seed=args.seed)
        with MemoryStore(Path(tmp) / "store") as store:
            load_dataset(store, data)
            delays, build = trials(store, str(Path(tmp) / "store"), args.trials)
        _report("embedded", delays, build)
        if args.neo4j:
            from graph.neo4j_store import Neo4jStore
            from ops.neo4j_server import Neo4jServer

            with Neo4jServer(data_dir=Path(tmp) / "neo4j", heap=args.heap) as server:
                with Neo4jStore.connect(server.uri) as neo:
                    neo.ensure_schema()
                    load_dataset(neo, data)
                    delays, build = trials(neo, server.uri, args.trials)
            _report("neo4j", delays, build)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
