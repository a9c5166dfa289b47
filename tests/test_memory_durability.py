"""Durability of the embedded store (SQLite, WAL, ``synchronous=FULL``): what was acknowledged stays.

* Reopening after many writes of every kind gives the state before, the same state as the same writes into
  an in-memory store, and the change feed and label counters carry on where they were.
* Processes killed with SIGKILL at random moments of a write loop keep every acknowledged write, and whole
  writes only.
* A write that SQLite cannot persist (the database capped at its size: ``SQLITE_FULL``) leaves no trace: not
  in the data, not in the feed, not in the label counters; the reopened store holds exactly the acknowledged
  writes.

Big batches killed in flight are ``tests/test_reliability_store.py``; a full disk through the app is
``tests/test_reliability_disk_full.py``; several processes at once are ``tests/test_store_processes.py``.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from graph.errors import StoreFull
from graph.memory import MemoryStore
from graph.model import LABELS, REL_TYPES
from graph.store import NodeRow, RelRow, WriteBatch

REPO = Path(__file__).resolve().parent.parent


def state(store: MemoryStore) -> dict[str, Any]:
    """Everything the store holds, comparable with ``==``."""
    return {
        "nodes": {label: store.list_nodes(label) for label in LABELS},
        "rels": {t: store.relationships(t) for t in REL_TYPES},
        "meta": {k: store.get_meta(k) for k in ("encoder", "schema", "gone")},
        "vectors": [(ids, m.tolist()) for ids, m in [store.read_vectors("Worker", "embedding")]],
    }


def random_writes(store: MemoryStore, n: int, seed: int) -> None:
    """``n`` writes of every kind, deterministic for a seed."""
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


def test_reopen_after_many_writes_equals_the_state_before(tmp_path: Path) -> None:
    data = tmp_path / "store"
    with MemoryStore(data) as store, MemoryStore() as memory:
        random_writes(store, 300, seed=1)
        random_writes(memory, 300, seed=1)
        before = state(store)
        assert before == state(memory)  # on disk or in memory: one implementation
        feed = (store.revision, store.label_revision("Worker"), store.label_revision("AuditEvent"), store.store_id)
        last = store.changes_since(store.revision - 3)
    with MemoryStore(data) as reopened:
        assert state(reopened) == before
        assert (reopened.revision, reopened.label_revision("Worker"), reopened.label_revision("AuditEvent"),
                reopened.store_id) == feed
        assert last and reopened.changes_since(reopened.revision - 3) == last
        reopened.create_node("Worker", "W-new", {})
        assert reopened.revision == feed[0] + 1  # the sequence carries on


# -- processes killed ---------------------------------------------------------------------------------------
_WRITER = r"""
import sys
from graph.memory import MemoryStore
from graph.store import NodeRow, RelRow, WriteBatch

store = MemoryStore(sys.argv[1])
n = store.count_nodes("Worker") // 3
if store.get_node("Skill", "焊接") is None:
    store.create_node("Skill", "焊接", {"name": "焊接"})
while True:
    n += 1
    print(f"start {n}", flush=True)
    ids = [f"K{n:05d}-{i}" for i in range(3)]
    store.apply(WriteBatch(nodes=[NodeRow("Worker", w, {"name": "工匠" + w, "n": n}) for w in ids],
                           rels=[RelRow("HAS_SKILL", "Worker", w, "Skill", "焊接") for w in ids]))
    store.create_node("Match", f"M{n:05d}", {"state": "invited", "n": n})
    print(f"ack {n}", flush=True)
"""


def _run_writer(tmp_path: Path, data: Path, delay: float) -> tuple[int, int, int]:
    """Run the writer until its 20th acknowledgement (+ ``delay`` s), SIGKILL it; return its first batch's
    number, the last it started and the last it acknowledged."""
    script = tmp_path / "writer.py"
    script.write_text(_WRITER, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(script), str(data)], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = {"start": 0, "ack": 0}
    first: int | None = None

    def track(line: str) -> None:
        word, _, number = line.strip().partition(" ")
        if word in seen:
            seen[word] = int(number)

    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            track(line)
            first = first or seen["start"]
            if line.startswith("ack") and first and seen["ack"] >= first + 20:
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
    assert first is not None
    return first, seen["start"], seen["ack"]


def test_killed_at_random_moments_keeps_whole_acknowledged_writes(tmp_path: Path) -> None:
    data = tmp_path / "store"
    rng = random.Random(3)
    acknowledged: set[int] = set()
    for attempt in range(6):
        first, started, acked = _run_writer(tmp_path, data, delay=rng.choice([0.0, 0.001, 0.003, 0.01, 0.05]))
        with MemoryStore(data) as store:
            batches: dict[int, int] = {}
            for node in store.iter_nodes("Worker"):
                batches[node["n"]] = batches.get(node["n"], 0) + 1
            assert store.count_nodes("Worker") == len(store.relationships("HAS_SKILL"))
            matches = {m["n"] for m in store.iter_nodes("Match")}
        n = len(batches)
        assert batches == {b: 3 for b in range(1, n + 1)}, f"attempt {attempt}"
        # every acknowledged write survived (the batch and the match after it), the one in flight maybe
        acknowledged |= set(range(first, acked + 1))
        assert acked <= n <= started and acknowledged <= matches <= set(range(1, n + 1)), f"attempt {attempt}"


# -- writes that cannot be persisted ------------------------------------------------------------------------
def _one_write(store: MemoryStore, kind: str, worker: str, step: int, rng: random.Random) -> None:
    pad = "数控机床主轴异响" * 300  # bigger than a page: a new page is always needed
    if kind == "upsert":
        store.apply(WriteBatch(
            nodes=[NodeRow("Worker", worker, {"name": f"工匠{step}", "bio": pad})],
            rels=[RelRow("HAS_SKILL", "Worker", worker, "Skill", f"S{rng.randrange(3)}", {"since": step})]))
    elif kind == "update":
        store.update_node("Worker", worker, {"district": f"区{step}", "bio": pad + str(step)})
    elif kind == "create":
        store.create_node("Worker", worker, {"name": f"新人{step}", "bio": pad})
    elif kind == "match":
        store.create_node("Match", f"M{step}", {"state": "invited", "note": pad})
    else:
        store.write_vectors("Worker", "embedding", [worker], np.ones((1, 2000), dtype=np.float32) * step)


def test_a_write_that_cannot_be_persisted_leaves_nothing_behind(tmp_path: Path) -> None:
    rng = random.Random(5)
    store = MemoryStore(tmp_path)
    store.apply(WriteBatch(nodes=[NodeRow("Skill", f"S{i}", {"name": f"技能{i}"}) for i in range(3)]))
    conn = store._conn()  # the connection of this thread, which the writes below use
    failures = 0
    for step in range(120):
        worker = f"W{rng.randrange(12)}"
        exists = store.get_node("Worker", worker) is not None
        kind = rng.choice(["upsert", "update", "vectors", "match"] if exists else ["create", "match"])
        before, revision = state(store), store.revision
        labels = {label: store.label_revision(label) for label in ("Worker", "Match")}
        capped = rng.random() < 0.4
        if capped:  # the disk is full: the file cannot grow
            conn.execute(f"PRAGMA max_page_count = {conn.execute('PRAGMA page_count').fetchone()[0]}")
        try:
            _one_write(store, kind, worker, step, rng)
        except StoreFull:
            assert capped
            failures += 1
            assert state(store) == before, f"step {step}: a failed write left a trace"
            assert store.revision == revision
            assert {label: store.label_revision(label) for label in labels} == labels
        finally:
            conn.execute("PRAGMA max_page_count = 1073741823")
    assert failures > 20
    expected = state(store)
    store.close()
    with MemoryStore(tmp_path) as reopened:  # every acknowledged write, and nothing else
        assert state(reopened) == expected
