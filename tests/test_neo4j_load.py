"""``jianglian load`` into Neo4j in chunks, all or nothing (``graph.neo4j_load``), against a real Neo4j.

A load that fails halfway (an injected failure after half of its rows) leaves the database exactly as it was:
the same export, the same relationships with the same properties, no load tags. A ``jianglian load`` process
killed with SIGKILL while staging is undone by ``jianglian load --undo`` or by the next load, which then loads
the whole dataset. The expected end state is the same two loads into the embedded store.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from neo4j import Driver

from demo.generator import generate
from graph.dataset import export_dataset, load_dataset
from graph.errors import GraphError
from graph.memory import MemoryStore
from graph.model import REL_TYPES
from graph.neo4j_load import LOAD_META_KEY, pending_load
from graph.neo4j_store import Neo4jStore
from graph.store import GraphStore

REPO = Path(__file__).resolve().parent.parent

_TAGGED = ("MATCH (n) WHERE any(k IN keys(n) WHERE k STARTS WITH '_load') RETURN count(n) AS n "
           "UNION ALL MATCH ()-[r]->() WHERE any(k IN keys(r) WHERE k STARTS WITH '_load') RETURN count(r) AS n")


def _snapshot(store: GraphStore, out: Path) -> dict[str, Any]:
    """Everything a load can change: the exported rows, every relationship with its properties, the counts."""
    shutil.rmtree(out, ignore_errors=True)
    export_dataset(store, out)
    # rows compared as JSON with sorted keys: Neo4j does not keep the order of a node's properties
    files = {f.name: sorted(json.dumps(json.loads(line), ensure_ascii=False, sort_keys=True)
                            for line in f.read_text(encoding="utf-8").splitlines())
             for f in sorted(out.iterdir())}
    rels = {t: sorted((r.key, json.dumps(dict(r.props), sort_keys=True)) for r in store.relationships(t))
            for t in REL_TYPES}
    return {"files": files, "rels": rels, "counts": store.counts()}


def _tagged(driver: Driver) -> int:
    with driver.session(database="neo4j") as session:
        return sum(record["n"] for record in session.run(_TAGGED))


def _edit(source: Path, target: Path) -> None:
    """A second version of a dataset: renamed workers, changed skills (stale relationships), new problems."""
    shutil.copytree(source, target)
    workers = [json.loads(line) for line in (source / "workers.jsonl").read_text(encoding="utf-8").splitlines()]
    for worker in workers[::3]:
        worker["name"] += "（新）"
        worker["skills"] = worker["skills"][1:] + ["数控加工"]
        worker.pop("team", None)
    (target / "workers.jsonl").write_text("".join(json.dumps(w, ensure_ascii=False) + "\n" for w in workers),
                                          encoding="utf-8")
    problems = (source / "problems.jsonl").read_text(encoding="utf-8").splitlines()
    extra = []
    for i, line in enumerate(problems[:400]):
        row = json.loads(line)
        row["id"] = f"PNEW{i:04d}"
        extra.append(json.dumps(row, ensure_ascii=False))
    (target / "problems.jsonl").write_text("\n".join(problems + extra) + "\n", encoding="utf-8")


@pytest.fixture
def datasets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    base = tmp_path_factory.mktemp("datasets")
    generate(base / "a", scale=0.3, seed=11)
    _edit(base / "a", base / "b")
    return base / "a", base / "b"


@pytest.fixture
def store(neo4j_driver: Driver) -> Any:
    s = Neo4jStore(neo4j_driver, "neo4j", batch_size=200)
    s.clear()
    s.ensure_schema()
    yield s
    s.set_meta(LOAD_META_KEY, None)
    s.clear()


def test_a_failed_load_leaves_the_database_as_it_was(store: Neo4jStore, neo4j_driver: Driver,
                                                      datasets: tuple[Path, Path], tmp_path: Path) -> None:
    a, b = datasets
    messages: list[str] = []
    # into an empty database: nothing stays
    with pytest.raises(GraphError, match="injected failure"):
        load_dataset(store, a, staged_above=0, fail_after=1500, log=messages.append)
    assert store.counts() == {} and _tagged(neo4j_driver) == 0 and pending_load(store) is None
    assert any("undone" in m for m in messages)

    load_dataset(store, a, staged_above=0)
    before = _snapshot(store, tmp_path / "before")
    assert _tagged(neo4j_driver) == 0 and before["counts"]["Problem"] > 600

    # a re-load that changes nodes, adds and deletes relationships, fails halfway: exactly as before
    with pytest.raises(GraphError, match="injected failure"):
        load_dataset(store, b, staged_above=0, fail_after=3000)
    assert _snapshot(store, tmp_path / "after-failure") == before
    assert _tagged(neo4j_driver) == 0 and pending_load(store) is None

    # the same load, not interrupted: the same result as the embedded store's one transaction
    load_dataset(store, b, staged_above=0)
    reference = MemoryStore()
    load_dataset(reference, a)
    load_dataset(reference, b)
    assert _snapshot(store, tmp_path / "loaded") == _snapshot(reference, tmp_path / "reference")
    assert _tagged(neo4j_driver) == 0


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", "from cli.main import main; main()", *args],
                            env={**os.environ, **env}, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def _kill_while_staging(env: dict[str, str], dataset: Path, driver: Driver) -> None:
    proc = _cli(env, "load", str(dataset))
    deadline = time.monotonic() + 120
    try:
        while _tagged(driver) < 2000:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the load never started staging"
            time.sleep(0.05)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def test_a_killed_load_is_undone_then_loaded_again(store: Neo4jStore, neo4j_driver: Driver, neo4j_uri: str,
                                                    tmp_path: Path) -> None:
    big = tmp_path / "big"
    generate(big, scale=1.3, seed=5)  # above STAGED_ABOVE rows, so the CLI stages it
    env = {"JIANGLIAN_STORE": "neo4j", "NEO4J_URI": neo4j_uri, "NEO4J_DATABASE": "neo4j",
           "JIANGLIAN_DATA_DIR": str(tmp_path)}
    store.create_node("Worker", "W-KEEP", {"name": "既有工匠", "skills": ["焊接"]})
    before = _snapshot(store, tmp_path / "before")

    _kill_while_staging(env, big, neo4j_driver)
    pending = pending_load(store)
    assert pending is not None and pending.state == "staging" and not pending.running
    undo = _cli(env, "load", "--undo")
    out, _ = undo.communicate(timeout=300)
    assert undo.returncode == 0 and "was undone" in out, out
    assert _snapshot(store, tmp_path / "undone") == before and _tagged(neo4j_driver) == 0

    _kill_while_staging(env, big, neo4j_driver)
    again = _cli(env, "load", str(big))
    out, _ = again.communicate(timeout=600)
    assert again.returncode == 0, out
    assert "did not finish: undoing it" in out and "committed" in out
    assert _tagged(neo4j_driver) == 0 and pending_load(store) is None
    reference = MemoryStore()
    reference.create_node("Worker", "W-KEEP", {"name": "既有工匠", "skills": ["焊接"]})
    load_dataset(reference, big)
    assert _snapshot(store, tmp_path / "loaded") == _snapshot(reference, tmp_path / "reference")


def test_a_load_killed_while_committing_is_finished_not_undone(store: Neo4jStore, neo4j_driver: Driver, neo4j_uri: str,
                                                               datasets: tuple[Path, Path], tmp_path: Path) -> None:
    """The state a kill during the commit leaves: every row staged, the record ``committing``, its process gone.
    Part of the load may already be untagged, so it cannot be undone: ``--undo`` (``recover``) finishes it."""
    from graph import neo4j_load

    a, _ = datasets
    reference = MemoryStore()
    load_dataset(reference, a)
    expected = _snapshot(reference, tmp_path / "reference")

    # stage a load through the real code, then stop it at the commit as a kill would
    def killed_at_commit(store: Any, load: str, limit: int, log: Any) -> None:
        # untag one chunk of one label, as the first step of a real commit does, then "die"
        neo4j_load._loop(store, neo4j_load._COMMIT_NODES["Problem"], load, 50)  # noqa: SLF001
        raise KeyboardInterrupt

    original = neo4j_load._commit  # noqa: SLF001
    neo4j_load._commit = killed_at_commit  # type: ignore[assignment]  # noqa: SLF001
    try:
        with pytest.raises(KeyboardInterrupt):
            load_dataset(store, a, staged_above=0)
    finally:
        neo4j_load._commit = original  # noqa: SLF001
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pending = pending_load(store)
    assert pending is not None and pending.state == "committing" and _tagged(neo4j_driver) > 0
    store.set_meta(LOAD_META_KEY, json.dumps({**pending.__dict__, "pid": int(dead.stdout)}))

    undo = _cli({"JIANGLIAN_STORE": "neo4j", "NEO4J_URI": neo4j_uri, "NEO4J_DATABASE": "neo4j",
                 "JIANGLIAN_DATA_DIR": str(tmp_path)}, "load", "--undo")
    out, _ = undo.communicate(timeout=300)
    assert undo.returncode == 0 and "killed while committing: finishing its commit" in out and "was committed" in out
    assert _tagged(neo4j_driver) == 0 and pending_load(store) is None
    assert _snapshot(store, tmp_path / "finished") == expected
