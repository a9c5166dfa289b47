"""Spreadsheet import and export: templates, text columns, Chinese row errors, background apply, BOM CSV."""

from __future__ import annotations

import csv
import io
import re
import time
from typing import Any

import pytest
from openpyxl import Workbook, load_workbook

from graph.memory import MemoryStore
from graph.schema import Issue
from graph.sheet_import import apply_rows, validate
from graph.spreadsheet import COLUMNS, export_csv, read_table, template_workbook
from graph.store import GraphStore
from tests import api_support
from tests.api_support import login_as, make_app
from web.row_issues import issue_text, problem_text, upload_error_text

demo_dir = api_support.demo_dir
store = api_support.store

DISTRICTS = ("亭湖区", "盐都区")


def _xlsx(rows: list[list[Any]], *, text_columns: tuple[int, ...] = ()) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _csv(rows: list[list[Any]], encoding: str = "utf-8-sig") -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def _empty_store() -> MemoryStore:
    s = MemoryStore()
    for d in DISTRICTS:
        s.create_node("District", d, {"name": d})
    return s


# -- pure functions ------------------------------------------------------------------------------
def test_phone_numbers_and_credit_codes_are_read_as_text() -> None:
    data = _xlsx([["编号*", "姓名*", "区县*", "联系电话", "每月服务容量", "在岗", "技能"],
                  ["W1", "王建国", "亭湖区", 13800000001, 3, "是", "数控编程、PLC;焊接"],
                  [1002, "李秀英", "盐都区", "0515-88881234", 2.0, "否", None]])
    records = read_table("workers.xlsx", data)
    preview = validate(_empty_store(), "workers", records, districts=DISTRICTS)
    assert not preview.problems
    first, second = preview.rows
    assert first["contact"] == "13800000001" and isinstance(first["contact"], str)
    assert first["skills"] == ["数控编程", "PLC", "焊接"] and first["capacity"] == 3 and first["active"] is True
    assert second["id"] == "1002" and second["contact"] == "0515-88881234" and second["capacity"] == 2
    # an 18-digit credit code that Excel turned into a number has lost digits: refuse it
    data = _xlsx([["编号", "企业名称", "区县", "统一社会信用代码"], ["E1", "某公司", "亭湖区", 913209001234567890]])
    preview = validate(_empty_store(), "enterprises", read_table("e.xlsx", data), districts=DISTRICTS)
    assert preview.problems and "统一社会信用代码" in problem_text(preview.problems[0])


def test_every_bad_row_is_reported_in_chinese_with_its_row_number() -> None:
    data = _csv([
        ["编号", "姓名", "区县", "每月服务容量", "在岗", "工作单位编号"],
        ["W1", "王建国", "亭湖区", "2", "是", ""],          # row 2: fine
        ["W2", "李秀英", "亭湖", "2", "是", ""],            # row 3: unknown district (typo)
        ["W3", "张海峰", "盐都区", "两次", "是", ""],        # row 4: capacity not a number
        ["W1", "重复", "亭湖区", "1", "是", ""],             # row 5: duplicate id
        ["", "无编号", "亭湖区", "1", "是", ""],             # row 6: no id
        ["W6", "赵六", "盐都区", "1", "也许", ""],           # row 7: not yes/no
        ["W7", "钱七", "盐都区", "1", "是", "E404"],         # row 8: unknown employer
        ["W8", "孙八", "盐都区", "1", "否", ""],             # row 9: fine
    ])
    preview = validate(_empty_store(), "workers", read_table("w.csv", data), districts=DISTRICTS)
    by_row = {p.row: problem_text(p) for p in preview.problems}
    assert sorted(by_row) == [3, 4, 5, 6, 7, 8]
    assert "亭湖" in by_row[3] and "不在名单中" in by_row[3]
    assert "每月服务容量" in by_row[4] and "整数" in by_row[4]
    assert "重复" in by_row[5] and "第 2 行" in by_row[5]
    assert "编号" in by_row[6]
    assert "是" in by_row[7] and "否" in by_row[7]
    assert "工作单位编号" in by_row[8] and "不存在" in by_row[8]
    assert [r["id"] for r in preview.rows] == ["W1", "W8"]
    assert preview.bad_rows == 6
    for reason in by_row.values():
        assert re.search(r"[\u4e00-\u9fff]", reason), reason


def test_missing_required_column_and_unreadable_files() -> None:
    from graph.spreadsheet import UploadError

    with pytest.raises(UploadError) as caught:
        validate(_empty_store(), "workers", read_table("w.csv", _csv([["姓名"], ["王建国"]])))
    assert upload_error_text(caught.value) == "缺少必填列:编号、区县(请使用下载的模板)"
    assert str(caught.value) == "required columns are missing: id, district"
    with pytest.raises(UploadError):
        read_table("w.xlsx", b"not a zip")
    with pytest.raises(UploadError):
        read_table("w.txt", b"x")
    gbk = _csv([["编号", "姓名", "区县"], ["W1", "王建国", "亭湖区"]], encoding="gb18030")
    assert read_table("w.csv", gbk)[0][1]["姓名"] == "王建国"


def test_district_coordinator_imports_only_their_district() -> None:
    data = _csv([["编号", "姓名", "区县"], ["W1", "王建国", "亭湖区"], ["W2", "李秀英", "盐都区"]])
    preview = validate(_empty_store(), "workers", read_table("w.csv", data), district="亭湖区", districts=DISTRICTS)
    assert [r["id"] for r in preview.rows] == ["W1"]
    assert preview.problems[0].row == 3 and "本区县" in problem_text(preview.problems[0])


def test_apply_rows_reports_progress_and_round_trips_through_export() -> None:
    s = _empty_store()
    rows = [{"id": f"W{i:03d}", "name": f"工匠{i}", "district": "亭湖区", "skills": ["焊接"], "contact": "13800000000"}
            for i in range(250)]
    seen: list[tuple[int, int]] = []
    assert apply_rows(s, "workers", rows, progress=lambda d, t: seen.append((d, t)), chunk=100) == 250
    assert seen == [(0, 250), (100, 250), (200, 250), (250, 250)]
    assert s.count_nodes("Worker") == 250 and len(s.relationships("HAS_SKILL")) == 250
    data = export_csv(s, "workers", include_private=True)
    assert data.startswith("\ufeff".encode())
    text = data.decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(text)))
    assert header[:3] == ["编号", "姓名", "区县"] and "联系电话" in header
    assert "联系电话" not in export_csv(s, "workers").decode("utf-8-sig").splitlines()[0]
    # the export is a valid import
    preview = validate(s, "workers", read_table("w.csv", data), districts=DISTRICTS)
    assert not preview.problems and len(preview.rows) == 250
    assert preview.rows[0]["contact"] == "13800000000"


@pytest.mark.parametrize("kind", ["workers", "enterprises", "problems"])
def test_templates_have_text_columns_and_an_example(kind: str) -> None:
    book = load_workbook(io.BytesIO(template_workbook(kind)))
    sheet = book.worksheets[0]
    header = [c.value for c in sheet[1]]
    assert header == [c.title for c in COLUMNS[kind]]
    for i, column in enumerate(COLUMNS[kind], 1):
        if column.type == "text":
            assert sheet.cell(row=2, column=i).number_format == "@"
    assert "说明" in book.sheetnames


def test_an_unknown_code_is_shown_as_itself_and_types_name_the_column() -> None:
    assert issue_text(Issue("something-new"), "Worker") == "something-new"
    text = issue_text(Issue("type", "district", {"expected": "str", "got": "3"}), "Problem")
    assert text.startswith("“区县”应为文本")


# -- pages ---------------------------------------------------------------------------------------
def _token(client: Any, url: str) -> str:
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_upload_preview_apply_progress(store: GraphStore) -> None:
    app = make_app(store)
    client, _ = login_as(app, store, "city")
    enterprise = next(iter(store.iter_nodes("Enterprise")))
    data = _xlsx([
        ["编号*", "标题*", "描述", "企业编号*", "区县*", "服务类型*", "所需技能"],
        ["NEW1", "注塑件缩痕", "注塑件表面缩痕严重", enterprise["id"], enterprise["district"], "工艺改进", "注塑成型"],
        ["NEW2", "无企业", "x", "E-404", "亭湖区", "技术帮扶", ""],
        ["NEW3", "类型不对", "x", enterprise["id"], enterprise["district"], "修电脑", ""],
    ])
    response = client.post("/import", data={"csrf_token": _token(client, "/import"), "kind": "problems",
                                             "file": (io.BytesIO(data), "problems.xlsx")},
                           content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    preview_url = response.headers["Location"]
    html = client.get(preview_url).get_data(as_text=True)
    assert "第 3 行" in html and "第 4 行" in html and "企业编号" in html and "服务类型" in html
    assert 'data-testid="valid-count">1<' in html
    # another user cannot see or apply this upload
    other, _ = login_as(app, store, "admin")
    assert other.get(preview_url).status_code == 403
    apply = client.post(f"{preview_url}/apply", data={"csrf_token": _token(client, preview_url)})
    assert apply.status_code == 302
    for _ in range(100):
        status = client.get(f"{preview_url}/progress").get_json()
        if status["state"] != "running":
            break
        time.sleep(0.05)
    assert status == {"state": "done", "done": 1, "total": 1, "message": ""}
    stored = store.get_node("Problem", "NEW1")
    assert stored is not None and stored["status"] == "open" and stored["skills"] == ["注塑成型"]
    assert store.get_node("Problem", "NEW2") is None


def test_viewers_export_but_cannot_import(store: GraphStore) -> None:
    app = make_app(store)
    viewer, _ = login_as(app, store, "viewer")
    assert viewer.get("/import").status_code == 200
    csv_response = viewer.get("/export/workers.csv")
    assert csv_response.status_code == 200 and csv_response.data.startswith("\ufeff".encode())
    assert "联系电话" not in csv_response.data.decode("utf-8-sig").splitlines()[0]
    xlsx = viewer.get("/export/enterprises.xlsx")
    sheet = load_workbook(io.BytesIO(xlsx.data)).worksheets[0]
    assert sheet.cell(row=1, column=1).value == "编号" and sheet.max_row == store.count_nodes("Enterprise") + 1
    assert viewer.get("/import/template/problems.xlsx").status_code == 200
    token = _token(viewer, "/dashboard")
    upload = viewer.post("/import", data={"csrf_token": token, "kind": "workers",
                                          "file": (io.BytesIO(b"x"), "w.csv")}, content_type="multipart/form-data")
    assert upload.status_code == 403
    assert viewer.get("/export/users.csv").status_code == 404
