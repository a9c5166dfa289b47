"""An embedded data directory of the old format (``graph.json`` snapshot, ``graph.journal.jsonl``,
``vectors/*.npz``, ``store.lock``) is migrated into ``jianglian.sqlite`` on first open.

The old directory is written here byte by byte in the old format (the snapshot's JSON, journal lines with their
CRC, ``np.savez`` vectors), with journal entries the snapshot already holds, entries above it, and a torn last
line; opening it gives exactly the old store's state, moves the old files into ``legacy-<timestamp>/`` and says
so in the log; a damaged line in the middle of the journal refuses to migrate and changes nothing; two processes
opening the old directory at once migrate it once.
"""

from __future__ import annotations

import json
import logging
import multiprocessing as mp
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graph.errors import StoreUnavailable
from graph.legacy import journal_line
from graph.memory import DB_FILE, MemoryStore
from graph.store import Change, RelRow

SNAPSHOT = {
    "format": 1,
    "seq": 3,
    "nodes": {
        "Worker": {"W1": {"name": "张三", "honours": ["全国劳模"], "capacity": 3}, "W2": {"name": "李四"},
                   "W3": {"name": "王五"}},
        "Skill": {"焊接": {"name": "焊接"}},
        "Match": {"M1": {"worker_id": "W1", "state": "invited"}},
    },
    "rels": [["HAS_SKILL", "Worker", "W1", "Skill", "焊接", {"level": "高级"}],
             ["MENTORS", "Worker", "W1", "Worker", "W2", {}],
             ["MENTORS", "Worker", "W3", "Worker", "W1", {}]],
    "meta": {"encoder": "m1"},
}
JOURNAL = [
    (2, [["N", "Worker", "W9", {"name": "already in the snapshot"}]]),  # skipped: at or below the snapshot's seq
    (4, [["N", "Worker", "W2", {"name": "李四", "district": "亭湖区"}],
         ["R", "HAS_SKILL", "Worker", "W2", "Skill", "焊接", {"since": 2020}]]),
    (5, [["r", "MENTORS", "Worker", "W1", "Worker", "W2"]]),
    (6, [["D", "Worker", "W3"]]),
    (7, [["M", "encoder", "m2"], ["M", "gone", None]]),
    (8, [["N", "Match", "M1", {"worker_id": "W1", "state": "accepted"}]]),
]


def write_old(directory: Path, *, torn: bool = True, damaged: bool = False) -> None:
    directory.mkdir(parents=True)
    (directory / "graph.json").write_text(json.dumps(SNAPSHOT, ensure_ascii=False), encoding="utf-8")
    lines = [journal_line(seq, ops) for seq, ops in JOURNAL]
    if damaged:
        lines[2] = lines[2].replace(b"MENTORS", b"MENTORZ")  # its CRC no longer matches
    if torn:
        lines.append(journal_line(9, [["N", "Worker", "W1", {"name": "never acknowledged"}]])[:25])
    (directory / "graph.journal.jsonl").write_bytes(b"".join(lines))
    (directory / "vectors").mkdir()
    np.savez(directory / "vectors" / "Worker__embedding.npz", ids=np.array(["W1", "W2"]),
             vectors=np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32))
    (directory / "store.lock").write_bytes(b"")


def expected_state(store: MemoryStore) -> None:
    assert store.counts() == {"Worker": 2, "Skill": 1, "Match": 1, "HAS_SKILL": 2}
    assert store.get_node("Worker", "W1") == {"id": "W1", "name": "张三", "honours": ["全国劳模"], "capacity": 3}
    assert store.get_node("Worker", "W2") == {"id": "W2", "name": "李四", "district": "亭湖区"}
    assert store.get_node("Worker", "W3") is None and store.get_node("Worker", "W9") is None
    assert store.relationships("HAS_SKILL") == [RelRow("HAS_SKILL", "Worker", "W1", "Skill", "焊接", {"level": "高级"}),
                                                RelRow("HAS_SKILL", "Worker", "W2", "Skill", "焊接", {"since": 2020})]
    assert store.relationships("MENTORS") == []
    assert store.get_meta("encoder") == "m2" and store.get_meta("gone") is None
    assert store.get_node("Match", "M1") == {"id": "M1", "worker_id": "W1", "state": "accepted"}
    ids, matrix = store.read_vectors("Worker", "embedding")
    assert ids == ["W1", "W2"] and np.array_equal(matrix, np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32))


def test_an_old_directory_is_migrated_on_first_open(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "store"
    write_old(data)
    with caplog.at_level(logging.WARNING, logger="graph"), MemoryStore(data) as store:
        expected_state(store)
        revision = store.revision
        assert store.changes_since(revision - 1) is None  # the migration is one unlistable write
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "migrated the old-format store" in logged and "ignoring a torn last write" in logged
    aside = [p for p in data.iterdir() if p.name.startswith("legacy-")]
    assert len(aside) == 1 and "moved the old-format files" in logged
    assert sorted(p.name for p in aside[0].iterdir()) == ["graph.journal.jsonl", "graph.json", "store.lock",
                                                          "vectors"]
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith("legacy-")) \
        and not (data / "graph.json").exists() and (data / DB_FILE).is_file()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="graph"), MemoryStore(data) as again:  # once only
        expected_state(again)
        assert again.revision == revision
        again.create_node("Worker", "W4", {})
        assert again.changes_since(revision) == [Change(node=("Worker", "W4"))]
    assert not caplog.records


def test_a_damaged_old_journal_refuses_and_changes_nothing(tmp_path: Path) -> None:
    data = tmp_path / "store"
    write_old(data, damaged=True)
    before = {p.name: p.read_bytes() for p in data.iterdir() if p.is_file()}
    with pytest.raises(StoreUnavailable, match="line 3 is damaged but line 4 after it is valid"):
        MemoryStore(data)
    assert {p.name: p.read_bytes() for p in data.iterdir() if p.is_file() and p.name in before} == before
    with MemoryStore(tmp_path / "elsewhere"):
        pass
    # the database created beside the old files holds nothing: fixing the journal and opening again migrates
    write_old(tmp_path / "fixed")
    (data / "graph.journal.jsonl").write_bytes((tmp_path / "fixed" / "graph.journal.jsonl").read_bytes())
    with MemoryStore(data) as store:
        expected_state(store)


def _open_and_count(directory: str, results: Any) -> None:
    with MemoryStore(directory) as store:
        results.put((store.counts(), store.store_id))


def test_two_processes_opening_an_old_directory_migrate_it_once(tmp_path: Path) -> None:
    data = tmp_path / "store"
    write_old(data)
    ctx = mp.get_context("spawn")
    results: Any = ctx.Queue()
    procs = [ctx.Process(target=_open_and_count, args=(str(data), results)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert [p.exitcode for p in procs] == [0, 0]
    assert got[0] == got[1] and got[0][0] == {"Worker": 2, "Skill": 1, "Match": 1, "HAS_SKILL": 2}
    assert len([p for p in data.iterdir() if p.name.startswith("legacy-")]) == 1
    with MemoryStore(data) as store:
        expected_state(store)
