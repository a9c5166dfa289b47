"""Cost-aware rate limits: the ranking routes spend more of a key's budget than reads (issue 16, finding 8)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from graph.store import GraphStore
from web import create_app
from web.api.costs import DEFAULT_COSTS, check_costs
from web.auth import create_api_key

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import assert_problem, make_app  # noqa: E402

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
