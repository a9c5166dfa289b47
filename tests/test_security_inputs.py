"""Issue 16, findings 5 and 6 (inputs): control characters and lone surrogates are refused at the API and
the pages, and bodies that used to be 500s or misread (10^4 levels of nesting, no JSON Content-Type, UTF-16
and other encodings, compressed bodies, integers of more than 4300 digits) are 4xx problems.

Real app, real embedded store; no stand-ins.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import pytest

from graph.store import GraphStore
from tests import api_support
from tests.api_support import assert_problem, keys, login_as, make_app

demo_dir = api_support.demo_dir
store = api_support.store
keys = keys  # the fixture, imported for pytest


@pytest.fixture
def app(store: GraphStore) -> Any:
    return make_app(store)


# -- finding 5: control characters ---------------------------------------------------------------------
@pytest.mark.parametrize("text", ["a\x00b", "a\x07b", "a\x1bb", "a\x0bb"])
def test_api_rejects_control_characters(app: Any, keys: dict, store: GraphStore, text: str) -> None:
    client = app.test_client()
    worker = next(iter(store.iter_nodes("Worker")))
    body = assert_problem(client.patch(f"/api/v1/workers/{worker['id']}", headers=keys["write"], json={"name": text}),
                          422, slug="validation")
    assert body["errors"][0]["field"] == "body.name" and "控制字符" in body["errors"][0]["message"]
    assert_problem(client.post("/api/v1/problems", headers=keys["write"], json={"title": "t", "description": text}),
                   422, slug="validation")
    assert_problem(client.post("/api/v1/recommendations", headers=keys["read"],
                               json={"problem": {"title": text}}), 422, slug="validation")
    assert store.get_node("Worker", worker["id"])["name"] == worker["name"]


def test_api_keeps_tabs_and_newlines_in_long_text(app: Any, keys: dict) -> None:
    client = app.test_client()
    created = client.post("/api/v1/problems", headers=keys["write"],
                          json={"title": "两行\r\n标题", "description": "第一行\n\t第二行"})
    assert created.status_code == 201, created.get_data(as_text=True)
    assert created.get_json()["description"] == "第一行\n\t第二行"
    assert_problem(client.post("/api/v1/workers", headers=keys["write"], json={"name": "王\n师傅"}), 422)


def test_ui_forms_reject_control_characters(app: Any, store: GraphStore) -> None:
    client, _ = login_as(app, store, "admin")
    html = client.get("/problems/new").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    enterprise = next(iter(store.iter_nodes("Enterprise")))
    before = store.count_nodes("Problem")
    response = client.post("/problems/new", data={
        "csrf_token": token, "title": "主轴\x1b异响", "description": "描述", "enterprise_id": enterprise["id"],
        "service_type": "技术帮扶", "skills": "", "district": enterprise["district"]})
    assert response.status_code == 200 and "不能含有控制字符" in response.get_data(as_text=True)
    assert store.count_nodes("Problem") == before


# -- finding 6: bad bodies are 4xx problem documents ---------------------------------------------------
def test_lone_surrogates_are_422_not_500(app: Any, keys: dict, store: GraphStore) -> None:
    client = app.test_client()
    headers = {**keys["write"], "Content-Type": "application/json"}
    before = store.count_nodes("Problem")
    for path, raw in (("/api/v1/problems", '{"title": "\\ud800 主轴"}'),
                      ("/api/v1/workers", '{"name": "王\\udfff"}'),
                      ("/api/v1/recommendations", '{"problem": {"title": "\\ud800"}}'),
                      ("/api/v1/recommendations", '{"problem": {"title": "x"}, "exclude": ["\\ud800"]}')):
        body = assert_problem(client.post(path, data=raw, headers=headers), 422, slug="validation")
        assert "surrogate" in body["errors"][0]["message"], body
    assert store.count_nodes("Problem") == before


@pytest.mark.parametrize("raw", [
    "[" * 10_000 + "]" * 10_000,
    '{"problem": ' + "{\"a\": " * 10_000 + "1" + "}" * 10_001,
    '{"problem": {"title": "x", "skills": ' + "[" * 100 + "]" * 100 + "}}",
])
def test_deeply_nested_json_is_400(app: Any, keys: dict, raw: str) -> None:
    response = app.test_client().post("/api/v1/recommendations", data=raw,
                                      headers={**keys["read"], "Content-Type": "application/json"})
    body = assert_problem(response, 400, slug="json-too-deep")
    assert "64" in body["detail"]


def test_brackets_inside_strings_do_not_count_as_nesting(app: Any, keys: dict) -> None:
    text = "[" * 500 + '\\"' + "{" * 500
    response = app.test_client().post("/api/v1/problems", headers=keys["write"],
                                      json={"title": "括号", "description": json.loads(f'"{text}"')})
    assert response.status_code == 201, response.get_data(as_text=True)[:300]


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_a_body_that_is_not_declared_json_is_415(app: Any, keys: dict, content_type: str | None) -> None:
    client = app.test_client()
    headers = dict(keys["write"]) | ({"Content-Type": content_type} if content_type else {})
    response = client.post("/api/v1/problems", data=json.dumps({"title": "主轴异响"}), headers=headers)
    body = assert_problem(response, 415, slug="unsupported-media-type")
    assert "application/json" in body["detail"]
    ok = client.post("/api/v1/problems", data=json.dumps({"title": "主轴异响"}),
                     headers={**keys["write"], "Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 201


@pytest.mark.parametrize(("encoding", "content_type", "named"), [
    ("utf-16", "application/json; charset=utf-16", "UTF-16"),
    ("utf-16", "application/json", "UTF-16"),  # a byte-order mark says so
    ("utf-16-le", "application/json", "UTF-16 or UTF-32"),  # no mark: the NUL bytes do
    ("utf-32", "application/json", "UTF-32"),
    ("utf-8-sig", "application/json", "BOM"),
    ("gb18030", "application/json; charset=GB18030", "GB18030"),
])
def test_a_body_in_another_encoding_is_400_naming_it(app: Any, keys: dict, store: GraphStore, encoding: str,
                                                     content_type: str, named: str) -> None:
    client = app.test_client()
    before = store.count_nodes("Problem")
    for path, headers in (("/api/v1/problems", keys["write"]), ("/api/v1/recommendations", keys["read"])):
        raw = json.dumps({"title": "主轴异响", "problem": {"title": "主轴异响"}}, ensure_ascii=False).encode(encoding)
        body = assert_problem(client.post(path, data=raw, headers={**headers, "Content-Type": content_type}), 400,
                              slug="malformed-body")
        assert "UTF-8" in body["detail"] and named in body["detail"], body
    assert store.count_nodes("Problem") == before
    # a declared charset is otherwise ignored (RFC 8259: JSON is UTF-8): an ASCII body under latin-1 is read
    ok = client.post("/api/v1/problems", data=b'{"title": "spindle"}',
                     headers={**keys["write"], "Content-Type": "application/json; charset=ISO-8859-1"})
    assert ok.status_code == 201, ok.get_data(as_text=True)


@pytest.mark.parametrize("coding", ["gzip", "deflate", "br"])
def test_a_compressed_body_is_415(app: Any, keys: dict, store: GraphStore, coding: str) -> None:
    before = store.count_nodes("Problem")
    response = app.test_client().post("/api/v1/problems", data=json.dumps({"title": "主轴异响"}),
                                      headers={**keys["write"], "Content-Type": "application/json",
                                               "Content-Encoding": coding})
    body = assert_problem(response, 415, slug="unsupported-media-type")
    assert coding in body["detail"]
    assert store.count_nodes("Problem") == before


@pytest.mark.parametrize("raw", [
    "9" * 4301,
    '{"title": "t", "demand": -' + "9" * 5000 + "}",
    '{"problem": {"title": "t"}, "top_k": ' + "1" * 10_000 + "}",
])
def test_an_integer_too_long_to_convert_is_400_not_500(app: Any, keys: dict, raw: str) -> None:
    for path in ("/api/v1/problems", "/api/v1/recommendations"):
        response = app.test_client().post(path, data=raw, headers={**keys["write"], "Content-Type": "application/json"})
        body = assert_problem(response, 400, slug="malformed-body")
        assert "4300" in body["detail"], body


def test_a_csv_cell_over_the_csv_field_limit_is_a_clear_upload_error(app: Any, store: GraphStore) -> None:
    client, _ = login_as(app, store, "city")
    html = client.get("/import").get_data(as_text=True)
    token = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    data = ("编号,姓名,区县\nW-big," + "长" * 200_000 + ",亭湖区\n").encode("utf-8")
    response = client.post("/import", data={"csrf_token": token, "kind": "workers",
                                            "file": (io.BytesIO(data), "workers.csv")},
                           content_type="multipart/form-data")
    assert response.status_code == 200
    assert "CSV 文件无法读取:单元格过大或格式有误" in response.get_data(as_text=True)
    assert store.get_node("Worker", "W-big") is None
