"""The JSON API under concurrent load: ``jianglian serve`` (waitress) on 127.0.0.1 and a bounded load generator.

Steps (all in a temporary ``JIANGLIAN_DATA_DIR``; the embedded store, or with ``--store neo4j`` a throwaway
Neo4j 5.26 started with the project's launcher, ``ops.neo4j_server.Neo4jServer``, on a free port with a temporary
data directory, and ``JIANGLIAN_STORE=neo4j``, ``NEO4J_URI=bolt://127.0.0.1:<port>``, ``NEO4J_DATABASE=neo4j``,
no authentication, for every command below):

1. ``jianglian demo --scale S`` loads the demo data; ``jianglian apikey create --scope read`` makes a key. Both run
   before the server starts, because the embedded store admits one process per data directory.
2. ``jianglian serve --host 127.0.0.1 --port <free> --threads T`` starts with ``JIANGLIAN_API_RATE_LIMIT`` set
   very high (the default, 600 per minute per key, would turn this benchmark into a test of the limiter).
3. After a warm-up (the recommender builds its projection on the first recommendation), ``--clients`` threads,
   each with its own keep-alive ``http.client`` connection, send requests for ``--duration`` seconds, drawn
   with the weights of ``--mix``:

   * ``POST /api/v1/recommendations`` with a problem copied from a stored one (top 10, explanations on; every
     call records a ``recommendations_shown`` audit event, i.e. one store write);
   * ``GET /api/v1/problems?page=<random>&per_page=20``;
   * ``GET /api/v1/workers/<random id>``;
   * ``GET /api/v1/workers/<random id>/recommended-problems`` (top 10; the fourth weight of ``--mix``, 0 unless
     given).

It prints throughput, p50/p95/p99 per operation and overall, the status codes, the number of 5xx (must be 0:
the exit status is 1 otherwise), the server's CPU time during the load (as cores busy: CPU seconds over wall
seconds) and its peak resident memory (with Neo4j also the JVM's). ``--rate-limit default`` leaves the app's
own per-key budget in force (``API_RATE_LIMIT`` and the per-route costs, ``docs/api.md``): all clients share
the one read key, so this measures how much of the machine one key can take; 429 answers are expected then
and do not count as failures. The server and
then Neo4j are stopped at the end, also after an error. The load generator shares the machine (and its cores) with
the server (and Neo4j), so the numbers are a floor for a dedicated server.

Run::

    .venv/bin/python benchmarks/api_load.py                     # scale 1, 16 clients, 60 s
    .venv/bin/python benchmarks/api_load.py --scale 3 --clients 16 --duration 60 --mix 1:1:1
    .venv/bin/python benchmarks/api_load.py --store neo4j          # the same against a throwaway Neo4j (heap 1g)
    .venv/bin/python benchmarks/api_load.py --mix 40:25:25:10      # issue 16's mix, with recommended-problems
    .venv/bin/python benchmarks/api_load.py --mix 40:25:25:10 --rate-limit default   # one key within its budget
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
    start_neo4j,
    vm_hwm_mb,
    wait_ready,
)
from ops.neo4j_server import Neo4jServer  # noqa: E402

__all__ = ["main"]

OPS = ("recommend", "problems", "worker", "recommended")


class ReadLoad(Load):
    """Recommendations, problem pages, worker rows and a worker's recommended problems."""

    OPS = OPS

    def one(self, conn: http.client.HTTPConnection, rng: random.Random, op: str, n: int) -> tuple[int, bytes, str]:
        if op == "recommend":
            return request(conn, "POST", "/api/v1/recommendations", self.key,
                           {"problem": rng.choice(self.problems), "top_k": 10})
        if op == "problems":
            return request(conn, "GET", f"/api/v1/problems?page={rng.randint(1, self.pages)}&per_page=20", self.key)
        if op == "recommended":
            return request(conn, "GET", f"/api/v1/workers/{rng.choice(self.worker_ids)}/recommended-problems?top_k=10",
                           self.key)
        return request(conn, "GET", f"/api/v1/workers/{rng.choice(self.worker_ids)}", self.key)


def _store_what(store: str) -> str:
    return "embedded store directory" if store == "memory" else "Neo4j data directory"


def _store_mb(store: str, tmp: str) -> float:
    """Size of the store on disk: every file of the embedded store, or everything under Neo4j's ``data``."""
    files = (Path(tmp) / "store").rglob("*") if store == "memory" else (Path(tmp) / "neo4j" / "data").rglob("*")
    return sum(f.stat().st_size for f in files if f.is_file()) / 2**20


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="demo data scale")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--threads", type=int, default=8, help="waitress worker threads (jianglian serve default 8)")
    parser.add_argument("--mix", default="1:1:1",
                        help="weights of recommend:problems:worker[:recommended] (recommended-problems, default 0)")
    parser.add_argument("--rate-limit", default="1000000 per minute",
                        help="JIANGLIAN_API_RATE_LIMIT for the run; 'default' keeps the app's own budget")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--store", choices=("memory", "neo4j"), default="memory",
                        help="the embedded store, or a throwaway Neo4j started for the run")
    parser.add_argument("--neo4j-heap", default="1g", help="JVM heap of the throwaway Neo4j (--store neo4j)")
    args = parser.parse_args(argv)
    weights = [float(w) for w in args.mix.split(":")]
    if len(weights) == 3:
        weights.append(0.0)
    if len(weights) != 4:
        parser.error("--mix takes three or four weights: recommend:problems:worker[:recommended]")
    limited = args.rate_limit == "default"

    print(machine(), flush=True)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; {source_state()}", flush=True)
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="jianglian-apiload-"))
        env = {**os.environ, "JIANGLIAN_DATA_DIR": tmp, "JIANGLIAN_STORE": args.store, "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1"}
        if not limited:
            env["JIANGLIAN_API_RATE_LIMIT"] = args.rate_limit
        else:
            env.pop("JIANGLIAN_API_RATE_LIMIT", None)
            env.pop("JIANGLIAN_API_RATE_COSTS", None)
        neo4j: Neo4jServer | None = None
        if args.store == "neo4j":
            neo4j = start_neo4j(stack, Path(tmp) / "neo4j", args.neo4j_heap, env)
        started = time.perf_counter()
        key = demo_and_key(env, args.scale, name="api-load", scope="read")
        graph_mb = _store_mb(args.store, tmp)
        print(f"demo data (scale {args.scale:g}, {args.store} store) and a read API key in "
              f"{time.perf_counter() - started:.0f} s; {_store_what(args.store)} {graph_mb:.1f} MB", flush=True)

        port = free_port()
        log = open(Path(tmp) / "serve.log", "w+", encoding="utf-8")  # noqa: SIM115 - read back at the end
        server = subprocess.Popen([str(JIANGLIAN), "serve", "--host", "127.0.0.1", "--port", str(port),
                                   "--threads", str(args.threads)], env=env, cwd=REPO, stdout=log,
                                  stderr=subprocess.STDOUT)
        try:
            conn = wait_ready(server, port, key, log, timeout=300)
            problems, worker_ids, pages = fetch_pools(conn, key)
            t = time.perf_counter()
            status, body, _ = request(conn, "POST", "/api/v1/recommendations", key, {"problem": problems[0]})
            assert status == 200, body
            print(f"server ready on 127.0.0.1:{port} ({args.threads} threads); first recommendation "
                  f"(builds the projection) {time.perf_counter() - t:.1f} s; {len(problems)} query problems, "
                  f"{len(worker_ids)} worker ids, {pages} problem pages", flush=True)
            status, body, _ = request(conn, "GET", f"/api/v1/workers/{worker_ids[0]}/recommended-problems", key)
            assert status == 200, body  # the first one keeps the open problems' rows
            if not limited:  # a warm-up would spend the key's budget
                warm = ReadLoad(port, key, problems, worker_ids, pages, weights, args.seed + 1)
                warm.run(min(4, args.clients), 5.0)
            else:
                time.sleep(61)  # let the setup calls leave the one-minute window
            conn.close()

            print(f"load: {args.clients} clients for {args.duration:.0f} s, mix "
                  f"recommend:problems:worker:recommended = {':'.join(f'{w:g}' for w in weights)}, rate limit "
                  f"{args.rate_limit!r}; {machine()}", flush=True)
            load = ReadLoad(port, key, problems, worker_ids, pages, weights, args.seed)
            cpu_before = cpu_seconds(server.pid)
            wall = load.run(args.clients, args.duration)
            server_cpu = cpu_seconds(server.pid) - cpu_before
            print(f"after the load: {machine()}", flush=True)
            server_peak = vm_hwm_mb(server.pid)
            jvm_peak = vm_hwm_mb(neo4j.pid) if neo4j is not None and neo4j.pid is not None else float("nan")
        finally:
            server.send_signal(signal.SIGTERM)
            try:
                server.wait(60)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        log.seek(0)
        server_log = log.read()
        log.close()
        graph_mb_after = _store_mb(args.store, tmp)

    samples = load.samples
    statuses = Counter(s for _, s, _, _ in samples)
    n_5xx = sum(n for s, n in statuses.items() if s >= 500)
    served = sum(n for s, n in statuses.items() if 200 <= s < 300)
    print(f"\n{len(samples)} requests in {wall:.1f} s: {len(samples) / wall:.1f} requests/s ({served / wall:.1f} "
          f"answered 2xx); status codes {dict(sorted(statuses.items()))}; connection errors {dict(load.errors)}; "
          f"5xx: {n_5xx}")
    print(f"server CPU during the load: {server_cpu:.1f} s over {wall:.1f} s = {server_cpu / wall:.2f} cores busy "
          f"(of {os.cpu_count()})")
    jvm = f"; Neo4j JVM peak RSS {jvm_peak:.0f} MB" if args.store == "neo4j" else ""
    print(f"server peak RSS {server_peak:.0f} MB{jvm}; {_store_what(args.store)} grew from {graph_mb:.1f} to "
          f"{graph_mb_after:.1f} MB (audit events); tracebacks in the server log: {server_log.count('Traceback')}")
    print("\n| operation | requests | requests/s | p50 / p95 / p99 ms of the 2xx | 429 | other non-2xx |")
    print("|---|---:|---:|---:|---:|---:|")
    for op in (*OPS, "all"):
        rows = [s for s in samples if op in ("all", s[0])]
        if not rows:
            continue
        limited_n = sum(1 for _, status, _, _ in rows if status == 429)
        bad = sum(1 for _, status, _, _ in rows if not 200 <= status < 300 and status != 429)
        ok_times = [x for _, status, x, _ in rows if 200 <= status < 300]
        print(f"| {op} | {len(rows)} | {len(rows) / wall:.1f} | {pcts(ok_times)} | {limited_n} | "
              f"{bad} |")
    for text in load.bodies_5xx[:5]:
        print(f"5xx body: {text}")
    return 1 if n_5xx or load.errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
