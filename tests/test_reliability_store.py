"""Reliability of the stores under faults: a process killed in the middle of a write or an import, and a
write transaction that fails after most of its statements ran.

* Embedded store (SQLite): a child process writes big batches in a loop and is SIGKILLed at different
  moments after it announced a batch (while its transaction is built, committed or fsynced); every time, the
  reopened store holds exactly a committed state: whole batches only, every acknowledged one.
  Small writes killed at random moments are ``tests/test_memory_journal.py``.
* ``jianglian load`` (embedded) killed while it starts and while its transaction holds the database's write
  lock writes nothing; the retried import converges to the same export as an uninterrupted one, and loading
  again changes nothing.
* Neo4j: a batch of many ``UNWIND`` statements whose last relationship has a dangling endpoint is rolled
  back as a whole; ``jianglian load`` killed while its transaction runs writes nothing; the retried import
  converges to the embedded store's export.

Several processes on one data directory are ``tests/test_store_processes.py``.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from neo4j import Driver

from demo.generator import generate
from graph.dataset import FILES, export_dataset, load_dataset
from graph.errors import ConstraintViolation
from graph.memory import MemoryStore
from graph.neo4j_store import Neo4jStore
from graph.store import GraphStore, NodeRow, RelRow, WriteBatch

REPO = Path(__file__).resolve().parent.parent
JIANGLIAN = Path(sys.executable).parent / "jianglian"

# The child announces each round before and after its one WriteBatch, and keeps going until it is killed.
_WRITER = r"""
import sys
from graph.memory import MemoryStore
from graph.store import NodeRow, RelRow, WriteBatch

store = MemoryStore(sys.argv[1])
per_round = int(sys.argv[2])
done = {n["id"].split("-")[0] for n in store.iter_nodes("Worker") if n["id"].startswith("R")}
round_no = len(done)
while True:
    round_no += 1
    ids = [f"R{round_no:03d}-{i:05d}" for i in range(per_round)]
    print(f"round {round_no}", flush=True)
    store.apply(WriteBatch(
        nodes=[NodeRow("Worker", w, {"name": f"工匠{w}", "bio": "数控机床主轴异响诊断与维修" * 8}) for w in ids],
        rels=[RelRow("HAS_SKILL", "Worker", w, "Skill", "数控加工", {"level": "高级"}) for w in ids],
    ))
    print(f"saved {round_no}", flush=True)
"""

_SEED_WORKERS = 20_000
_PER_ROUND = 2_000


def _rounds(store: MemoryStore) -> dict[str, int]:
    """Workers per round prefix (``R001``...) in a reopened store."""
    out: dict[str, int] = {}
    for node in store.iter_nodes("Worker"):
        if node["id"].startswith("R"):
            prefix = node["id"].split("-")[0]
            out[prefix] = out.get(prefix, 0) + 1
    return out


def _note(progress: dict[str, int], line: str) -> None:
    """Track the writer's ``round N`` / ``saved N`` lines."""
    word, _, number = line.partition(" ")
    if word in progress:
        progress[word] = int(number)


def _kill(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)


@pytest.mark.slow
def test_embedded_store_killed_mid_write_keeps_a_committed_state(tmp_path: Path) -> None:
    data = tmp_path / "store"
    seed = [NodeRow("Worker", f"S{i:05d}", {"name": f"种子{i}", "bio": "焊接工艺评定与缺陷分析" * 10})
            for i in range(_SEED_WORKERS)]
    with MemoryStore(data) as store:
        store.apply(WriteBatch(nodes=[NodeRow("Skill", "数控加工", {"name": "数控加工"}), *seed]))
        seeded = {n["id"]: n for n in store.iter_nodes("Worker")}
    script = tmp_path / "writer.py"
    script.write_text(_WRITER, encoding="utf-8")

    # seconds between the child's "round N" (its batch is being built and written) and the kill
    delays = [0.0, 0.005, 0.02, 0.05, 0.1, 0.2, 0.4, 0.03, 0.07]
    committed = 0
    in_flight_kills = 0
    for delay in delays:
        proc = subprocess.Popen([sys.executable, str(script), str(data), str(_PER_ROUND)], cwd=REPO,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        progress = {"round": committed, "saved": committed}
        try:
            assert proc.stdout is not None
            for line in proc.stdout:
                _note(progress, line)
                # the second round of this child: one round committed by it, the next one in flight
                if line.startswith("round") and progress["round"] >= committed + 2:
                    time.sleep(delay)
                    break
            else:
                pytest.fail(f"the writer exited on its own: {proc.wait()} {proc.stderr.read() if proc.stderr else ''}")
        finally:
            _kill(proc)
        assert proc.returncode == -signal.SIGKILL
        for line in proc.stdout:  # what it printed before it died (it may have gone on during the delay)
            _note(progress, line)
        started, acknowledged = progress["round"], progress["saved"]
        with MemoryStore(data) as store:
            rounds = _rounds(store)
            n = len(rounds)
            # whole rounds only, numbered 1..n, each worker with its relationship
            assert rounds == {f"R{r:03d}": _PER_ROUND for r in range(1, n + 1)}
            assert store.counts() == {"Skill": 1, "Worker": _SEED_WORKERS + n * _PER_ROUND,
                                      "HAS_SKILL": n * _PER_ROUND}
            # every acknowledged write survived; the round in flight is there only if it committed
            assert acknowledged <= n <= started
            assert {i: store.get_node("Worker", i) for i in list(seeded)[::997]} == \
                {i: seeded[i] for i in list(seeded)[::997]}
        in_flight_kills += started > acknowledged
        print(f"killed {delay:.3f} s after a round started: rounds started {started}, acknowledged {acknowledged}, "
              f"on disk {n}")
        committed = n
    # the delays are meant to land inside a write; make sure some did, or the test proved nothing
    assert in_flight_kills >= 1, "no kill landed while a round was being written"


# -- jianglian load killed midway ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small dataset already in the store (``before``) and a bigger one to import over it (``update``)."""
    base = tmp_path_factory.mktemp("reliability")
    generate(base / "before", scale=0.1, seed=3)
    generate(base / "update", scale=1.0, seed=7)
    return base / "before", base / "update"


def _export(store: GraphStore, out: Path) -> dict[str, list[dict[str, Any]]]:
    export_dataset(store, out)
    return {name: sorted((json.loads(line) for line in (out / name).read_text(encoding="utf-8").splitlines()),
                         key=lambda row: row["id"]) for name in FILES}


def _load_cli(data_dir: Path, dataset: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "JIANGLIAN_STORE": "memory", "JIANGLIAN_DATA_DIR": str(data_dir)}
    return subprocess.Popen([str(JIANGLIAN), "load", str(dataset)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_cli_load_killed_midway_writes_nothing_and_the_retry_converges(
    datasets: tuple[Path, Path], tmp_path: Path,
) -> None:
    before, update = datasets
    data_dir = tmp_path / "data"
    with MemoryStore(data_dir / "store") as store:
        load_dataset(store, before)
        state_before = _export(store, tmp_path / "export-before")
    with MemoryStore() as reference:  # the same two imports, never interrupted
        load_dataset(reference, before)
        load_dataset(reference, update)
        state_after = _export(reference, tmp_path / "export-reference")
    assert state_after != state_before

    db = data_dir / "store" / "jianglian.sqlite"
    mid_write = 0
    # first kill while the command is still starting or validating, then kills while it holds the write lock
    for attempt in range(8):
        proc = _load_cli(data_dir, update)
        locked = False
        try:
            if attempt == 0:
                time.sleep(0.5)
            else:
                probe = sqlite3.connect(db, timeout=0, isolation_level=None)
                deadline = time.monotonic() + 120
                while proc.poll() is None and time.monotonic() < deadline:
                    try:  # the write lock is free, or held by the import's transaction
                        probe.execute("BEGIN IMMEDIATE")
                        probe.execute("ROLLBACK")
                    except sqlite3.OperationalError:
                        locked = True
                        break
                    time.sleep(0.002)
                probe.close()
        finally:
            _kill(proc)
        with MemoryStore(data_dir / "store") as store:
            state = _export(store, tmp_path / f"export-{attempt}")
        print(f"attempt {attempt}: killed holding the write lock {locked}, state before {state == state_before}")
        assert state in (state_before, state_after), f"attempt {attempt}: a killed import left a partial write"
        if attempt == 0:
            assert state == state_before
        elif state == state_before:
            mid_write += locked
        else:  # the command committed before the kill: all of it is there
            with MemoryStore(data_dir / "store") as store:  # start over from the state before
                store.clear()
                load_dataset(store, before)
        if mid_write >= 2:
            break
    assert mid_write >= 1, "no kill landed inside the import's transaction"

    for _ in range(2):  # the retry converges, and loading again changes nothing
        proc = _load_cli(data_dir, update)
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        assert "0 row(s) skipped" in out
        with MemoryStore(data_dir / "store") as store:
            assert _export(store, tmp_path / "export-retry") == state_after


# -- Neo4j: a failing transaction leaves the store unchanged ----------------------------------------------
def _writing(driver: Driver) -> bool:
    """Whether some transaction is merging rows right now (another client's import)."""
    records, _, _ = driver.execute_query("SHOW TRANSACTIONS YIELD currentQuery RETURN currentQuery",
                                         database_="neo4j")
    return any("UNWIND $rows" in (r["currentQuery"] or "") for r in records)


@pytest.mark.neo4j
@pytest.mark.slow
def test_neo4j_failing_batch_is_rolled_back_and_the_retry_converges(
    neo4j_driver: Driver, neo4j_uri: str, datasets: tuple[Path, Path], tmp_path: Path,
) -> None:
    before, update = datasets
    store = Neo4jStore(neo4j_driver, "neo4j", batch_size=500)  # many statements in the one transaction
    store.ensure_schema()
    store.clear()
    load_dataset(store, before)
    counts = store.counts()
    state_before = _export(store, tmp_path / "before")
    worker = state_before["workers.jsonl"][0]

    n = 6_000
    new = [f"X{i:05d}" for i in range(n)]
    batch = WriteBatch(
        nodes=[NodeRow("Worker", worker["id"], {"name": "改名不应生效"}),
               *(NodeRow("Worker", w, {"name": f"新人{w}"}) for w in new)],
        rels=[*(RelRow("MENTORS", "Worker", worker["id"], "Worker", w) for w in new),
              RelRow("MENTORS", "Worker", new[-1], "Worker", "W-不存在")],  # the very last row dangles
        delete_rels=store.relationships("LOCATED_IN")[:50],
    )
    with pytest.raises(ConstraintViolation, match="W-不存在"):
        store.apply(batch)
    assert store.counts() == counts
    assert _export(store, tmp_path / "after-failure") == state_before

    batch.rels.pop()  # the retried, corrected batch applies whole, and again changes nothing
    store.apply(batch)
    once = store.counts()
    assert once["Worker"] == counts["Worker"] + n and once["MENTORS"] == counts.get("MENTORS", 0) + n
    store.apply(batch)
    assert store.counts() == once

    # `jianglian load` killed while its transaction runs: the server rolls it back; the retry converges to what
    # the embedded store holds after the same imports
    store.clear()
    load_dataset(store, before)
    counts = store.counts()
    env = {**os.environ, "JIANGLIAN_STORE": "neo4j", "NEO4J_URI": neo4j_uri, "NEO4J_PASSWORD": "",
           "JIANGLIAN_DATA_DIR": str(tmp_path / "data")}
    proc = subprocess.Popen([str(JIANGLIAN), "load", str(update)], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while proc.poll() is None and time.monotonic() < deadline and not _writing(neo4j_driver):
            time.sleep(0.02)
        time.sleep(0.3)  # let it run a few more UNWIND statements
    finally:
        _kill(proc)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    assert store.counts() == counts
    assert _export(store, tmp_path / "after-kill") == state_before
    load_dataset(store, update)
    load_dataset(store, update)
    with MemoryStore() as reference:
        load_dataset(reference, before)
        load_dataset(reference, update)
        assert store.counts() == reference.counts()
        assert _export(store, tmp_path / "neo4j") == _export(reference, tmp_path / "memory")
    store.clear()
