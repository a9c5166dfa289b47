"""Import/export traps (issue 14, item 5): the template's example row is an obviously-sample id that is
skipped, so uploading the template unchanged writes nothing; the preview separates new rows from updates and
shows each changed field; an update keeps what the sheet does not hold (columns, blank cells and the
relationships derived from them); exports write the labels the template uses (全国, 副队长, 待对接...).

Real embedded store over the demo dataset (scale 0.1), real app through the Flask test client.
"""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

import pytest
from openpyxl import load_workbook

from graph.sheet_import import validate
from graph.spreadsheet import SAMPLE_IDS, export_csv, export_rows, read_table, template_workbook
from graph.store import GraphStore
from tests import api_support
from tests.api_support import login_as, make_app
from web.ui.queries import districts

demo_dir = api_support.demo_dir
store = api_support.store


def _token(client: Any, url: str) -> str:
    page = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', page)
    assert match
    return match.group(1)


def _upload(client: Any, kind: str, filename: str, data: bytes) -> str:
    response = client.post("/import", data={"csrf_token": _token(client, "/import"), "kind": kind,
                                             "file": (io.BytesIO(data), filename)},
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return str(response.headers["Location"])


def _apply(client: Any, preview_url: str) -> dict[str, Any]:
    assert client.post(f"{preview_url}/apply", data={"csrf_token": _token(client, preview_url)}).status_code == 302
    for _ in range(200):
        status = client.get(f"{preview_url}/progress").get_json()
        if status["state"] != "running":
            return dict(status)
        time.sleep(0.05)
    raise AssertionError("import did not finish")


@pytest.mark.parametrize("kind", ["workers", "enterprises", "problems"])
def test_uploading_the_template_unchanged_writes_nothing(store: GraphStore, kind: str) -> None:
    template = template_workbook(kind)
    sheet = load_workbook(io.BytesIO(template)).worksheets[0]
    sample_id = sheet.cell(row=2, column=1).value
    assert sample_id == SAMPLE_IDS[kind] and sample_id.startswith("示例")
    label = {"workers": "Worker", "enterprises": "Enterprise", "problems": "Problem"}[kind]
    assert store.get_node(label, sample_id) is None
    client, _ = login_as(make_app(store), store, "city")
    before = store.count_nodes(label)
    page = client.get(_upload(client, kind, f"{kind}-template.xlsx", template)).get_data(as_text=True)
    assert 'data-testid="valid-count">0<' in page and 'data-testid="apply-import"' not in page
    assert f"这是模板的示例行(编号 {sample_id}),已跳过" in page
    assert store.count_nodes(label) == before


def test_the_real_w0001_is_not_overwritten_by_the_template(store: GraphStore) -> None:
    real = store.get_node("Worker", "W0001")
    assert real is not None  # the demo data has a W0001, as a real roster would
    preview = validate(store, "workers", read_table("t.xlsx", template_workbook("workers")),
                       districts=districts(store))
    assert not preview.rows and [p.column for p in preview.problems] == ["编号"]


def test_preview_separates_new_rows_from_updates_and_shows_the_changed_fields(store: GraphStore) -> None:
    worker = next(w for w in store.iter_nodes("Worker") if w.get("skills") and w.get("level") == "national")
    skills_before = {r.end_id for r in store.relationships("HAS_SKILL", start=("Worker", worker["id"]))}
    other = next(w for w in store.iter_nodes("Worker") if w["id"] != worker["id"])
    body = io.StringIO(newline="")
    writer = csv.writer(body)
    writer.writerow(["编号*", "姓名*", "区县*", "每月服务容量", "队内职务", "技能"])
    writer.writerow([worker["id"], worker["name"] + "(改)", worker["district"], 7, "副队长", ""])  # blank skills
    writer.writerow([other["id"], other["name"], other["district"], other.get("capacity", 2),
                     {"captain": "队长", "vice_captain": "副队长", "member": "队员"}[other["role"]],
                     "、".join(other.get("skills") or [])])  # the same as stored
    writer.writerow(["W-NEW-1", "新工匠", "亭湖区", 2, "队员", "焊接"])
    client, _ = login_as(make_app(store), store, "city")
    preview_url = _upload(client, "workers", "w.csv", ("\ufeff" + body.getvalue()).encode("utf-8"))
    page = client.get(preview_url).get_data(as_text=True)
    assert "其中新增 1 条,更新已有数据 1 条,与已有数据相同 1 条(不会改变)" in page
    updates = re.search(r'<table data-testid="import-updates">.*?</table>', page, re.S).group(0)
    changed = re.findall(rf'data-id="{worker["id"]}">.*?<td>([^<]+)</td><td class="muted"><del>([^<]*)</del></td>'
                         r"<td><ins>([^<]*)</ins>", updates, re.S)
    assert ("姓名", worker["name"], worker["name"] + "(改)") in changed
    assert ("每月服务容量", str(worker.get("capacity", "")), "7") in changed
    assert other["id"] not in updates and "W-NEW-1" not in updates
    assert "技能" not in [c[0] for c in changed]  # a blank cell changes nothing
    new = re.search(r'<table data-testid="import-new">.*?</table>', page, re.S).group(0)
    assert "W-NEW-1" in new and worker["id"] not in new
    assert _apply(client, preview_url)["state"] == "done"
    stored = store.get_node("Worker", worker["id"])
    assert stored["name"] == worker["name"] + "(改)" and stored["capacity"] == 7 and stored["role"] == "vice_captain"
    # what the sheet left blank or did not have is kept, relationships included
    assert stored["skills"] == worker["skills"] and stored["level"] == "national"
    assert {r.end_id for r in store.relationships("HAS_SKILL", start=("Worker", worker["id"]))} == skills_before
    assert store.get_node("Worker", "W-NEW-1")["role"] == "member"


def test_updating_problems_from_a_sheet_keeps_their_status_and_solved_history(store: GraphStore) -> None:
    solved = next(p for p in store.iter_nodes("Problem") if p.get("status") == "solved" and p.get("solved_by"))
    solvers = {r.start_id for r in store.relationships("SOLVED", end=("Problem", solved["id"]))}
    assert solvers
    body = io.StringIO(newline="")
    writer = csv.writer(body)
    writer.writerow(["编号*", "标题*", "企业编号*", "区县*", "服务类型*"])  # no 状态 column, no history
    writer.writerow([solved["id"], solved["title"] + "(补充)", solved["enterprise_id"], solved["district"],
                     solved["service_type"]])
    preview = validate(store, "problems", read_table("p.csv", body.getvalue().encode("utf-8")),
                       districts=districts(store))
    assert not preview.problems and preview.updated_rows == 1
    assert [c.column for c in preview.changes[0] or []] == ["标题"]
    client, _ = login_as(make_app(store), store, "city")
    assert _apply(client, _upload(client, "problems", "p.csv", body.getvalue().encode("utf-8")))["state"] == "done"
    stored = store.get_node("Problem", solved["id"])
    assert stored["title"] == solved["title"] + "(补充)" and stored["status"] == "solved"
    assert {r.start_id for r in store.relationships("SOLVED", end=("Problem", solved["id"]))} == solvers


def test_exports_write_the_labels_the_template_uses_and_import_back_unchanged(store: GraphStore) -> None:
    header, rows = export_rows(store, "workers")
    at = {name: i for i, name in enumerate(header)}
    levels = {r[at["级别"]] for r in rows}
    roles = {r[at["队内职务"]] for r in rows}
    teams = {r[at["服务队"]] for r in rows}
    assert levels <= {"全国", "省级", "市级"} and "全国" in levels
    assert roles <= {"队长", "副队长", "队员"} and "副队长" in roles
    assert "市级服务队" in teams and "city" not in teams
    p_header, p_rows = export_rows(store, "problems")
    assert {r[p_header.index("状态")] for r in p_rows} <= {"待对接", "已对接", "已解决", "已关闭"}
    # the template's example speaks the same language
    sheet = load_workbook(io.BytesIO(template_workbook("workers"))).worksheets[0]
    example = {sheet.cell(row=1, column=i).value.rstrip("*"): sheet.cell(row=2, column=i).value
               for i in range(1, sheet.max_column + 1)}
    assert example["级别"] in levels and example["队内职务"] in roles
    # an export imports back as the stored codes, changing nothing
    preview = validate(store, "workers", read_table("w.csv", export_csv(store, "workers")),
                       districts=districts(store))
    assert not preview.problems and preview.new_rows == 0 and preview.updated_rows == 0
    assert preview.unchanged_rows == store.count_nodes("Worker")
    row = next(r for r in preview.rows if r["id"] == "W0001")
    stored = store.get_node("Worker", "W0001")
    assert (row["level"], row["role"], row["team"]) == (stored["level"], stored["role"], stored["team"])


def test_a_write_refused_after_the_preview_says_why_in_the_reader_s_language(store: GraphStore) -> None:
    enterprise = next(iter(store.iter_nodes("Enterprise")))
    store.create_node("Enterprise", "E-GONE", {"name": "将被删除的企业", "district": enterprise["district"]})
    body = io.StringIO(newline="")
    writer = csv.writer(body)
    writer.writerow(["编号*", "标题*", "企业编号*", "区县*", "服务类型*"])
    writer.writerow(["P-GONE-1", "主轴异响", "E-GONE", enterprise["district"], "技术帮扶"])
    client, _ = login_as(make_app(store), store, "city")
    preview_url = _upload(client, "problems", "p.csv", body.getvalue().encode("utf-8"))
    store.delete_node("Enterprise", "E-GONE")  # the store changes between the preview and the write
    status = _apply(client, preview_url)
    assert status["state"] == "failed"
    assert status["message"] == "“企业编号”引用了不存在的企业 'E-GONE'", status
    english = client.get(f"{preview_url}/progress?lang=en").get_json()["message"]
    assert english == "“Enterprise ID” refers to an enterprise that does not exist: 'E-GONE'"
    assert store.get_node("Problem", "P-GONE-1") is None
