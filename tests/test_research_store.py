"""Researchers on the real data (``demo.research.open_research_store``): the configured store, read-only.

The embedded data directory is opened while a real ``jianglian serve`` process serves it, and a problem posted
through the site is then read by the notebook's store; Neo4j likewise. Every write through the research store
raises ``StoreReadOnly`` and changes nothing (a write in Cypher is refused by the server's read access mode).
A missing or empty store is an error naming ``JIANGLIAN_NOTEBOOK_DATA=demo``; the demo is opened only when
asked, and it is writable.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from neo4j import Driver
from neo4j.exceptions import ClientError

from demo.research import open_research_store, research_cypher
from graph.errors import StoreReadOnly, StoreUnavailable
from graph.memory import MemoryStore
from graph.neo4j_store import Neo4jStore
from graph.readonly import ReadOnlyStore
from graph.store import GraphStore, NodeRow, WriteBatch
from ops.neo4j_server import find_free_port
from web.auth import create_api_key

REPO = Path(__file__).resolve().parent.parent

_WRITES: list[tuple[str, Callable[[GraphStore], Any]]] = [
    ("create_node", lambda s: s.create_node("Worker", "W-NEW", {"name": "新人"})),
    ("update_node", lambda s: s.update_node("Worker", "W1", {"name": "改名"})),
    ("delete_node", lambda s: s.delete_node("Worker", "W1")),
    ("apply", lambda s: s.apply(WriteBatch(nodes=[NodeRow("Worker", "W-NEW", {"name": "新人"})]))),
    ("clear", lambda s: s.clear()),
    ("write_vectors", lambda s: s.write_vectors("Worker", "embedding", ["W1"], np.ones((1, 4), np.float32))),
    ("delete_vectors", lambda s: s.delete_vectors("Worker", "embedding")),
    ("set_meta", lambda s: s.set_meta("k", "v")),
]


def _refuses_every_write(store: GraphStore) -> None:
    assert isinstance(store, ReadOnlyStore)
    before = store.counts()
    for name, write in _WRITES:
        with pytest.raises(StoreReadOnly, match=f"{name} is refused.*JIANGLIAN_NOTEBOOK_DATA=demo"):
            write(store)
    assert store.counts() == before
    assert store.get_node("Worker", "W1") is not None and store.get_meta("k") is None


def _post(url: str, key: str, data: dict[str, Any]) -> int:
    request = urllib.request.Request(url, data=json.dumps(data).encode(),
                                     headers={"X-API-Key": key, "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def test_the_served_embedded_store_read_only_while_the_site_runs(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "store")
    store.create_node("Worker", "W1", {"name": "王师傅", "district": "亭湖区"})
    key = create_api_key(store, name="research-test", scope="write").key
    store.close()
    port = find_free_port()
    env = {**os.environ, "JIANGLIAN_STORE": "memory", "JIANGLIAN_DATA_DIR": str(tmp_path),
           "JIANGLIAN_EMBEDDING_MODEL": "none"}
    site = subprocess.Popen([sys.executable, "-c", "from cli.main import main; main()", "serve", "--port", str(port),
                             "--workers", "1"], env=env, cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                assert site.poll() is None and time.monotonic() < deadline, "the site did not start"
                time.sleep(0.3)
        research = open_research_store(env={"JIANGLIAN_DATA_DIR": str(tmp_path)})
        try:
            assert research.kind == "memory" and research.get_node("Worker", "W1")["name"] == "王师傅"
            _refuses_every_write(research)
            # the site keeps writing; the notebook sees it
            assert _post(f"http://127.0.0.1:{port}/api/v1/problems", key,
                         {"id": "P-SITE", "title": "注塑件缩痕严重"}) == 201
            assert (research.get_node("Problem", "P-SITE") or {}).get("title") == "注塑件缩痕严重"
        finally:
            research.close()
    finally:
        site.send_signal(signal.SIGTERM)
        out, _ = site.communicate(timeout=30)
    assert site.returncode == 0, out


def test_neo4j_read_only(neo4j_driver: Driver, neo4j_uri: str) -> None:
    owner = Neo4jStore(neo4j_driver, "neo4j")
    owner.clear()
    owner.ensure_schema()
    owner.create_node("Worker", "W1", {"name": "王师傅"})
    env = {"NEO4J_URI": neo4j_uri, "NEO4J_DATABASE": "neo4j"}
    if os.environ.get("NEO4J_URI"):
        env |= {k: os.environ[k] for k in ("NEO4J_USER", "NEO4J_PASSWORD") if k in os.environ}
    try:
        research = open_research_store(env=env)
        try:
            assert research.kind == "neo4j" and research.count_nodes("Worker") == 1
            _refuses_every_write(research)
        finally:
            research.close()
        with pytest.raises(ClientError, match="read access mode"):
            research_cypher("CREATE (n:Worker {id: $id})", {"id": "W-CYPHER"}, env=env)
        assert owner.get_node("Worker", "W-CYPHER") is None
    finally:
        owner.clear()


def test_no_data_is_an_error_and_the_demo_only_when_asked(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable, match="does not exist yet.*JIANGLIAN_NOTEBOOK_DATA=demo"):
        open_research_store(env={"JIANGLIAN_DATA_DIR": str(tmp_path)})
    assert not (tmp_path / "store").exists()  # nothing was created
    MemoryStore(tmp_path / "store").close()
    with pytest.raises(StoreUnavailable, match="holds no worker.*JIANGLIAN_NOTEBOOK_DATA=demo"):
        open_research_store(env={"JIANGLIAN_DATA_DIR": str(tmp_path)})
    demo = open_research_store(env={"JIANGLIAN_DATA_DIR": str(tmp_path), "JIANGLIAN_NOTEBOOK_DATA": "demo",
                                    "JIANGLIAN_RESEARCH_CACHE": str(tmp_path / "cache")})
    try:
        assert not isinstance(demo, ReadOnlyStore) and demo.count_nodes("Worker") == 300
        demo.create_node("Worker", "W-NEW", {"name": "新人"})  # the private demo is writable
    finally:
        demo.close()
    with pytest.raises(ValueError, match="JIANGLIAN_NOTEBOOK_DATA"):
        open_research_store(env={"JIANGLIAN_NOTEBOOK_DATA": "prod"})
