"""Cost-aware rate limits: the ranking routes spend more of a key's budget than reads (issue 16, finding 8), and a
served app's worker processes share one budget per key (``web.ratelimit_store``)."""

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from neo4j import Driver

from graph.neo4j_store import Neo4jStore
from graph.store import GraphStore
from ops.neo4j_server import find_free_port
from web import create_app
from web.api.costs import DEFAULT_COSTS, check_costs
from web.auth import create_api_key
from web.server import WORKER_HEADER

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import assert_problem, login_as, make_app  # noqa: E402

pytest_plugins = ["tests.api_support"]

_NEW_PROBLEM = {"problem": {"title": "注塑件缩痕严重", "skills": ["注塑成型"]}, "top_k": 3}


def _allowed(call: Callable[[], Any], most: int) -> tuple[int, Any]:
    """How many calls succeed before the first 429 (trying at most ``most``), and that 429."""
    for done in range(most):
        response = call()
        if response.status_code == 429:
            return done, response
        assert response.status_code == 200, response.get_data(as_text=True)[:300]
    return most, None


def _app(store: GraphStore, **config: Any) -> Any:
    return make_app(store, EMBEDDING_MODEL="none", **config)  # TF-IDF ranking: no model to load


def test_a_key_making_only_expensive_calls_is_limited_earlier_than_one_making_reads(store: GraphStore) -> None:
    app = _app(store, API_RATE_LIMIT="30 per minute")
    client = app.test_client()
    worker = store.list_nodes("Worker", limit=1)[0]["id"]
    problem = store.list_nodes("Problem", where={"status": "open"}, limit=1)[0]["id"]
    keys = {name: {"X-API-Key": create_api_key(store, name=name, scope="read").key}
            for name in ("reads", "suggestions", "rankings", "stored")}

    reads, _ = _allowed(lambda: client.get(f"/api/v1/workers/{worker}", headers=keys["reads"]), 40)
    suggestions, refused = _allowed(lambda: client.get(f"/api/v1/workers/{worker}/recommended-problems",
                                                       headers=keys["suggestions"]), 40)
    rankings, _ = _allowed(lambda: client.post("/api/v1/recommendations", json=_NEW_PROBLEM,
                                               headers=keys["rankings"]), 40)
    stored, _ = _allowed(lambda: client.get(f"/api/v1/problems/{problem}/recommendations?top_k=3",
                                            headers=keys["stored"]), 40)
    assert reads == 30
    assert suggestions == 30 // DEFAULT_COSTS["recommended_problems"] == 10
    assert rankings == stored == 30 // DEFAULT_COSTS["recommend"] == 3
    assert_problem(refused, 429, slug="rate-limited")
    assert int(refused.headers["Retry-After"]) > 0


def test_expensive_and_cheap_calls_share_one_budget_per_key(store: GraphStore) -> None:
    app = _app(store, API_RATE_LIMIT="30 per minute")
    client = app.test_client()
    headers = {"X-API-Key": create_api_key(store, name="mixed", scope="read").key}
    worker = store.list_nodes("Worker", limit=1)[0]["id"]
    first = client.get(f"/api/v1/workers/{worker}/recommended-problems", headers=headers)
    assert int(first.headers["X-RateLimit-Remaining"]) == 30 - 3  # the headers count budget units
    for _ in range(2):
        assert client.post("/api/v1/recommendations", json=_NEW_PROBLEM, headers=headers).status_code == 200
    reads, _ = _allowed(lambda: client.get("/api/v1/skills", headers=headers), 40)
    assert reads == 30 - 3 - 2 * 10
    other = {"X-API-Key": create_api_key(store, name="other", scope="read").key}
    assert client.get("/api/v1/skills", headers=other).status_code == 200  # budgets are per key


def test_a_campaign_plan_costs_the_most(store: GraphStore) -> None:
    app = _app(store, API_RATE_LIMIT="100 per minute")
    client = app.test_client()
    headers = {"X-API-Key": create_api_key(store, name="planner", scope="write").key}
    problems = [p["id"] for p in store.list_nodes("Problem", where={"status": "open"}, limit=2)]
    plans, refused = _allowed(lambda: client.post("/api/v1/assignments/plan", json={"problem_ids": problems},
                                                  headers=headers), 5)
    assert plans == 100 // DEFAULT_COSTS["assignment_plan"] == 1
    assert_problem(refused, 429, slug="rate-limited")


def test_costs_are_configurable(store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    app = _app(store, API_RATE_LIMIT="30 per minute", API_RATE_COSTS={"recommended_problems": 1, "recommend": 15})
    client = app.test_client()
    worker = store.list_nodes("Worker", limit=1)[0]["id"]
    a = {"X-API-Key": create_api_key(store, name="a", scope="read").key}
    b = {"X-API-Key": create_api_key(store, name="b", scope="read").key}
    assert _allowed(lambda: client.get(f"/api/v1/workers/{worker}/recommended-problems", headers=a), 40)[0] == 30
    assert _allowed(lambda: client.post("/api/v1/recommendations", json=_NEW_PROBLEM, headers=b), 40)[0] == 2

    # from the environment, as JSON, merged over the defaults
    monkeypatch.setenv("JIANGLIAN_API_RATE_COSTS", json.dumps({"recommend": 20}))
    costs = create_app({"STORE": store, "TESTING": True, "SECRET_KEY": "t",
                        "EMBEDDING_MODEL": "none"}).extensions["jianglian_rate_costs"]
    assert costs == {**DEFAULT_COSTS, "recommend": 20}

    for bad in ({"recommend": 0}, {"recommend": "10"}, {"recommend": 2.5}, {"search": 3}):
        with pytest.raises(ValueError, match="API_RATE_COSTS"):
            check_costs(bad)
        with pytest.raises(ValueError, match="API_RATE_COSTS"):
            _app(store, API_RATE_COSTS=bad)


def test_the_pages_that_rank_share_one_budget_per_user_at_the_api_costs(store: GraphStore) -> None:
    app = _app(store, PAGE_RATE_LIMIT="130 per minute")
    problem = store.list_nodes("Problem", where={"status": "open"}, limit=1)[0]["id"]
    city, _ = login_as(app, store, "city")
    pages, refused = _allowed(lambda: city.get(f"/problems/{problem}"), 20)
    assert pages == 130 // DEFAULT_COSTS["recommend"] == 13
    assert refused.status_code == 429 and refused.mimetype == "text/html"
    assert _allowed(lambda: city.get("/assignment"), 3)[0] == 0  # the same budget, spent
    for _ in range(20):  # pages that do not rank are not limited
        assert city.get("/workers").status_code == 200

    other, _ = login_as(app, store, "city", username="city-2")  # another user has a budget of their own
    assert _allowed(lambda: other.get("/assignment"), 5)[0] == 130 // DEFAULT_COSTS["assignment_plan"] == 2
    worker_id = store.list_nodes("Worker", limit=1)[0]["id"]
    worker, _ = login_as(app, store, "worker", worker_id=worker_id)
    assert _allowed(lambda: worker.get("/me/problems"), 50)[0] == 130 // DEFAULT_COSTS["recommended_problems"] == 43


# -- one budget across the worker processes of a served app -----------------------------------------------------
def _served_get(url: str, key: str) -> tuple[int, str]:
    """``(status, answering worker pid)`` of a GET on a new connection (so that either worker may take it)."""
    request = urllib.request.Request(url, headers={"X-API-Key": key})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers.get(WORKER_HEADER, "")
    except urllib.error.HTTPError as err:
        return err.code, err.headers.get(WORKER_HEADER, "")


def _admitted(neo4j_driver: Driver, neo4j_uri: str, data_dir: Path, **env: str) -> tuple[int, int, set[str]]:
    """Serve a cleared Neo4j with two gunicorn workers and a budget of 40 a minute; send 120 reads with one key
    from 8 threads. Returns how many were admitted, how many refused with 429, and the pids that admitted."""
    store = Neo4jStore(neo4j_driver, "neo4j")
    store.clear()
    store.ensure_schema()
    store.create_node("Worker", "W1", {"name": "王师傅", "district": "亭湖区"})
    key = create_api_key(store, name="budget", scope="read").key
    port = find_free_port()
    base = f"http://127.0.0.1:{port}"
    environment = {**os.environ, "JIANGLIAN_STORE": "neo4j", "NEO4J_URI": neo4j_uri, "NEO4J_DATABASE": "neo4j",
                   "JIANGLIAN_DATA_DIR": str(data_dir), "JIANGLIAN_EMBEDDING_MODEL": "none",
                   "JIANGLIAN_API_RATE_LIMIT": "40 per minute", "PYTHONUNBUFFERED": "1", **env}
    if not os.environ.get("NEO4J_URI"):
        environment["NEO4J_PASSWORD"] = ""
    proc = subprocess.Popen([sys.executable, "-c", "from cli.main import main; main()", "serve", "--port", str(port),
                             "--workers", "2", "--threads", "4"], env=environment, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=Path(__file__).resolve().parent.parent)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, "the server exited"
            try:
                with urllib.request.urlopen(base + "/readyz", timeout=5) as ready:
                    if ready.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError):
                pass
            assert time.monotonic() < deadline, "not ready in time"
            time.sleep(0.3)
        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(lambda _: _served_get(f"{base}/api/v1/workers/W1", key), range(120)))
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        store.clear()
    assert {status for status, _ in answers} <= {200, 429}, answers
    admitted = [pid for status, pid in answers if status == 200]
    return len(admitted), sum(1 for status, _ in answers if status == 429), set(admitted)


@pytest.mark.neo4j
@pytest.mark.slow
def test_one_budget_per_key_across_the_worker_processes_of_a_served_app(neo4j_driver: Driver, neo4j_uri: str,
                                                                         tmp_path: Path) -> None:
    admitted, refused, pids = _admitted(neo4j_driver, neo4j_uri, tmp_path / "data")
    assert len(pids) == 2, pids  # both workers admitted some: the budget was shared, not split by process
    assert (admitted, refused) == (40, 80)
    assert (tmp_path / "data" / "ratelimits.sqlite3").exists()
