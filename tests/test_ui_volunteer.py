"""The worker's side of two-way selection in the pages and the API (issue 14): 「我想接」 on a recommended
problem, the district coordinator confirms or declines with a reason, both sides are notified (badge, list),
the worker's history, and the enterprise's address and contact person once the match is accepted."""

from __future__ import annotations

import html
import json
import re
from typing import Any

from graph.store import GraphStore
from tests import api_support
from tests.api_support import login_as, make_app

demo_dir = api_support.demo_dir
store = api_support.store


def _pick(store: GraphStore) -> dict[str, Any]:
    """An active worker with capacity and two open problems of one district that the worker may take."""
    problems = sorted((p for p in store.iter_nodes("Problem") if p.get("status") == "open"), key=lambda p: p["id"])
    for worker in sorted(store.iter_nodes("Worker"), key=lambda w: w["id"]):
        if worker.get("active") is False or int(worker.get("capacity") or 2) < 2:
            continue
        by_district: dict[str, list[dict[str, Any]]] = {}
        for p in problems:
            if p.get("enterprise_id") != worker.get("employer_id"):
                by_district.setdefault(str(p.get("district")), []).append(p)
        for district, fits in sorted(by_district.items()):
            if len(fits) >= 3:
                return {"worker": worker, "district": district, "p1": fits[0], "p2": fits[1], "p3": fits[2]}
    raise AssertionError("the demo data has no worker to try")


def _csrf(client: Any) -> str:
    return str(client.get("/_test/csrf").get_data(as_text=True))


def _post(client: Any, url: str, **data: str) -> Any:
    return client.post(url, data={"csrf_token": _csrf(client), **data})


def test_a_worker_volunteers_and_the_district_coordinator_confirms(store: GraphStore) -> None:
    app = make_app(store)
    case = _pick(store)
    wid, district, p1 = case["worker"]["id"], case["district"], case["p1"]
    store.update_node("Enterprise", p1["enterprise_id"], {"address": "盐城市亭湖区开放大道 8 号",
                                                          "contact_person": "张经理", "contact_phone": "13912345678"})
    worker, _ = login_as(app, store, "worker", worker_id=wid)
    coordinator, _ = login_as(app, store, "district", district=district)
    other_district = next(d["id"] for d in store.iter_nodes("District") if d["id"] != district)
    outsider, _ = login_as(app, store, "district", district=other_district)

    page = worker.get(f"/me/problems/{p1['id']}").get_data(as_text=True)
    assert 'data-testid="volunteer"' in page and "张经理" not in page  # no contact before the match
    response = _post(worker, f"/me/problems/{p1['id']}/volunteer", note="做过同类设备")
    assert response.status_code == 302
    page = worker.get(f"/me/problems/{p1['id']}").get_data(as_text=True)
    assert 'data-state="volunteered"' in page and 'data-testid="volunteer"' not in page
    assert "做过同类设备" in page and "张经理" not in page
    assert 'data-testid="my-volunteer"' in worker.get("/me/problems").get_data(as_text=True)

    # the district's coordinator is told (badge, the dashboard's list), sees the volunteer on the problem page
    # and confirms; another district's dashboard does not list it
    dashboard = coordinator.get("/dashboard").get_data(as_text=True)
    assert dashboard.count('data-testid="pending-volunteer"') == 1 and f"/problems/{p1['id']}#volunteers" in dashboard
    assert 'data-testid="pending-volunteer"' not in outsider.get("/dashboard").get_data(as_text=True)
    home = coordinator.get("/problems").get_data(as_text=True)
    assert re.search(r'data-testid="unread-badge">1<', home)
    notes = coordinator.get("/notifications").get_data(as_text=True)
    assert 'data-kind="volunteered"' in notes and html.escape(str(p1.get("title"))) in notes
    problem_page = coordinator.get(f"/problems/{p1['id']}").get_data(as_text=True)
    assert 'data-testid="volunteer"' in problem_page and 'data-testid="confirm-volunteer"' in problem_page
    match_id = store.list_nodes("Match", where={"worker_id": wid, "problem_id": p1["id"]})[0]["id"]
    assert _post(outsider, f"/matches/{match_id}/confirm").status_code == 403  # another district's coordinator
    assert _post(worker, f"/matches/{match_id}/confirm").status_code == 403  # not the worker themself
    response = _post(coordinator, f"/matches/{match_id}/confirm", back="problem")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/problems/{p1['id']}")
    assert store.get_node("Match", match_id)["state"] == "accepted"
    assert store.get_node("Problem", p1["id"])["status"] == "matched"

    # the worker: a notification that opens the problem, now with the enterprise's address and contact
    assert re.search(r'data-testid="unread-badge">1<', worker.get("/me/problems").get_data(as_text=True))
    note = store.list_nodes("Notification", where={"user_id": f"worker-{wid}"})[0]
    assert note["kind"] == "confirmed"
    opened = worker.get(f"/notifications/{note['id']}")
    assert opened.status_code == 302 and opened.headers["Location"].endswith(f"/me/problems/{p1['id']}")
    assert 'data-testid="unread-badge"' not in worker.get("/me/problems").get_data(as_text=True)
    assert coordinator.get(f"/notifications/{note['id']}").status_code == 404  # someone else's
    page = worker.get(f"/me/problems/{p1['id']}").get_data(as_text=True)
    assert "盐城市亭湖区开放大道 8 号" in page and "张经理" in page and 'href="tel:13912345678"' in page
    assert 'data-testid="accepted-match"' in worker.get("/me/problems").get_data(as_text=True)


def test_a_declined_volunteer_shows_the_reason_in_the_workers_history(store: GraphStore) -> None:
    app = make_app(store)
    case = _pick(store)
    wid, district, p2 = case["worker"]["id"], case["district"], case["p2"]
    worker, _ = login_as(app, store, "worker", worker_id=wid)
    coordinator, _ = login_as(app, store, "district", district=district)
    _post(worker, f"/me/problems/{p2['id']}/volunteer")
    match_id = store.list_nodes("Match", where={"worker_id": wid, "problem_id": p2["id"]})[0]["id"]
    # a decline without a reason is refused, with the match left as it was
    _post(coordinator, f"/matches/{match_id}/decline-volunteer", reason="", back="problem")
    assert store.get_node("Match", match_id)["state"] == "volunteered"
    _post(coordinator, f"/matches/{match_id}/decline-volunteer", reason="本周已安排区内工匠上门", back="problem")
    assert store.get_node("Match", match_id)["state"] == "declined"
    page = worker.get("/me/problems").get_data(as_text=True)
    item = re.search(r'data-testid="history-item" data-state="declined">(.*?)</li>', page, flags=re.S)
    assert item is not None and "本周已安排区内工匠上门" in item.group(1)
    notes = worker.get("/notifications").get_data(as_text=True)
    assert 'data-kind="volunteer_declined"' in notes and "本周已安排区内工匠上门" in notes
    # volunteering again is possible; withdrawing it too
    _post(worker, f"/me/problems/{p2['id']}/volunteer")
    again = [m for m in store.list_nodes("Match", where={"worker_id": wid, "problem_id": p2["id"]})
             if m["state"] == "volunteered"]
    assert len(again) == 1
    _post(worker, f"/matches/{again[0]['id']}/withdraw", back="problem")
    assert store.get_node("Match", again[0]["id"])["state"] == "withdrawn"


def test_volunteering_refused_with_a_reason_the_worker_understands(store: GraphStore) -> None:
    app = make_app(store)
    case = _pick(store)
    wid, p1 = case["worker"]["id"], case["p1"]
    worker, _ = login_as(app, store, "worker", worker_id=wid)
    _post(worker, f"/me/problems/{p1['id']}/volunteer")
    page = worker.get(f"/me/problems/{p1['id']}").get_data(as_text=True)
    assert "已报名,等待区县协调员确认" in page
    response = _post(worker, f"/me/problems/{p1['id']}/volunteer")  # twice
    assert response.status_code == 302
    assert "您对这个问题已有报名、邀请或进行中的对接" in worker.get(f"/me/problems/{p1['id']}").get_data(as_text=True)
    assert len(store.list_nodes("Match", where={"worker_id": wid, "problem_id": p1["id"]})) == 1
    assert worker.post(f"/me/problems/{p1['id']}/volunteer", data={}).status_code == 400  # no CSRF token
    coordinator, _ = login_as(app, store, "city")
    assert _post(coordinator, f"/me/problems/{p1['id']}/volunteer").status_code == 403  # coordinators invite


def test_volunteer_confirm_and_decline_through_the_api(store: GraphStore) -> None:
    app = make_app(store)
    case = _pick(store)
    wid, p1, p2 = case["worker"]["id"], case["p1"], case["p2"]
    worker, worker_headers = login_as(app, store, "worker", worker_id=wid)
    response = worker.post("/api/v1/matches/volunteer", json={"problem_id": p1["id"], "note": "可周末上门"},
                           headers=worker_headers)
    assert response.status_code == 201, response.get_data(as_text=True)
    match = response.get_json()
    assert (match["state"], match["worker_id"], match["note"]) == ("volunteered", wid, "可周末上门")
    other = next(w["id"] for w in store.iter_nodes("Worker") if w["id"] != wid)
    response = worker.post("/api/v1/matches/volunteer", json={"problem_id": p2["id"], "worker_id": other},
                           headers=worker_headers)
    assert response.status_code == 403  # a worker volunteers only themself
    response = worker.post(f"/api/v1/matches/{match['id']}/confirm", json={}, headers=worker_headers)
    assert response.status_code == 403
    coordinator, headers = login_as(app, store, "district", district=case["district"])
    response = coordinator.post("/api/v1/matches/volunteer", json={"problem_id": p2["id"], "worker_id": wid},
                                headers=headers)
    assert response.status_code == 403  # a coordinator invites instead
    response = coordinator.post(f"/api/v1/matches/{match['id']}/confirm", json={}, headers=headers)
    assert response.status_code == 200 and response.get_json()["state"] == "accepted"
    response = coordinator.post(f"/api/v1/matches/{match['id']}/confirm", json={}, headers=headers)
    assert response.status_code == 409  # only a volunteer can be confirmed
    response = worker.post(f"/api/v1/matches/{match['id']}/withdraw", json={}, headers=worker_headers)
    assert response.status_code == 403  # accepted now: only the coordinators withdraw it
    second = worker.post("/api/v1/matches/volunteer", json={"problem_id": p2["id"]}, headers=worker_headers)
    third = worker.post("/api/v1/matches/volunteer", json={"problem_id": case["p3"]["id"]}, headers=worker_headers)
    response = worker.post(f"/api/v1/matches/{third.get_json()['id']}/withdraw", json={"reason": "时间冲突"},
                           headers=worker_headers)
    assert response.status_code == 200 and response.get_json()["state"] == "withdrawn"
    response = coordinator.post(f"/api/v1/matches/{second.get_json()['id']}/decline-volunteer",
                                json={"reason": "已有人对接"}, headers=headers)
    assert response.status_code == 200 and response.get_json()["reason"] == "已有人对接"
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    assert {"/api/v1/matches/volunteer", "/api/v1/matches/{match_id}/confirm",
            "/api/v1/matches/{match_id}/decline-volunteer"} <= set(spec["paths"])


def test_a_user_sets_where_notification_mail_goes(store: GraphStore) -> None:
    app = make_app(store)
    case = _pick(store)
    wid, p1 = case["worker"]["id"], case["p1"]
    worker, _ = login_as(app, store, "worker", worker_id=wid)
    coordinator, _ = login_as(app, store, "district", district=case["district"])
    assert _post(worker, "/notifications/email", email="not an address").status_code == 302
    assert not (store.get_node("User", f"worker-{wid}") or {}).get("email")
    assert _post(worker, "/notifications/email", email="wang@example.cn").status_code == 302
    assert store.get_node("User", f"worker-{wid}")["email"] == "wang@example.cn"
    assert 'value="wang@example.cn"' in worker.get("/notifications").get_data(as_text=True)
    assert worker.post("/notifications/email", data={"email": "x@y.cn"}).status_code == 400  # no CSRF token
    with app.app_context():
        from web.ui.context import selection

        selection().invite(p1["id"], wid, actor=f"district-{case['district']}")
    [mail] = store.list_nodes("OutboxMessage", where={"user_id": f"worker-{wid}"})
    assert mail["to"] == "wang@example.cn" and mail["status"] == "pending"
    _post(worker, "/notifications/email", email="")  # off again: later steps write no message
    coordinator_matches = store.list_nodes("Match", where={"worker_id": wid, "problem_id": p1["id"]})
    with app.app_context():
        from web.ui.context import selection

        selection().withdraw(coordinator_matches[0]["id"], actor=f"district-{case['district']}")
    assert len(store.list_nodes("OutboxMessage", where={"user_id": f"worker-{wid}"})) == 1
    assert store.count_nodes("Notification", where={"user_id": f"worker-{wid}"}) == 2


def test_a_coordinator_overrides_capacity_with_a_second_confirmation_and_a_reason(store: GraphStore) -> None:
    """Issue 14: confirming in the pages could not override the capacity check (the API and CLI could)."""
    app = make_app(store)
    case = _pick(store)
    wid, district, p1, p2 = case["worker"]["id"], case["district"], case["p1"], case["p2"]
    store.update_node("Worker", wid, {"capacity": 1})
    worker, _ = login_as(app, store, "worker", worker_id=wid)
    coordinator, _ = login_as(app, store, "district", district=district)
    other_district = next(d["id"] for d in store.iter_nodes("District") if d["id"] != district)
    outsider, _ = login_as(app, store, "district", district=other_district)
    for p in (p1, p2):
        _post(worker, f"/me/problems/{p['id']}/volunteer")
    first, second = (store.list_nodes("Match", where={"worker_id": wid, "problem_id": p["id"]})[0]["id"]
                     for p in (p1, p2))
    assert _post(coordinator, f"/matches/{first}/confirm", back="problem").status_code == 302
    assert store.get_node("Match", first)["state"] == "accepted"

    # the plain confirmation is refused and leads to the second confirmation, which says why
    response = _post(coordinator, f"/matches/{second}/confirm", back="problem")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/matches/{second}/confirm-override")
    assert store.get_node("Match", second)["state"] == "volunteered"
    page = coordinator.get(f"/matches/{second}/confirm-override").get_data(as_text=True)
    assert "该劳模工匠本月服务容量已满。" in page  # the refusal, flashed
    refusal = re.search(r'data-testid="refused-capacity">(.*?)</li>', page, flags=re.S)
    assert refusal is not None and "本月已有 1 项对接" in refusal.group(1) and "每月 1 项" in refusal.group(1)
    assert 'data-testid="refused-conflict"' not in page
    assert 'name="override_capacity" type="hidden" value="1"' in page
    english = coordinator.get(f"/matches/{second}/confirm-override?lang=en").get_data(as_text=True)
    assert "already has 1 engagement(s) this month" in english and "Confirm anyway and start" in english

    url = f"/matches/{second}/confirm-override"
    assert outsider.get(url).status_code == 403 and _post(outsider, url, acknowledge="y", reason="x",
                                                          override_capacity="1").status_code == 403
    assert worker.get(url).status_code == 403
    assert coordinator.post(url, data={"acknowledge": "y", "reason": "x", "override_capacity": "1"}).status_code == 400
    for incomplete in ({"reason": "本人同意本月多接一项"}, {"acknowledge": "y", "reason": " "}):
        again = _post(coordinator, url, override_capacity="1", **incomplete)
        assert again.status_code == 200 and "请勾选确认框并写明原因。" in again.get_data(as_text=True)
        assert store.get_node("Match", second)["state"] == "volunteered"

    done = _post(coordinator, url, acknowledge="y", reason="本人同意本月多接一项", override_capacity="1")
    assert done.status_code == 302 and done.headers["Location"].endswith(f"/problems/{p2['id']}#volunteers")
    match = store.get_node("Match", second)
    assert match["state"] == "accepted" and match["confirmed_by"] == f"district-{district}"
    [event] = [e for e in store.list_nodes("AuditEvent", where={"match_id": second}) if e["kind"] == "confirm"]
    detail = json.loads(event["detail_json"])
    assert (detail["override_capacity"], detail["reason"], detail["load"], detail["capacity"]) == (
        True, "本人同意本月多接一项", 1, 1)
    assert "本人同意本月多接一项" in coordinator.get(f"/matches/{second}").get_data(as_text=True)  # the timeline
    admin, _ = login_as(app, store, "admin")
    audit = admin.get("/audit?kind=confirm").get_data(as_text=True)
    assert audit.count('data-testid="override-capacity"') == 1 and "本人同意本月多接一项" in audit
    # answered now: the page sends the coordinator back instead of confirming twice
    assert _post(coordinator, url, acknowledge="y", reason="再次", override_capacity="1").status_code == 302
    assert store.get_node("Match", second)["confirmed_at"] == match["confirmed_at"]


def test_a_conflict_of_interest_is_overridden_only_when_the_page_showed_it(store: GraphStore) -> None:
    app = make_app(store)
    case = _pick(store)
    wid, district, p1 = case["worker"]["id"], case["district"], case["p1"]
    worker, _ = login_as(app, store, "worker", worker_id=wid)
    coordinator, _ = login_as(app, store, "district", district=district)
    _post(worker, f"/me/problems/{p1['id']}/volunteer")
    mid = store.list_nodes("Match", where={"worker_id": wid, "problem_id": p1["id"]})[0]["id"]
    store.update_node("Worker", wid, {"employer_id": p1["enterprise_id"]})  # the worker changed jobs meanwhile
    response = _post(coordinator, f"/matches/{mid}/confirm", back="problem")
    assert response.headers["Location"].endswith(f"/matches/{mid}/confirm-override")
    url = f"/matches/{mid}/confirm-override"
    page = coordinator.get(url).get_data(as_text=True)
    employer = store.get_node("Enterprise", p1["enterprise_id"])["name"]
    assert 'data-testid="refused-conflict"' in page and html.escape(employer) in page
    assert 'data-testid="refused-capacity"' not in page
    # a form that lifts only the capacity check does not slip past the conflict: the page comes back
    sneaky = _post(coordinator, url, acknowledge="y", reason="企业同意", override_capacity="1")
    assert sneaky.status_code == 302 and sneaky.headers["Location"].endswith(url)
    assert store.get_node("Match", mid)["state"] == "volunteered"
    assert "情况有变" in coordinator.get(url).get_data(as_text=True)
    _post(coordinator, url, acknowledge="y", reason="企业与工会同意由本企业劳模承担", allow_conflict="1")
    assert store.get_node("Match", mid)["state"] == "accepted"
    detail = json.loads(next(e for e in store.list_nodes("AuditEvent", where={"match_id": mid})
                             if e["kind"] == "confirm")["detail_json"])
    assert detail["allow_conflict"] is True and detail["reason"] == "企业与工会同意由本企业劳模承担"
    # a volunteer nothing refuses is simply confirmed: the override page sends the coordinator back
    p3 = case["p3"]
    store.update_node("Worker", wid, {"employer_id": None})
    _post(worker, f"/me/problems/{p3['id']}/volunteer")
    m3 = store.list_nodes("Match", where={"worker_id": wid, "problem_id": p3["id"]})[0]["id"]
    assert coordinator.get(f"/matches/{m3}/confirm-override").status_code == 302
    assert store.get_node("Match", m3)["state"] == "volunteered"


def test_the_api_records_the_reason_of_an_override(store: GraphStore) -> None:
    app = make_app(store)
    case = _pick(store)
    wid, p1 = case["worker"]["id"], case["p1"]
    store.update_node("Worker", wid, {"capacity": 0})
    worker, worker_headers = login_as(app, store, "worker", worker_id=wid)
    match = worker.post("/api/v1/matches/volunteer", json={"problem_id": p1["id"]}, headers=worker_headers).get_json()
    coordinator, headers = login_as(app, store, "district", district=case["district"])
    url = f"/api/v1/matches/{match['id']}/confirm"
    assert coordinator.post(url, json={}, headers=headers).status_code == 409  # at capacity
    assert coordinator.post(url, json={"override_capacity": True, "reason": "x" * 5001},
                            headers=headers).status_code == 422
    confirmed = coordinator.post(url, json={"override_capacity": True, "reason": "本人同意"}, headers=headers)
    assert confirmed.status_code == 200 and confirmed.get_json()["history"][-1]["reason"] == "本人同意"
