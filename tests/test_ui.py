"""Coordinator pages through the Flask test client: roles, CSRF, district limits, escaping, the match flow.

The app runs over the demo dataset (scale 0.1) with the real recommender, as the API tests do.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from graph.store import GraphStore
from tests import api_support
from tests.api_support import PASSWORD, login_as, make_app
from web.auth import create_user
from web.ui.i18n import safe_next

demo_dir = api_support.demo_dir  # the demo dataset (scale 0.1) and a fresh store over it, per test
store = api_support.store

INJECTION = "<script>alert('x')</script>\"><img src=x onerror=alert(1)>"

READ_PAGES = ["/dashboard", "/problems", "/workers", "/enterprises", "/graph", "/import"]


@pytest.fixture
def app(store: GraphStore) -> Any:
    return make_app(store)


def _open_problem(store: GraphStore, district: str | None = None) -> dict[str, Any]:
    for problem in store.iter_nodes("Problem"):
        if problem.get("status") == "open" and (district is None or problem.get("district") == district):
            return problem
    raise AssertionError("the demo data has no open problem there")


def _form_token(client: FlaskClient, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def _client(app: Any, store: GraphStore, role: str, **kw: Any) -> FlaskClient:
    client, _headers = login_as(app, store, role, **kw)
    return client


# -- access --------------------------------------------------------------------------------------
@pytest.mark.parametrize("url", READ_PAGES + ["/assignment", "/audit", "/me/problems", "/problems/new"])
def test_anonymous_is_sent_to_login(app: Any, url: str) -> None:
    response = app.test_client().get(url)
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


@pytest.mark.parametrize("role", ["admin", "city", "district", "viewer"])
def test_read_pages_render_for_coordinators_and_viewers(app: Any, store: GraphStore, role: str) -> None:
    client = _client(app, store, role, district="亭湖区" if role == "district" else None)
    problem = _open_problem(store)
    worker = next(iter(store.iter_nodes("Worker")))
    enterprise = next(iter(store.iter_nodes("Enterprise")))
    for url in READ_PAGES + [f"/problems/{problem['id']}", f"/workers/{worker['id']}",
                             f"/enterprises/{enterprise['id']}"]:
        response = client.get(url)
        assert response.status_code == 200, (role, url)
        assert "劳模工匠助企行" in response.get_data(as_text=True)


@pytest.mark.parametrize(("role", "url", "status"), [
    ("viewer", "/problems/new", 403),
    ("viewer", "/assignment", 403),
    ("viewer", "/audit", 403),
    ("city", "/audit", 403),
    ("admin", "/audit", 200),
    ("district", "/audit", 403),
    ("city", "/assignment", 200),
    ("district", "/assignment", 200),
    ("viewer", "/me/problems", 403),
    ("admin", "/me/problems", 403),
])
def test_role_limits(app: Any, store: GraphStore, role: str, url: str, status: int) -> None:
    client = _client(app, store, role, district="亭湖区" if role == "district" else None)
    assert client.get(url).status_code == status


def test_worker_sees_only_their_own_pages(app: Any, store: GraphStore) -> None:
    mine, other = [w["id"] for w in store.list_nodes("Worker", limit=2)]
    client = _client(app, store, "worker", worker_id=mine)
    assert client.get("/me/problems").status_code == 200
    assert client.get(f"/workers/{mine}").status_code == 200
    assert client.get(f"/workers/{other}").status_code == 403
    for url in READ_PAGES:
        assert client.get(url).status_code == 403, url
    # the worker lands on their own page after login
    assert client.get("/").headers["Location"].endswith("/me/problems")


def test_viewer_never_sees_contacts(app: Any, store: GraphStore) -> None:
    worker = next(w for w in store.iter_nodes("Worker") if w.get("contact"))
    viewer = _client(app, store, "viewer").get(f"/workers/{worker['id']}").get_data(as_text=True)
    admin = _client(app, store, "admin").get(f"/workers/{worker['id']}").get_data(as_text=True)
    assert worker["contact"] in admin
    assert worker["contact"] not in viewer


# -- login and CSRF ------------------------------------------------------------------------------
def test_login_form_needs_csrf_and_the_right_password(app: Any, store: GraphStore) -> None:
    create_user(store, "coordinator", PASSWORD, role="city")
    client = app.test_client()
    assert client.post("/login", data={"username": "coordinator", "password": PASSWORD}).status_code == 400
    token = _form_token(client, "/login")
    wrong = client.post("/login", data={"username": "coordinator", "password": "nope", "csrf_token": token})
    assert wrong.status_code == 200 and "用户名或密码错误" in wrong.get_data(as_text=True)
    ok = client.post("/login?next=//evil.example/x", data={"username": "coordinator", "password": PASSWORD,
                                                           "csrf_token": token})
    assert ok.status_code == 302 and ok.headers["Location"] == "/dashboard"
    assert client.get("/dashboard").status_code == 200
    assert client.post("/logout").status_code in (302, 400)  # no token: not logged out
    assert client.get("/dashboard").status_code == 200
    client.post("/logout", data={"csrf_token": _form_token(client, "/dashboard")})
    assert client.get("/dashboard").status_code == 302


def test_state_changing_forms_reject_missing_csrf(app: Any, store: GraphStore) -> None:
    client = _client(app, store, "admin")
    problem = _open_problem(store)
    worker = next(w for w in store.iter_nodes("Worker") if w.get("active") is not False)
    before = len(list(store.iter_nodes("Match")))
    assert client.post(f"/problems/{problem['id']}/invite", data={"worker_id": worker["id"]}).status_code == 400
    assert client.post("/problems/new", data={"title": "x", "description": "y"}).status_code == 400
    assert client.post("/assignment/apply", data={"pair": "[]"}).status_code == 400
    assert len(list(store.iter_nodes("Match"))) == before


@pytest.mark.parametrize(("target", "expected"), [
    ("/problems?x=1", "/problems?x=1"), ("//evil.example/", "/d"), ("https://evil.example/", "/d"),
    ("/\\evil.example", "/d"), (None, "/d"), ("javascript:alert(1)", "/d"),
])
def test_safe_next(target: str | None, expected: str) -> None:
    assert safe_next(target, "/d") == expected


# -- the problem flow ----------------------------------------------------------------------------
def test_intake_suggestions_invite_accept_complete_moves_dashboard(app: Any, store: GraphStore) -> None:
    coordinator = _client(app, store, "city")
    enterprise = next(e for e in store.iter_nodes("Enterprise") if e.get("district") == "亭湖区")
    before = _done_visits(coordinator)
    token = _form_token(coordinator, "/problems/new")
    response = coordinator.post("/problems/new", data={
        "csrf_token": token, "title": "数控机床主轴异响", "description": "加工中心主轴高速运转时异响,需要现场诊断",
        "enterprise_id": enterprise["id"], "district": "亭湖区", "service_type": "技术帮扶",
        "skills": "机床维修、数控编程", "new_skills": "y",  # 机床维修 is new to the taxonomy: a city user adds it
    })
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    detail_url = response.headers["Location"]
    problem_id = detail_url.rsplit("/", 1)[1]
    stored = store.get_node("Problem", problem_id)
    assert stored is not None and stored["skills"] == ["机床维修", "数控编程"] and stored["status"] == "open"
    html = coordinator.get(detail_url).get_data(as_text=True)
    suggested = re.findall(r'data-testid="suggestion" data-worker-id="([^"]+)"', html)
    assert suggested, "no suggestion shown"
    assert 'data-testid="reasons"' in html
    shown = [e for e in store.iter_nodes("AuditEvent") if e.get("kind") == "recommendations_shown"
             and e.get("problem_id") == problem_id]
    assert shown and shown[0]["actor"] == "city-user"

    worker_id = next(w for w in suggested if _invitable(store, w, enterprise["id"]))
    invite = coordinator.post(f"/problems/{problem_id}/invite", data={
        "csrf_token": _form_token(coordinator, detail_url), "worker_id": worker_id, "note": "请周三到厂"})
    assert invite.status_code == 302 and "/matches/" in invite.headers["Location"]
    match_id = invite.headers["Location"].rsplit("/", 1)[1]

    worker = _client(app, store, "worker", worker_id=worker_id)
    mine = worker.get("/me/problems").get_data(as_text=True)
    assert "数控机床主轴异响" in mine and "请周三到厂" in mine
    accept = worker.post(f"/matches/{match_id}/accept", data={"csrf_token": _form_token(worker, "/me/problems")})
    assert accept.status_code == 302
    assert store.get_node("Match", match_id)["state"] == "accepted"
    # the worker cannot record the outcome: that is the coordinator's step
    assert worker.post(f"/matches/{match_id}/complete", data={
        "csrf_token": _form_token(worker, "/me/problems"), "solved": "y", "hours": "3", "trainees": "5",
        "satisfaction": "5"}).status_code == 403

    match_url = f"/matches/{match_id}"
    done = coordinator.post(f"{match_url}/complete", data={
        "csrf_token": _form_token(coordinator, match_url), "solved": "y", "hours": "3.5", "trainees": "12",
        "satisfaction": "5", "note": "更换主轴轴承"})
    assert done.status_code == 302
    assert store.get_node("Match", match_id)["state"] == "completed"
    assert store.get_node("Problem", problem_id)["status"] == "solved"
    timeline = coordinator.get(match_url).get_data(as_text=True)
    for step in ("已邀请", "已接受", "已完成", "更换主轴轴承"):
        assert step in timeline
    assert _done_visits(coordinator) == before + 1
    audit = _client(app, store, "admin").get("/audit").get_data(as_text=True)
    for kind in ("查看推荐", "发出邀请", "接受邀请", "登记结果"):
        assert kind in audit


def _invitable(store: GraphStore, worker_id: str, enterprise_id: str | None) -> bool:
    worker = store.get_node("Worker", worker_id) or {}
    live = [m for m in store.iter_nodes("Match")
            if m["worker_id"] == worker_id and m["state"] in ("invited", "accepted")]
    return (worker.get("active") is not False and worker.get("employer_id") != enterprise_id
            and len(live) < int(worker.get("capacity") or 2))


def _done_visits(client: FlaskClient) -> int:
    html = client.get("/dashboard?phase=-1").get_data(as_text=True)
    match = re.search(r'data-testid="done-visits">(\d+)<', html)
    assert match, "dashboard has no visits counter"
    return int(match.group(1))


def test_worker_declines_with_a_reason(app: Any, store: GraphStore) -> None:
    problem = _open_problem(store)
    worker = next(w for w in store.iter_nodes("Worker") if _invitable(store, w["id"], problem.get("enterprise_id")))
    coordinator = _client(app, store, "admin")
    url = f"/problems/{problem['id']}"
    coordinator.post(f"{url}/invite", data={"csrf_token": _form_token(coordinator, url), "worker_id": worker["id"]})
    match = next(m for m in store.iter_nodes("Match") if m["worker_id"] == worker["id"])
    client = _client(app, store, "worker", worker_id=worker["id"])
    token = _form_token(client, "/me/problems")
    empty = client.post(f"/matches/{match['id']}/decline", data={"csrf_token": token, "reason": ""})
    assert empty.status_code == 302 and store.get_node("Match", match["id"])["state"] == "invited"
    client.post(f"/matches/{match['id']}/decline", data={"csrf_token": token, "reason": "本月在外地出差"})
    assert store.get_node("Match", match["id"])["state"] == "declined"
    # another worker may not even look at it
    other = next(w["id"] for w in store.iter_nodes("Worker") if w["id"] != worker["id"])
    assert _client(app, store, "worker", worker_id=other).get(f"/matches/{match['id']}").status_code == 403


def test_district_coordinator_cannot_act_on_another_district(app: Any, store: GraphStore) -> None:
    client = _client(app, store, "district", district="亭湖区")
    foreign = _open_problem(store, "盐都区")
    worker = next(w for w in store.iter_nodes("Worker") if _invitable(store, w["id"], foreign.get("enterprise_id")))
    url = f"/problems/{foreign['id']}"
    html = client.get(url).get_data(as_text=True)
    assert 'data-testid="invite"' not in html  # no invite buttons
    token = _form_token(client, "/problems/new")
    assert client.post(f"{url}/invite", data={"csrf_token": token, "worker_id": worker["id"]}).status_code == 403
    # the intake form offers only their district; a forged other district is refused
    form = client.get("/problems/new").get_data(as_text=True)
    assert "盐都区" not in re.search(r'<select[^>]*name="district".*?</select>', form, re.S).group(0)
    enterprise = next(e for e in store.iter_nodes("Enterprise") if e.get("district") == "盐都区")
    count = store.count_nodes("Problem")
    client.post("/problems/new", data={"csrf_token": token, "title": "越区登记", "description": "不应成功",
                                       "enterprise_id": enterprise["id"], "district": "盐都区",
                                       "service_type": "技术帮扶"})
    assert store.count_nodes("Problem") == count
    # a match in another district: no step allowed
    admin = _client(app, store, "admin")
    admin.post(f"{url}/invite", data={"csrf_token": _form_token(admin, url), "worker_id": worker["id"]})
    match = next(m for m in store.iter_nodes("Match") if m["problem_id"] == foreign["id"])
    assert client.post(f"/matches/{match['id']}/withdraw", data={"csrf_token": token}).status_code == 403
    own = _open_problem(store, "亭湖区")
    assert 'data-testid="invite"' in client.get(f"/problems/{own['id']}").get_data(as_text=True)


def test_user_text_is_escaped_everywhere(app: Any, store: GraphStore) -> None:
    client = _client(app, store, "admin")
    enterprise = next(iter(store.iter_nodes("Enterprise")))
    response = client.post("/problems/new", data={
        "csrf_token": _form_token(client, "/problems/new"), "title": INJECTION, "description": INJECTION,
        "enterprise_id": enterprise["id"], "district": enterprise["district"], "service_type": "技术帮扶",
        "skills": INJECTION, "new_skills": "y"})
    problem_id = response.headers["Location"].rsplit("/", 1)[1]
    store.update_node("Worker", next(iter(store.iter_nodes("Worker")))["id"], {"name": INJECTION})
    for url in (f"/problems/{problem_id}", "/problems", "/workers", "/problems?q=%3Cscript%3E"):
        html = client.get(url).get_data(as_text=True)
        assert "<script>alert" not in html, url
        assert "<img src=x" not in html, url
    assert "&lt;script&gt;alert(" in client.get("/problems").get_data(as_text=True)
    # the message refusing an unknown skill repeats it escaped
    refused = client.post("/problems/new", data={
        "csrf_token": _form_token(client, "/problems/new"), "title": "t", "description": "d",
        "enterprise_id": enterprise["id"], "district": enterprise["district"], "service_type": "技术帮扶",
        "skills": INJECTION + "x"}).get_data(as_text=True)
    assert "技能库中没有" in refused and "<script>alert" not in refused


def test_assignment_preview_and_apply(app: Any, store: GraphStore) -> None:
    client = _client(app, store, "city")
    html = client.get("/assignment?district=亭湖区").get_data(as_text=True)
    assert 'data-testid="plan-summary"' in html
    pairs = re.findall(r'name="pair" value="([^"]+)"', html)
    assert pairs
    token = _form_token(client, "/assignment?district=亭湖区")
    import html as html_lib

    first = html_lib.unescape(pairs[0])
    before = store.count_nodes("Match", where={"state": "invited"})
    response = client.post("/assignment/apply", data={"csrf_token": token, "pair": [first], "district": "亭湖区"})
    assert response.status_code == 302
    assert store.count_nodes("Match", where={"state": "invited"}) == before + 1


def test_graph_endpoints_expose_only_the_matching_graph(app: Any, store: GraphStore) -> None:
    client = _client(app, store, "viewer")
    worker = next(iter(store.iter_nodes("Worker")))
    data = client.get(f"/graph/neighbours?label=Worker&id={worker['id']}").get_json()
    assert len(data["nodes"]) > 1 and data["edges"]
    assert {n["data"]["type"] for n in data["nodes"]} <= {"Worker", "Skill", "Enterprise", "IndustryChain",
                                                          "District", "Problem"}
    assert all("contact" not in n["data"] for n in data["nodes"])
    only = client.get(f"/graph/neighbours?label=Worker&id={worker['id']}&type=Skill").get_json()
    assert {n["data"]["type"] for n in only["nodes"][1:]} == {"Skill"}
    assert client.get("/graph/neighbours?label=User&id=admin").status_code == 400
    assert client.get("/graph/neighbours?label=Worker&id=nobody").status_code == 404
    found = client.get("/graph/search?q=亭湖区").get_json()["results"]
    assert found and found[0]["data"]["id"] == "District:亭湖区"


def test_problem_filters(app: Any, store: GraphStore) -> None:
    client = _client(app, store, "viewer")
    html = client.get("/problems?district=盐都区&status=open").get_data(as_text=True)
    rows = re.findall(r'href="/problems/(P[^"]+)"', html)
    assert rows
    for problem_id in rows:
        problem = store.get_node("Problem", problem_id)
        assert problem["district"] == "盐都区" and problem["status"] == "open"
    not_unionised = client.get("/problems?unionised=no").get_data(as_text=True)
    for problem_id in re.findall(r'href="/problems/(P[^"]+)"', not_unionised):
        enterprise = store.get_node("Enterprise", store.get_node("Problem", problem_id)["enterprise_id"])
        assert not enterprise.get("unionised")
    page2 = client.get("/problems?page=2").get_data(as_text=True)
    assert "第 2 /" in page2


# -- API keys from the running app ---------------------------------------------------------------------
def test_admin_creates_and_revokes_an_api_key_in_the_running_app(app: Any, store: GraphStore) -> None:
    from web.auth import authenticate_api_key, list_api_keys

    for role in ("city", "district", "viewer"):
        client = _client(app, store, role, district="亭湖区" if role == "district" else None)
        assert client.get("/apikeys").status_code == 403, role
    admin = _client(app, store, "admin")
    page = admin.get("/apikeys")
    assert page.status_code == 200 and "接口密钥" in page.get_data(as_text=True)
    assert admin.post("/apikeys", data={"name": "平台", "scope": "write"}).status_code == 400  # no CSRF token
    assert list_api_keys(store) == []
    token = _form_token(admin, "/apikeys")
    assert admin.post("/apikeys", data={"csrf_token": token, "name": " ", "scope": "read"}).status_code == 400
    created = admin.post("/apikeys", data={"csrf_token": token, "name": INJECTION, "scope": "write"})
    assert created.status_code == 200 and created.headers["Cache-Control"] == "no-store"
    html = created.get_data(as_text=True)
    raw = re.search(r'data-testid="new-key-value">(jl_[^<]+)</code>', html)
    assert raw is not None
    assert INJECTION not in html and "&lt;script&gt;" in html  # the user's name is escaped
    (key,) = list_api_keys(store)
    assert key["name"] == INJECTION and key["scope"] == "write" and "admin" in key["created_by"]  # who made it
    assert raw.group(1) not in str(store.get_node("ApiKey", key["id"]))  # only the hash is stored
    principal = authenticate_api_key(store, raw.group(1))
    assert principal is not None and principal.scope == "write"
    assert raw.group(1) not in admin.get("/apikeys").get_data(as_text=True)  # shown once
    # revoking needs the token too, then the key stops working at once
    assert admin.post(f"/apikeys/{key['id']}/revoke").status_code == 400
    revoked = admin.post(f"/apikeys/{key['id']}/revoke", data={"csrf_token": _form_token(admin, "/apikeys")})
    assert revoked.status_code == 302
    assert authenticate_api_key(store, raw.group(1)) is None
    assert admin.post("/apikeys/nope/revoke", data={"csrf_token": _form_token(admin, "/apikeys")}).status_code == 404


def test_an_answer_that_lost_a_race_says_so_in_both_languages(app: Any, store: GraphStore,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.test_selection_concurrency import StaleView
    from web.extensions import get_state
    from workflow.selection import Selection

    problem = _open_problem(store)
    worker = next(w for w in store.iter_nodes("Worker") if _invitable(store, w["id"], problem.get("enterprise_id")))
    match_id = Selection(store).invite(problem["id"], worker["id"], actor="c")["id"]
    client = _client(app, store, "worker", worker_id=worker["id"])
    token = _form_token(client, "/me/problems")
    with app.app_context():
        served = get_state().selection
    view = StaleView(store)
    view.freeze()  # this web process read the invitation before another process withdrew it
    monkeypatch.setattr(served, "store", view)
    Selection(store).withdraw(match_id, actor="c")
    page = client.post(f"/matches/{match_id}/accept", data={"csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "该邀请刚被他人抢先处理，本次操作未执行，请查看最新状态。" in page
    assert store.get_node("Match", match_id)["state"] == "withdrawn"
    new_id = Selection(store).invite(problem["id"], worker["id"], actor="c")["id"]  # a new one, answered meanwhile
    view.freeze()
    Selection(store).decline(new_id, reason="本月在外地", actor=worker["id"])
    page = client.post(f"/matches/{new_id}/accept?lang=en", data={"csrf_token": token},
                       follow_redirects=True).get_data(as_text=True)
    assert "Someone else acted on this invitation first; your action was not applied." in page, page[:2000]
