"""The stored ranking index (recommender/index_files.py, issue 13): files rank exactly like a build in memory,
damage or a changed model means a rebuild, the change feed is replayed, several processes map one directory."""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import mmap
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from demo.generator import generate
from graph.dataset import load_dataset
from graph.memory import MemoryStore
from graph.store import NodeRow, RelRow, WriteBatch
from recommender import index_files
from recommender.engine import RankConfig, Recommender
from recommender.index_files import PropTable, StrTable
from recommender.tables import IdIndex

ROOT = Path(__file__).resolve().parent.parent
NEW_PROBLEM: dict[str, Any] = {"title": "光伏组件焊带虚焊", "description": "串焊机焊带虚焊，组件EL检测发现隐裂",
                               "skills": ["焊接"], "service_type": "技术帮扶"}


class HashEncoder:
    """A deterministic stand-in for the dense encoder: vectors from a hash of (model name, text)."""

    def __init__(self, name: str, dim: int = 16) -> None:
        self.dim = dim
        self.identity = f"{name}@sha256:{hashlib.sha256(name.encode()).hexdigest()[:16]}"

    def encode(self, texts: Sequence[str], **_: object) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(f"{self.identity}|{text}".encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)


@pytest.fixture(scope="module")
def demo_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate(out, scale=1.0, seed=7)
    return out


@pytest.fixture(scope="module")
def small_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-small")
    generate(out, scale=0.3, seed=7)
    return out


def _data_dir(where: Path, files: Path) -> Path:
    store = MemoryStore(where / "store")
    load_dataset(store, files)
    store.close()
    return where


@pytest.fixture()
def data(tmp_path: Path, demo_files: Path) -> Path:
    """A data directory holding the demo graph (scale 1: 300 workers, 2,200 problems) in an embedded store."""
    return _data_dir(tmp_path, demo_files)


@pytest.fixture()
def small(tmp_path: Path, small_files: Path) -> Path:
    """The demo graph at scale 0.3 (90 workers, 660 problems): the cases where the size does not matter."""
    return _data_dir(tmp_path, small_files)


def _rec(data: Path, store: MemoryStore, **config: object) -> Recommender:
    return Recommender(store, encoder=config.pop("encoder", None),  # type: ignore[arg-type]
                       config=RankConfig(model_dir=data / "models", **config))  # type: ignore[arg-type]


def _mapped(arr: np.ndarray) -> bool:
    """Whether ``arr`` is a view of a memory-mapped file."""
    at: object = arr
    while at is not None:
        if isinstance(at, np.memmap | mmap.mmap):
            return True
        at = getattr(at, "base", None)
    return False


def _queries(rec: Recommender, n: int = 40) -> list[str]:
    ids = rec.projection.ids["Problem"]
    return [ids[i] for i in np.linspace(0, len(ids) - 1, n).astype(int)]


def _assert_same_rankings(a: Recommender, b: Recommender, queries: Sequence[str], *, atol: float = 1e-6) -> None:
    """Same top 10 (ids in order), scores and every component within ``atol``, for the queries and a new problem;
    the same open problems suggested to a worker."""
    asked: list[str | dict[str, Any]] = [*queries, NEW_PROBLEM]
    for q in asked:
        ra, rb = a.recommend(q), b.recommend(q)
        assert [r.worker_id for r in ra] == [r.worker_id for r in rb], q
        assert np.allclose([r.score for r in ra], [r.score for r in rb], rtol=0, atol=atol), q
        for x, y in zip(ra, rb, strict=True):
            assert x.components.keys() == y.components.keys()
            assert x.components == pytest.approx(y.components, abs=atol)
    worker = a.projection.ids["Worker"][7]
    pa, pb = a.recommended_problems(worker), b.recommended_problems(worker)
    assert [s.problem_id for s in pa] == [s.problem_id for s in pb]
    assert np.allclose([s.score for s in pa], [s.score for s in pb], rtol=0, atol=atol)


@pytest.fixture(params=["small labels decoded", "every label mapped"])
def mapped_ids(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Both ways a loaded projection keeps its ids: decoded into a list and a dictionary (labels under
    ``MAPPED_IDS`` nodes, every label of the demo) and mapped (:class:`IdIndex`, what a million problems get)."""
    every = request.param == "every label mapped"
    if every:
        monkeypatch.setattr(index_files, "MAPPED_IDS", 0)
    return every


def test_files_rank_exactly_like_a_build_in_memory(data: Path, mapped_ids: bool) -> None:
    store = MemoryStore(data / "store")
    built = _rec(data, store, index_dir=data / "index")
    assert built.index_state()["source"] == "build"
    assert index_files.current_version(data / "index") is not None
    loaded = _rec(data, store, index_dir=data / "index")
    assert loaded.index_state()["source"] == "files"
    memory_only = _rec(data, store)  # no files at all: what the product did before
    _assert_same_rankings(memory_only, loaded, _queries(memory_only))
    _assert_same_rankings(built, loaded, _queries(built)[:5])
    pids = _queries(built, 5)
    pairs_built, pairs_loaded = built.score_pairs(pids), loaded.score_pairs(pids)
    for pid in pids:
        assert pairs_built[pid].keys() == pairs_loaded[pid].keys()
        assert pairs_built[pid] == pytest.approx(pairs_loaded[pid], abs=1e-6)
    # the arrays are mapped, not copied: the big matrices are views of the files
    assert _mapped(loaded.index.docs.word.data) and _mapped(loaded.index.walk.indices)
    assert not _mapped(memory_only.index.docs.word.data)
    assert _mapped(built.index.docs.word.data)  # a build serves the files it wrote, not its own objects
    assert isinstance(loaded.projection.props["Problem"], PropTable)
    assert isinstance(loaded.index.problem_texts, StrTable)
    assert list(loaded.index.problem_texts) == list(built.index.problem_texts)
    assert [dict(p) for p in loaded.projection.props["Worker"]] == [dict(p) for p in built.projection.props["Worker"]]
    # ids, their lookup and every edge's position: mapped tables answer like the build's lists and dictionaries
    for label, ids in built.projection.ids.items():
        assert isinstance(loaded.projection.index[label], IdIndex) == (mapped_ids and len(ids) > 0)
        assert list(loaded.projection.ids[label]) == list(ids)
        assert dict(loaded.projection.index[label]) == dict(built.projection.index[label])
        assert loaded.projection.index[label].get("no such id") is None
    for key, edges in memory_only.projection.edges.items():
        mapped = loaded.projection.edges[key]
        assert mapped.sorted_codes is not None and _mapped(mapped.sorted_codes) and not mapped.seen
        assert list(mapped.start) == list(edges.start) and list(mapped.end) == list(edges.end)
        for at in range(0, len(edges), max(1, len(edges) // 50)):
            assert mapped.position(edges.start[at], edges.end[at]) == at
        assert mapped.position(len(edges.start) + 10**6, 0) is None
    store.close()


def _largest(version: Path, suffix: str = ".npy") -> Path:
    return max(version.glob("*" + suffix), key=lambda p: p.stat().st_size)


@pytest.mark.parametrize("damage", ["truncate-large", "truncate-small", "flip-byte", "delete-pickle", "manifest"])
def test_damaged_files_mean_a_rebuild_with_a_log_line(small: Path, damage: str,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(small / "store")
    reference = _rec(small, store)  # in memory only: it maps nothing that is damaged below
    writer = _rec(small, store, index_dir=small / "index")
    del writer  # a process serving the files would die of SIGBUS on a page cut off below (versions are immutable)
    gc.collect()
    version = index_files.current_version(small / "index")
    assert version is not None
    if damage == "truncate-large":
        target = _largest(version)
        os.truncate(target, target.stat().st_size // 2)
    elif damage == "truncate-small":
        target = version / "spec.json"
        os.truncate(target, target.stat().st_size - 10)
    elif damage == "flip-byte":  # same size, other content, in a file checked in full
        target = min((p for p in version.glob("*.npy") if p.stat().st_size > 200), key=lambda p: p.stat().st_size)
        raw = bytearray(target.read_bytes())
        raw[-1] ^= 0xFF
        target.write_bytes(bytes(raw))
    elif damage == "delete-pickle":
        _largest(version, ".pkl").unlink()
    else:
        (version / "manifest.json").write_text("{not json")
    caplog.set_level(logging.WARNING, logger="recommender.engine")
    again = _rec(small, store, index_dir=small / "index")
    assert again.index_state()["source"] == "build"
    assert any("not used" in r.getMessage() for r in caplog.records), caplog.text
    _assert_same_rankings(reference, again, _queries(reference, 10))
    # the rebuild wrote a sound version, which the next start maps
    assert _rec(small, store, index_dir=small / "index").index_state()["source"] == "files"
    store.close()


def test_another_model_means_a_rebuild(small: Path, caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore(small / "store")
    first = _rec(small, store, index_dir=small / "index", encoder=HashEncoder("model-a"))
    same = _rec(small, store, index_dir=small / "index", encoder=HashEncoder("model-a"))
    assert same.index_state()["source"] == "files"
    caplog.set_level(logging.WARNING, logger="recommender.engine")
    other = _rec(small, store, index_dir=small / "index", encoder=HashEncoder("model-b"))
    assert other.index_state()["source"] == "build"
    assert "fingerprint 'encoder' differs" in caplog.text
    fresh = _rec(small, store, encoder=HashEncoder("model-b"))
    _assert_same_rankings(fresh, other, _queries(fresh, 10))
    assert first.index.dense_docs is not None and other.index.dense_docs is not None
    assert not np.allclose(first.index.dense_docs, other.index.dense_docs)  # the files' vectors were not reused
    # no encoder at all is another model too
    assert _rec(small, store, index_dir=small / "index").index_state()["source"] == "build"
    store.close()


def test_code_or_library_fingerprints_are_checked(small: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = MemoryStore(small / "store")
    _rec(small, store, index_dir=small / "index")
    monkeypatch.setattr(index_files, "_code_digest", lambda: "another-build-of-the-code")
    assert _rec(small, store, index_dir=small / "index").index_state()["source"] == "build"
    store.close()


def _write_behind_its_back(data: Path) -> None:
    """Writes by another process while no recommender runs: a posted problem, a solve, an edited worker."""
    other = MemoryStore(data / "store")
    enterprise = other.list_nodes("Enterprise", limit=1)[0]["id"]
    worker = other.list_nodes("Worker", limit=3)[2]
    open_problem = next(p for p in other.iter_nodes("Problem") if p.get("status") == "open")
    other.apply(WriteBatch(
        nodes=[NodeRow("Problem", "P-NEW-1", {**NEW_PROBLEM, "status": "open", "enterprise_id": enterprise,
                                              "posted_at": "2026-11-30"})],
        rels=[RelRow("REQUIRES", "Problem", "P-NEW-1", "Skill", "焊接"),
              RelRow("POSTED", "Enterprise", enterprise, "Problem", "P-NEW-1")]))
    other.apply(WriteBatch(nodes=[NodeRow("Problem", open_problem["id"], {"status": "solved"})],
                           rels=[RelRow("SOLVED", "Worker", worker["id"], "Problem", open_problem["id"],
                                        {"rating": 5, "at": "2026-12-01"})]))
    other.update_node("Worker", worker["id"], {"capacity": 9})
    other.close()


def test_data_changed_behind_its_back_is_replayed_like_a_live_process(data: Path, mapped_ids: bool) -> None:
    store = MemoryStore(data / "store")
    live = _rec(data, store, index_dir=data / "index")  # saves the files at the current feed position
    built_at = live.index_state()["files_revision"]
    _write_behind_its_back(data)
    assert store.revision > built_at
    live.refresh()  # a process that ran all along follows the feed incrementally
    assert live.last_refresh == "index"
    restarted = _rec(data, store, index_dir=data / "index")
    state = restarted.index_state()
    assert state["source"] == "files" and state["replayed"] > 0 and state["revision"] == store.revision
    assert "P-NEW-1" in restarted.projection.index["Problem"]
    _assert_same_rankings(live, restarted, _queries(live, 30) + ["P-NEW-1"])
    store.close()


def test_replay_of_changes_that_need_no_refit_equals_a_rebuild(small: Path) -> None:
    """A posted problem and an edited worker replayed onto old files: the top 10 of a fresh build, its scores within
    1e-4. Not to 1e-6: the incremental update (the same in a live process) keeps the ``activity`` prior, whose
    clock a rebuild moves by the new problem (every worker's value changes by about 3e-6)."""
    store = MemoryStore(small / "store")
    _rec(small, store, index_dir=small / "index")
    other = MemoryStore(small / "store")
    enterprise = other.list_nodes("Enterprise", limit=1)[0]["id"]
    worker = other.list_nodes("Worker", limit=5)[4]["id"]
    other.apply(WriteBatch(
        nodes=[NodeRow("Problem", "P-NEW-2", {**NEW_PROBLEM, "status": "open", "enterprise_id": enterprise})],
        rels=[RelRow("REQUIRES", "Problem", "P-NEW-2", "Skill", "焊接"),
              RelRow("POSTED", "Enterprise", enterprise, "Problem", "P-NEW-2")]))
    other.update_node("Worker", worker, {"capacity": 1, "active": False})
    other.close()
    replayed = _rec(small, store, index_dir=small / "index")
    assert replayed.index_state()["source"] == "files" and replayed.index_state()["replayed"] >= 2
    rebuilt = _rec(small, store)
    _assert_same_rankings(rebuilt, replayed, _queries(rebuilt, 30) + ["P-NEW-2"], atol=1e-4)
    store.close()


def test_a_feed_that_cannot_list_the_changes_means_a_rebuild(small: Path) -> None:
    store = MemoryStore(small / "store")
    _rec(small, store, index_dir=small / "index", max_incremental=2)
    _write_behind_its_back(small)  # four writes, more than max_incremental
    again = _rec(small, store, index_dir=small / "index", max_incremental=2)
    assert again.index_state()["source"] == "build"
    _assert_same_rankings(_rec(small, store), again, _queries(again, 10))
    store.close()


def test_background_rebuild_serves_the_old_index_then_swaps(small: Path) -> None:
    store = MemoryStore(small / "store")
    _rec(small, store, index_dir=small / "index", max_incremental=2)
    _write_behind_its_back(small)
    stale = _rec(small, store, index_dir=small / "index", max_incremental=2, background_rebuild=True)
    assert stale.index_state()["source"] == "files"  # served at once, from the files
    thread = stale._rebuilding
    assert thread is not None
    thread.join(timeout=120)
    assert not stale.rebuilding
    assert stale.index_state()["source"] == "build" and stale.index_state()["revision"] == store.revision
    _assert_same_rankings(_rec(small, store), stale, _queries(stale, 10))
    store.close()


def test_files_of_another_store_are_not_used(small: Path, tmp_path_factory: pytest.TempPathFactory,
                                             small_files: Path) -> None:
    store = MemoryStore(small / "store")
    _rec(small, store, index_dir=small / "index")
    twin_dir = tmp_path_factory.mktemp("twin")
    twin = MemoryStore(twin_dir / "store")  # the same small, loaded into another database
    load_dataset(twin, small_files)
    assert index_files.store_identity(twin) != index_files.store_identity(store)
    assert _rec(small, twin, index_dir=small / "index").index_state()["source"] == "build"
    twin.close()
    store.close()


def test_two_processes_map_one_index_directory(data: Path) -> None:
    store = MemoryStore(data / "store")
    reference = _rec(data, store, index_dir=data / "index")
    queries = _queries(reference, 5)
    expected = {q: [(r.worker_id, r.score) for r in reference.recommend(q)] for q in queries}
    store.close()
    cmd = [sys.executable, "-m", "tests.index_process", str(data / "store"), str(data / "index"),
           str(data / "models"), *queries, "--hold", "3"]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    results = []
    for proc, (out, err) in zip(procs, outs, strict=True):
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0]["pid"] != results[1]["pid"]
    for got in results:
        assert got["source"] == "files"
        assert got["mapped_files"] > 10  # the version's arrays are in this process's memory maps
        for q in queries:
            assert [w for w, _ in got["rankings"][q]] == [w for w, _ in expected[q]]
            assert np.allclose([s for _, s in got["rankings"][q]], [s for _, s in expected[q]], rtol=0, atol=1e-6)


def test_status_reports_lag_and_usability(small: Path) -> None:
    store = MemoryStore(small / "store")
    assert not index_files.status(small / "index", store).usable
    _rec(small, store, index_dir=small / "index")
    fresh = index_files.status(small / "index", store)
    assert fresh.usable and fresh.lag == 0 and fresh.revision == store.revision and fresh.bytes > 0
    _write_behind_its_back(small)
    behind = index_files.status(small / "index", store)
    assert behind.usable and behind.lag is not None and behind.lag > 0
    assert not index_files.status(small / "index", store, encoder=HashEncoder("x")).usable
    store.close()


def test_a_mapped_index_saves_again_to_the_same_files(small: Path) -> None:
    """A process that mapped its index (the text model read from tables, without scikit-learn's vectorisers)
    can write it again, byte for byte the files it mapped; streaming the property tables row by row (a 1M save
    kept one ``bytes`` per row before) writes what packing them whole would."""
    store = MemoryStore(small / "store")
    rec = _rec(small, store, index_dir=small / "index")
    assert rec.index_state()["mapped"]
    first = Path(rec.index_state()["version"])
    second = rec.save_index()
    assert second is not None and second != first
    names = sorted(p.name for p in first.iterdir())
    assert names == sorted(p.name for p in second.iterdir())
    different = [n for n in names if n != "manifest.json" and (first / n).read_bytes() != (second / n).read_bytes()]
    assert not different
    table = rec.projection.props["Problem"]
    blob, offsets = index_files.pack([orjson.dumps(dict(row)) for row in table])
    stored = np.load(first / "proj.Problem.props.blob.npy"), np.load(first / "proj.Problem.props.offsets.npy")
    assert np.array_equal(stored[0], blob) and np.array_equal(stored[1], offsets)
    store.close()


def test_prop_table_behaves_like_the_list_it_replaces() -> None:
    rows: list[dict[str, Any]] = [{"a": 1}, {}, {"b": [1.5, 2.0], "c": "焊"}]
    blob, offsets = index_files.pack([orjson.dumps(row) for row in rows])
    table = PropTable(blob, offsets)
    assert list(table) == rows and len(table) == 3 and table[-1] == rows[-1] and table[1:] == rows[1:]
    table[0] = {"a": 2}
    table.append({"d": None})
    assert list(table) == [{"a": 2}, {}, rows[2], {"d": None}]
    with pytest.raises(IndexError):
        table[4]


def test_prop_table_over_a_mapped_file_reads_a_row_from_the_file(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rows: list[dict[str, Any]] = [{"title": f"问题 {i}", "n": i} for i in range(300)] + [{}]
    blob, offsets = index_files.pack([orjson.dumps(row) for row in rows])
    np.save(tmp_path / "blob.npy", blob)
    mapped = np.load(tmp_path / "blob.npy", mmap_mode="r").view(np.ndarray)
    table = PropTable(mapped[0:], offsets)
    assert table._file is not None and table._file[0] == str(tmp_path / "blob.npy")
    assert [table[i] for i in range(len(rows))] == rows and list(table) == rows and table[5:7] == rows[5:7]
    # a single row is read with pread, not through the mapping (whose neighbouring pages the kernel would map too)
    calls: list[tuple[int, int]] = []
    real = os.pread

    def counted(fd: int, n: int, at: int) -> bytes:
        calls.append((n, at))
        return real(fd, n, at)

    monkeypatch.setattr(os, "pread", counted)
    assert table[3] == rows[3] and calls == [(int(offsets[4] - offsets[3]), table._file[1] + int(offsets[3]))]
    assert PropTable(blob, offsets)._file is None  # an array in memory is read as it is


def test_cli_index_build_and_status(small: Path) -> None:
    from click.testing import CliRunner

    from cli.main import main

    env = {"JIANGLIAN_DATA_DIR": str(small), "JIANGLIAN_STORE": "memory", "JIANGLIAN_INDEX_DIR": ""}
    runner = CliRunner()
    before = runner.invoke(main, ["index", "status", "--encoder", "none", "--json"], env=env)
    assert before.exit_code == 0, before.output
    assert json.loads(before.output)["usable"] is False
    built = runner.invoke(main, ["index", "build", "--encoder", "none"], env=env)
    assert built.exit_code == 0, built.output
    assert "built over" in built.output and f"written to {small / 'index'}" in built.output
    after = json.loads(runner.invoke(main, ["index", "status", "--encoder", "none", "--json"], env=env).output)
    assert after["usable"] is True and after["lag"] == 0 and after["directory"] == str(small / "index")
    table = runner.invoke(main, ["index", "status", "--encoder", "none"], env=env)
    assert "usable: yes" in table.output
    # `recommend` maps the same files
    store = MemoryStore(small / "store")
    problem = store.list_nodes("Problem", limit=1)[0]["id"]
    store.close()
    ranked = runner.invoke(main, ["recommend", problem, "--encoder", "none", "--json"], env=env)
    assert ranked.exit_code == 0, ranked.output
    assert json.loads(ranked.output)["results"]


def test_readyz_waits_for_the_ranking_index(small: Path) -> None:
    import threading

    from web import create_app
    from web.extensions import get_state

    store = MemoryStore(small / "store")
    gate = threading.Event()

    def slow_factory(s: MemoryStore) -> Recommender:
        gate.wait(timeout=60)
        return Recommender(s, config=RankConfig(index_dir=small / "index", model_dir=small / "models"))

    app = create_app({"STORE": store, "SECRET_KEY": "t", "EMBEDDING_MODEL": "none",
                      "RECOMMENDER_FACTORY": slow_factory})
    client = app.test_client()
    assert client.get("/readyz").status_code == 200  # made on first use (tests): nothing to wait for
    get_state(app).start_ranking()
    waiting = client.get("/readyz")
    assert waiting.status_code == 503 and waiting.headers["Retry-After"] == "2"
    assert client.get("/healthz").status_code == 200  # liveness does not wait
    gate.set()
    for _ in range(600):
        ready = client.get("/readyz")
        if ready.status_code == 200:
            break
        threading.Event().wait(0.1)
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["ranking"]["ready"] is True and ready.get_json()["ranking"]["source"] == "build"
    # the app's own recommender, with INDEX_DIR: the second start maps the files the first wrote
    second = create_app({"STORE": store, "SECRET_KEY": "t", "EMBEDDING_MODEL": "none",
                         "INDEX_DIR": str(small / "index")})
    get_state(second).start_ranking()
    for _ in range(600):
        state = get_state(second).ranking_readiness()
        if state is not None and state["ready"]:
            break
        threading.Event().wait(0.1)
    assert state is not None and state["source"] == "files"
    store.close()


@pytest.mark.neo4j
def test_neo4j_store_files_and_replay(neo4j_driver: Any, tmp_path: Path, small_files: Path) -> None:
    """With Neo4j the files live in a local directory of the web host, keyed on the database's store_id and feed."""
    from graph.neo4j_store import Neo4jStore

    first = Neo4jStore(neo4j_driver, "neo4j")
    first.ensure_schema()
    first.clear()
    load_dataset(first, small_files)
    live = Recommender(first, config=RankConfig(index_dir=tmp_path / "index", model_dir=tmp_path / "models"))
    assert live.index_state()["source"] == "build"
    writer = Neo4jStore(neo4j_driver, "neo4j")  # another client of the database (another process in production)
    worker = writer.list_nodes("Worker", limit=3)[2]["id"]
    writer.update_node("Worker", worker, {"capacity": 7})
    writer.apply(WriteBatch(nodes=[NodeRow("Problem", "P-NEO-1", {**NEW_PROBLEM, "status": "open"})],
                            rels=[RelRow("REQUIRES", "Problem", "P-NEO-1", "Skill", "焊接")]))
    live.refresh()
    restarted_store = Neo4jStore(neo4j_driver, "neo4j")
    restarted = Recommender(restarted_store, config=RankConfig(index_dir=tmp_path / "index",
                                                               model_dir=tmp_path / "models"))
    state = restarted.index_state()
    assert state["source"] == "files" and state["replayed"] >= 2
    _assert_same_rankings(live, restarted, _queries(live, 15) + ["P-NEO-1"])
    first.clear()


def test_processes_starting_together_build_once(small: Path) -> None:
    """Two workers started together on a store without files: one builds and writes, the other waits and maps."""
    store = MemoryStore(small / "store")
    queries = [p["id"] for p in store.list_nodes("Problem", limit=3)]
    store.close()
    cmd = [sys.executable, "-m", "tests.index_process", str(small / "store"), str(small / "index"),
           str(small / "models"), *queries]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(r["source"] for r in results) == ["build", "files"]
    for q in queries:
        one, two = results[0]["rankings"][q], results[1]["rankings"][q]
        assert [w for w, _ in one] == [w for w, _ in two]
        assert np.allclose([x for _, x in one], [x for _, x in two], rtol=0, atol=1e-6)
    assert len([p for p in (small / "index").iterdir() if p.name.startswith("v")]) == 1  # one build, one version
