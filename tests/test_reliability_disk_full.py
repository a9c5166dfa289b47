"""Issue 16, finding 7: a full disk is reported as a full disk (not as an unreachable store), ``/readyz``
flips to 503 while it lasts, every write is refused whatever its size, reads keep working, and writes
resume once space is freed, with nothing acknowledged lost.

The disk is simulated at the operating-system calls the embedded store makes for its data directory
(``os.write`` of the journal, the atomic snapshot write, ``os.statvfs``), which fail with ``ENOSPC`` once the
free bytes run out; everything else is the real app over a real on-disk :class:`~graph.memory.MemoryStore`.
"""

from __future__ import annotations

import errno
import io
import os
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import IO, Any

import pytest

from graph import memory
from graph.dataset import load_dataset
from graph.errors import StoreFull
from graph.memory import MemoryStore
from tests import api_support
from tests.api_support import assert_problem, make_app
from web.auth import create_api_key

demo_dir = api_support.demo_dir


class SimulatedDisk:
    """The filesystem holding ``directory``, with ``free`` bytes left (writes past them fail with ENOSPC)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
        self.directory = str(directory.resolve())
        self.free = 1 << 40
        real_write, real_statvfs, real_atomic = os.write, os.statvfs, memory._atomic_write

        def ours(path: str) -> bool:
            return path.startswith(self.directory)

        def spend(size: int) -> None:
            if size > self.free:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.free -= size

        def write(fd: int, data: Any) -> int:
            try:
                path = os.readlink(f"/proc/self/fd/{fd}")
            except OSError:
                path = ""
            if ours(path):
                spend(len(data))
            return real_write(fd, data)

        def atomic_write(path: Path, fill: Callable[[IO[bytes]], None]) -> None:
            buffer = io.BytesIO()
            fill(buffer)
            if ours(str(Path(path).resolve())) and len(buffer.getvalue()) > self.free:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            real_atomic(path, lambda fh: fh.write(buffer.getvalue()))

        def statvfs(path: Any) -> Any:
            if ours(str(Path(path).resolve())):
                return SimpleNamespace(f_bavail=self.free // 4096, f_frsize=4096)
            return real_statvfs(path)

        monkeypatch.setattr(os, "write", write)
        monkeypatch.setattr(os, "statvfs", statvfs)
        monkeypatch.setattr(memory, "_atomic_write", atomic_write)


def test_a_full_disk_is_reported_flips_readiness_and_refuses_every_write(
        tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "store"
    store = MemoryStore(data)
    load_dataset(store, demo_dir)
    headers = {"X-API-Key": create_api_key(store, name="platform", scope="write").key}
    district = next(iter(store.iter_nodes("District")))["id"]
    client = make_app(store).test_client()
    disk = SimulatedDisk(monkeypatch, data)

    assert client.get("/readyz").status_code == 200
    created = client.post("/api/v1/workers", headers=headers,
                          json={"id": "W-before", "name": "甲", "district": district})
    assert created.status_code == 201, created.get_data(as_text=True)

    disk.free = 0
    full = client.post("/api/v1/workers", headers=headers, json={"id": "W-full", "name": "乙", "district": district})
    body = assert_problem(full, 503, slug="store-full")
    assert "磁盘空间已满" in body["detail"] and "未保存" in body["detail"]
    assert store.get_node("Worker", "W-full") is None  # taken back, not half-written
    ready = client.get("/readyz")
    assert_problem(ready, 503, slug="store-full")

    # a write small enough for what is left is refused too: writes fail consistently, not by size
    disk.free = 8192
    assert_problem(client.patch("/api/v1/workers/W-before", headers=headers, json={"capacity": 1}), 503,
                   slug="store-full")
    assert client.get("/readyz").status_code == 503
    english = client.patch("/api/v1/workers/W-before?lang=en", headers=headers, json={"capacity": 1})
    assert "disk is full" in assert_problem(english, 503, slug="store-full")["detail"]
    # reads keep working
    read = client.get("/api/v1/workers/W-before", headers=headers)
    assert read.status_code == 200 and read.get_json().get("capacity") != 1

    disk.free = 1 << 40  # the administrator freed space
    assert client.get("/readyz").status_code == 200
    after = client.post("/api/v1/workers", headers=headers, json={"id": "W-after", "name": "丙", "district": district})
    assert after.status_code == 201, after.get_data(as_text=True)
    store.close()

    with MemoryStore(data) as reopened:  # exactly the acknowledged writes are on disk
        assert reopened.get_node("Worker", "W-before") is not None
        assert (reopened.get_node("Worker", "W-before") or {}).get("capacity") != 1
        assert reopened.get_node("Worker", "W-full") is None
        assert reopened.get_node("Worker", "W-after") is not None


def test_a_full_disk_during_a_compaction_is_a_full_disk_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "store"
    store = MemoryStore(data, compact_min_bytes=0, compact_ratio=0.0)  # every write compacts
    store.create_node("Worker", "W1", {"name": "甲"})
    disk = SimulatedDisk(monkeypatch, data)
    disk.free = 10
    with pytest.raises(StoreFull):
        store.create_node("Worker", "W2", {"name": "乙"})
    with pytest.raises(StoreFull):
        store.ping()
    disk.free = 1 << 40
    store.ping()
    store.create_node("Worker", "W3", {"name": "丙"})
    store.close()
    with MemoryStore(data) as reopened:
        assert {n["id"] for n in reopened.iter_nodes("Worker")} == {"W1", "W3"}
