"""Threads per recommendation (``JIANGLIAN_QUERY_THREADS``) against processes answering at once.

One recommendation uses two threads by default (``recommender/threads.py``). On a machine with as many busy
worker processes as cores, the helper threads compete with the other processes for the cores. This script
measures it: for each number of processes P (``--processes``) and threads T (``--threads``), P fresh processes
(real OS processes, started together) each open the embedded store under ``--data``, map the index under
``--index`` (build it beforehand, e.g. with ``alternate_bench.py``: each process would build its own),
answer ``--queries`` stored problems once to warm up, wait for the others, then answer them again, timed.
Reported: each query's latency over all processes (p50 / p95) and the queries answered per second by all
processes together.

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/threads_bench.py --data /tmp/ib11/scale-45 \\
        --index /tmp/ix11/s45-v2 --processes 1 2 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

_ROOT = Path(__file__).resolve().parent.parent


def _child(args: argparse.Namespace) -> None:
    import numpy as np

    from benchmarks.alternate_bench import warm_recommender

    rec, queries = warm_recommender(Path(args.data), Path(args.index), args.queries)
    Path(args.ready).touch()
    deadline = time.monotonic() + 600
    while not Path(args.go).exists():  # every process warm before any is timed
        if time.monotonic() > deadline:
            raise SystemExit("no start signal within 600 s")
        time.sleep(0.01)
    started = time.perf_counter()
    took = []
    for q in queries:
        t = time.perf_counter()
        rec.recommend(q)
        took.append(time.perf_counter() - t)
    print(json.dumps({"took": took, "wall": time.perf_counter() - started, "p50": float(np.percentile(took, 50))}))


def _run(args: argparse.Namespace, processes: int, threads: int, work: Path) -> dict[str, float]:
    import numpy as np

    go = work / "go"
    go.unlink(missing_ok=True)
    env = {**os.environ, "JIANGLIAN_QUERY_THREADS": str(threads), "PYTHONPATH": str(_ROOT)}
    children = []
    for i in range(processes):
        ready = work / f"ready-{i}"
        ready.unlink(missing_ok=True)
        children.append((ready, subprocess.Popen(
            [sys.executable, __file__, "--child", "--data", str(args.data), "--index", str(args.index),
             "--queries", str(args.queries), "--ready", str(ready), "--go", str(go)],
            env=env, stdout=subprocess.PIPE, text=True)))
    deadline = time.monotonic() + 900
    while not all(ready.exists() for ready, _ in children):
        if time.monotonic() > deadline or any(p.poll() not in (None, 0) for _, p in children):
            for _, p in children:
                p.kill()
            raise SystemExit("a process did not get ready in time")
        time.sleep(0.05)
    go.touch()
    results = []
    for _, p in children:
        out, _ = p.communicate(timeout=900)
        if p.returncode:
            raise SystemExit(f"a process failed ({p.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    took = np.concatenate([r["took"] for r in results]) * 1e3
    return {"p50_ms": float(np.percentile(took, 50)), "p95_ms": float(np.percentile(took, 95)),
            "per_s": float(len(took) / max(r["wall"] for r in results))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a directory with the embedded store in store/")
    parser.add_argument("--index", type=Path, required=True, help="the built index directory")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--work", type=Path, default=Path("/tmp/jianglian-threads-bench"))
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--ready", default="", help=argparse.SUPPRESS)
    parser.add_argument("--go", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"# threads_bench: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f}, data {args.data}, {args.queries} queries per process")
    print("| processes | threads per query | query p50 / p95 | queries per second, all processes |")
    print("|---:|---:|---|---:|")
    for processes in args.processes:
        for threads in args.threads:
            r = _run(args, processes, threads, args.work)
            print(f"| {processes} | {threads} | {r['p50_ms']:.1f} / {r['p95_ms']:.1f} ms | {r['per_s']:.1f} |",
                  flush=True)


if __name__ == "__main__":
    main()
