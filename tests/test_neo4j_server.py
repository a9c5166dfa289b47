"""The development Neo4j 5.26 server: Bolt, the ``cjk`` full-text analyzer, vector indexes, start and stop."""

from __future__ import annotations

import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from neo4j import Driver

from ops.neo4j_server import FAST_START_JVM_OPTIONS, Neo4jServer, Neo4jServerError, java_command, jvm_flags

DB = "neo4j"


@pytest.fixture()
def label(neo4j_driver: Driver) -> Iterator[str]:
    """A label no other test uses; its nodes and the indexes named after it are dropped afterwards."""
    name = "JlTest" + uuid.uuid4().hex[:12]
    yield name
    neo4j_driver.execute_query(f"MATCH (n:`{name}`) DETACH DELETE n", database_=DB)
    records, _, _ = neo4j_driver.execute_query(
        "SHOW INDEXES YIELD name WHERE name STARTS WITH $prefix RETURN name", prefix=name.lower(), database_=DB
    )
    for record in records:
        neo4j_driver.execute_query(f"DROP INDEX `{record['name']}` IF EXISTS", database_=DB)


def test_return_1(neo4j_driver: Driver) -> None:
    records, _, _ = neo4j_driver.execute_query("RETURN 1 AS one", database_=DB)
    assert records[0]["one"] == 1


def test_server_is_neo4j_5_26_community(neo4j_driver: Driver) -> None:
    records, _, _ = neo4j_driver.execute_query(
        "CALL dbms.components() YIELD name, versions, edition RETURN name, versions, edition", database_=DB
    )
    assert records[0]["name"] == "Neo4j Kernel"
    assert records[0]["versions"][0].startswith("5.26.")
    assert records[0]["edition"] == "community"


def test_fulltext_index_with_cjk_analyzer(neo4j_driver: Driver, label: str) -> None:
    index = f"{label.lower()}_text"
    neo4j_driver.execute_query(
        f"CREATE FULLTEXT INDEX `{index}` FOR (n:`{label}`) ON EACH [n.text] "
        "OPTIONS {indexConfig: {`fulltext.analyzer`: 'cjk'}}",
        database_=DB,
    )
    neo4j_driver.execute_query("CALL db.awaitIndexes(120)", database_=DB)
    neo4j_driver.execute_query(
        f"UNWIND $rows AS row CREATE (n:`{label}` {{id: row.id, text: row.text}})",
        rows=[
            {"id": "p1", "text": "数控机床主轴异响"},
            {"id": "p2", "text": "焊接机器人定位偏差"},
            {"id": "p3", "text": "注塑模具温度控制"},
        ],
        database_=DB,
    )
    records, _, _ = neo4j_driver.execute_query(
        "CALL db.index.fulltext.queryNodes($index, $query) YIELD node, score RETURN node.id AS id, score",
        index=index,
        query="主轴",
        database_=DB,
    )
    assert [r["id"] for r in records] == ["p1"]
    assert records[0]["score"] > 0
    records, _, _ = neo4j_driver.execute_query(
        "SHOW FULLTEXT INDEXES YIELD name, options WHERE name = $index RETURN options", index=index, database_=DB
    )
    assert records[0]["options"]["indexConfig"]["fulltext.analyzer"] == "cjk"


def test_vector_index_cosine(neo4j_driver: Driver, label: str) -> None:
    index = f"{label.lower()}_vec"
    neo4j_driver.execute_query(
        f"CREATE VECTOR INDEX `{index}` FOR (n:`{label}`) ON n.embedding "
        "OPTIONS {indexConfig: {`vector.dimensions`: 4, `vector.similarity_function`: 'cosine'}}",
        database_=DB,
    )
    neo4j_driver.execute_query("CALL db.awaitIndexes(120)", database_=DB)
    neo4j_driver.execute_query(
        f"UNWIND $rows AS row CREATE (n:`{label}` {{id: row.id}}) "
        "WITH n, row CALL db.create.setNodeVectorProperty(n, 'embedding', row.v)",
        rows=[
            {"id": "x", "v": [1.0, 0.0, 0.0, 0.0]},
            {"id": "xy", "v": [0.7, 0.7, 0.0, 0.0]},
            {"id": "z", "v": [0.0, 0.0, 1.0, 0.0]},
        ],
        database_=DB,
    )
    records, _, _ = neo4j_driver.execute_query(
        "CALL db.index.vector.queryNodes($index, 2, $q) YIELD node, score RETURN node.id AS id, score",
        index=index,
        q=[0.9, 0.1, 0.0, 0.0],
        database_=DB,
    )
    assert [r["id"] for r in records] == ["x", "xy"]
    assert records[0]["score"] == pytest.approx((1 + 0.9 / (0.9**2 + 0.1**2) ** 0.5) / 2, abs=1e-4)


def test_command_line_has_neo4j_module_flags() -> None:
    flags = jvm_flags()
    for flag in (
        "--add-opens=java.base/java.nio=ALL-UNNAMED",
        "--add-opens=java.base/java.io=ALL-UNNAMED",
        "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED",
        "--enable-native-access=ALL-UNNAMED",
    ):
        assert flag in flags
    cmd = java_command(Path("/tmp/x"), 7999, heap="256m")
    assert "-Xmx256m" in cmd
    assert cmd[-5:] == ["--host", "127.0.0.1", "--port", "7999", "/tmp/x"]


def test_start_failure_reports_server_output() -> None:
    server = Neo4jServer(
        conf={"server.memory.pagecache.size": "lots"},
        heap="256m",
        jvm_options=FAST_START_JVM_OPTIONS,
        startup_timeout=120,
    )
    with pytest.raises(Neo4jServerError, match="exited with code 1") as info:
        server.start()
    assert "server.memory.pagecache.size" in str(info.value)
    assert not server.running
    assert server.data_dir is not None and not server.data_dir.exists()  # the temporary directory is gone


def test_own_server_starts_listens_on_loopback_and_stops_cleanly() -> None:
    server = Neo4jServer(heap="512m", jvm_options=FAST_START_JVM_OPTIONS)
    try:
        server.start()
        assert server.uri == f"bolt://127.0.0.1:{server.port}"
        with socket.create_connection(("127.0.0.1", server.port), timeout=5):
            pass
        data_dir = server.data_dir
        assert data_dir is not None and (data_dir / "data" / "databases" / "neo4j").is_dir()
        assert sum(line.startswith("JIANGLIAN-NEO4J READY ") for line in server.output_tail()) == 1
        assert server.startup_seconds is not None and server.startup_seconds < server.startup_timeout
    finally:
        code = server.stop()
    assert code == 0  # closing stdin shut Neo4j down cleanly; nothing was killed
    assert not server.running
    assert not data_dir.exists()
    assert server.stop() is None  # stopping twice is harmless
    with pytest.raises(Neo4jServerError):
        _ = server.uri
