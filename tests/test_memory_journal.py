"""The embedded store's append-only journal (``graph.journal.jsonl`` beside the ``graph.json`` snapshot).

* A write appends one line and leaves the snapshot alone; reopening after many writes (with and without
  compactions in between) gives the state before, and the same state as the old save-per-write mode.
* A torn last line (a crash in the middle of an append) is ignored and cut off; a damaged line followed by
  valid ones, or a gap in the sequence numbers, refuses to open.
* Processes killed with SIGKILL: in the middle of an append (acknowledged writes intact, the torn write
  gone), at random moments of a write loop, and between a compaction's rename and its truncation of the
  journal (the entries the snapshot already holds are skipped, later writes continue the sequence).

The kill in the middle of a compaction's snapshot save is ``tests/test_reliability_store.py``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graph.errors import StoreUnavailable
from graph.memory import JOURNAL, SNAPSHOT, MemoryStore, journal_line, parse_journal_line
from graph.model import LABELS, REL_TYPES
from graph.store import NodeRow, RelRow, WriteBatch

REPO = Path(__file__).resolve().parent.parent
BIG = 1 << 40  # a compaction threshold never reached


def state(store: MemoryStore) -> dict[str, Any]:
    """Everything the store holds, comparable with ``==``."""
    return {
        "nodes": {label: store.list_nodes(label) for label in LABELS},
        "rels": {t: store.relationships(t) for t in REL_TYPES},
        "meta": {k: store.get_meta(k) for k in ("encoder", "schema", "gone")},
        "vectors": [(ids, m.tolist()) for ids, m in [store.read_vectors("Worker", "embedding")]],
    }


def random_writes(store: MemoryStore, n: int, seed: int) -> None:
    """``n`` writes of every kind the store journals, deterministic for a seed."""
    rng = random.Random(seed)
    store.apply(WriteBatch(nodes=[NodeRow("Skill", f"S{i}", {"name": f"技能{i}"}) for i in range(5)]))
    for step in range(n):
        kind = rng.random()
        worker = f"W{rng.randrange(40)}"
        exists = store.get_node("Worker", worker) is not None
        if kind < 0.35:
            skill = f"S{rng.randrange(5)}"
            store.apply(WriteBatch(
                nodes=[NodeRow("Worker", worker, {"name": f"工匠{step}", "level": rng.choice(["高级", None]),
                                                  "honours": ["劳模"] * rng.randrange(3)})],
                rels=[RelRow("HAS_SKILL", "Worker", worker, "Skill", skill, {"since": step, "note": None})],
            ))
        elif kind < 0.45 and exists:
            rels = store.relationships("HAS_SKILL", start=("Worker", worker))
            store.apply(WriteBatch(delete_rels=rels[:1]))
        elif kind < 0.6 and exists:
            store.update_node("Worker", worker, {"district": f"区{step % 3}", "level": None})
        elif kind < 0.7 and exists:
            store.delete_node("Worker", worker)
        elif kind < 0.8 and not exists:
            store.create_node("Worker", worker, {"name": f"新人{step}", "active": True, "capacity": 2.5})
        elif kind < 0.88:
            store.set_meta(rng.choice(["encoder", "schema", "gone"]), rng.choice([f"v{step}", None]))
        elif kind < 0.9 and step < n // 2:
            store.clear()
            store.apply(WriteBatch(nodes=[NodeRow("Skill", f"S{i}", {"name": f"技能{i}"}) for i in range(5)]))
        else:
            store.create_node("AuditEvent", f"E{step}", {"action": "recommendations_shown", "n": step})
        if step == n // 3:
            ids = [w["id"] for w in store.list_nodes("Worker", limit=3)]
            if ids:
                store.write_vectors("Worker", "embedding", ids, np.eye(len(ids), 4, dtype=np.float32))


def journal_entries(data: Path) -> list[tuple[int, list[list[Any]]]]:
    lines = (data / JOURNAL).read_bytes().splitlines()
    parsed = [parse_journal_line(line) for line in lines]
    assert all(p is not None for p in parsed)
    return [p for p in parsed if p is not None]


def test_a_write_appends_one_line_and_leaves_the_snapshot_alone(tmp_path: Path) -> None:
    data = tmp_path / "store"
    with MemoryStore(data, compact_min_bytes=BIG) as store:
        store.apply(WriteBatch(nodes=[NodeRow("Worker", f"W{i}", {"name": "张三" * 50}) for i in range(2000)]))
        snapshot = (data / SNAPSHOT).stat()  # the bulk load went to the snapshot
        assert (data / JOURNAL).stat().st_size == 0
        store.create_node("AuditEvent", "E1", {"action": "recommendations_shown"})
        store.update_node("Worker", "W1", {"level": "高级"})
        after = (data / SNAPSHOT).stat()
        assert (after.st_ino, after.st_mtime_ns, after.st_size) == (snapshot.st_ino, snapshot.st_mtime_ns,
                                                                     snapshot.st_size)
        entries = journal_entries(data)
        assert [seq for seq, _ in entries] == [2, 3]
        assert entries[1][1] == [["N", "Worker", "W1", {"name": "张三" * 50, "level": "高级"}]]
        assert (data / JOURNAL).stat().st_size < 1000 < snapshot.st_size // 500
    # closing compacts: the snapshot holds everything, the journal is empty
    assert (data / JOURNAL).stat().st_size == 0
    assert json.loads((data / SNAPSHOT).read_text(encoding="utf-8"))["seq"] == 3


@pytest.mark.parametrize("min_bytes", [BIG, 2_000, 0], ids=["no-compaction", "some-compactions", "compact-always"])
def test_reopen_after_many_writes_equals_the_state_before(tmp_path: Path, min_bytes: int) -> None:
    data = tmp_path / "store"
    reference = MemoryStore()
    random_writes(reference, 400, seed=5)
    store = MemoryStore(data, compact_min_bytes=min_bytes, compact_ratio=0.5 if min_bytes < BIG else 1.0)
    random_writes(store, 400, seed=5)
    before = state(store)
    assert before == state(reference)
    # a crash: the store is never closed; its directory as it is now is what a new process finds
    crashed = tmp_path / "crashed"
    shutil.copytree(data, crashed, ignore=shutil.ignore_patterns("store.lock"))
    store.close()
    for directory in (crashed, data):
        with MemoryStore(directory) as reopened:
            assert state(reopened) == before
            reopened.create_node("AuditEvent", "after", {"n": 1})  # the sequence continues
        with MemoryStore(directory) as again:
            assert again.get_node("AuditEvent", "after") == {"id": "after", "n": 1}


def test_journal_replay_equals_the_snapshot_only_state(tmp_path: Path) -> None:
    journaled, saved = tmp_path / "journaled", tmp_path / "saved"
    store = MemoryStore(journaled, compact_min_bytes=BIG)
    old_way = MemoryStore(saved, journal=False)
    random_writes(store, 300, seed=11)
    random_writes(old_way, 300, seed=11)
    assert not (saved / JOURNAL).exists() or (saved / JOURNAL).stat().st_size == 0
    entries = journal_entries(journaled)
    assert len(entries) > 150  # (a write touching the whole graph, e.g. right after clear(), compacts)
    copy = tmp_path / "replayed"
    shutil.copytree(journaled, copy, ignore=shutil.ignore_patterns("store.lock"))
    store.close()
    old_way.close()
    with MemoryStore(copy) as replayed, MemoryStore(saved) as snapshot_only:
        assert state(replayed) == state(snapshot_only)
    # compacted on close: the two snapshots hold the same graph (and the same number of writes)
    a = json.loads((journaled / SNAPSHOT).read_text(encoding="utf-8"))
    b = json.loads((saved / SNAPSHOT).read_text(encoding="utf-8"))
    assert a["seq"] == b["seq"] == entries[-1][0]
    assert a["nodes"] == b["nodes"] and a["meta"] == b["meta"]
    assert sorted(map(json.dumps, a["rels"])) == sorted(map(json.dumps, b["rels"]))


def _journaled_store(tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A crashed store directory whose journal holds 30 writes, and its state."""
    data = tmp_path / "store"
    store = MemoryStore(data, compact_min_bytes=BIG)
    store.apply(WriteBatch(nodes=[NodeRow("Worker", f"W{i}", {"name": f"工匠{i}"}) for i in range(10)]))
    for i in range(30):
        store.update_node("Worker", f"W{i % 10}", {"round": i})
    expected = state(store)
    store._release()  # let go without compacting, as a killed process would
    assert len(journal_entries(data)) == 30
    return data, expected


def test_a_torn_last_line_is_ignored_and_cut_off(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    data, expected = _journaled_store(tmp_path)
    journal = data / JOURNAL
    good = journal.read_bytes()
    last = journal_line(32, [["N", "Worker", "W0", {"name": "不应出现"}]])
    for torn in (last[: len(last) // 2], last[:-1], last[:10] + b"X" + last[11:], b"\0" * 4096):
        journal.write_bytes(good + torn)
        with MemoryStore(data) as store:
            assert state(store) == expected
            assert journal.read_bytes() == good  # cut off, so that the next append starts a clean line
            assert "torn last write" in caplog.text
    with MemoryStore(data) as store:  # the sequence goes on after the torn line was dropped
        store.update_node("Worker", "W0", {"round": 99})
        assert journal_entries(data)[-1][0] == 32
    with MemoryStore(data) as store:
        assert store.get_node("Worker", "W0") == {"id": "W0", "name": "工匠0", "round": 99}


def test_a_damaged_line_in_the_middle_refuses_to_open(tmp_path: Path) -> None:
    data, _ = _journaled_store(tmp_path)
    journal = data / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    flipped = lines[12].replace(b'"round":', b'"ROUND":')  # the CRC no longer matches
    journal.write_bytes(b"".join(lines[:12] + [flipped] + lines[13:]))
    with pytest.raises(StoreUnavailable, match=r"corrupt: line 13 is damaged but line 14 after it is valid"):
        MemoryStore(data)
    journal.write_bytes(b"".join(lines[:12] + lines[13:]))  # a line missing: a gap in the sequence
    with pytest.raises(StoreUnavailable, match="sequence number 15, expected 14"):
        MemoryStore(data)
    journal.write_bytes(b"".join(lines))
    MemoryStore(data).close()  # the refusals left the directory unlocked and unchanged


# -- processes killed ---------------------------------------------------------------------------------------
_WRITER = r"""
import os, sys, time
import graph.memory as memory
from graph.store import NodeRow, RelRow, WriteBatch

data, mode = sys.argv[1], sys.argv[2]
store = memory.MemoryStore(data, compact_min_bytes=int(sys.argv[3]), compact_ratio=0.0)
real_write, real_truncate = os.write, os.ftruncate

if mode == "torn":  # the 6th append writes half its line, then the process waits for the SIGKILL
    appends = 0

    def half_write(fd, data):
        global appends
        if store._wal is not None and fd == store._wal.fileno():
            appends += 1
            if appends == 6:
                real_write(fd, data[: len(data) // 2])
                print("torn", flush=True)
                time.sleep(600)
        return real_write(fd, data)

    os.write = half_write
elif mode == "compaction":  # die between the snapshot's rename and the journal's truncation
    def die_before_truncate(fd, length):
        if store._wal is not None and fd == store._wal.fileno() and length == 0:
            print("renamed", flush=True)
            time.sleep(600)
        return real_truncate(fd, length)

    os.ftruncate = die_before_truncate

n = 0
if store.get_node("Skill", "焊接") is None:
    store.create_node("Skill", "焊接", {"name": "焊接"})
while True:
    n += 1
    print(f"start {n}", flush=True)
    ids = [f"K{n:05d}-{i}" for i in range(3)]
    store.apply(WriteBatch(nodes=[NodeRow("Worker", w, {"name": "工匠" + w, "n": n}) for w in ids],
                           rels=[RelRow("HAS_SKILL", "Worker", w, "Skill", "焊接") for w in ids]))
    print(f"ack {n}", flush=True)
"""


def _run_writer(tmp_path: Path, data: Path, mode: str, min_bytes: int, until: str, delay: float = 0.0,
                ) -> tuple[int, int]:
    """Run the writer until it prints ``until`` (+ ``delay`` s), SIGKILL it; return (started, acknowledged)."""
    script = tmp_path / "writer.py"
    script.write_text(_WRITER, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), str(data), mode, str(min_bytes)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = {"start": 0, "ack": 0}

    def track(line: str) -> None:
        word, _, number = line.strip().partition(" ")
        if word in seen:
            seen[word] = int(number)

    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            track(line)
            if line.startswith(until):
                time.sleep(delay)
                break
        else:
            pytest.fail(f"the writer exited: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}")
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    for line in proc.stdout:
        track(line)
    return seen["start"], seen["ack"]


def _batches(store: MemoryStore) -> dict[int, int]:
    out: dict[int, int] = {}
    for node in store.iter_nodes("Worker"):
        out[node["n"]] = out.get(node["n"], 0) + 1
    assert store.count_nodes("Worker") == len(store.relationships("HAS_SKILL"))
    return out


def test_killed_in_the_middle_of_an_append_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    data = tmp_path / "store"
    started, acked = _run_writer(tmp_path, data, "torn", BIG, until="torn")
    assert (started, acked) == (6, 5)
    assert not (data / JOURNAL).read_bytes().endswith(b"\n")  # the torn line is really there
    with MemoryStore(data) as store:
        assert _batches(store) == {n: 3 for n in range(1, 6)}


def test_killed_at_random_moments_keeps_whole_acknowledged_writes(tmp_path: Path) -> None:
    data = tmp_path / "store"
    rng = random.Random(3)
    for attempt in range(6):
        # a small threshold: some kills land in compactions too
        started, acked = _run_writer(tmp_path, data, "plain", 20_000, until="ack",
                                     delay=rng.choice([0.0, 0.001, 0.003, 0.01, 0.05]))
        with MemoryStore(data) as store:
            batches = _batches(store)
        n = len(batches)
        assert batches == {b: 3 for b in range(1, n + 1)}, f"attempt {attempt}"
        # every batch of this run up to the acknowledged one survived (earlier runs' batches too)
        assert all(batches.get(b) == 3 for b in range(1, acked + 1))


def test_killed_between_a_compaction_and_the_journal_truncation(tmp_path: Path) -> None:
    data = tmp_path / "store"
    started, acked = _run_writer(tmp_path, data, "compaction", 3_000, until="renamed")
    snapshot_seq = json.loads((data / SNAPSHOT).read_text(encoding="utf-8"))["seq"]
    stale = journal_entries(data)
    assert stale and stale[-1][0] < snapshot_seq  # every journal entry is already in the snapshot
    with MemoryStore(data, compact_min_bytes=BIG) as store:
        batches = _batches(store)
        # the write that triggered the compaction was not acknowledged, but its rename happened: it is there
        assert batches == {b: 3 for b in range(1, started + 1)} and acked == started - 1
        before = state(store)
        store.create_node("AuditEvent", "E1", {"after": True})  # appended after the stale entries
        entries = journal_entries(data)
        assert entries[-1][0] == snapshot_seq + 1 and entries[:-1] == stale
        store._release()  # crash again: the stale entries are skipped, the new one replayed once
    with MemoryStore(data) as store:
        assert store.get_node("AuditEvent", "E1") == {"id": "E1", "after": True}
        store.delete_node("AuditEvent", "E1")
        assert state(store) == before


@pytest.mark.parametrize("min_bytes", [BIG, 1500])  # journal appends only; and compactions too
def test_a_write_that_cannot_be_persisted_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  min_bytes: int) -> None:
    import graph.memory as memory

    failing = {"on": False}
    real_fdatasync, real_atomic_write = memory.os.fdatasync, memory._atomic_write

    def fdatasync(fd: int) -> None:
        if failing["on"]:
            raise OSError(28, "No space left on device")
        real_fdatasync(fd)

    def atomic_write(path: Path, write: Any) -> None:
        if failing["on"]:
            raise OSError(28, "No space left on device")
        real_atomic_write(path, write)

    monkeypatch.setattr(memory.os, "fdatasync", fdatasync)
    monkeypatch.setattr(memory, "_atomic_write", atomic_write)
    rng = random.Random(5)
    store = MemoryStore(tmp_path, compact_min_bytes=min_bytes, compact_ratio=0.0)
    store.apply(WriteBatch(nodes=[NodeRow("Skill", f"S{i}", {"name": f"技能{i}"}) for i in range(3)]))
    failures = 0
    for step in range(150):
        worker = f"W{rng.randrange(12)}"
        exists = store.get_node("Worker", worker) is not None
        kinds = ["upsert", "unlink", "update", "delete", "meta"] if exists else ["create", "meta"]
        kind = "clear" if step % 50 == 49 else rng.choice(kinds)
        before, revision = state(store), store.revision
        failing["on"] = rng.random() < 0.4
        try:
            _one_write(store, kind, worker, step, rng)
        except StoreUnavailable:
            assert failing["on"]
            failures += 1
            assert state(store) == before, f"step {step}: a failed write left a trace"
            assert store.revision == revision
        else:
            assert not failing["on"]
        finally:
            failing["on"] = False
        if kind == "clear" and store.get_node("Skill", "S0") is None:
            store.apply(WriteBatch(nodes=[NodeRow("Skill", f"S{i}", {"name": f"技能{i}"}) for i in range(3)]))
    assert failures > 30
    expected = state(store)
    store.close()
    reopened = MemoryStore(tmp_path)  # every acknowledged write, and nothing else; no gap in the journal
    assert state(reopened) == expected
    reopened.close()


def _one_write(store: MemoryStore, kind: str, worker: str, step: int, rng: random.Random) -> None:
    if kind == "upsert":
        store.apply(WriteBatch(
            nodes=[NodeRow("Worker", worker, {"name": f"工匠{step}", "level": rng.choice(["高级", None])})],
            rels=[RelRow("HAS_SKILL", "Worker", worker, "Skill", f"S{rng.randrange(3)}", {"since": step})]))
    elif kind == "unlink":
        store.apply(WriteBatch(delete_rels=store.relationships("HAS_SKILL", start=("Worker", worker))[:1]))
    elif kind == "update":
        store.update_node("Worker", worker, {"district": f"区{step}", "level": None})
    elif kind == "delete":
        store.delete_node("Worker", worker)
    elif kind == "create":
        store.create_node("Worker", worker, {"name": f"新人{step}", "active": True})
    elif kind == "meta":
        store.set_meta(rng.choice(["encoder", "schema", "gone"]), rng.choice([f"v{step}", None]))
    else:
        store.clear()
