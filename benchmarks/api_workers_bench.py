"""The API under a recommend + read + write mix with 1, 2 and 4 worker processes (``jianglian serve --workers N``).

An extension of ``benchmarks/api_load.py`` (whose request helpers it uses) for issue 12: the same data and the
same store serve every worker count in turn, so the runs differ only in the number of processes.

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
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.api_load import _free_port, _request, _run, _stop_neo4j  # noqa: E402
from benchmarks.bulk_load_bench import machine, source_state  # noqa: E402
from ops.neo4j_server import Neo4jServer  # noqa: E402
from web.server import WORKER_HEADER  # noqa: E402

__all__ = ["main"]

JIANGLIAN = Path(sys.executable).parent / "jianglian"
OPS = ("recommend", "read", "write")


def _call(conn: http.client.HTTPConnection, method: str, path: str, key: str,
          body: dict[str, Any] | None = None) -> tuple[int, bytes, str]:
    headers = {"X-API-Key": key, "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    return response.status, response.read(), response.headers.get(WORKER_HEADER, "")


def _tree(pid: int) -> set[int]:
    """``pid`` and its descendants."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    tree, grew = {pid}, True
    while grew:
        more = {p for p, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def _cpu_seconds(pids: set[int]) -> float:
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def _rss_mb(pids: set[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Mix:
    """The load generator: one keep-alive connection per client thread."""

    def __init__(self, port: int, key: str, problems: list[dict[str, Any]], worker_ids: list[str], pages: int,
                 weights: list[float], seed: int) -> None:
        self.port, self.key, self.problems, self.worker_ids, self.pages = port, key, problems, worker_ids, pages
        self.weights, self.seed = weights, seed
        self.samples: list[tuple[str, int, float, str]] = []  # (op, status or 0, seconds, worker pid)
        self.errors: Counter[str] = Counter()
        self.bodies_5xx: list[str] = []
        self._lock = threading.Lock()

    def one(self, conn: http.client.HTTPConnection, rng: random.Random, op: str, n: int) -> tuple[int, bytes, str]:
        if op == "recommend":
            return _call(conn, "POST", "/api/v1/recommendations", self.key,
                         {"problem": rng.choice(self.problems), "top_k": 10})
        if op == "write":
            problem = dict(rng.choice(self.problems))
            problem["title"] = f"{problem.get('title') or '新难题'}（{n}）"
            return _call(conn, "POST", "/api/v1/problems", self.key, problem)
        if rng.random() < 0.5:
            return _call(conn, "GET", f"/api/v1/problems?page={rng.randint(1, self.pages)}&per_page=20", self.key)
        return _call(conn, "GET", f"/api/v1/workers/{rng.choice(self.worker_ids)}", self.key)

    def client(self, number: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + number)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        local: list[tuple[str, int, float, str]] = []
        n = 0
        while time.monotonic() < deadline:
            op = rng.choices(OPS, weights=self.weights)[0]
            n += 1
            started = time.perf_counter()
            try:
                status, body, worker = self.one(conn, rng, op, number * 1_000_000 + n)
            except (OSError, http.client.HTTPException) as err:
                local.append((op, 0, time.perf_counter() - started, ""))
                with self._lock:
                    self.errors[type(err).__name__] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
                continue
            local.append((op, status, time.perf_counter() - started, worker))
            if status >= 500:
                with self._lock:
                    self.bodies_5xx.append(body[:300].decode("utf-8", "replace"))
        conn.close()
        with self._lock:
            self.samples.extend(local)

    def run(self, clients: int, duration: float) -> float:
        deadline = time.monotonic() + duration
        threads = [threading.Thread(target=self.client, args=(i, deadline), daemon=True) for i in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + 180)
        return time.perf_counter() - started


def _pcts(values: list[float]) -> str:
    if not values:
        return "-"
    a = np.asarray(values) * 1000
    return f"{np.percentile(a, 50):.0f} / {np.percentile(a, 95):.0f} / {np.percentile(a, 99):.0f}"


def _serve_and_load(args: argparse.Namespace, env: dict[str, str], tmp: Path, workers: int, key: str,
                    weights: list[float]) -> dict[str, Any]:
    port = _free_port()
    log = open(tmp / f"serve-{workers}.log", "w+", encoding="utf-8")  # noqa: SIM115 - read back at the end
    server = subprocess.Popen([str(JIANGLIAN), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers",
                               str(workers), "--threads", str(args.threads)], env=env, cwd=REPO, stdout=log,
                              stderr=subprocess.STDOUT)
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        started = time.perf_counter()
        deadline = time.monotonic() + 600
        while True:
            try:
                if _request(conn, "GET", "/readyz", key)[0] == 200:
                    break
            except (OSError, http.client.HTTPException):
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
            if server.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                raise SystemExit(f"the server did not become ready:\n{log.read()[-3000:]}")
            time.sleep(0.5)
        ready = time.perf_counter() - started
        status, body = _request(conn, "GET", "/api/v1/problems?per_page=100&status=solved", key)
        assert status == 200, body
        listing = json.loads(body)
        pages = max(1, -(-int(listing["total"]) // 20))
        fields = ("title", "description", "skills", "enterprise_id", "district", "service_type")
        problems = [{k: p[k] for k in fields if p.get(k) is not None} for p in listing["items"]]
        worker_ids: list[str] = []
        for page in (1, 2, 3):
            status, body = _request(conn, "GET", f"/api/v1/workers?per_page=100&page={page}", key)
            worker_ids += [w["id"] for w in json.loads(body)["items"]]
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
        pids = _tree(server.pid)
        cpu_before = _cpu_seconds(pids)
        wall = mix.run(args.clients, args.duration)
        pids = _tree(server.pid)
        server_cpu = _cpu_seconds(pids) - cpu_before
        rss = _rss_mb(pids)
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
            print(f"| {op} | {len(rows)} | {len(rows) / wall:.1f} | {_pcts(ok_times)} | {bad} |")
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
            neo4j = Neo4jServer(data_dir=tmp / "neo4j", heap=args.neo4j_heap)
            stack.callback(_stop_neo4j, neo4j)
            neo4j.start()
            env.update({"NEO4J_URI": neo4j.uri, "NEO4J_DATABASE": "neo4j", "NEO4J_USER": "neo4j",
                        "NEO4J_PASSWORD": ""})
            print(f"Neo4j 5.26 at {neo4j.uri} (heap {args.neo4j_heap}) ready in {neo4j.startup_seconds:.1f} s",
                  flush=True)
        started = time.perf_counter()
        _run([str(JIANGLIAN), "demo", "--scale", str(args.scale)], env)
        out = _run([str(JIANGLIAN), "apikey", "create", "--name", "api-workers", "--scope", "write"], env)
        match = re.search(r"^key:\s+(\S+)", out, re.M)
        if match is None:
            raise SystemExit(f"no key in: {out}")
        print(f"demo data (scale {args.scale:g}, {args.store} store) and a write key in "
              f"{time.perf_counter() - started:.0f} s", flush=True)
        for workers in counts:
            runs.append(_serve_and_load(args, env, tmp, workers, match.group(1), weights))

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
