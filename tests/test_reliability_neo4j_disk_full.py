"""Issue 16, finding 7 with Neo4j: a real Neo4j 5.26 whose disk really fills up under a running app.

Neo4j's data directory is put on a small tmpfs of its own (mounting needs root: the test is skipped, saying
so, when this process may not mount), the app writes through the API, then a filler file takes every free
byte. Without log preallocation (the development launcher's setting) Neo4j answers the first commit that needs
a new page of its transaction log with ``TransactionLogError``; with it (Neo4j's default) the commit is logged
but cannot be applied to the store files (``TransactionCommitFailed``). Either way Neo4j then refuses
everything until it is restarted (``graph.neo4j_failures``). The app must report that as a full disk (503
``store-full``, not "图数据库暂时无法访问" and not a 500), flip ``/readyz``, fail every later call the same way
whatever its size, and, once space is freed and Neo4j restarted, recover without its own restart and with
exactly the acknowledged writes (plus the failed one when Neo4j had logged it, as the answer said).
"""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from ops.neo4j_server import FAST_START_JVM_OPTIONS, Neo4jServer, find_free_port
from web.auth import create_api_key
from web.extensions import get_state

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import assert_problem, login_as, make_app  # noqa: E402

#: Room for Neo4j's two fresh databases (about 2 MiB) and the test's writes.
DISK_SIZE = "48m"


@contextmanager
def small_filesystem(where: Path, size: str) -> Iterator[Path]:
    """A tmpfs of ``size`` mounted at ``where`` for the duration (skips the test when mounting is not allowed)."""
    where.mkdir(parents=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs for Neo4j's data needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(where)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(path: Path) -> int:
    """Write zeros to ``path`` until the filesystem has no byte left; return how many were written."""
    written = 0
    with path.open("wb", buffering=0) as fh:
        try:
            while True:
                written += fh.write(b"\0" * 65536)
        except OSError as err:
            assert err.errno == errno.ENOSPC, err
    return written


def _wait_for(check: Callable[[], bool], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError("condition not met in time")


@pytest.mark.neo4j
@pytest.mark.slow
@pytest.mark.parametrize("preallocate", ["false", "true"])
def test_neo4j_on_a_full_disk_is_reported_flips_readiness_fails_consistently_and_recovers(
        tmp_path: Path, preallocate: str) -> None:
    with small_filesystem(tmp_path / "disk", DISK_SIZE) as disk:
        port = find_free_port()
        conf = {"db.tx_log.preallocate": preallocate}
        server = Neo4jServer(port=port, data_dir=disk / "neo4j", heap="512m", jvm_options=FAST_START_JVM_OPTIONS,
                             conf=conf)
        server.start()
        app = make_app(None, STORE="neo4j", NEO4J_URI=f"bolt://127.0.0.1:{port}", NEO4J_USER="neo4j",
                       NEO4J_PASSWORD="", DATA_DIR=str(tmp_path / "data"), STORE_RETRY_SECONDS=0)
        state = get_state(app)
        client = app.test_client()
        try:
            assert client.get("/readyz").status_code == 200
            store = state.store
            key = {"X-API-Key": create_api_key(store, name="platform", scope="write").key}
            page_client, _ = login_as(app, store, "admin")
            acknowledged = []
            for i in range(3):
                created = client.post("/api/v1/workers", headers=key, json={"id": f"W-ok{i}", "name": f"师傅{i}"})
                assert created.status_code == 201, created.get_json()
                acknowledged.append(f"W-ok{i}")

            assert fill(disk / "filler") > 0
            # Commits that fit in the log's last allocated page still succeed (and are durable); a larger one
            # needs a new page and fails. Every answer is 201 or the full-disk 503, never a 500.
            failed = None
            for i in range(120):
                answer = client.post("/api/v1/problems", headers=key,
                                     json={"id": f"P-big{i}", "title": "大", "description": "长" * 100_000})
                if answer.status_code == 201:
                    acknowledged.append(f"P-big{i}")
                    continue
                failed = assert_problem(answer, 503, slug="store-full")
                lost = f"P-big{i}"
                break
            assert failed is not None, "the disk never filled up"
            maybe_saved = "会被恢复" in failed["detail"]  # Neo4j had logged it: its recovery applies it
            assert maybe_saved == (preallocate == "true"), failed
            assert "磁盘已满" in failed["detail"] and "重启" in failed["detail"]
            assert maybe_saved or "未保存" in failed["detail"]
            assert "Retry-After" in answer.headers

            # not ready, and every call fails the same way now, however small, reads included (Neo4j panicked)
            assert_problem(client.get("/readyz"), 503, slug="store-full")
            tiny = client.patch("/api/v1/workers/W-ok0?lang=en", headers=key, json={"capacity": 1})
            assert "most likely full" in assert_problem(tiny, 503, slug="store-full")["detail"]
            assert_problem(client.get("/api/v1/workers/W-ok0", headers=key), 503, slug="store-full")
            assert_problem(client.post("/api/v1/workers", headers=key, json={"id": "W-no", "name": "否"}), 503,
                           slug="store-full")
            page = page_client.get("/workers")
            assert page.status_code == 503 and "磁盘已满" in page.get_data(as_text=True)
            assert client.get("/healthz").status_code == 200
            # an app started now never saw the append fail: still 503 (not a 500), saying Neo4j must be restarted
            late = make_app(None, STORE="neo4j", NEO4J_URI=f"bolt://127.0.0.1:{port}", NEO4J_USER="neo4j",
                            NEO4J_PASSWORD="", DATA_DIR=str(tmp_path / "late"), STORE_RETRY_SECONDS=0)
            late_client = late.test_client()
            assert_problem(late_client.get("/readyz"), 503)
            assert_problem(late_client.get("/api/v1/workers/W-ok0", headers=key), 503)
            get_state(late).close()

            # the administrator frees space: Neo4j still refuses everything until it is restarted
            (disk / "filler").unlink()
            assert_problem(client.get("/readyz"), 503, slug="store-full")
            server.stop()
            if preallocate == "false":
                # The failed append left a torn entry at the end of the log. Neo4j 5.26 then refuses to start
                # ("recovery not possible"); with fail_on_corrupted_log_files=false it recovered once in four
                # tries here and died of OutOfMemoryError reading the torn entry the other three (512 MiB and 1 GiB
                # heaps). Recovery is therefore held by the preallocated case only (docs/security.md).
                return
            server = Neo4jServer(port=port, data_dir=disk / "neo4j", heap="512m", jvm_options=FAST_START_JVM_OPTIONS,
                                 conf=conf)
            server.start()
            _wait_for(lambda: client.get("/readyz").status_code == 200)

            # the same app recovers; exactly the acknowledged writes are there
            for node_id in acknowledged:
                path = "workers" if node_id.startswith("W-") else "problems"
                assert client.get(f"/api/v1/{path}/{node_id}", headers=key).status_code == 200, node_id
            recovered = client.get(f"/api/v1/problems/{lost}", headers=key)
            assert recovered.status_code == (200 if maybe_saved else 404), recovered.get_json()
            assert_problem(client.get("/api/v1/workers/W-no", headers=key), 404)
            assert client.get("/api/v1/workers/W-ok0", headers=key).get_json().get("capacity") != 1
            again = client.post("/api/v1/workers", headers=key, json={"id": "W-after", "name": "恢复后"})
            assert again.status_code == 201, again.get_json()
            assert page_client.get("/workers").status_code == 200
        finally:
            state.close()
            server.stop()
