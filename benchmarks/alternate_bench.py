"""Two checkouts of the code on the same store, their query time and memory measured in alternating processes.

A change's cost in query time is a few milliseconds, and on a shared machine the speed of the machine drifts by
more than that between two runs a quarter of an hour apart. So each checkout is run in a fresh process,
A, B, A, B, ...: each process opens the embedded store under ``--data``, maps its own index directory (built by
that process first when it is missing or stale, the build not timed), answers ``--queries`` stored problems
(spread over the ids) once to warm up, then ``--rounds`` more times, and reports each query's best time (p50,
p95 and mean), its peak RSS and its RssAnon / RssFile at the end. A process that had to build its index reports
the build's peak RSS: run once more to measure the index files alone.

Each ``--code LABEL=CHECKOUT:INDEX_DIR`` names a checkout of this repository (``.``, or a worktree such as
``git worktree add /tmp/base 3a0d03a``; its modules are imported ahead of the installed package) and the index
directory it keeps (two checkouts with different index formats must not share one).

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/alternate_bench.py --data /tmp/ib8/scale-455 --runs 2 \\
        --code base=/tmp/base:/tmp/base-index --code new=.:/tmp/ib8/scale-455/index
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any


def warm_recommender(data: Path, index: Path, n_queries: int) -> tuple[Any, list[str]]:
    """A recommender (encoder off) on the embedded store under ``data`` with its index files under ``index``
    (built first when missing or stale), and ``n_queries`` stored problems spread over the ids, each answered
    once (the warm-up)."""
    from graph.memory import MemoryStore
    from recommender.engine import RankConfig, Recommender

    rec = Recommender(MemoryStore(data / "store"), encoder=None,
                      config=RankConfig(index_dir=index, model_dir=data / "models"))
    ids = rec.projection.ids["Problem"]
    step = max(1, len(ids) // n_queries)
    queries = [ids[i] for i in range(0, len(ids), step)][:n_queries]
    for q in queries:
        rec.recommend(q)
    return rec, queries


def _child(args: argparse.Namespace) -> None:
    import numpy as np

    rec, queries = warm_recommender(Path(args.data), Path(args.index), args.queries)
    best = np.full(len(queries), np.inf)
    for _ in range(args.rounds):
        for i, q in enumerate(queries):
            t = time.perf_counter()
            rec.recommend(q)
            best[i] = min(best[i], time.perf_counter() - t)
    status = {line.split(":")[0]: line.split(":")[1].split()[0] for line in open("/proc/self/status")
              if line.startswith(("VmHWM", "RssAnon", "RssFile"))}
    print(json.dumps({"p50_ms": float(np.percentile(best, 50) * 1e3), "p95_ms": float(np.percentile(best, 95) * 1e3),
                      "mean_ms": float(best.mean() * 1e3), "queries": len(queries),
                      **{k: int(v) // 1024 for k, v in status.items()}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="a directory holding an embedded store in store/")
    parser.add_argument("--code", action="append", default=[], help="LABEL=CHECKOUT:INDEX_DIR (two or more)")
    parser.add_argument("--runs", type=int, default=2, help="processes per checkout, alternated")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--index", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    if not (Path(args.data) / "store").is_dir():
        parser.error(f"no embedded store in {args.data}/store")
    codes = []
    for spec in args.code:
        label, _, rest = spec.partition("=")
        checkout, _, index = rest.partition(":")
        if not (label and checkout and index) or not (Path(checkout) / "recommender").is_dir():
            parser.error(f"--code {spec!r}: expected LABEL=CHECKOUT:INDEX_DIR, CHECKOUT a checkout of this repository")
        codes.append((label, str(Path(checkout).resolve()), index))
    if len(codes) < 2:
        parser.error("give two or more --code")
    load = os.getloadavg()
    print(f"# alternate_bench: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, load "
          f"average {load[0]:.1f}, data {args.data}, {args.queries} queries, best of {args.rounds} rounds each")
    print("| run | code | peak RSS | RssAnon / RssFile after | query p50 / p95 / mean |")
    print("|---|---|---:|---|---|")
    for run in range(args.runs):
        for label, checkout, index in codes:
            env = {**os.environ, "PYTHONPATH": checkout + os.pathsep + os.environ.get("PYTHONPATH", "")}
            done = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", "--data", args.data,
                                   "--index", index, "--queries", str(args.queries), "--rounds", str(args.rounds)],
                                  cwd=checkout, env=env, capture_output=True, text=True, check=False)
            if done.returncode != 0:
                raise SystemExit(f"{label}: the child failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            r = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"| {run + 1} | {label} | {r['VmHWM']:,} MiB | {r['RssAnon']:,} / {r['RssFile']:,} MiB | "
                  f"{r['p50_ms']:.1f} / {r['p95_ms']:.1f} / {r['mean_ms']:.1f} ms |", flush=True)


if __name__ == "__main__":
    main()
