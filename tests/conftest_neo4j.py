"""Pytest plugin: a real Neo4j 5.26 for the tests (register with ``pytest_plugins = ["tests.conftest_neo4j"]``).

``neo4j_uri`` is ``$NEO4J_URI`` when that is set; otherwise one development server (``ops.neo4j_server``) is
started for the whole session on a free port with a fresh data directory, and stopped at the end. Tests that
use it always run: a server that cannot start fails them, it never skips them.

Settings read here: ``NEO4J_URI``, ``NEO4J_USER`` / ``NEO4J_PASSWORD`` (only with ``NEO4J_URI``; an empty
password means no authentication), ``JIANGLIAN_NEO4J_HEAP`` (default ``1g``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

import pytest
from neo4j import Driver, GraphDatabase

from ops.neo4j_server import FAST_START_JVM_OPTIONS, Neo4jServer

__all__ = ["neo4j_driver", "neo4j_server", "neo4j_uri"]


@pytest.fixture(scope="session")
def neo4j_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Neo4jServer | None]:
    """The session's own Neo4j server, or ``None`` when ``NEO4J_URI`` points at an external one."""
    if os.environ.get("NEO4J_URI"):
        yield None
        return
    # pytest keeps the last few base temp directories, so debug.log stays around for a failed run.
    server = Neo4jServer(
        data_dir=tmp_path_factory.mktemp("neo4j"),
        heap=os.environ.get("JIANGLIAN_NEO4J_HEAP", "1g"),
        jvm_options=FAST_START_JVM_OPTIONS,
    )
    server.start()
    print(f"\nNeo4j test server at {server.uri} ready in {server.startup_seconds:.1f} s", file=sys.stderr)
    try:
        yield server
    finally:
        code = server.stop()
        if code not in (0, None):
            print(
                f"\nNeo4j test server exited with code {code}:\n" + "\n".join(server.output_tail()[-20:]),
                file=sys.stderr,
            )


@pytest.fixture(scope="session")
def neo4j_uri(neo4j_server: Neo4jServer | None) -> str:
    """Bolt URI of a Neo4j 5.26 with authentication off (or the credentials in ``NEO4J_USER/PASSWORD``)."""
    if neo4j_server is None:
        return os.environ["NEO4J_URI"]
    return neo4j_server.uri


@pytest.fixture(scope="session")
def neo4j_driver(neo4j_uri: str) -> Iterator[Driver]:
    """A ``neo4j`` driver for :func:`neo4j_uri`, closed at the end of the session."""
    password = os.environ.get("NEO4J_PASSWORD", "") if os.environ.get("NEO4J_URI") else ""
    auth = (os.environ.get("NEO4J_USER", "neo4j"), password) if password else None
    driver = GraphDatabase.driver(neo4j_uri, auth=auth)
    try:
        driver.verify_connectivity()
        yield driver
    finally:
        driver.close()
