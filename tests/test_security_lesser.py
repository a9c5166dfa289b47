"""Issue 16, finding 9 (lesser findings): a safe id alphabet at the API and import boundaries, the skills
field keeps ``/``, ``Cache-Control: no-store`` on pages and API answers, one ``charset`` in the CSV type.

Real app, real embedded store; no stand-ins.
"""

from __future__ import annotations

import io
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest

from graph.dataset import read_dataset
from graph.sheet_import import validate
from graph.spreadsheet import read_table
from graph.store import GraphStore
from tests import api_support
from tests.api_support import assert_problem, keys, login_as, make_app
from web.row_issues import problem_text

demo_dir = api_support.demo_dir
store = api_support.store
keys = keys  # the fixture, imported for pytest

UNSAFE_IDS = ["..\\..\\win", "P'; DROP", "W1\u202egnp.exe", "a/b", "..", ".hidden", "-rf", "W 1", 'W"1', "W\u200b1"]
SAFE_IDS = ["W-盐城_01.a", "工匠0001", "_x"]


@pytest.fixture
def app(store: GraphStore) -> Any:
    return make_app(store)


def _token(client: Any, path: str) -> str:
    html = client.get(path).get_data(as_text=True)
    return re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', html).group(1)  # type: ignore[union-attr]


@pytest.mark.parametrize("bad", UNSAFE_IDS)
def test_api_refuses_ids_outside_the_safe_alphabet(app: Any, keys: dict, store: GraphStore, bad: str) -> None:
    client = app.test_client()
    enterprise = next(iter(store.iter_nodes("Enterprise")))
    for path, body in (("/api/v1/workers", {"id": bad, "name": "王师傅", "district": enterprise["district"]}),
                       ("/api/v1/enterprises", {"id": bad, "name": "某公司", "district": enterprise["district"]}),
                       ("/api/v1/problems", {"id": bad, "title": "主轴异响", "enterprise_id": enterprise["id"]})):
        problem = assert_problem(client.post(path, headers=keys["write"], json=body), 422, slug="validation")
        assert problem["errors"][0]["field"] == "body.id", problem
        assert "只能包含字母(含汉字)、数字和 - _ ." in problem["errors"][0]["message"]
    for label in ("Worker", "Enterprise", "Problem"):
        assert store.get_node(label, bad) is None


def test_api_accepts_ids_in_the_safe_alphabet(app: Any, keys: dict, store: GraphStore) -> None:
    client = app.test_client()
    district = next(iter(store.iter_nodes("Enterprise")))["district"]
    for good in SAFE_IDS:
        response = client.post("/api/v1/workers", headers=keys["write"],
                               json={"id": good, "name": "王师傅", "district": district})
        assert response.status_code == 201, response.get_data(as_text=True)
        assert store.get_node("Worker", good) is not None


def test_api_refuses_skill_names_with_separators_quotes_or_bidi_controls(app: Any, keys: dict) -> None:
    client = app.test_client()
    for bad in ("焊接\u202e", "a/b", "a\\b", "P'; DROP", " 焊接"):
        problem = assert_problem(client.post("/api/v1/skills", headers=keys["write"], json={"name": bad}), 422)
        assert problem["errors"][0]["field"] == "body.name", problem
    for good in ("C++", "PLC 编程", "数控车床(CNC)"):
        response = client.post("/api/v1/skills", headers=keys["write"], json={"name": good})
        assert response.status_code == 201, response.get_data(as_text=True)


def test_nodes_stored_before_the_rule_can_still_be_updated(app: Any, keys: dict, store: GraphStore) -> None:
    store.create_node("Worker", "W legacy", {"name": "老数据"})
    response = app.test_client().patch("/api/v1/workers/W%20legacy", headers=keys["write"], json={"name": "新名字"})
    assert response.status_code == 200, response.get_data(as_text=True)
    assert (store.get_node("Worker", "W legacy") or {})["name"] == "新名字"


def test_imports_refuse_ids_outside_the_safe_alphabet(store: GraphStore) -> None:
    district = next(iter(store.iter_nodes("District")))["id"]
    rows = "".join(f'"{bad.replace(chr(34), chr(34) * 2)}",王师傅,{district}\n' for bad in UNSAFE_IDS)
    data = f"编号,姓名,区县\n{rows}W-ok,赵师傅,{district}\n".encode()
    preview = validate(store, "workers", read_table("workers.csv", data))
    assert [row["id"] for row in preview.rows] == ["W-ok"]
    assert preview.bad_rows == len(UNSAFE_IDS)
    reasons = [problem_text(p) for p in preview.problems]
    assert all("“编号”只能包含字母(含汉字)、数字和 - _ ." in r for r in reasons), reasons
    assert "\u202e" not in " ".join(reasons)  # shown as \u202e, not applied
    # the dataset loader behind `jianglian load` refuses them too
    with tempfile.TemporaryDirectory() as tmp:
        Path(tmp, "workers.jsonl").write_text('{"id": "..\\\\..\\\\win", "name": "王"}\n', encoding="utf-8")
        Path(tmp, "problems.jsonl").write_text("", encoding="utf-8")
        errors = read_dataset(tmp).errors
    assert len(errors) == 1 and errors[0].reason.startswith('"id" must hold only letters'), errors


def test_the_skills_field_keeps_slashes(app: Any, store: GraphStore) -> None:
    client, _ = login_as(app, store, "admin")
    enterprise = next(iter(store.iter_nodes("Enterprise")))
    response = client.post("/problems/new", data={
        "csrf_token": _token(client, "/problems/new"), "title": "斜杠", "description": "技能里有斜杠",
        "enterprise_id": enterprise["id"], "service_type": "技术帮扶", "district": enterprise["district"],
        "skills": "<b>bold</b>、CAD/CAM", "new_skills": "y"})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    created = [p for p in store.iter_nodes("Problem") if p.get("title") == "斜杠"]
    assert len(created) == 1 and created[0]["skills"] == ["<b>bold</b>", "CAD/CAM"], created


def test_pages_and_api_answers_are_not_stored_by_caches(app: Any, keys: dict, store: GraphStore) -> None:
    worker = next(iter(store.iter_nodes("Worker")))
    api = app.test_client()
    for response in (api.get(f"/api/v1/workers/{worker['id']}", headers=keys["write"]),
                     api.get("/api/v1/workers", headers=keys["read"]),
                     api.get("/api/v1/workers/nope", headers=keys["read"]),
                     api.get("/api/v1/workers")):  # 401
        assert response.headers.get("Cache-Control") == "no-store", (response.status_code, response.headers)
    client, _ = login_as(app, store, "admin")
    page = client.get(f"/workers/{worker['id']}")
    assert page.status_code == 200 and page.headers.get("Cache-Control") == "no-store"
    static = client.get("/static/css/jianglian.css")
    assert static.status_code == 200 and "no-store" not in static.headers.get("Cache-Control", "")


def test_the_csv_export_names_its_charset_once(app: Any, store: GraphStore) -> None:
    client, _ = login_as(app, store, "admin")
    response = client.get("/export/workers.csv")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Cache-Control"] == "no-store"
    assert io.BytesIO(response.data).read(3) == b"\xef\xbb\xbf"
