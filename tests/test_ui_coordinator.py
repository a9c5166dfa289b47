"""Coordinator controls (issue 14, item 4): edit and close a problem, invite any worker found by search with
the suggestions' checks, answer an invitation for a worker only after confirming (and logged as such), an
outcome form that states nothing by itself, lists that open on the coordinator's own district.

Flask test client over the demo dataset (scale 0.1) in the real embedded store, with the real recommender.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from graph.store import GraphStore
from tests import api_support
from tests.api_support import login_as, make_app
from workflow.selection import Selection

demo_dir = api_support.demo_dir
store = api_support.store


@pytest.fixture
def app(store: GraphStore) -> Any:
    return make_app(store)


def _client(app: Any, store: GraphStore, role: str, **kw: Any) -> FlaskClient:
    return login_as(app, store, role, **kw)[0]


def _token(client: FlaskClient, url: str) -> str:
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def _open_problem(store: GraphStore, district: str | None = None) -> dict[str, Any]:
    return next(p for p in store.iter_nodes("Problem") if p.get("status") == "open"
                and (district is None or p.get("district") == district))


def _free_worker(store: GraphStore, problem: dict[str, Any], *, exclude: set[str] = frozenset()) -> dict[str, Any]:
    live = {m["worker_id"] for m in store.iter_nodes("Match") if m["state"] in ("invited", "accepted")}
    return next(w for w in store.iter_nodes("Worker") if w.get("active") is not False and w["id"] not in live
                and w["id"] not in exclude and w.get("employer_id") != problem.get("enterprise_id"))


def _suggested(page: str) -> list[str]:
    return re.findall(r'data-testid="suggestion" data-worker-id="([^"]+)"', page)


# -- (a) edit and close -----------------------------------------------------------------------------
def test_coordinator_edits_a_problem(app: Any, store: GraphStore) -> None:
    problem = _open_problem(store, "亭湖区")
    client = _client(app, store, "district", district="亭湖区")
    url = f"/problems/{problem['id']}"
    assert 'data-testid="edit-problem"' in client.get(url).get_data(as_text=True)
    form = client.get(f"{url}/edit").get_data(as_text=True)
    assert html.escape(problem["title"], quote=False) in form  # prefilled
    response = client.post(f"{url}/edit", data={
        "csrf_token": _token(client, f"{url}/edit"), "title": "注塑机液压系统压力不稳(已补充)",
        "description": "补充:压力波动 ±2 MPa", "enterprise_id": problem["enterprise_id"],
        "district": "亭湖区", "service_type": problem.get("service_type") or "技术帮扶", "skills": "液压、注塑成型"})
    assert response.status_code == 302 and response.headers["Location"].endswith(url)
    stored = store.get_node("Problem", problem["id"])
    assert stored["title"] == "注塑机液压系统压力不稳(已补充)" and stored["skills"] == ["液压", "注塑成型"]
    assert stored["posted_at"] == problem["posted_at"] and stored["status"] == "open"
    required = {r.end_id for r in store.relationships("REQUIRES", start=("Problem", problem["id"]))}
    assert required == {"液压系统维修", "注塑成型"}  # 液压 is an alias of 液压系统维修 in the taxonomy
    # another district's coordinator may neither open the form nor post it
    other = _client(app, store, "district", district="盐都区")
    assert 'data-testid="edit-problem"' not in other.get(url).get_data(as_text=True)
    assert other.get(f"{url}/edit").status_code == 403
    assert other.post(f"{url}/edit", data={"csrf_token": _token(other, "/problems/new"), "title": "x",
                                           "description": "x", "enterprise_id": problem["enterprise_id"],
                                           "district": "亭湖区", "service_type": "技术帮扶"}).status_code == 403


def test_closing_a_problem_withdraws_open_invitations_and_stops_suggestions(app: Any, store: GraphStore) -> None:
    problem = _open_problem(store)
    worker = _free_worker(store, problem)
    client = _client(app, store, "city")
    url = f"/problems/{problem['id']}"
    client.post(f"{url}/invite", data={"csrf_token": _token(client, url), "worker_id": worker["id"]})
    match = next(m for m in store.iter_nodes("Match") if m["problem_id"] == problem["id"])
    assert match["state"] == "invited"
    # a reason is required
    client.post(f"{url}/close", data={"csrf_token": _token(client, url), "reason": ""})
    assert store.get_node("Problem", problem["id"])["status"] == "open"
    client.post(f"{url}/close", data={"csrf_token": _token(client, url), "reason": "企业已自行解决"})
    stored = store.get_node("Problem", problem["id"])
    assert stored["status"] == "closed" and stored["close_reason"] == "企业已自行解决"
    assert store.get_node("Match", match["id"])["state"] == "withdrawn"
    page = client.get(url).get_data(as_text=True)
    assert not _suggested(page) and 'data-testid="find-worker"' not in page
    assert 'data-testid="reopen-problem"' in page and "企业已自行解决" in page
    # an invitation to a closed problem is refused
    other = _free_worker(store, problem, exclude={worker["id"]})
    client.post(f"{url}/invite", data={"csrf_token": _token(client, url), "worker_id": other["id"]})
    assert not [m for m in store.iter_nodes("Match") if m["worker_id"] == other["id"]
                and m["problem_id"] == problem["id"]]
    client.post(f"{url}/reopen", data={"csrf_token": _token(client, url)})
    assert store.get_node("Problem", problem["id"])["status"] == "open"
    assert _suggested(client.get(url).get_data(as_text=True))


# -- (b) invite anyone found by search ----------------------------------------------------------------
def test_coordinator_invites_a_worker_found_by_search_outside_the_suggestions(app: Any, store: GraphStore) -> None:
    problem = _open_problem(store)
    client = _client(app, store, "city")
    url = f"/problems/{problem['id']}"
    suggested = set(_suggested(client.get(url).get_data(as_text=True)))
    worker = _free_worker(store, problem, exclude=suggested)
    for query in (worker["name"], worker["id"]):
        page = client.get(url, query_string={"worker_q": query}).get_data(as_text=True)
        assert f'data-testid="found-worker" data-worker-id="{worker["id"]}"' in page, query
    response = client.post(f"{url}/invite", data={"csrf_token": _token(client, url), "worker_id": worker["id"],
                                                  "note": "搜索到的人选"})
    assert response.status_code == 302 and "/matches/" in response.headers["Location"]
    match = store.get_node("Match", response.headers["Location"].rsplit("/", 1)[1])
    assert match["worker_id"] == worker["id"] and match["state"] == "invited" and match["note"] == "搜索到的人选"
    # found again: shown as already engaged, no second invite button
    row = _found_row(client.get(url, query_string={"worker_q": worker["id"]}).get_data(as_text=True), worker["id"])
    assert "已在对接中" in row and "invite-found" not in row


def _found_row(page: str, worker_id: str) -> str:
    match = re.search(rf'<tr data-testid="found-worker" data-worker-id="{re.escape(worker_id)}">.*?</tr>', page, re.S)
    assert match, f"{worker_id} not listed"
    return match.group(0)


def test_search_applies_the_suggestions_checks(app: Any, store: GraphStore) -> None:
    problem = _open_problem(store)
    inactive = _free_worker(store, problem)
    store.update_node("Worker", inactive["id"], {"active": False})
    full = _free_worker(store, problem, exclude={inactive["id"]})
    store.update_node("Worker", full["id"], {"capacity": 0})
    client = _client(app, store, "city")
    url = f"/problems/{problem['id']}"
    for worker, why in ((inactive, "目前不在岗"), (full, "本月服务容量已满")):
        row = _found_row(client.get(url, query_string={"worker_q": worker["id"]}).get_data(as_text=True),
                         worker["id"])
        assert why in row and "invite-found" not in row
        # a forged post is refused by the same rule
        response = client.post(f"{url}/invite", data={"csrf_token": _token(client, url), "worker_id": worker["id"]},
                               follow_redirects=True)
        assert why[-4:] in response.get_data(as_text=True)
        assert not [m for m in store.iter_nodes("Match") if m["worker_id"] == worker["id"]
                    and m["problem_id"] == problem["id"]]
    # viewers and other districts' coordinators get no search
    assert 'data-testid="find-worker"' not in _client(app, store, "viewer").get(url).get_data(as_text=True)


# -- (c) answering for a worker ----------------------------------------------------------------------
def test_coordinator_accepts_for_a_worker_only_after_confirming_and_the_audit_names_both(
        app: Any, store: GraphStore) -> None:
    problem = _open_problem(store)
    worker = _free_worker(store, problem)
    client = _client(app, store, "city")
    url = f"/problems/{problem['id']}"
    invite = client.post(f"{url}/invite", data={"csrf_token": _token(client, url), "worker_id": worker["id"]})
    match_url = invite.headers["Location"]
    match_id = match_url.rsplit("/", 1)[1]
    page = client.get(match_url).get_data(as_text=True)
    assert 'data-testid="on-behalf-note"' in page and 'data-testid="confirm-accept"' in page
    assert "代为接受邀请" in page
    token = _token(client, match_url)
    refused = client.post(f"{match_url}/accept", data={"csrf_token": token}, follow_redirects=True)
    assert "勾选确认框" in refused.get_data(as_text=True)
    assert store.get_node("Match", match_id)["state"] == "invited"
    accepted = client.post(f"{match_url}/accept", data={"csrf_token": token, "confirm": "y"}, follow_redirects=True)
    assert f"由您代 {html.escape(worker['name'])} 答复" in accepted.get_data(as_text=True)
    assert store.get_node("Match", match_id)["state"] == "accepted"
    events = Selection(store).audit(kind="accept", match_id=match_id)
    assert [e["actor"] for e in events] == [f"city-user for {worker['id']}"]
    timeline = client.get(match_url).get_data(as_text=True)
    assert f"city-user 代 {html.escape(worker['name'])}({worker['id']})" in timeline
    admin = _client(app, store, "admin")
    audit = admin.get("/audit", query_string={"actor": "city-user", "kind": "accept"}).get_data(as_text=True)
    assert f"city-user 代 {html.escape(worker['name'])}({worker['id']})" in audit


def test_coordinator_declines_for_a_worker_only_after_confirming(app: Any, store: GraphStore) -> None:
    problem = _open_problem(store)
    worker = _free_worker(store, problem)
    client = _client(app, store, "city")
    url = f"/problems/{problem['id']}"
    match_url = client.post(f"{url}/invite", data={"csrf_token": _token(client, url),
                                                   "worker_id": worker["id"]}).headers["Location"]
    match_id = match_url.rsplit("/", 1)[1]
    token = _token(client, match_url)
    client.post(f"{match_url}/decline", data={"csrf_token": token, "reason": "电话确认出差"})
    assert store.get_node("Match", match_id)["state"] == "invited"
    client.post(f"{match_url}/decline", data={"csrf_token": token, "reason": "电话确认出差", "confirm": "y"})
    assert store.get_node("Match", match_id)["state"] == "declined"
    assert [e["actor"] for e in Selection(store).audit(kind="decline", match_id=match_id)] == [
        f"city-user for {worker['id']}"]


def test_worker_answers_without_the_confirmation(app: Any, store: GraphStore) -> None:
    problem = _open_problem(store)
    worker = _free_worker(store, problem)
    coordinator = _client(app, store, "city")
    url = f"/problems/{problem['id']}"
    match_url = coordinator.post(f"{url}/invite", data={"csrf_token": _token(coordinator, url),
                                                        "worker_id": worker["id"]}).headers["Location"]
    own = _client(app, store, "worker", worker_id=worker["id"])
    page = own.get(match_url).get_data(as_text=True)
    assert 'data-testid="confirm-accept"' not in page and "代为" not in page
    own.post(f"{match_url}/accept", data={"csrf_token": _token(own, match_url)})
    match_id = match_url.rsplit("/", 1)[1]
    assert [e["actor"] for e in Selection(store).audit(kind="accept", match_id=match_id)] == [
        f"worker-{worker['id']}"]


# -- (d) the outcome form states nothing by itself ------------------------------------------------------
def test_outcome_form_is_not_prefilled_and_needs_an_answer(app: Any, store: GraphStore) -> None:
    problem = _open_problem(store)
    worker = _free_worker(store, problem)
    client = _client(app, store, "city")
    url = f"/problems/{problem['id']}"
    match_url = client.post(f"{url}/invite", data={"csrf_token": _token(client, url),
                                                   "worker_id": worker["id"]}).headers["Location"]
    client.post(f"{match_url}/accept", data={"csrf_token": _token(client, match_url), "confirm": "y"})
    page = client.get(match_url).get_data(as_text=True)
    form = re.search(r'<form[^>]*data-testid="outcome-form".*?</form>', page, re.S).group(0)
    assert "checked" not in form
    assert not re.search(r"<option selected[^>]*value=\"[1-5]\"|value=\"[1-5]\" selected", form)
    assert not re.search(r'name="hours"[^>]*value="\d', form)
    token = _token(client, match_url)
    match_id = match_url.rsplit("/", 1)[1]
    for missing in ("solved", "satisfaction"):
        data = {"csrf_token": token, "solved": "n", "hours": "2", "trainees": "0", "satisfaction": "3"}
        del data[missing]
        client.post(f"{match_url}/complete", data=data)
        assert store.get_node("Match", match_id)["state"] == "accepted", missing
    client.post(f"{match_url}/complete", data={"csrf_token": token, "solved": "n", "hours": "2", "trainees": "0",
                                               "satisfaction": "3"})
    done = store.get_node("Match", match_id)
    assert done["state"] == "completed" and done["solved"] is False and done["satisfaction"] == 3
    assert store.get_node("Problem", problem["id"])["status"] == "open"


# -- (e) lists open on the coordinator's district ------------------------------------------------------
@pytest.mark.parametrize(("path", "label"), [("/problems", "Problem"), ("/workers", "Worker"),
                                             ("/enterprises", "Enterprise")])
def test_district_lists_default_to_the_own_district(app: Any, store: GraphStore, path: str, label: str) -> None:
    client = _client(app, store, "district", district="亭湖区")
    prefix = {"Problem": "/problems/", "Worker": "/workers/", "Enterprise": "/enterprises/"}[label]

    def listed(page: str) -> set[str]:
        table = re.search(r"<table.*?</table>", page, re.S).group(0)
        return {i for i in re.findall(rf'href="{prefix}([^"/?]+)"', table) if i != "new"}

    page = client.get(path).get_data(as_text=True)
    shown = listed(page)
    assert shown and {store.get_node(label, i)["district"] for i in shown} == {"亭湖区"}
    assert re.search(r'<option value="亭湖区" selected>', page)
    everywhere = client.get(path, query_string={"district": ""}).get_data(as_text=True)
    assert len({store.get_node(label, i)["district"] for i in listed(everywhere)}) > 1
    assert "district=&amp;page=2" in everywhere  # the next page keeps "every district"
    # a city coordinator still sees every district
    city = _client(app, store, "city").get(path).get_data(as_text=True)
    assert len({store.get_node(label, i)["district"] for i in listed(city)}) > 1


# -- skills from the taxonomy --------------------------------------------------------------------------
def _new_problem(client: FlaskClient, store: GraphStore, skills: str, **extra: str) -> Any:
    enterprise = next(e for e in store.iter_nodes("Enterprise") if e.get("district") == "亭湖区")
    return client.post("/problems/new", data={
        "csrf_token": _token(client, "/problems/new"), "title": "技能检查", "description": "技能检查",
        "enterprise_id": enterprise["id"], "district": "亭湖区", "service_type": "技术帮扶", "skills": skills,
        **extra})


def test_problem_skills_come_from_the_taxonomy(app: Any, store: GraphStore) -> None:
    client = _client(app, store, "district", district="亭湖区")
    form = client.get("/problems/new").get_data(as_text=True)
    assert '<datalist id="skill-options">' in form and '<option value="CNC">' in form
    assert 'data-testid="new-skills"' not in form  # a district coordinator cannot grow the taxonomy
    skills_before = store.count_nodes("Skill")
    refused = _new_problem(client, store, "数空加工、焊接", new_skills="y")
    assert refused.status_code == 200
    page = refused.get_data(as_text=True)
    assert "技能库中没有“数空加工”,您是不是要找:数控加工" in page
    assert not [p for p in store.iter_nodes("Problem") if p.get("title") == "技能检查"]
    # names and aliases are accepted (REQUIRES points at the skill an alias names)
    assert _new_problem(client, store, "CNC、焊接").status_code == 302
    problem = next(p for p in store.iter_nodes("Problem") if p.get("title") == "技能检查")
    assert problem["skills"] == ["CNC", "焊接"]
    assert {r.end_id for r in store.relationships("REQUIRES", start=("Problem", problem["id"]))} == {"数控加工", "焊接"}
    assert store.count_nodes("Skill") == skills_before
    # a city coordinator keeps the taxonomy: a new skill only when they say so
    city = _client(app, store, "city")
    assert 'data-testid="new-skills"' in city.get("/problems/new").get_data(as_text=True)
    assert _new_problem(city, store, "氢能储运").status_code == 200
    assert store.count_nodes("Skill") == skills_before
    assert _new_problem(city, store, "氢能储运", new_skills="y").status_code == 302
    assert store.get_node("Skill", "氢能储运") is not None


def test_an_older_problem_with_an_unknown_skill_stays_editable(app: Any, store: GraphStore) -> None:
    problem = _open_problem(store, "亭湖区")
    store.update_node("Problem", problem["id"], {"skills": ["老技能写法"]})
    client = _client(app, store, "district", district="亭湖区")
    url = f"/problems/{problem['id']}/edit"
    response = client.post(url, data={
        "csrf_token": _token(client, url), "title": "只改标题", "description": problem.get("description") or "x",
        "enterprise_id": problem["enterprise_id"], "district": "亭湖区",
        "service_type": problem.get("service_type") or "技术帮扶", "skills": "老技能写法"})
    assert response.status_code == 302
    assert store.get_node("Problem", problem["id"])["title"] == "只改标题"


# -- the graph explorer opens on the coordinator's district, without its problems ------------------------
def test_graph_explorer_opens_on_the_own_district_without_its_problems(app: Any, store: GraphStore) -> None:
    page = _client(app, store, "district", district="亭湖区").get("/graph").get_data(as_text=True)
    config = json.loads(html.unescape(re.search(r'<script type="application/json" id="graph-config">(.*?)</script>',
                                                page, re.S).group(1)))
    assert config["start"]["data"]["id"] == "District:亭湖区"
    checked = set(re.findall(r'class="type-filter" value="(\w+)" checked', page))
    assert "Problem" not in checked and {"Worker", "Enterprise"} <= checked
    # a worker start keeps every type
    worker = next(iter(store.iter_nodes("Worker")))
    page = _client(app, store, "city").get(f"/graph?label=Worker&id={worker['id']}").get_data(as_text=True)
    assert "Problem" in set(re.findall(r'class="type-filter" value="(\w+)" checked', page))
