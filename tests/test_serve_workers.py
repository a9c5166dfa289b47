"""``jianglian serve --workers N``: real gunicorn worker processes on 127.0.0.1.

Against Neo4j: requests are answered by two different worker processes (``X-Jianglian-Worker``), a problem
posted through one worker is read through the other, ``SIGHUP`` replaces both workers while requests keep being
answered, and ``SIGTERM`` stops the master and its workers cleanly. Against an embedded store that admits one
process, ``--workers 2`` falls back to one waitress process with a warning; the SQLite store admits several, and
two workers on one data directory see each other's writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from neo4j import Driver

from graph.errors import StoreLocked
from graph.memory import MemoryStore
from graph.neo4j_store import Neo4jStore
from ops.neo4j_server import find_free_port
from web.auth import create_api_key
from web.server import WORKER_HEADER, compute_threads

REPO = Path(__file__).resolve().parent.parent


def _serve(env: dict[str, str], port: int, workers: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-c", "from cli.main import main; main()", "serve", "--port", str(port),
               "--workers", str(workers), "--threads", "4"]
    return subprocess.Popen(command, env={**os.environ, **env, "PYTHONUNBUFFERED": "1",
                                          "JIANGLIAN_EMBEDDING_MODEL": "none"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)


def _get(url: str, key: str | None = None, data: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], str]:
    """``(status, body, worker pid header)`` of one request on a new connection."""
    headers = {"X-API-Key": key} if key else {}
    body = None
    if data is not None:
        headers["Content-Type"] = "application/json"
        body = json.dumps(data).encode()
    request = urllib.request.Request(url, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.load(response), response.headers.get(WORKER_HEADER, "")
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}"), err.headers.get(WORKER_HEADER, "")


def _wait_ready(base: str, proc: subprocess.Popen[str], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while True:
        assert proc.poll() is None, "the server exited"
        try:
            if _get(base + "/readyz")[0] == 200:
                return
        except (urllib.error.URLError, ConnectionError):
            pass
        assert time.monotonic() < deadline, "not ready in time"
        time.sleep(0.3)


def _workers_seen(base: str, want: int, seconds: float = 30) -> set[str]:
    """Worker pids answering concurrent requests, until ``want`` distinct ones (or the time is up)."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    with ThreadPoolExecutor(8) as pool:
        while len(seen) < want and time.monotonic() < deadline:
            seen |= {pid for _, _, pid in pool.map(lambda _: _get(base + "/healthz"), range(16))}
    return seen


def _ready_bodies(base: str, workers: set[str], seconds: float = 60) -> dict[str, dict[str, Any]]:
    """Each of ``workers``' ready ``/readyz`` body, by worker pid: a worker still mapping or building its ranking
    answers 503 until it is ready, and the workers start at their own pace."""
    ready: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + seconds
    while not workers <= set(ready) and time.monotonic() < deadline:
        status, body, pid = _get(base + "/readyz")
        if status == 200:
            ready[pid] = body
        else:
            time.sleep(0.1)
    return ready


def _write_through_one_read_through_other(base: str, key: str) -> None:
    status, body, writer = _get(base + "/api/v1/problems", key,
                                {"id": "PW1", "title": "注塑件缩痕严重", "skills": ["注塑成型"]})
    assert status == 201, body
    readers: set[str] = set()
    deadline = time.monotonic() + 30
    while not readers - {writer} and time.monotonic() < deadline:
        status, body, reader = _get(base + "/api/v1/problems/PW1", key)
        assert status == 200 and body["title"] == "注塑件缩痕严重"
        readers.add(reader)
    assert readers - {writer}, "never answered by the other worker"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            return fh.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False


@pytest.fixture
def neo4j_env(neo4j_driver: Driver, neo4j_uri: str, tmp_path: Path) -> Iterator[tuple[dict[str, str], str]]:
    """A cleared Neo4j database with one worker and a write key, and the environment that serves it."""
    store = Neo4jStore(neo4j_driver, "neo4j")
    store.clear()
    store.ensure_schema()
    store.create_node("Worker", "W1", {"name": "王师傅", "district": "亭湖区"})
    key = create_api_key(store, name="workers-test", scope="write").key
    env = {"JIANGLIAN_STORE": "neo4j", "NEO4J_URI": neo4j_uri, "NEO4J_DATABASE": "neo4j",
           "JIANGLIAN_DATA_DIR": str(tmp_path)}
    if not os.environ.get("NEO4J_URI"):
        env["NEO4J_PASSWORD"] = ""
    try:
        yield env, key
    finally:
        store.clear()


def test_two_workers_on_neo4j_share_writes_and_restart_gracefully(neo4j_env: tuple[dict[str, str], str]) -> None:
    env, key = neo4j_env
    port = find_free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve(env, port, workers=2)
    output = ""
    try:
        _wait_ready(base, proc)
        first = _workers_seen(base, 2)
        assert len(first) == 2 and str(proc.pid) not in first, first

        _write_through_one_read_through_other(base, key)

        # SIGHUP: new workers replace the old ones while requests keep being answered
        failures: list[str] = []
        answered: list[int] = []
        stop = threading.Event()

        def hammer() -> None:
            while not stop.is_set():
                try:
                    status = _get(base + "/healthz")[0]
                    answered.append(status)
                    if status != 200:
                        failures.append(str(status))
                except (urllib.error.URLError, ConnectionError) as err:
                    failures.append(repr(err))

        thread = threading.Thread(target=hammer)
        thread.start()
        try:
            proc.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 60
            while any(_alive(int(pid)) for pid in first) and time.monotonic() < deadline:
                time.sleep(0.2)
            after = _workers_seen(base, 2)
        finally:
            stop.set()
            thread.join()
        assert not any(_alive(int(pid)) for pid in first), "old workers still running after SIGHUP"
        assert len(after) == 2 and not after & first, (first, after)
        assert not failures and len(answered) > 10, failures[:5]
        status, body, _ = _get(base + "/api/v1/problems/PW1", key)
        assert status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    assert "Handling signal: term" in output and "Shutting down: Master" in output
    assert output.rstrip().endswith("stopped") and output.count("stopped") == 1, output
    assert not any(_alive(int(pid)) for pid in after)


def test_two_workers_on_one_embedded_data_directory(tmp_path: Path) -> None:
    """Two workers share the embedded store when it admits several processes (SQLite); a store that admits one
    (probed the way ``serve`` probes it: a second open) is served by one waitress process with a warning."""
    store = MemoryStore(tmp_path / "store")
    store.create_node("Worker", "W1", {"name": "王师傅"})
    key = create_api_key(store, name="workers-test", scope="write").key
    try:
        MemoryStore(tmp_path / "store").close()
        one_process = False
    except StoreLocked:
        one_process = True
    store.close()
    port = find_free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _serve({"JIANGLIAN_STORE": "memory", "JIANGLIAN_DATA_DIR": str(tmp_path)}, port, workers=2)
    try:
        _wait_ready(base, proc)
        seen = _workers_seen(base, 2, seconds=10 if one_process else 30)
        ready = _ready_bodies(base, seen)
        pools = {body["compute_threads"] for body in ready.values()}
        if not one_process:
            _write_through_one_read_through_other(base, key)
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, output
    if one_process:  # waitress in the serving process itself: no worker header
        assert "the embedded store admits one process" in output and "serving with 1 worker" in output
        assert seen == {""}
    else:
        assert len(seen) == 2 and "" not in seen, (seen, output)
        assert set(ready) == seen, (ready, seen)  # every worker got ready
        # each worker's BLAS pool is its share of the cores, not the whole machine (N workers x N threads)
        assert pools == {compute_threads(2)}, pools
