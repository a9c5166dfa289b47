"""What the API load benchmarks share: a served app's processes, its readiness, and the load generator.

Used by ``benchmarks/api_load.py`` (one server, one read key, four read-mostly operations) and
``benchmarks/api_workers_bench.py`` (1, 2, 4 worker processes under a recommend + read + write mix). Each of
them defines its operations by subclassing :class:`Load` (its ``OPS`` and :meth:`Load.one`).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from ops.neo4j_server import Neo4jServer  # noqa: E402

__all__ = [
    "JIANGLIAN",
    "Load",
    "Sample",
    "cpu_seconds",
    "demo_and_key",
    "fetch_pools",
    "free_port",
    "pcts",
    "request",
    "rss_mb",
    "run",
    "start_neo4j",
    "stop_neo4j",
    "vm_hwm_mb",
    "wait_ready",
]

JIANGLIAN = Path(sys.executable).parent / "jianglian"
#: One request: (operation, status or 0 for a connection error, seconds, the answering worker's pid or "").
Sample = tuple[str, int, float, str]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run(cmd: list[str], env: dict[str, str]) -> str:
    """Run a command in the repository; its standard output, or exit with both outputs when it fails."""
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def request(conn: http.client.HTTPConnection, method: str, path: str, key: str,
            body: dict[str, Any] | None = None, *, header: str = "") -> tuple[int, bytes, str]:
    """One API call with ``key``: the status, the body and the response header ``header`` ('' when absent)."""
    headers = {"X-API-Key": key, "Accept": "application/json"}
    data = None
    if body is not None:
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        headers["Content-Type"] = "application/json"
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    return response.status, response.read(), response.headers.get(header, "") if header else ""


# -- the server's processes -----------------------------------------------------------------------------
def _proc_stats() -> dict[int, list[str]]:
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stats[int(entry.name)] = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
    return stats


def _tree(pid: int, stats: dict[int, list[str]]) -> set[int]:
    tree, grew = {pid}, True
    while grew:
        more = {p for p, fields in stats.items() if int(fields[1]) in tree} - tree
        tree |= more
        grew = bool(more)
    return tree


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by the process and its descendants (the served app may fork
    workers), from ``/proc/<pid>/stat``: their own time plus what their exited children left them."""
    stats = _proc_stats()
    if pid not in stats:
        return float("nan")
    ticks = sum(sum(int(x) for x in stats[p][11:15]) for p in _tree(pid, stats))  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def vm_hwm_mb(pid: int) -> float:
    """The process's peak resident memory (VmHWM), MB."""
    kb = _status_kb(pid, "VmHWM")
    return float("nan") if kb is None else kb / 1024


def rss_mb(pid: int) -> float:
    """Resident memory of the process and its descendants now (VmRSS summed), MB."""
    return sum(_status_kb(p, "VmRSS") or 0 for p in _tree(pid, _proc_stats())) / 1024


def pcts(values: list[float]) -> str:
    """p50 / p95 / p99 of durations in seconds, as milliseconds ('-' when there are none)."""
    if not values:
        return "-"
    a = np.asarray(values) * 1000
    return f"{np.percentile(a, 50):.0f} / {np.percentile(a, 95):.0f} / {np.percentile(a, 99):.0f}"


# -- set-up -------------------------------------------------------------------------------------------
def start_neo4j(stack: ExitStack, data_dir: Path, heap: str, env: dict[str, str]) -> Neo4jServer:
    """A throwaway Neo4j in ``data_dir``, stopped when ``stack`` closes; ``env`` points the CLI at it."""
    neo4j = Neo4jServer(data_dir=data_dir, heap=heap)
    stack.callback(stop_neo4j, neo4j)  # registered before the app server: runs after it has stopped
    neo4j.start()
    env.update({"NEO4J_URI": neo4j.uri, "NEO4J_DATABASE": "neo4j", "NEO4J_USER": "neo4j", "NEO4J_PASSWORD": ""})
    print(f"Neo4j 5.26 at {neo4j.uri} (pid {neo4j.pid}, heap {heap}) ready in {neo4j.startup_seconds:.1f} s",
          flush=True)
    return neo4j


def stop_neo4j(server: Neo4jServer) -> None:
    """Stop the throwaway Neo4j, printing its last output if it exited badly."""
    code = server.stop()
    if code not in (0, None):
        print(f"Neo4j exited with code {code}:\n" + "\n".join(server.output_tail()[-20:]), file=sys.stderr)
    else:
        print(f"Neo4j stopped (exit code {code})", flush=True)


def demo_and_key(env: dict[str, str], scale: float, *, name: str, scope: str) -> str:
    """``jianglian demo --scale scale``, then an API key of ``scope``: the key."""
    run([str(JIANGLIAN), "demo", "--scale", str(scale)], env)
    out = run([str(JIANGLIAN), "apikey", "create", "--name", name, "--scope", scope], env)
    match = re.search(r"^key:\s+(\S+)", out, re.M)
    if match is None:
        raise SystemExit(f"no key in: {out}")
    return match.group(1)


def wait_ready(server: subprocess.Popen[Any], port: int, key: str, log: IO[str], *,
               timeout: float) -> http.client.HTTPConnection:
    """Wait until ``/readyz`` answers 200 (exit with the server's log if it stops or ``timeout`` passes);
    the connection that saw it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    deadline = time.monotonic() + timeout
    while True:
        try:
            if request(conn, "GET", "/readyz", key)[0] == 200:
                return conn
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
        if server.poll() is not None or time.monotonic() > deadline:
            log.seek(0)
            raise SystemExit(f"the server did not become ready:\n{log.read()[-3000:]}")
        time.sleep(0.5)


def fetch_pools(conn: http.client.HTTPConnection, key: str) -> tuple[list[dict[str, Any]], list[str], int]:
    """What the clients draw from, fetched through the API itself: up to 100 solved problems' texts (query
    problems), up to 300 worker ids, and the number of 20-row problem pages."""
    status, body, _ = request(conn, "GET", "/api/v1/problems?per_page=100&status=solved", key)
    assert status == 200, body
    listing = json.loads(body)
    pages = max(1, -(-int(listing["total"]) // 20))
    fields = ("title", "description", "skills", "enterprise_id", "district", "service_type")
    problems = [{k: p[k] for k in fields if p.get(k) is not None} for p in listing["items"]]
    worker_ids: list[str] = []
    for page in (1, 2, 3):
        status, body, _ = request(conn, "GET", f"/api/v1/workers?per_page=100&page={page}", key)
        worker_ids += [w["id"] for w in json.loads(body)["items"]]
    return problems, worker_ids, pages


# -- the load generator -------------------------------------------------------------------------------
class Load:
    """Client threads, each with its own keep-alive connection, sending requests drawn with ``weights``
    from :attr:`OPS` until a deadline; the samples, connection errors and 5xx bodies are collected.

    Subclasses name their operations (``OPS``, in the order of ``weights``) and send one in :meth:`one`.
    """

    OPS: tuple[str, ...] = ()

    def __init__(self, port: int, key: str, problems: list[dict[str, Any]], worker_ids: list[str], pages: int,
                 weights: list[float], seed: int) -> None:
        self.port, self.key = port, key
        self.problems, self.worker_ids, self.pages = problems, worker_ids, pages
        self.weights, self.seed = weights, seed
        self.samples: list[Sample] = []
        self.errors: Counter[str] = Counter()
        self.bodies_5xx: list[str] = []
        self._lock = threading.Lock()

    def one(self, conn: http.client.HTTPConnection, rng: random.Random, op: str, n: int) -> tuple[int, bytes, str]:
        """Send one ``op`` (``n`` numbers the request, unique across clients): status, body, worker pid."""
        raise NotImplementedError

    def client(self, number: int, deadline: float) -> None:
        rng = random.Random(self.seed * 1000 + number)
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        local: list[Sample] = []
        n = 0
        while time.monotonic() < deadline:
            op = rng.choices(self.OPS, weights=self.weights)[0]
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
        """Run ``clients`` threads for ``duration`` seconds; the wall time taken."""
        deadline = time.monotonic() + duration
        threads = [threading.Thread(target=self.client, args=(i, deadline), daemon=True) for i in range(clients)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + 180)
        return time.perf_counter() - started
