"""Two-way selection over the API (invite, accept, decline, complete, withdraw, list, get), campaign
assignment (plan, apply), programme progress and the audit log."""

from __future__ import annotations

from typing import Any

import pytest

from graph.store import GraphStore

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import assert_problem, login_as  # noqa: E402

pytest_plugins = ["tests.api_support"]


def _pair(store: GraphStore, n: int = 1) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    problem = next(p for p in store.iter_nodes("Problem") if p.get("status") == "open")
    workers = [w for w in store.iter_nodes("Worker") if w.get("active", True) is not False
               and w.get("employer_id") != problem.get("enterprise_id")][:n]
    return problem, workers


def _invite(client: Any, headers: dict, problem: dict, worker: dict, **extra: Any) -> dict[str, Any]:
    response = client.post("/api/v1/matches", headers=headers, json={
        "problem_id": problem["id"], "worker_id": worker["id"], "override_capacity": True, **extra})
    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"].endswith(f"/api/v1/matches/{response.get_json()['id']}")
    return dict(response.get_json())


def test_invite_accept_complete_writes_the_outcome(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    problem, (worker,) = _pair(store)
    match = _invite(client, keys["write"], problem, worker, note="请尽快联系")
    assert match["state"] == "invited" and match["note"] == "请尽快联系"
    accepted = client.post(f"/api/v1/matches/{match['id']}/accept", headers=keys["write"])
    assert accepted.status_code == 200 and accepted.get_json()["state"] == "accepted"
    assert store.get_node("Problem", problem["id"])["status"] == "matched"
    done = client.post(f"/api/v1/matches/{match['id']}/complete", headers=keys["write"], json={
        "solved": True, "hours": 6.5, "trainees": 12, "satisfaction": 5, "note": "现场解决"})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["state"] == "completed"
    assert [h["to"] for h in done.get_json()["history"]] == ["invited", "accepted", "completed"]
    assert store.get_node("Problem", problem["id"])["status"] == "solved"
    solved = store.relationships("SOLVED", start=("Worker", worker["id"]), end=("Problem", problem["id"]))
    assert len(solved) == 1 and solved[0].props["trainees"] == 12
    again = client.post(f"/api/v1/matches/{match['id']}/complete", headers=keys["write"], json={
        "solved": True, "hours": 1, "trainees": 0, "satisfaction": 3})
    assert_problem(again, 409, slug="illegal-transition")
    fetched = client.get(f"/api/v1/matches/{match['id']}", headers=keys["read"]).get_json()
    assert fetched["state"] == "completed" and "history_json" not in fetched


def test_decline_needs_a_reason_and_withdraw(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    problem, workers = _pair(store, 2)
    first, second = (_invite(client, keys["write"], problem, w) for w in workers)
    missing = client.post(f"/api/v1/matches/{first['id']}/decline", headers=keys["write"], json={})
    assert [e["field"] for e in assert_problem(missing, 422)["errors"]] == ["body.reason"]
    blank = client.post(f"/api/v1/matches/{first['id']}/decline", headers=keys["write"], json={"reason": "   "})
    assert [e["field"] for e in assert_problem(blank, 422)["errors"]] == ["body.reason"]
    declined = client.post(f"/api/v1/matches/{first['id']}/decline", headers=keys["write"],
                           json={"reason": "本月外出培训"})
    assert declined.status_code == 200 and declined.get_json()["reason"] == "本月外出培训"
    assert_problem(client.post(f"/api/v1/matches/{first['id']}/accept", headers=keys["write"]), 409)
    withdrawn = client.post(f"/api/v1/matches/{second['id']}/withdraw", headers=keys["write"], json={})
    assert withdrawn.status_code == 200 and withdrawn.get_json()["state"] == "withdrawn"
    bad = client.post(f"/api/v1/matches/{second['id']}/complete", headers=keys["write"], json={
        "solved": "yes", "hours": -1, "trainees": 1.5, "satisfaction": 6})
    fields = {e["field"] for e in assert_problem(bad, 422)["errors"]}
    assert fields == {"body.solved", "body.hours", "body.trainees", "body.satisfaction"}


def test_invite_errors(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    problem, (worker,) = _pair(store)
    missing = client.post("/api/v1/matches", headers=keys["write"], json={"note": 3})
    assert {e["field"] for e in assert_problem(missing, 422)["errors"]} == {"body.problem_id", "body.worker_id",
                                                                            "body.note"}
    unknown = client.post("/api/v1/matches", headers=keys["write"], json={"problem_id": "P-none",
                                                                          "worker_id": worker["id"]})
    assert_problem(unknown, 404, slug="not-found")
    _invite(client, keys["write"], problem, worker)
    duplicate = client.post("/api/v1/matches", headers=keys["write"], json={
        "problem_id": problem["id"], "worker_id": worker["id"], "override_capacity": True})
    assert_problem(duplicate, 409, slug="duplicate-invitation")
    employee = next((w for w in store.iter_nodes("Worker") if w.get("employer_id")
                     and w.get("active", True) is not False), None)
    if employee is not None:
        own = next((p for p in store.iter_nodes("Problem") if p.get("enterprise_id") == employee["employer_id"]
                    and p.get("status") == "open"), None)
        if own is not None:
            conflict = client.post("/api/v1/matches", headers=keys["write"], json={
                "problem_id": own["id"], "worker_id": employee["id"], "override_capacity": True})
            assert_problem(conflict, 409, slug="conflict-of-interest")
    assert_problem(client.get("/api/v1/matches/M-none", headers=keys["read"]), 404)
    assert_problem(client.post("/api/v1/matches/M-none/accept", headers=keys["write"]), 404)


def test_list_matches_filters_and_paginates(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    problem, workers = _pair(store, 3)
    made = [_invite(client, keys["write"], problem, w) for w in workers]
    client.post(f"/api/v1/matches/{made[0]['id']}/accept", headers=keys["write"])
    page = client.get(f"/api/v1/matches?problem_id={problem['id']}&per_page=2", headers=keys["read"])
    body = page.get_json()
    assert body["total"] == 3 and len(body["items"]) == 2 and page.headers["X-Total-Count"] == "3"
    assert 'rel="next"' in page.headers["Link"]
    accepted = client.get("/api/v1/matches?state=accepted", headers=keys["read"]).get_json()
    assert [m["id"] for m in accepted["items"]] == [made[0]["id"]]
    by_worker = client.get(f"/api/v1/matches?worker_id={workers[1]['id']}", headers=keys["read"]).get_json()
    assert [m["id"] for m in by_worker["items"]] == [made[1]["id"]]
    bad = client.get("/api/v1/matches?state=lost", headers=keys["read"])
    assert [e["field"] for e in assert_problem(bad, 422)["errors"]] == ["query.state"]


def test_district_coordinator_invites_for_their_district(api_app: Any, store: GraphStore) -> None:
    problem = next(p for p in store.iter_nodes("Problem") if p.get("status") == "open")
    worker = next(w for w in store.iter_nodes("Worker") if w.get("active", True) is not False
                  and w.get("employer_id") != problem.get("enterprise_id"))
    own, csrf = login_as(api_app, store, "district", district=problem["district"])
    response = own.post("/api/v1/matches", headers=csrf, json={"problem_id": problem["id"],
                                                               "worker_id": worker["id"], "override_capacity": True})
    assert response.status_code == 201
    other = "盐都区" if problem["district"] != "盐都区" else "亭湖区"
    client, csrf2 = login_as(api_app, store, "district", district=other)
    assert_problem(client.post(f"/api/v1/matches/{response.get_json()['id']}/withdraw", headers=csrf2, json={}),
                   403)


# -- assignments -------------------------------------------------------------------------------------
def test_plan_then_apply_creates_invitations(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    open_ids = [p["id"] for p in store.iter_nodes("Problem") if p.get("status") == "open"][:5]
    plan = client.post("/api/v1/assignments/plan", headers=keys["write"], json={"problem_ids": open_ids})
    assert plan.status_code == 200, plan.get_json()
    body = plan.get_json()
    assert body["problem_ids"] == open_ids and 0 <= body["coverage"] <= 1 and body["pairs"]
    assert all(p["problem_id"] in open_ids and p["name"] for p in body["pairs"])
    greedy = client.post("/api/v1/assignments/plan", headers=keys["write"],
                         json={"problem_ids": open_ids, "method": "greedy"}).get_json()
    assert greedy["method"] != body["method"] and greedy["total"] <= body["total"] + 1e-9
    pairs = [{"problem_id": p["problem_id"], "worker_id": p["worker_id"]} for p in body["pairs"]]
    applied = client.post("/api/v1/assignments/apply", headers=keys["write"], json={"pairs": pairs, "note": "批量"})
    assert applied.status_code == 200, applied.get_json()
    result = applied.get_json()
    assert len(result["created"]) + len(result["skipped"]) == len(pairs) and result["created"]
    assert all(m["state"] == "invited" for m in result["created"])
    repeat = client.post("/api/v1/assignments/apply", headers=keys["write"], json={"pairs": pairs}).get_json()
    assert repeat["created"] == [] and len(repeat["skipped"]) == len(pairs)  # already invited: reported, not raised


def test_plan_validation_and_district_scope(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    bad = client.post("/api/v1/assignments/plan", headers=keys["write"],
                      json={"problem_ids": ["P-none"], "method": "magic", "city_team_penalty": 3})
    fields = {e["field"] for e in assert_problem(bad, 422)["errors"]}
    assert fields == {"body.method", "body.city_team_penalty"}
    unknown = client.post("/api/v1/assignments/plan", headers=keys["write"], json={"problem_ids": ["P-none"]})
    assert [e["field"] for e in assert_problem(unknown, 422)["errors"]] == ["body.problem_ids"]
    assert_problem(client.post("/api/v1/assignments/apply", headers=keys["write"], json={"pairs": []}), 422)
    coordinator, csrf = login_as(api_app, store, "district", district="亭湖区")
    theirs = next(p["id"] for p in store.iter_nodes("Problem")
                  if p.get("status") == "open" and p.get("district") != "亭湖区")
    assert_problem(coordinator.post("/api/v1/assignments/plan", headers=csrf, json={"problem_ids": [theirs]}), 403)
    own = coordinator.post("/api/v1/assignments/plan", headers=csrf, json={})
    assert own.status_code == 200
    districts = {p["id"]: p.get("district") for p in store.iter_nodes("Problem")}
    assert all(districts[p] == "亭湖区" for p in own.get_json()["problem_ids"])


# -- stats and audit ----------------------------------------------------------------------------------
def test_targets_progress_moves_with_a_completion(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    before = client.get("/api/v1/stats/targets", headers=keys["read"])
    assert before.status_code == 200
    problem, (worker,) = _pair(store)
    match = _invite(client, keys["write"], problem, worker)
    client.post(f"/api/v1/matches/{match['id']}/accept", headers=keys["write"])
    client.post(f"/api/v1/matches/{match['id']}/complete", headers=keys["write"],
                json={"solved": True, "hours": 3, "trainees": 7, "satisfaction": 4})
    after = client.get("/api/v1/stats/targets", headers=keys["read"]).get_json()
    assert after != before.get_json()
    assert_problem(client.get("/api/v1/stats/targets?today=2025-13-45", headers=keys["read"]), 422)


def test_audit_log_for_admins(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    problem, (worker,) = _pair(store)
    match = _invite(client, keys["write"], problem, worker)
    admin, _ = login_as(api_app, store, "admin")
    events = admin.get(f"/api/v1/audit?match_id={match['id']}").get_json()
    assert events["total"] == 1 and events["items"][0]["kind"] == "invite"
    assert events["items"][0]["actor"].startswith("apikey:")
    assert isinstance(events["items"][0]["detail"], dict)


def test_a_transition_that_lost_a_race_is_a_409_conflict_in_both_languages(
        api_app: Any, keys: dict, store: GraphStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_selection_concurrency import StaleView
    from web.extensions import get_state
    from workflow.selection import Selection

    client = api_app.test_client()
    problem, (worker,) = _pair(store)
    match = _invite(client, keys["write"], problem, worker)
    with api_app.app_context():
        served = get_state().selection
    view = StaleView(store)
    view.freeze()  # this web process read the invitation before another process answered it
    monkeypatch.setattr(served, "store", view)
    Selection(store).accept(match["id"], actor=worker["id"])
    lost = client.post(f"/api/v1/matches/{match['id']}/decline", headers=keys["write"], json={"reason": "本月在外地"})
    body = assert_problem(lost, 409, slug="transition-conflict")
    assert "已邀请" in body["detail"] and "已接受" in body["detail"] and "已婉拒" in body["detail"], body
    assert store.get_node("Match", match["id"])["state"] == "accepted"
    view.freeze()  # and once more, answered in English
    Selection(store).withdraw(match["id"], actor="c")
    lost = client.post(f"/api/v1/matches/{match['id']}/complete?lang=en", headers=keys["write"], json={
        "solved": True, "hours": 1, "trainees": 0, "satisfaction": 3})
    body = assert_problem(lost, 409, slug="transition-conflict")
    assert body["detail"] == ("Another request changed the match first: it was accepted when read and is withdrawn "
                              "now, so it was not made completed; reload to see it")
    assert store.get_node("Match", match["id"])["state"] == "withdrawn"
