"""Recommendation routes with the real recommender over the demo data: ranked workers with scores,
components and explanations, audit events, validation, 404s."""

from __future__ import annotations

from typing import Any

import pytest

from embeddings.encoder import RANKING_DEFAULT
from graph.store import GraphStore
from recommender.engine import Recommender
from web.extensions import get_state

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import assert_problem, login_as  # noqa: E402

pytest_plugins = ["tests.api_support"]


def _new_problem(store: GraphStore) -> dict[str, Any]:
    solved = next(p for p in store.iter_nodes("Problem") if p.get("status") == "solved" and p.get("skills"))
    return {"title": solved["title"], "description": solved.get("description", ""), "skills": solved["skills"],
            "district": solved.get("district"), "service_type": solved.get("service_type")}


def test_post_recommendations_ranks_explains_and_audits(api_app: Any, keys: dict, store: GraphStore) -> None:
    ranker = get_state(api_app).recommender
    assert isinstance(ranker, Recommender)  # the product ranker, not a test double
    assert ranker.encoder is not None and ranker.encoder.identity.startswith(RANKING_DEFAULT)  # unset: the default
    client = api_app.test_client()
    problem = _new_problem(store)
    response = client.post("/api/v1/recommendations", headers=keys["read"],
                           json={"problem": problem, "top_k": 5, "explain": True})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    items = body["items"]
    assert 1 <= len(items) <= 5 and body["problem_id"] is None and body["model_version"]
    assert [i["rank"] for i in items] == list(range(1, len(items) + 1))
    scores = [i["score"] for i in items]
    assert scores == sorted(scores, reverse=True)
    workers = {w["id"]: w for w in store.iter_nodes("Worker")}
    for item in items:
        assert item["worker_id"] in workers and item["name"] == workers[item["worker_id"]]["name"]
        assert isinstance(item["components"], dict) and item["components"]
        assert item["explanation"]["reasons"] and isinstance(item["explanation"]["matched_skills"], list)
        assert workers[item["worker_id"]].get("active", True) is not False  # inactive workers are filtered
    event = store.get_node("AuditEvent", body["audit_id"])
    assert event is not None and event["kind"] == "recommendations_shown" and event["actor"].startswith("apikey:")
    assert event["model_version"] == body["model_version"]


def test_candidates_exclude_and_explain_off(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    problem = _new_problem(store)
    full = client.post("/api/v1/recommendations", headers=keys["read"], json={"problem": problem, "top_k": 3})
    top = [i["worker_id"] for i in full.get_json()["items"]]
    excluded = client.post("/api/v1/recommendations", headers=keys["read"],
                           json={"problem": problem, "top_k": 3, "exclude": top[:1], "explain": False})
    assert excluded.status_code == 200
    assert top[0] not in [i["worker_id"] for i in excluded.get_json()["items"]]
    assert all(i.get("explanation") is None for i in excluded.get_json()["items"])
    limited = client.post("/api/v1/recommendations", headers=keys["read"],
                          json={"problem": problem, "candidates": top[1:3], "top_k": 10})
    assert {i["worker_id"] for i in limited.get_json()["items"]} <= set(top[1:3])


def test_post_recommendations_validation(api_app: Any, keys: dict) -> None:
    client = api_app.test_client()
    bad = client.post("/api/v1/recommendations", headers=keys["read"], json={
        "problem": {"skills": "焊接", "service_type": "x"}, "top_k": 0, "explain": "yes", "extra": 1})
    fields = {e["field"] for e in assert_problem(bad, 422, slug="validation")["errors"]}
    assert fields == {"body.problem.skills", "body.problem.service_type", "body.top_k", "body.explain", "body.extra"}
    missing = client.post("/api/v1/recommendations", headers=keys["read"], json={})
    assert [e["field"] for e in assert_problem(missing, 422)["errors"]] == ["body.problem"]
    empty = client.post("/api/v1/recommendations", headers=keys["read"], json={"problem": {"skills": ["焊接"]}})
    assert [e["field"] for e in assert_problem(empty, 422)["errors"]] == ["body.problem.title"]
    unknown = client.post("/api/v1/recommendations", headers=keys["read"],
                          json={"problem": {"title": "焊缝气孔"}, "candidates": ["W-none"]})
    assert [e["field"] for e in assert_problem(unknown, 422)["errors"]] == ["body.candidates"]
    both = client.post("/api/v1/recommendations", headers=keys["read"],
                       json={"problem": {"title": "焊缝气孔"}, "candidates": ["W0001"], "exclude": ["W0001"]})
    assert [e["field"] for e in assert_problem(both, 422)["errors"]] == ["body.exclude"]


def test_stored_problem_recommendations(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    problem = next(p for p in store.iter_nodes("Problem") if p.get("status") == "open")
    response = client.get(f"/api/v1/problems/{problem['id']}/recommendations?top_k=4", headers=keys["read"])
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["problem_id"] == problem["id"] and 1 <= len(body["items"]) <= 4
    event = store.get_node("AuditEvent", body["audit_id"])
    assert event is not None and event["problem_id"] == problem["id"]
    assert_problem(client.get("/api/v1/problems/P-none/recommendations", headers=keys["read"]), 404)
    bad = client.get(f"/api/v1/problems/{problem['id']}/recommendations?top_k=1000", headers=keys["read"])
    assert [e["field"] for e in assert_problem(bad, 422)["errors"]] == ["query.top_k"]


def test_recommended_problems_for_a_worker(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    worker = next(w for w in store.iter_nodes("Worker") if w.get("active", True) is not False)
    response = client.get(f"/api/v1/workers/{worker['id']}/recommended-problems?top_k=3", headers=keys["read"])
    assert response.status_code == 200, response.get_json()
    items = response.get_json()["items"]
    assert len(items) <= 3 and all(i["problem_id"] for i in items)
    statuses = {p["id"]: p.get("status") for p in store.iter_nodes("Problem")}
    assert all(statuses[i["problem_id"]] in ("open", "matched") for i in items)
    assert_problem(client.get("/api/v1/workers/W-none/recommended-problems", headers=keys["read"]), 404)
    own, _ = login_as(api_app, store, "worker", worker_id=worker["id"])
    assert own.get(f"/api/v1/workers/{worker['id']}/recommended-problems").status_code == 200


def test_a_configured_embedding_model_adds_the_dense_signals(store: GraphStore, keys: dict) -> None:
    from tests.api_support import make_app

    app = make_app(store, EMBEDDING_MODEL="all-MiniLM-L6-v2")  # the packaged English weights
    response = app.test_client().post("/api/v1/recommendations", headers=keys["read"],
                                      json={"problem": _new_problem(store), "top_k": 3, "explain": False})
    assert response.status_code == 200, response.get_json()
    services = app.extensions["jianglian"]
    assert services.recommender.encoder is not None
    assert services.recommender.encoder.identity.startswith("all-MiniLM-L6-v2")
    plain = make_app(store, EMBEDDING_MODEL="none").extensions["jianglian"].recommender  # TF-IDF only, no model
    assert plain.encoder is None


def test_a_missing_embedding_model_fails_at_start_naming_the_setting(store: GraphStore, tmp_path: Any) -> None:
    from embeddings.errors import ModelNotFound
    from tests.api_support import make_app

    with pytest.raises(ModelNotFound, match="JIANGLIAN_EMBEDDING_MODEL"):
        make_app(store, EMBEDDING_MODEL=str(tmp_path / "no-such-model"))
