"""Issue 16, finding 7: a full disk is reported as a full disk (not as an unreachable store), ``/readyz``
flips to 503 while it lasts, every write is refused whatever its size, reads keep working, and writes
resume once space is freed, with nothing acknowledged lost.

The disk fills for real as far as SQLite can tell: ``PRAGMA max_page_count`` caps the database file of the
store's connection (this thread's: the Flask test client runs the app in the test's thread) at its size, so
the next write that needs a page fails inside SQLite with ``SQLITE_FULL``, exactly as on a full disk;
``os.statvfs`` of the data directory (what the store checks before writes resume) reports the free bytes the
test sets. Everything else is the real app over a real on-disk :class:`~graph.memory.MemoryStore`.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from graph.dataset import load_dataset
from graph.errors import StoreFull
from graph.memory import MemoryStore
from graph.store import NodeRow, WriteBatch
from tests import api_support
from tests.api_support import assert_problem, make_app
from web.auth import create_api_key

demo_dir = api_support.demo_dir


class SimulatedDisk:
    """The filesystem holding ``store``'s directory: ``fill()`` makes it full, ``free`` is what statvfs reports."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, store: MemoryStore) -> None:
        assert store.data_dir is not None
        self.store = store
        self.directory = str(store.data_dir.resolve())
        self.free = 1 << 40
        real_statvfs = os.statvfs

        def statvfs(path: Any) -> Any:
            if str(Path(path).resolve()).startswith(self.directory):
                return SimpleNamespace(f_bavail=self.free // 4096, f_frsize=4096)
            return real_statvfs(path)

        monkeypatch.setattr(os, "statvfs", statvfs)

    def fill(self) -> int:
        """Cap the database at its size and write until SQLite reports the disk full; return the writes it took."""
        self.free = 0
        conn = self.store._conn()  # this thread's connection, the one the test client's requests use
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        for i in range(10_000):
            try:
                self.store.apply(WriteBatch(nodes=[NodeRow("AuditEvent", f"fill{i:05d}", {"pad": "x" * 2000})]))
            except StoreFull:
                return i
        raise AssertionError("the capped database never filled")

    def make_room(self) -> None:
        self.free = 1 << 40
        self.store._conn().execute("PRAGMA max_page_count = 1073741823")


def test_a_full_disk_is_reported_flips_readiness_and_refuses_every_write(
        tmp_path: Path, demo_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "store"
    store = MemoryStore(data)
    load_dataset(store, demo_dir)
    headers = {"X-API-Key": create_api_key(store, name="platform", scope="write").key}
    district = next(iter(store.iter_nodes("District")))["id"]
    client = make_app(store).test_client()
    disk = SimulatedDisk(monkeypatch, store)

    assert client.get("/readyz").status_code == 200
    created = client.post("/api/v1/workers", headers=headers,
                          json={"id": "W-before", "name": "甲", "district": district})
    assert created.status_code == 201, created.get_data(as_text=True)

    filled = disk.fill()  # the acknowledged fill writes stay; the one that found the disk full is not written
    assert store.get_node("AuditEvent", f"fill{filled:05d}") is None
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

    disk.make_room()  # the administrator freed space
    assert client.get("/readyz").status_code == 200
    after = client.post("/api/v1/workers", headers=headers, json={"id": "W-after", "name": "丙", "district": district})
    assert after.status_code == 201, after.get_data(as_text=True)
    store.close()

    with MemoryStore(data) as reopened:  # exactly the acknowledged writes are on disk
        assert reopened.get_node("Worker", "W-before") is not None
        assert (reopened.get_node("Worker", "W-before") or {}).get("capacity") != 1
        assert reopened.get_node("Worker", "W-full") is None
        assert reopened.get_node("Worker", "W-after") is not None
        assert reopened.count_nodes("AuditEvent", where={"pad": "x" * 2000}) == filled


def test_a_full_disk_during_a_bulk_write_writes_none_of_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "store"
    store = MemoryStore(data)
    store.create_node("Worker", "W1", {"name": "甲"})
    disk = SimulatedDisk(monkeypatch, store)
    disk.free = 0
    conn = store._conn()
    conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0] + 20}")
    with pytest.raises(StoreFull):  # needs far more than 20 pages
        store.apply(WriteBatch(nodes=[NodeRow("Worker", f"B{i:05d}", {"bio": "数控" * 200}) for i in range(2000)]))
    assert store.count_nodes("Worker") == 1
    with pytest.raises(StoreFull):
        store.ping()
    with pytest.raises(StoreFull):  # small writes too, until there is room
        store.create_node("Worker", "W2", {"name": "乙"})
    disk.make_room()
    store.ping()
    store.create_node("Worker", "W3", {"name": "丙"})
    store.close()
    with MemoryStore(data) as reopened:
        assert {n["id"] for n in reopened.iter_nodes("Worker")} == {"W1", "W3"}
