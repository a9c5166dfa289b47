"""The API under a recommend + read + write mix with 1, 2 and 4 worker processes (``jianglian serve --workers N``).

A sibling of ``benchmarks/api_load.py`` (both subclass ``benchmarks/http_load.Load``) for issue 12: the same data
and the same store serve every worker count in turn, so the runs differ only in the number of processes.

Steps (in a temporary ``JIANGLIAN_DATA_DIR``; with ``--store neo4j`` a throwaway Neo4j 5.26 started with the
project's launcher, ``ops.neo4j_server.Neo4jServer``, on a free port, ``--neo4j-heap``):

1. ``jianglian demo --scale S`` loads the demo data; ``jianglian apikey create --scope write`` makes a key.
2. For each ``--workers`` count N: ``jianglian serve --workers N --threads T`` (``JIANGLIAN_API_RATE_LIMIT`` very
   high, so the limiter does not refuse; since 0a16cb4 its counters are shared by the workers in
   ``<data dir>/ratelimits.sqlite3``, so every request still counts there).
   The run waits for ``/readyz``, then warms up until every worker process has answered a recommendation
   (``X-Jianglian-Worker`` names it; each worker builds its own ranking), then ``--clients`` threads, each with
   its own keep-alive connection, send requests for ``--duration`` seconds drawn with the weights of ``--mix``
   (recommend : read : write):

   * recommend: ``POST /api/v1/recommendations`` for a stored problem's text (top 10; one audit write each);
   * read: ``GET /api/v1/problems?page=<random>&per_page=20`` or ``GET /api/v1/workers/<random id>``, half each;
   * write: ``POST /api/v1/problems`` with a new problem (a graph write every ranking process must follow
     through the change feed).

   The server is stopped with SIGTERM (graceful) after each run.
3. A table per run (requests/s, 2xx/s, 5xx, connection errors, p50 / p95 / p99 per operation, requests per
   worker process, server CPU) and one comparing the runs: throughput and its ratio to the first count.

The exit status is 1 if any request got a 5xx or a connection error. The load generator shares the 2 cores with
the server (and Neo4j), so absolute numbers are a floor, and the ratio says what more processes buy on this box.

Run::

    .venv/bin/python benchmarks/api_workers_bench.py --store neo4j                 # 1, 2, 4 workers, 16 clients, 60 s
    .venv/bin/python benchmarks/api_workers_bench.py --store memory --workers 1,2
"""

from __future__ import annotations

import argparse
import http.client
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bulk_load_bench import machine, source_state  # noqa: E402
from benchmarks.http_load import (  # noqa: E402
    JIANGLIAN,
    Load,
    cpu_seconds,
    demo_and_key,
    fetch_pools,
    free_port,
    pcts,
    request,
    rss_mb,
    start_neo4j,
    wait_ready,
)
from web.server import WORKER_HEADER  # noqa: E402

__all__ = ["main"]

OPS = ("recommend", "read", "write")


class Mix(Load):
    """Recommendations, reads (a problem page or a worker row, half each) and new problems; every sample
    names the worker process that answered (``X-Jianglian-Worker``)."""

    OPS = OPS

    def one(self, conn: http.client.HTTPConnection, rng: random.Random, op: str, n: int) -> tuple[int, bytes, str]:
        if op == "recommend":
            return request(conn, "POST", "/api/v1/recommendations", self.key,
                           {"problem": rng.choice(self.problems), "top_k": 10}, header=WORKER_HEADER)
        if op == "write":
            problem = dict(rng.choice(self.problems))
            problem["title"] = f"{problem.get('title') or '新难题'}（{n}）"
            return request(conn, "POST", "/api/v1/problems", self.key, problem, header=WORKER_HEADER)
        if rng.random() < 0.5:
            return request(conn, "GET", f"/api/v1/problems?page={rng.randint(1, self.pages)}&per_page=20", self.key,
                           header=WORKER_HEADER)
        return request(conn, "GET", f"/api/v1/workers/{rng.choice(self.worker_ids)}", self.key, header=WORKER_HEADER)


def _serve_and_load(args: argparse.Namespace, env: dict[str, str], tmp: Path, workers: int, key: str,
                    weights: list[float]) -> dict[str, Any]:
    port = free_port()
    log = open(tmp / f"serve-{workers}.log", "w+", encoding="utf-8")  # noqa: SIM115 - read back at the end
    server = subprocess.Popen([str(JIANGLIAN), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
                               str(workers), "--threads", str(args.threads)], env=env, cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        started = time.perf_counter()
        conn = wait_ready(server, port, key, log, timeout=600)
        ready = time.perf_counter() - started
        problems, worker_ids, pages = fetch_pools(conn, key)
        conn.close()
        # warm-up: every worker process answers recommendations before the clock starts
        warmed: set[str] = set()
        deadline = time.monotonic() + 600
        while len(warmed) < workers and time.monotonic() < deadline:
            warm = Mix(port, key, problems, worker_ids, pages, [1.0, 0.0, 0.0], args.seed + 1)
            warm.run(max(4, 2 * workers), 3.0)
            warmed |= {w for op, s, _, w in warm.samples if s == 200}
        warmup = time.perf_counter() - started - ready
        print(f"{workers} worker(s) on 127.0.0.1:{port}: ready in {ready:.1f} s, every process warm after "
              f"{warmup:.1f} s more ({len(warmed)} answering); load: {args.clients} clients, {args.duration:.0f} s; "
              f"{machine()}", flush=True)
        mix = Mix(port, key, problems, worker_ids, pages, weights, args.seed)
        cpu_before = cpu_seconds(server.pid)
        wall = mix.run(args.clients, args.duration)
        server_cpu = cpu_seconds(server.pid) - cpu_before
        rss = rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            code = server.wait(90)
        except subprocess.TimeoutExpired:
            server.kill()
            code = server.wait()
    log.seek(0)
    server_log = log.read()
    log.close()
    return {"workers": workers, "wall": wall, "mix": mix, "cpu": server_cpu, "rss": rss, "exit": code,
            "tracebacks": server_log.count("Traceback")}


def _report(run: dict[str, Any]) -> tuple[float, int, int]:
    mix: Mix = run["mix"]
    wall = run["wall"]
    samples = mix.samples
    statuses = Counter(s for _, s, _, _ in samples)
    n_5xx = sum(n for s, n in statuses.items() if s >= 500)
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    per_worker = Counter(w for _, s, _, w in samples if s)
    print(f"\n### {run['workers']} worker process(es)\n")
    print(f"{len(samples)} requests in {wall:.1f} s: {len(samples) / wall:.1f} requests/s, {ok / wall:.1f} 2xx/s; "
          f"status codes {dict(sorted(statuses.items()))}; connection errors {dict(mix.errors)}; 5xx: {n_5xx}; "
          f"server CPU {run['cpu']:.0f} s = {run['cpu'] / wall:.2f} cores; server RSS (all processes) "
          f"{run['rss']:.0f} MB; exit status after SIGTERM {run['exit']}; tracebacks in its log {run['tracebacks']}")
    if run["workers"] > 1:
        print("requests per worker process: " + ", ".join(f"{pid} {n}" for pid, n in sorted(per_worker.items())))
    print("\n| operation | requests | requests/s | p50 / p95 / p99 ms of the 2xx | non-2xx |")
    print("|---|---:|---:|---:|---:|")
    for op in (*OPS, "all"):
        rows = [s for s in samples if op in ("all", s[0])]
        if rows:
            ok_times = [x for _, status, x, _ in rows if 200 <= status < 300]
            bad = sum(1 for _, status, _, _ in rows if not 200 <= status < 300)
            print(f"| {op} | {len(rows)} | {len(rows) / wall:.1f} | {pcts(ok_times)} | {bad} |")
    for text in mix.bodies_5xx[:5]:
        print(f"5xx body: {text}")
    return ok / wall, n_5xx, sum(mix.errors.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=("memory", "neo4j"), default="neo4j")
    parser.add_argument("--scale", type=float, default=1.0, help="demo data scale")
    parser.add_argument("--workers", default="1,2,4", help="worker counts to compare, in order")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load per worker count")
    parser.add_argument("--threads", type=int, default=8, help="request threads per worker (serve's default 8)")
    parser.add_argument("--mix", default="1:2:1", help="weights of recommend:read:write")
    parser.add_argument("--encoder", default=None,
                        help="JIANGLIAN_EMBEDDING_MODEL for the server (default: the served default)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--neo4j-heap", default="1g")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.mix.split(":")]
    if len(weights) != 3:
        parser.error("--mix takes three weights: recommend:read:write")
    counts = [int(n) for n in args.workers.split(",")]

    print(machine(), flush=True)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; {source_state()}", flush=True)
    runs: list[dict[str, Any]] = []
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="jianglian-apiworkers-")))
        env = {**os.environ, "JIANGLIAN_DATA_DIR": str(tmp), "JIANGLIAN_STORE": args.store, "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "JIANGLIAN_API_RATE_LIMIT": "100000000 per minute"}
        if args.encoder is not None:
            env["JIANGLIAN_EMBEDDING_MODEL"] = args.encoder
        if args.store == "neo4j":
            start_neo4j(stack, tmp / "neo4j", args.neo4j_heap, env)
        started = time.perf_counter()
        key = demo_and_key(env, args.scale, name="api-workers", scope="write")
        print(f"demo data (scale {args.scale:g}, {args.store} store) and a write key in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        for workers in counts:
            runs.append(_serve_and_load(args, env, tmp, workers, key, weights))

    failed = False
    summary = []
    for run in runs:
        rate, n_5xx, errors = _report(run)
        failed |= bool(n_5xx or errors or run["exit"])
        summary.append((run["workers"], rate, n_5xx, errors, run["cpu"] / run["wall"], run["rss"]))
    base = summary[0][1]
    print(f"\n### {args.store}, demo scale {args.scale:g}, {args.clients} clients x {args.duration:.0f} s, mix "
          f"recommend:read:write = {args.mix}\n")
    print("| workers | 2xx/s | ratio | 5xx | connection errors | server cores busy | server RSS MB |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for workers, rate, n_5xx, errors, cores, rss in summary:
        print(f"| {workers} | {rate:.1f} | {rate / base:.2f} | {n_5xx} | {errors} | {cores:.2f} | {rss:.0f} |")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
