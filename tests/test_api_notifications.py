"""Notifications in the JSON API (issue 14): a user's list with paging and the unread count, marking read, who
may see and mark whose (a worker only their own; API keys city-wide by user or worker, marking with a write key),
4xx on bad input, and the OpenAPI document. Both stores."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from graph.memory import MemoryStore
from graph.rules import TIMEZONE
from graph.store import GraphStore, NodeRow, WriteBatch
from tests.api_support import assert_problem, login_as, make_app
from tests.stores import fresh_store
from tests.test_selection import Clock
from web.auth import create_api_key
from workflow.selection import Selection

pytest.register_assert_rewrite("tests.api_support")

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=TIMEZONE)
SEED = [
    NodeRow("Enterprise", "E1", {"name": "盐城精工机械", "district": "亭湖区"}),
    NodeRow("Worker", "W1", {"name": "王建国", "capacity": 50, "active": True, "district": "亭湖区"}),
    NodeRow("Worker", "W2", {"name": "李秀英", "capacity": 50, "active": True, "district": "亭湖区"}),
    NodeRow("User", "tinghu", {"role": "district", "district": "亭湖区", "active": True}),
    NodeRow("User", "wang", {"role": "worker", "worker_id": "W1", "active": True}),
    NodeRow("User", "li", {"role": "worker", "worker_id": "W2", "active": True}),
    NodeRow("User", "viewer", {"role": "viewer", "active": True}),
    *(NodeRow("Problem", f"P{i}", {"title": f"注塑件缩痕{i}", "status": "open", "enterprise_id": "E1",
                                   "district": "亭湖区"}) for i in range(1, 31)),
]
API = "/api/v1/notifications"


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    s = fresh_store(request)
    s.apply(WriteBatch(nodes=list(SEED)))
    yield s
    s.close()


def _volunteer_all(store: GraphStore, n: int) -> Selection:
    """Wang volunteers for P1..Pn, a second apart: the district coordinator gets n notifications."""
    clock = Clock(NOW)
    sel = Selection(store, clock=clock)
    for i in range(1, n + 1):
        sel.volunteer(f"P{i}", "W1", actor="wang")
        clock.advance(seconds=1)
    return sel


def test_a_user_pages_through_their_own_notifications_and_marks_them_read(store: GraphStore) -> None:
    _volunteer_all(store, 25)
    app = make_app(store)
    client, headers = login_as(app, store, "district", district="亭湖区", username="tinghu")
    first = client.get(f"{API}?per_page=10")
    assert first.status_code == 200, first.get_data(as_text=True)
    body = first.get_json()
    assert (body["total"], body["unread"], body["page"], body["per_page"]) == (25, 25, 1, 10)
    assert [n["problem_id"] for n in body["items"]] == [f"P{i}" for i in range(25, 15, -1)]  # newest first
    assert first.headers["X-Total-Count"] == "25" and 'rel="next"' in first.headers["Link"]
    item = body["items"][0]
    assert (item["kind"], item["unread"], item["user_id"], item["worker_name"]) == ("volunteered", True, "tinghu",
                                                                                  "王建国")
    assert item["text"] == "王建国 报名对接「注塑件缩痕25」,请确认或婉拒"
    assert item["at"] == "2026-11-20T09:30:24+08:00"
    last = client.get(f"{API}?per_page=10&page=3&lang=en").get_json()
    assert [n["problem_id"] for n in last["items"]] == [f"P{i}" for i in range(5, 0, -1)]
    assert last["items"][0]["text"] == "王建国 volunteered for “注塑件缩痕5”: please confirm or decline"
    assert client.get(f"{API}?per_page=10&page=4").get_json()["items"] == []  # past the end: empty, not an error

    newest = [n["id"] for n in body["items"][:2]]
    marked = client.post(f"{API}/read", json={"ids": newest}, headers=headers)
    assert marked.status_code == 200 and marked.get_json() == {"marked": 2, "unread": 23}
    assert client.post(f"{API}/read", json={"ids": newest}, headers=headers).get_json() == {"marked": 0, "unread": 23}
    assert store.get_node("Notification", newest[0])["read_at"]
    unread = client.get(f"{API}?unread=true&per_page=100").get_json()
    assert unread["total"] == 23 and newest[0] not in {n["id"] for n in unread["items"]}
    read = client.get(f"{API}?unread=false").get_json()
    assert [n["id"] for n in read["items"]] == newest and read["unread"] == 23  # the count ignores the filter
    everything = client.post(f"{API}/read", json={"all": True}, headers=headers)
    assert everything.get_json() == {"marked": 23, "unread": 0}
    assert client.get(API).get_json()["unread"] == 0
    assert_problem(client.post(f"{API}/read", json={"all": True}), 403, slug="csrf")  # a session write needs it


def test_a_worker_sees_and_marks_only_their_own(store: GraphStore) -> None:
    sel = _volunteer_all(store, 2)
    sel.invite("P10", "W1", actor="tinghu")
    sel.invite("P11", "W2", actor="tinghu")
    app = make_app(store)
    wang, headers = login_as(app, store, "worker", username="wang")
    mine = wang.get(API).get_json()
    assert [(n["kind"], n["problem_id"]) for n in mine["items"]] == [("invited", "P10")]
    assert mine["unread"] == 1 and wang.get(f"{API}?worker_id=W1").status_code == 200  # their own worker id
    assert_problem(wang.get(f"{API}?user=tinghu"), 403, slug="forbidden")
    assert_problem(wang.get(f"{API}?worker_id=W2"), 403, slug="forbidden")
    theirs = store.list_nodes("Notification", where={"user_id": "li"})[0]["id"]
    response = wang.post(f"{API}/read", json={"ids": [theirs]}, headers=headers)
    assert_problem(response, 404, slug="not-found")  # someone else's is as unknown as a missing one
    assert store.get_node("Notification", theirs)["unread"] is True
    assert_problem(wang.post(f"{API}/read", json={"all": True, "user": "li"}, headers=headers), 403)
    mixed = [mine["items"][0]["id"], theirs]
    assert_problem(wang.post(f"{API}/read", json={"ids": mixed}, headers=headers), 404)
    assert store.get_node("Notification", mixed[0])["unread"] is True  # nothing marked when one id is refused
    viewer, _ = login_as(app, store, "viewer", username="viewer")
    assert viewer.get(API).get_json() == {"items": [], "total": 0, "page": 1, "per_page": 20, "unread": 0}


def test_api_keys_read_by_user_or_worker_and_mark_with_the_write_scope(store: GraphStore) -> None:
    sel = _volunteer_all(store, 3)
    sel.invite("P10", "W1", actor="tinghu")
    app = make_app(store)
    client = app.test_client()
    read = {"X-API-Key": create_api_key(store, name="平台只读", scope="read").key}
    write = {"X-API-Key": create_api_key(store, name="平台", scope="write").key}
    everyone = client.get(API, headers=read).get_json()
    assert everyone["total"] == 4 and everyone["unread"] == 4
    by_user = client.get(f"{API}?user=wang", headers=read).get_json()
    by_worker = client.get(f"{API}?worker_id=W1", headers=read).get_json()
    assert by_user == by_worker and [n["kind"] for n in by_user["items"]] == ["invited"]
    assert client.get(f"{API}?worker_id=W1&user=tinghu", headers=read).get_json()["total"] == 0
    assert client.get(f"{API}?user=nobody", headers=read).get_json()["total"] == 0
    assert_problem(client.post(f"{API}/read", json={"all": True, "user": "wang"}, headers=read), 403)
    missing_user = assert_problem(client.post(f"{API}/read", json={"all": True}, headers=write), 422)
    assert [e["field"] for e in missing_user["errors"]] == ["body.user"]
    assert_problem(client.post(f"{API}/read", json={"all": True, "user": "nobody"}, headers=write), 404)
    tinghus = [n["id"] for n in client.get(f"{API}?user=tinghu", headers=read).get_json()["items"]]
    assert_problem(client.post(f"{API}/read", json={"ids": tinghus[:1], "user": "wang"}, headers=write), 404)
    done = client.post(f"{API}/read", json={"ids": tinghus[:2], "user": "tinghu"}, headers=write)
    assert done.status_code == 200 and done.get_json() == {"marked": 2, "unread": 1}
    assert client.get(API, headers=read).get_json()["unread"] == 2


@pytest.mark.parametrize(("method", "query", "body", "field"), [
    ("GET", "?per_page=0", None, "query.per_page"),
    ("GET", "?per_page=101", None, "query.per_page"),
    ("GET", "?unread=maybe", None, "query.unread"),
    ("POST", "", {}, "body.ids"),
    ("POST", "", {"ids": []}, "body.ids"),
    ("POST", "", {"ids": ["N-1"], "all": True}, "body.ids"),
    ("POST", "", {"all": "yes"}, "body.all"),
    ("POST", "", {"ids": ["a/b"]}, "body.ids.0"),
    ("POST", "", {"all": True, "colour": "red"}, "body.colour"),
])
def test_bad_input_is_a_422_naming_the_field(store: GraphStore, method: str, query: str, body: Any,
                                              field: str) -> None:
    app = make_app(store)
    client, headers = login_as(app, store, "district", district="亭湖区", username="tinghu")
    response = client.open(f"{API}{'/read' if method == 'POST' else ''}{query}", method=method, json=body,
                           headers=headers)
    problem = assert_problem(response, 422, slug="validation")
    assert field in [e["field"] for e in problem["errors"]], problem["errors"]


def test_the_openapi_document_describes_both_routes() -> None:
    spec = make_app(MemoryStore()).test_client().get("/api/v1/openapi.json").get_json()
    listing, marking = spec["paths"][API]["get"], spec["paths"][f"{API}/read"]["post"]
    assert listing["tags"] == marking["tags"] == ["notifications"]
    assert "notifications" in {t["name"] for t in spec["tags"]}
    params = {p["name"] for p in listing["parameters"]}
    assert {"page", "per_page", "unread", "user", "worker_id", "lang"} <= params
    schemas = spec["components"]["schemas"]
    page = listing["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert {"items", "total", "unread"} <= set(schemas[page]["properties"])
    assert {"403", "422", "401"} <= set(listing["responses"])
    body = marking["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schemas[body]["properties"]) == {"ids", "all", "user"}
    assert {"404", "422"} <= set(marking["responses"])


def test_the_api_the_mail_and_the_pages_say_the_same_sentence() -> None:
    """One English sentence per kind: the API's and the e-mails' (workflow.notifications) and the pages' catalogue."""
    from flask_babel import force_locale

    from web.ui.notices import notice_text
    from workflow.notifications import KINDS, message_text

    app = make_app(MemoryStore())
    values = {"problem_title": "主轴异响", "worker_name": "王建国", "reason": "出差"}
    with app.test_request_context("/"):
        for lang in ("zh", "en"):
            with force_locale(lang):
                for kind in KINDS:
                    page = notice_text({"kind": kind, **values})
                    assert page == message_text(kind, problem="主轴异响", worker="王建国", reason="出差", lang=lang)


def test_a_worker_with_two_logins_is_listed_as_one_inbox(store: GraphStore) -> None:
    """``worker_id`` for a key: every user linked to the worker, merged newest first, paged and counted together."""
    store.apply(WriteBatch(nodes=[NodeRow("User", "wang2", {"role": "worker", "worker_id": "W1", "active": True})]))
    clock = Clock(NOW)
    sel = Selection(store, clock=clock)
    for i in (10, 11, 12):
        sel.invite(f"P{i}", "W1", actor="tinghu")
        clock.advance(seconds=1)
    app = make_app(store)
    read = {"X-API-Key": create_api_key(store, name="平台只读", scope="read").key}
    client = app.test_client()
    both = client.get(f"{API}?worker_id=W1&per_page=4", headers=read).get_json()
    assert (both["total"], both["unread"]) == (6, 6)
    assert [(n["problem_id"], n["user_id"]) for n in both["items"]][:2] in (
        [("P12", "wang"), ("P12", "wang2")], [("P12", "wang2"), ("P12", "wang")])
    rest = client.get(f"{API}?worker_id=W1&per_page=4&page=2", headers=read).get_json()
    assert {n["problem_id"] for n in rest["items"]} == {"P10"}
    wang2, headers = login_as(app, store, "worker", username="wang2")
    assert wang2.post(f"{API}/read", json={"all": True}, headers=headers).get_json() == {"marked": 3, "unread": 0}
    after = client.get(f"{API}?worker_id=W1&unread=false", headers=read).get_json()
    assert (after["total"], after["unread"]) == (3, 3) and {n["user_id"] for n in after["items"]} == {"wang2"}
