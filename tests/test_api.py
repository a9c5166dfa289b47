"""JSON API: resources (list with filters and pagination, get, create, update), problem+json errors,
body limits, malformed bodies, injection strings stored verbatim, security headers."""

from __future__ import annotations

import json
from typing import Any

import pytest

from graph.store import GraphStore

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import assert_problem, make_app  # noqa: E402

pytest_plugins = ["tests.api_support"]

INJECTIONS = [
    "'}) MATCH (n) DETACH DELETE n //",
    "\" OR 1=1 --; CALL dbms.shutdown()",
    "<script>alert('x')</script>",
    "<img src=x onerror=alert(1)>&amp;&lt;",
    "${7*7}{{7*7}}",
    "王师傅\u202e隐藏",  # control characters are refused instead (tests/test_security_inputs.py)
]


# -- list / get -----------------------------------------------------------------------------------
@pytest.mark.parametrize("path,label", [("workers", "Worker"), ("enterprises", "Enterprise"),
                                        ("problems", "Problem"), ("skills", "Skill"),
                                        ("industry-chains", "IndustryChain")])
def test_list_paginates_with_total_and_links(api_app: Any, keys: dict, store: GraphStore, path: str,
                                             label: str) -> None:
    client = api_app.test_client()
    total = store.count_nodes(label)
    first = client.get(f"/api/v1/{path}?per_page=7", headers=keys["read"])
    assert first.status_code == 200
    body = first.get_json()
    assert body["total"] == total and int(first.headers["X-Total-Count"]) == total
    assert body["page"] == 1 and body["per_page"] == 7 and len(body["items"]) == min(7, total)
    assert 'rel="next"' in first.headers["Link"] and 'rel="last"' in first.headers["Link"]
    second = client.get(f"/api/v1/{path}?per_page=7&page=2", headers=keys["read"]).get_json()
    ids_1 = [i["id"] for i in body["items"]]
    ids_2 = [i["id"] for i in second["items"]]
    assert not set(ids_1) & set(ids_2)
    assert ids_1 + ids_2 == [n["id"] for n in store.list_nodes(label, limit=14)]
    beyond = client.get(f"/api/v1/{path}?per_page=100&page=999", headers=keys["read"]).get_json()
    assert beyond["items"] == [] and beyond["total"] == total
    one = client.get(f"/api/v1/{path}/{ids_1[0]}", headers=keys["read"])
    assert one.status_code == 200 and one.get_json()["id"] == ids_1[0]


def test_list_filters(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    got = client.get("/api/v1/workers?district=亭湖区&per_page=100", headers=keys["read"]).get_json()
    expected = [w["id"] for w in store.list_nodes("Worker", where={"district": "亭湖区"})]
    assert [w["id"] for w in got["items"]] == expected and expected
    skill = store.list_nodes("Worker", limit=1)[0]["skills"][0]
    got = client.get("/api/v1/workers", query_string={"skill": skill, "per_page": 100}, headers=keys["read"])
    assert got.get_json()["items"] and all(skill in w["skills"] for w in got.get_json()["items"])
    open_ = client.get("/api/v1/problems?status=open&per_page=100", headers=keys["read"]).get_json()
    assert open_["total"] > 0 and all(p["status"] == "open" for p in open_["items"])
    tagged = client.get("/api/v1/problems", query_string={"tag": "专精特新", "per_page": 100},
                        headers=keys["read"]).get_json()
    enterprises = {e["id"]: e for e in store.iter_nodes("Enterprise")}
    assert all("专精特新" in enterprises[p["enterprise_id"]].get("tags", []) for p in tagged["items"])
    q = client.get("/api/v1/enterprises", query_string={"unionised": "false", "per_page": 100},
                   headers=keys["read"]).get_json()
    assert all(e["unionised"] is False for e in q["items"])


def test_list_validation_lists_each_bad_query_field(api_app: Any, keys: dict) -> None:
    response = api_app.test_client().get("/api/v1/workers?page=0&per_page=1000&active=perhaps",
                                         headers=keys["read"])
    body = assert_problem(response, 422, slug="validation")
    assert {e["field"] for e in body["errors"]} == {"query.page", "query.per_page", "query.active"}


def test_get_unknown_is_404_problem(api_app: Any, keys: dict) -> None:
    for path in ("workers", "enterprises", "problems", "skills", "industry-chains"):
        assert_problem(api_app.test_client().get(f"/api/v1/{path}/nope", headers=keys["read"]), 404,
                       slug="not-found")


# -- create / update ------------------------------------------------------------------------------
def test_create_worker_derives_relationships_and_location(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    enterprise = store.list_nodes("Enterprise", limit=1)[0]["id"]
    response = client.post("/api/v1/workers", headers=keys["write"], json={
        "id": "W-new", "name": "新师傅", "skills": ["焊接", "全新技能"], "district": "亭湖区",
        "employer_id": enterprise, "contact": "13800000000", "capacity": 3})
    assert response.status_code == 201, response.get_json()
    assert response.headers["Location"].endswith("/api/v1/workers/W-new")
    assert response.get_json()["contact"] == "13800000000"
    rels = {(r.type, r.end_id) for t in ("HAS_SKILL", "LOCATED_IN", "EMPLOYED_BY")
            for r in store.relationships(t, start=("Worker", "W-new"))}
    assert rels == {("HAS_SKILL", "焊接"), ("HAS_SKILL", "全新技能"), ("LOCATED_IN", "亭湖区"),
                    ("EMPLOYED_BY", enterprise)}
    assert store.get_node("Skill", "全新技能") is not None  # implicit node created with the row
    again = client.post("/api/v1/workers", headers=keys["write"], json={"id": "W-new", "name": "重复"})
    assert_problem(again, 409, slug="duplicate")


def test_update_merges_clears_and_replaces_relationships(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    client.post("/api/v1/workers", headers=keys["write"],
                json={"id": "W-up", "name": "改师傅", "skills": ["焊接"], "district": "亭湖区", "team": "t1"})
    response = client.patch("/api/v1/workers/W-up", headers=keys["write"],
                            json={"skills": ["PLC编程"], "district": "盐都区", "team": None})
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["name"] == "改师傅" and body["skills"] == ["PLC编程"] and "team" not in body
    assert [r.end_id for r in store.relationships("HAS_SKILL", start=("Worker", "W-up"))] == ["PLC编程"]
    assert [r.end_id for r in store.relationships("LOCATED_IN", start=("Worker", "W-up"))] == ["盐都区"]
    assert_problem(client.patch("/api/v1/workers/nope", headers=keys["write"], json={"name": "x"}), 404)


def test_create_problem_defaults_and_reference_checks(api_app: Any, keys: dict, store: GraphStore) -> None:
    client = api_app.test_client()
    enterprise = store.list_nodes("Enterprise", limit=1)[0]
    created = client.post("/api/v1/problems", headers=keys["write"], json={
        "title": "数控机床主轴异响", "skills": ["数控加工"], "enterprise_id": enterprise["id"],
        "service_type": "技术帮扶"})
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["district"] == enterprise["district"] and body["status"] == "open" and body["posted_at"]
    posted = store.relationships("POSTED", end=("Problem", body["id"]))
    assert [(r.start_label, r.start_id) for r in posted] == [("Enterprise", enterprise["id"])]
    bad = client.post("/api/v1/problems", headers=keys["write"], json={
        "title": "x", "enterprise_id": "E-missing", "service_type": "算命", "demand": 0, "posted_at": "yesterday"})
    errors = {e["field"] for e in assert_problem(bad, 422, slug="validation")["errors"]}
    assert errors == {"body.service_type", "body.demand", "body.posted_at"}
    dangling = client.post("/api/v1/problems", headers=keys["write"], json={"title": "x", "enterprise_id": "E-missing"})
    assert [e["field"] for e in assert_problem(dangling, 422)["errors"]] == ["body.enterprise_id"]
    empty = client.post("/api/v1/problems", headers=keys["write"], json={"skills": ["焊接"]})
    assert [e["field"] for e in assert_problem(empty, 422)["errors"]] == ["body.title"]


def test_create_validation_lists_each_bad_field(api_app: Any, keys: dict) -> None:
    response = api_app.test_client().post("/api/v1/workers", headers=keys["write"], json={
        "name": "", "capacity": "3", "active": "maybe", "skills": "焊接", "id": "a/b", "unknown": 1})
    body = assert_problem(response, 422, slug="validation")
    fields = {e["field"] for e in body["errors"]}
    assert fields == {"body.name", "body.capacity", "body.active", "body.skills", "body.id", "body.unknown"}
    assert "6" in body["detail"]


@pytest.mark.parametrize("path,payload", [
    ("enterprises", {"id": "E-new", "name": "新企业", "district": "亭湖区", "industry_chain": "新能源",
                     "tags": ["专精特新"], "unionised": False}),
    ("skills", {"name": "激光熔覆再制造", "category": "焊接", "aliases": ["熔覆"], "chain_ids": ["新能源"]}),
    ("industry-chains", {"name": "低空经济"}),
])
def test_create_and_update_other_resources(api_app: Any, keys: dict, store: GraphStore, path: str,
                                           payload: dict) -> None:
    client = api_app.test_client()
    created = client.post(f"/api/v1/{path}", headers=keys["write"], json=payload)
    assert created.status_code == 201, created.get_json()
    node_id = created.get_json()["id"]
    assert client.get(created.headers["Location"], headers=keys["read"]).get_json()["id"] == node_id
    patch = {"enterprises": {"unionised": True}, "skills": {"category": "连接"},
             "industry-chains": {"description": "新兴产业链"}}[path]
    updated = client.patch(f"/api/v1/{path}/{node_id}", headers=keys["write"], json=patch)
    assert updated.status_code == 200, updated.get_json()
    assert all(updated.get_json()[k] == v for k, v in patch.items())
    if path == "enterprises":
        assert {r.end_id for r in store.relationships("IN_CHAIN", start=("Enterprise", node_id))} == {"新能源"}
    if path == "skills":
        assert {r.end_id for r in store.relationships("IN_CHAIN", start=("Skill", node_id))} == {"新能源"}


def test_contact_is_private(api_app: Any, keys: dict, store: GraphStore) -> None:
    worker = next(w for w in store.iter_nodes("Worker") if w.get("contact"))
    client = api_app.test_client()
    assert "contact" not in client.get(f"/api/v1/workers/{worker['id']}", headers=keys["read"]).get_json()
    listed = client.get("/api/v1/workers?per_page=100", headers=keys["read"]).get_json()["items"]
    assert not any("contact" in w for w in listed)
    assert client.get(f"/api/v1/workers/{worker['id']}", headers=keys["write"]).get_json()["contact"] == \
        worker["contact"]


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", INJECTIONS)
def test_injection_strings_are_stored_and_returned_verbatim(api_app: Any, keys: dict, store: GraphStore,
                                                            text: str) -> None:
    client = api_app.test_client()
    counts_before = store.counts()
    response = client.post("/api/v1/problems", headers=keys["write"], json={
        "title": text, "description": text, "skills": [text]})
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["title"] == text and body["description"] == text and body["skills"] == [text]
    node = store.get_node("Problem", body["id"])
    assert node is not None and node["title"] == text and node["description"] == text
    assert store.get_node("Skill", text) is not None
    fetched = client.get(f"/api/v1/problems/{body['id']}", headers=keys["read"])
    assert fetched.get_json()["title"] == text
    assert fetched.mimetype == "application/json"  # never sniffed as HTML (nosniff is set)
    assert fetched.headers["X-Content-Type-Options"] == "nosniff"
    after = store.counts()  # nothing else was touched: one problem, maybe one skill more
    assert after["Worker"] == counts_before["Worker"] and after["Enterprise"] == counts_before["Enterprise"]
    created = client.post("/api/v1/workers", headers=keys["write"], json={"name": text, "studio": text})
    assert created.status_code == 201 and created.get_json()["name"] == text


def test_very_long_chinese_text_round_trips(api_app: Any, keys: dict, store: GraphStore) -> None:
    text = ("匠心筑梦技能报国" * 12_500)[:100_000]
    client = api_app.test_client()
    response = client.post("/api/v1/problems", headers=keys["write"], json={"title": "长文本", "description": text})
    assert response.status_code == 201
    problem_id = response.get_json()["id"]
    assert store.get_node("Problem", problem_id)["description"] == text
    assert client.get(f"/api/v1/problems/{problem_id}", headers=keys["read"]).get_json()["description"] == text


def test_malformed_utf8_and_json_are_400(api_app: Any, keys: dict) -> None:
    client = api_app.test_client()
    headers = {**keys["write"], "Content-Type": "application/json"}
    for raw in (b'{"name": "\xff\xfe\xfd"}', b'\xc3\x28', b'{"name": '):
        response = client.post("/api/v1/workers", data=raw, headers=headers)
        assert_problem(response, 400, slug="malformed-body")


def test_body_over_limit_is_413(api_app: Any, keys: dict) -> None:
    client = api_app.test_client()
    big = json.dumps({"title": "x", "description": "长" * 400_000}, ensure_ascii=False).encode()
    assert len(big) > api_app.config["MAX_CONTENT_LENGTH"]
    response = client.post("/api/v1/problems", data=big, headers={**keys["write"], "Content-Type": "application/json"})
    assert_problem(response, 413, slug="payload-too-large")


def test_unknown_route_and_method_are_json_under_api(api_app: Any, keys: dict) -> None:
    client = api_app.test_client()
    assert_problem(client.get("/api/v1/nothing-here", headers=keys["read"]), 404, slug="route-not-found")
    response = client.delete("/api/v1/workers", headers=keys["write"])
    assert_problem(response, 405, slug="method-not-allowed")
    assert "GET" in response.headers["Allow"]
    assert client.get("/no-such-page").mimetype == "text/html"  # the pages keep HTML errors


def test_detail_language_follows_accept_language_and_lang(api_app: Any) -> None:
    client = api_app.test_client()
    zh = assert_problem(client.get("/api/v1/workers"), 401)
    en = assert_problem(client.get("/api/v1/workers", headers={"Accept-Language": "en-US,en;q=0.9"}), 401)
    forced = assert_problem(client.get("/api/v1/workers?lang=en", headers={"Accept-Language": "zh-CN"}), 401)
    assert "密钥" in zh["detail"] and "API key" in en["detail"] and forced["detail"] == en["detail"]
    assert zh["title"] == en["title"] == "Unauthenticated"


def test_the_site_language_cookie_chooses_the_detail_language_before_accept_language(api_app: Any) -> None:
    client = api_app.test_client()
    client.set_cookie("lang", "en")
    en = assert_problem(client.get("/api/v1/workers", headers={"Accept-Language": "zh-CN"}), 401)
    zh = assert_problem(client.get("/api/v1/workers?lang=zh", headers={"Accept-Language": "en"}), 401)
    assert "API key" in en["detail"] and "密钥" in zh["detail"]


def test_security_headers_on_every_response(api_app: Any, keys: dict) -> None:
    client = api_app.test_client()
    for response in (client.get("/api/v1/workers", headers=keys["read"]), client.get("/api/v1/workers"),
                     client.get("/healthz"), client.get("/api/v1/docs"), client.get("/")):
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["Referrer-Policy"] == "same-origin"


def test_session_cookie_flags(store: GraphStore) -> None:
    app = make_app(store, SESSION_COOKIE_SECURE=True)
    response = app.test_client().get("/_test/csrf")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" in cookie


def test_openapi_and_docs_are_local(api_app: Any) -> None:
    client = api_app.test_client()
    spec = client.get("/api/v1/openapi.json").get_json()
    assert spec["components"]["securitySchemes"]["ApiKeyAuth"] == {"type": "apiKey", "in": "header",
                                                                   "name": "X-API-Key"}
    for path in ("/api/v1/recommendations", "/api/v1/problems/{problem_id}/recommendations",
                 "/api/v1/workers/{worker_id}/recommended-problems", "/api/v1/matches/{match_id}/decline",
                 "/api/v1/assignments/plan", "/api/v1/assignments/apply", "/api/v1/stats/targets", "/api/v1/audit"):
        assert path in spec["paths"], path
    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "http://" not in page and "https://" not in page and "<script>" not in page  # no CDN, no inline JS
    for asset in ("/static/vendor/swagger-ui/swagger-ui-bundle.js", "/api/v1/static/docs-init.js"):
        assert asset in page
    assert client.get("/api/v1/static/docs-init.js").status_code == 200


def test_settings_from_the_environment_and_a_persisted_secret(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from graph.memory import MemoryStore
    from web import create_app

    monkeypatch.setenv("JIANGLIAN_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("JIANGLIAN_STORE", "memory")
    monkeypatch.setenv("JIANGLIAN_MAX_CONTENT_LENGTH", "2048")
    first = create_app()
    assert first.config["MAX_CONTENT_LENGTH"] == 2048
    secret = first.config["SECRET_KEY"]
    assert (tmp_path / "secret_key").read_text().strip() == secret and len(secret) == 64
    assert create_app().config["SECRET_KEY"] == secret  # sessions survive a restart
    monkeypatch.setenv("JIANGLIAN_SECRET_KEY", "12345")
    assert create_app().config["SECRET_KEY"] == "12345"
    assert create_app({"STORE": MemoryStore()}).config["SECRET_KEY"] == "12345"


def test_a_row_the_store_refuses_is_explained_in_the_request_s_language(api_app: Any, keys: dict,
                                                                       store: GraphStore) -> None:
    # the worker's stored employer disappears, so saving any edit of the worker's row is refused by
    # graph.dataset.save_row (a DatasetError with an unknown-reference code), not by the request's schema
    worker = next(w for w in store.iter_nodes("Worker") if w.get("employer_id"))
    store.delete_node("Enterprise", worker["employer_id"])
    client = api_app.test_client()
    answers = {}
    for name, headers in {"zh": {}, "en": {"Accept-Language": "en-US,en;q=0.9"}}.items():
        response = client.patch(f"/api/v1/workers/{worker['id']}", headers={**keys["write"], **headers},
                                json={"name": "王师傅（改）"})
        answers[name] = assert_problem(response, 422, slug="validation")
        assert response.headers["Content-Language"] == name
    zh, en = ([e for e in answers[lang]["errors"] if e["field"] == "body.employer_id"] for lang in ("zh", "en"))
    assert len(zh) == len(en) == 1
    assert "不存在的企业" in zh[0]["message"] and worker["employer_id"] in zh[0]["message"]
    assert "does not exist" not in zh[0]["message"]
    assert not any("\u4e00" <= ch <= "\u9fff" for ch in en[0]["message"].replace(worker["employer_id"], ""))
    assert worker["employer_id"] in en[0]["message"]
