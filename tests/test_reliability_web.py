"""Reliability of the web app when the store goes away: 503 problem+json on the API, ``/readyz`` not
ready, recovery without a restart and no accepted write lost.

The main test stops and restarts a real Neo4j 5.26 server of its own (``ops.neo4j_server``) under
a running app; a fast variant covers every API route with an embedded store whose backend is cut.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from graph.errors import StoreUnavailable
from graph.memory import MemoryStore
from ops.neo4j_server import FAST_START_JVM_OPTIONS, Neo4jServer, find_free_port
from web.auth import create_api_key
from web.extensions import get_state

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import assert_problem, login_as, make_app  # noqa: E402

pytest_plugins = ["tests.api_support"]


class CutStore(MemoryStore):
    """An embedded store whose backend can be cut: every call raises StoreUnavailable while ``down``."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    def __getattribute__(self, name: str) -> Any:
        attr = super().__getattribute__(name)
        if not name.startswith("_") and callable(attr) and name not in ("close",) \
                and super().__getattribute__("down"):
            def unavailable(*args: Any, **kwargs: Any) -> Any:
                raise StoreUnavailable("backend cut by the test")

            return unavailable
        return attr


def _wait_for(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError("condition not met in time")


def test_every_api_route_answers_503_while_the_store_is_cut(demo_dir: Path) -> None:
    from graph.dataset import load_dataset

    store = CutStore()
    load_dataset(store, demo_dir)
    app = make_app(store)
    key = create_api_key(store, name="p", scope="write").key
    client = app.test_client()
    spec = client.get("/api/v1/openapi.json").get_json()
    worker = store.list_nodes("Worker", limit=1)[0]["id"]
    store.down = True
    assert_problem(client.get("/readyz"), 503, slug="store-unavailable")
    assert client.get("/healthz").status_code == 200  # the process itself is fine
    operations = [(m.upper(), p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/api/v1/")]
    for method, path in operations:
        url = path.replace("{node_id}", worker).replace("{worker_id}", worker).replace(
            "{problem_id}", "P00001").replace("{match_id}", "M-1")
        response = client.open(url, method=method, json={}, headers={"X-API-Key": key})
        problem = assert_problem(response, 503, slug="store-unavailable")
        assert response.headers["Retry-After"] == "5" and problem["instance"] == url
    store.down = False
    assert client.get("/readyz").status_code == 200
    assert client.get(f"/api/v1/workers/{worker}", headers={"X-API-Key": key}).status_code == 200
    store.close()


@pytest.mark.neo4j
@pytest.mark.slow
def test_neo4j_stopped_and_restarted_under_a_running_app(tmp_path: Path) -> None:
    port = find_free_port()
    server = Neo4jServer(port=port, data_dir=tmp_path / "neo4j", heap="512m", jvm_options=FAST_START_JVM_OPTIONS)
    app = make_app(None, STORE="neo4j", NEO4J_URI=f"bolt://127.0.0.1:{port}", NEO4J_USER="neo4j",
                   NEO4J_PASSWORD="", DATA_DIR=str(tmp_path / "data"), STORE_RETRY_SECONDS=0)
    state = get_state(app)
    client = app.test_client()
    try:
        # 1. the app starts while Neo4j is down: not ready, API answers 503, nothing opened yet
        assert_problem(client.get("/readyz"), 503, slug="store-unavailable")
        assert_problem(client.get("/api/v1/workers", headers={"X-API-Key": "jl_000000000000_" + "x" * 43}), 503)
        assert state.store_if_open is None

        # 2. Neo4j comes up: the next request opens the store, no restart of the app
        server.start()
        _wait_for(lambda: client.get("/readyz").status_code == 200)
        store = state.store
        key = {"X-API-Key": create_api_key(store, name="platform", scope="write").key}
        created = client.post("/api/v1/workers", headers=key, json={"id": "W-kept", "name": "留存师傅",
                                                                    "skills": ["焊接"], "district": "亭湖区"})
        assert created.status_code == 201, created.get_json()

        # 3. Neo4j stops under the running app: 503 problem+json everywhere, /readyz not ready
        server.stop()
        assert_problem(client.get("/readyz"), 503, slug="store-unavailable")
        assert_problem(client.get("/api/v1/workers", headers=key), 503, slug="store-unavailable")
        lost = client.post("/api/v1/workers", headers=key, json={"id": "W-lost", "name": "未写入"})
        assert_problem(lost, 503, slug="store-unavailable")
        assert client.get("/healthz").status_code == 200

        # 4. Neo4j is back on the same data: the same app recovers and the accepted write is there
        server.start()
        _wait_for(lambda: client.get("/readyz").status_code == 200)
        kept = client.get("/api/v1/workers/W-kept", headers=key)
        assert kept.status_code == 200 and kept.get_json()["skills"] == ["焊接"]
        assert [r.end_id for r in store.relationships("HAS_SKILL", start=("Worker", "W-kept"))] == ["焊接"]
        assert_problem(client.get("/api/v1/workers/W-lost", headers=key), 404)  # the refused write left nothing
        again = client.post("/api/v1/workers", headers=key, json={"id": "W-after", "name": "恢复后"})
        assert again.status_code == 201
    finally:
        state.close()
        server.stop()


def test_pages_get_an_html_503_while_the_store_is_cut(demo_dir: Path) -> None:
    store = CutStore()
    app = make_app(store)
    client, _ = login_as(app, store, "city")  # every page then loads the user from the store
    store.down = True
    response = client.get("/")
    assert response.status_code == 503 and response.mimetype == "text/html"
    assert response.headers["Retry-After"] == "5"
    store.down = False
    assert client.get("/").status_code in (200, 302)
    store.close()
