"""Dataset loading: every kind of bad input is reported as ``file:line: reason`` and nothing is written.

Also the ``jianglian load`` command end to end (CliRunner, embedded store in a temporary data
directory) and the real gis-stackexchange benchmark, loaded into both stores against the clock.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import main
from graph.dataset import load_dataset, read_dataset
from graph.errors import DatasetError
from graph.memory import MemoryStore
from graph.neo4j_store import Neo4jStore
from graph.store import GraphStore

GOOD: dict[str, list[Any]] = {
    "enterprises.jsonl": [{"id": "E1", "name": "盐城精密机械有限公司", "district": "亭湖区"}],
    "workers.jsonl": [
        {"id": "W1", "name": "张三", "skills": ["数控加工"], "employer_id": "E1", "capacity": 3, "active": True},
        {"id": "W2", "name": "李四", "skills": ["焊接"], "posted": {"nested": "kept"}},
    ],
    "problems.jsonl": [
        {"id": "P1", "title": "数控机床主轴异响", "skills": ["数控加工"], "enterprise_id": "E1",
         "status": "solved", "posted_at": "2024-03-01", "solved_by": ["W1"]},
        {"id": "P2", "description": "薄板焊接后翘曲", "skills": ["焊接"], "status": "open"},
    ],
}


def _write(directory: Path, files: dict[str, list[Any]]) -> Path:
    """Write a dataset; a row given as ``str`` or ``bytes`` is written as that raw line."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        with open(directory / name, "wb") as fh:
            for row in rows:
                if isinstance(row, bytes):
                    fh.write(row + b"\n")
                elif isinstance(row, str):
                    fh.write(row.encode("utf-8") + b"\n")
                else:
                    fh.write(json.dumps(row, ensure_ascii=False).encode("utf-8") + b"\n")
    return directory


def _with(file: str, line: int, row: Any) -> dict[str, list[Any]]:
    """GOOD with row ``line`` (1-based) of ``file`` replaced, or appended when ``line`` is past the end."""
    files = {name: list(rows) for name, rows in GOOD.items()}
    rows = files[file]
    if line <= len(rows):
        rows[line - 1] = row
    else:
        rows.append(row)
    return files


@pytest.fixture
def store(tmp_path: Path) -> Iterator[MemoryStore]:
    with MemoryStore(tmp_path / "store") as s:
        yield s


BAD_CASES = {
    "bad JSON": (_with("workers.jsonl", 2, '{"id": "W2", "name": "李四",'), "workers.jsonl:2: bad JSON"),
    "not an object": (_with("workers.jsonl", 3, '["W3"]'), "workers.jsonl:3: a row must be a JSON object"),
    "missing id": (_with("workers.jsonl", 2, {"name": "李四"}), 'workers.jsonl:2: missing or empty "id"'),
    "empty id": (_with("problems.jsonl", 1, {"id": " ", "title": "x"}), 'problems.jsonl:1: missing or empty "id"'),
    "number id": (_with("enterprises.jsonl", 2, {"id": 7, "name": "x"}), 'enterprises.jsonl:2: missing or empty "id"'),
    "string for a list": (_with("workers.jsonl", 2, {"id": "W2", "skills": "焊接"}),
                          'workers.jsonl:2: "skills" must be a list of non-empty strings, got "焊接"'),
    "string for an integer": (_with("workers.jsonl", 2, {"id": "W2", "capacity": "three"}),
                              'workers.jsonl:2: "capacity" must be a non-negative integer'),
    "negative integer": (_with("workers.jsonl", 2, {"id": "W2", "capacity": -1}),
                         'workers.jsonl:2: "capacity" must be a non-negative integer'),
    "string for a boolean": (_with("workers.jsonl", 2, {"id": "W2", "active": "yes"}),
                             'workers.jsonl:2: "active" must be true or false'),
    "bad date": (_with("problems.jsonl", 2, {"id": "P2", "title": "x", "posted_at": "yesterday"}),
                 'problems.jsonl:2: "posted_at" must be a date YYYY-MM-DD'),
    "bad status": (_with("problems.jsonl", 2, {"id": "P2", "title": "x", "status": "done"}),
                   'problems.jsonl:2: "status" must be one of open, matched, solved, closed'),
    "problem without text": (_with("problems.jsonl", 2, {"id": "P2", "skills": ["焊接"]}),
                             'problems.jsonl:2: a problem needs a "title" or a "description"'),
    "dangling employer_id": (_with("workers.jsonl", 2, {"id": "W2", "employer_id": "E404"}),
                             "workers.jsonl:2: \"employer_id\" refers to unknown enterprise 'E404'"),
    "dangling enterprise_id": (_with("problems.jsonl", 2, {"id": "P2", "title": "x", "enterprise_id": "E404"}),
                               "problems.jsonl:2: \"enterprise_id\" refers to unknown enterprise 'E404'"),
    "dangling solved_by": (_with("problems.jsonl", 2, {"id": "P2", "title": "x", "solved_by": ["W1", "W404"]}),
                           'problems.jsonl:2: "solved_by" refers to unknown worker(s) W404'),
    "duplicate id": (_with("workers.jsonl", 3, {"id": "W1", "name": "又一个张三"}),
                     "workers.jsonl:3: duplicate id 'W1' (first at line 1)"),
    "not UTF-8": (_with("workers.jsonl", 2, '{"id": "W2", "name": "李四"}'.encode("gbk")),
                  "workers.jsonl:2: not valid UTF-8"),
}


@pytest.mark.parametrize("files, expected", BAD_CASES.values(), ids=BAD_CASES.keys())
def test_bad_rows_are_reported_and_nothing_is_written(
    store: MemoryStore, tmp_path: Path, files: dict[str, list[Any]], expected: str
) -> None:
    directory = _write(tmp_path / "data", files)
    revision = store.revision
    with pytest.raises(DatasetError) as info:
        load_dataset(store, directory)
    messages = [str(e) for e in info.value.errors]
    assert len(messages) == 1, messages
    assert messages[0].startswith(expected), messages
    assert expected in str(info.value)
    assert store.counts() == {}
    assert store.revision == revision


def test_every_bad_row_is_reported_in_file_order(store: MemoryStore, tmp_path: Path) -> None:
    files = _with("workers.jsonl", 2, {"name": "no id"})
    files["problems.jsonl"].append("{oops")
    files["enterprises.jsonl"].append({"id": "E2", "tags": "专精特新"})
    directory = _write(tmp_path / "data", files)
    with pytest.raises(DatasetError) as info:
        load_dataset(store, directory)
    assert [(e.file, e.line) for e in info.value.errors] == [
        ("enterprises.jsonl", 2), ("workers.jsonl", 2), ("problems.jsonl", 3)]
    assert str(info.value).startswith("3 invalid row(s):\nenterprises.jsonl:2: ")
    assert store.counts() == {}


@pytest.mark.parametrize("missing", ["workers.jsonl", "problems.jsonl"])
def test_missing_required_file(store: MemoryStore, tmp_path: Path, missing: str) -> None:
    files = dict(GOOD)
    del files[missing]
    directory = _write(tmp_path / "data", files)
    with pytest.raises(DatasetError) as info:
        load_dataset(store, directory)
    assert [str(e) for e in info.value.errors] == [f"{directory / missing}:0: required file is missing"]
    assert store.counts() == {}


def test_not_a_directory(store: MemoryStore, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not a directory"):
        load_dataset(store, tmp_path / "nowhere")


def test_good_dataset_loads(store: MemoryStore, tmp_path: Path) -> None:
    files = {name: list(rows) for name, rows in GOOD.items()}
    files["workers.jsonl"].insert(1, "   ")  # blank lines are allowed and still counted
    directory = _write(tmp_path / "data", files)
    (directory / "problems.jsonl").write_bytes(b"\xef\xbb\xbf" + (directory / "problems.jsonl").read_bytes())  # BOM
    report = load_dataset(store, directory)
    assert report.rows == {"Enterprise": 1, "Worker": 2, "Problem": 2}
    assert report.skipped == []
    assert store.counts() == {"Enterprise": 1, "Worker": 2, "Problem": 2, "Skill": 2, "District": 1, "LOCATED_IN": 1,
                              "HAS_SKILL": 2, "EMPLOYED_BY": 1, "REQUIRES": 2, "POSTED": 1, "SOLVED": 1}
    assert report.relationships == 8
    assert store.get_node("Worker", "W2") == {"id": "W2", "name": "李四", "skills": ["焊接"],
                                              "extra_json": '{"posted": {"nested": "kept"}}'}


def test_skip_invalid_loads_the_good_rows(store: MemoryStore, tmp_path: Path) -> None:
    files = _with("workers.jsonl", 2, {"id": "W2", "capacity": "many"})
    files["problems.jsonl"].append({"id": "P3", "title": "needs the bad worker", "solved_by": ["W2"]})
    files["problems.jsonl"].append({"id": "P1", "title": "duplicate"})
    directory = _write(tmp_path / "data", files)
    report = load_dataset(store, directory, skip_invalid=True)
    assert [str(e) for e in report.skipped] == [
        'workers.jsonl:2: "capacity" must be a non-negative integer, got "many"',
        "problems.jsonl:3: \"solved_by\" refers to unknown worker(s) W2",
        "problems.jsonl:4: duplicate id 'P1' (first at line 1)",
    ]
    assert report.rows == {"Enterprise": 1, "Worker": 1, "Problem": 2}
    assert [n["id"] for n in store.list_nodes("Worker")] == ["W1"]
    assert [n["id"] for n in store.list_nodes("Problem")] == ["P1", "P2"]
    p1 = store.get_node("Problem", "P1")
    assert p1 is not None and p1["title"] == "数控机床主轴异响"


def test_a_dropped_row_drops_the_rows_that_need_it(store: MemoryStore, tmp_path: Path) -> None:
    files = {name: list(rows) for name, rows in GOOD.items()}
    files["workers.jsonl"].append({"id": "W3", "name": "王五", "mentors": ["W404"]})
    files["workers.jsonl"].append({"id": "W4", "name": "赵六", "mentors": ["W3"]})
    files["problems.jsonl"].append({"id": "P3", "title": "王五解决过", "solved_by": ["W3"]})
    directory = _write(tmp_path / "data", files)
    report = load_dataset(store, directory, skip_invalid=True)
    assert [str(e) for e in report.skipped] == [
        'workers.jsonl:3: "mentors" refers to unknown worker(s) W404',
        'workers.jsonl:4: "mentors" refers to unknown worker(s) W3',
        'problems.jsonl:3: "solved_by" refers to unknown worker(s) W3',
    ]
    assert [n["id"] for n in store.list_nodes("Worker")] == ["W1", "W2"]
    assert store.get_node("Problem", "P3") is None


def test_references_to_stored_nodes_are_not_dangling(store: MemoryStore, tmp_path: Path) -> None:
    load_dataset(store, _write(tmp_path / "first", GOOD))
    more = {"workers.jsonl": [{"id": "W3", "employer_id": "E1"}],
            "problems.jsonl": [{"id": "P9", "title": "后续问题", "enterprise_id": "E1", "solved_by": ["W2", "W3"]}]}
    assert read_dataset(tmp_path / "first").errors == []
    report = load_dataset(store, _write(tmp_path / "second", more))
    assert report.skipped == []
    assert sorted(r.start_id for r in store.relationships("SOLVED", end=("Problem", "P9"))) == ["W2", "W3"]
    assert store.count_nodes("Worker") == 3


# -- the command line -----------------------------------------------------------------------
@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("JIANGLIAN_DATA_DIR", str(tmp_path / "jl-data"))
    monkeypatch.setenv("JIANGLIAN_STORE", "memory")
    return CliRunner()


def test_cli_load_refuses_bad_data(runner: CliRunner, tmp_path: Path) -> None:
    files = _with("workers.jsonl", 2, {"id": "W2", "active": "yes"})
    files["problems.jsonl"].append("not json")
    directory = _write(tmp_path / "bad", files)
    result = runner.invoke(main, ["load", str(directory)])
    assert result.exit_code == 1, result.output
    assert 'workers.jsonl:2: "active" must be true or false' in result.stderr
    assert "problems.jsonl:3: bad JSON" in result.stderr
    assert "2 invalid row(s); nothing was written (use --skip-invalid to load the rest)" in result.stderr
    stats = runner.invoke(main, ["stats"])
    assert stats.exit_code == 0 and stats.stdout == ""


def test_cli_load_skip_invalid(runner: CliRunner, tmp_path: Path) -> None:
    directory = _write(tmp_path / "bad", _with("workers.jsonl", 2, {"id": "W2", "active": "yes"}))
    result = runner.invoke(main, ["load", str(directory), "--skip-invalid"])
    assert result.exit_code == 0, result.output
    assert 'skipped workers.jsonl:2: "active" must be true or false' in result.stderr
    assert "loaded Enterprise 1, Worker 1, Problem 2;" in result.stdout
    assert "1 row(s) skipped" in result.stdout


def test_cli_load_good_data_twice(runner: CliRunner, tmp_path: Path) -> None:
    directory = _write(tmp_path / "good", GOOD)
    for _ in range(2):
        result = runner.invoke(main, ["load", str(directory)])
        assert result.exit_code == 0, result.output
        assert result.stdout.strip() == "loaded Enterprise 1, Worker 2, Problem 2; 8 relationships; 0 row(s) skipped"
    stats = runner.invoke(main, ["stats"])
    assert stats.exit_code == 0
    assert "Problem\t2\n" in stats.stdout and "Worker\t2\n" in stats.stdout and "SOLVED\t1\n" in stats.stdout


def test_cli_load_missing_directory(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(main, ["load", str(tmp_path / "nowhere")])
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def test_cli_load_missing_required_file(runner: CliRunner, tmp_path: Path) -> None:
    directory = _write(tmp_path / "partial", {"workers.jsonl": GOOD["workers.jsonl"]})
    result = runner.invoke(main, ["load", str(directory)])
    assert result.exit_code == 1
    assert "problems.jsonl:0: required file is missing" in result.stderr


# -- the real benchmark ---------------------------------------------------------------------
GIS_COUNTS = {"Worker": 2969, "Problem": 32939}


def _timed_gis_load(store: GraphStore, gis_dir: Path) -> float:
    start = time.perf_counter()
    report = load_dataset(store, gis_dir)
    elapsed = time.perf_counter() - start
    print(f"\ngis-stackexchange into the {store.kind} store: {elapsed:.1f} s, {report.relationships} relationships")
    assert report.skipped == []
    assert report.rows == GIS_COUNTS
    counts = store.counts()
    assert {label: counts[label] for label in GIS_COUNTS} == GIS_COUNTS
    assert counts["SOLVED"] + counts["REQUIRES"] + counts["HAS_SKILL"] == report.relationships
    return elapsed


@pytest.mark.slow
def test_gis_benchmark_into_memory_store(gis_dir: Path, tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "store") as store:
        assert _timed_gis_load(store, gis_dir) < 60


@pytest.mark.slow
@pytest.mark.neo4j
def test_gis_benchmark_into_neo4j(gis_dir: Path, neo4j_driver: Any) -> None:
    store = Neo4jStore(neo4j_driver, "neo4j")
    store.clear()
    store.ensure_schema()
    try:
        assert _timed_gis_load(store, gis_dir) < 60
        assert store.fulltext("arcgis", labels=["Problem"], limit=5)
    finally:
        store.clear()
        store.close()
