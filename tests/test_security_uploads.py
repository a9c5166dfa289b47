"""Issue 16, finding 2 (spreadsheet bombs): small uploads that expand large are refused with a clear Chinese
error before they cost memory or time, values past the API's field limits are row errors, and the
previews kept between upload and apply are bounded in number.

The bombs are generated here, each under the 1 MiB upload limit: an ``.xlsx`` whose one cell inflates to
~300 MB, and one holding three million empty rows. They are written with :mod:`zipfile` in chunks, so the
test itself never holds the expanded text. Memory is measured as the growth of this process's resident set
(sampled every 5 ms by :mod:`psutil` while the upload is handled). Real app, real embedded store.
"""

from __future__ import annotations

import io
import re
import threading
import time
import zipfile
from collections.abc import Iterable, Iterator
from typing import Any

import psutil
import pytest
from openpyxl import Workbook

from graph import sheet_import, spreadsheet
from graph.spreadsheet import MAX_CELL, MAX_SCANNED_ROWS, UploadError, read_table
from graph.store import GraphStore
from tests import api_support
from tests.api_support import login_as, make_app
from web.row_issues import upload_error_text
from web.ui.importexport import JOBS_IN_ALL, JOBS_PER_USER, ImportJob, ImportJobs

demo_dir = api_support.demo_dir
store = api_support.store

PLACEHOLDER = "BOMB"
#: Growth of the resident set an upload may cause (the bombs below would take gigabytes).
RSS_BUDGET = 150 * 1024 * 1024


@pytest.fixture
def app(store: GraphStore) -> Any:
    return make_app(store)


def _template(rows: list[list[Any]]) -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _rewrite(xlsx: bytes, member: str, pieces: Iterable[bytes]) -> bytes:
    """``xlsx`` with ``member`` replaced by the concatenation of ``pieces``, streamed into the zip."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != member:
                dst.writestr(info.filename, src.read(info.filename))
                continue
            with dst.open(member, "w", force_zip64=True) as fh:
                for piece in pieces:
                    fh.write(piece)
    return out.getvalue()


def _expand_placeholder(xlsx: bytes, text: str, repeat: int) -> bytes:
    """The worksheet's cell holding :data:`PLACEHOLDER` replaced by ``text * repeat``."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src:
        sheet = src.read("xl/worksheets/sheet1.xml").decode("utf-8")
    before, after = sheet.split(PLACEHOLDER)

    def pieces() -> Iterator[bytes]:
        yield before.encode("utf-8")
        chunk = text.encode("utf-8")
        for _ in range(repeat):
            yield chunk
        yield after.encode("utf-8")

    return _rewrite(xlsx, "xl/worksheets/sheet1.xml", pieces())


def _empty_rows(xlsx: bytes, count: int) -> bytes:
    """The worksheet with ``count`` empty ``<row>`` elements between the header and one data row."""
    with zipfile.ZipFile(io.BytesIO(xlsx)) as src:
        sheet = src.read("xl/worksheets/sheet1.xml").decode("utf-8")
    # the sheet declares what it holds (openpyxl would otherwise stop at the declared last row)
    sheet = sheet.replace('<dimension ref="A1:C2" />', f'<dimension ref="A1:C{count + 2}" />')
    head, rest = sheet.split('<row r="2">')
    last_row = '<row r="2">' + rest.split("</row>")[0] + "</row>"
    tail = "</sheetData>" + rest.split("</sheetData>")[1]
    data_row = last_row.replace('r="2"', "").replace('r="A2"', "").replace('r="B2"', "").replace('r="C2"', "")

    def pieces() -> Iterator[bytes]:
        yield head.encode("utf-8")
        block = b"<row/>" * 100_000
        for _ in range(count // 100_000):
            yield block
        yield (data_row + tail).encode("utf-8")

    return _rewrite(xlsx, "xl/worksheets/sheet1.xml", pieces())


class PeakRss:
    """The largest growth of this process's resident set while the block runs (sampled every 5 ms)."""

    def __init__(self) -> None:
        self._process = psutil.Process()
        self._stop = threading.Event()
        self.base = self.peak = 0

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._process.memory_info().rss)
            time.sleep(0.005)

    def __enter__(self) -> PeakRss:
        self.base = self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def growth(self) -> int:
        return self.peak - self.base


def _upload(client: Any, data: bytes, filename: str, kind: str = "workers") -> Any:
    html = client.get("/import").get_data(as_text=True)
    token = re.search(r'name="csrf_token"(?: type="hidden")? value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    return client.post("/import", data={"csrf_token": token, "kind": kind, "file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


def test_an_xlsx_cell_that_inflates_to_300_mb_is_refused_before_it_is_read(app: Any, store: GraphStore) -> None:
    bomb = _expand_placeholder(_template([["编号", "姓名", "区县"], ["W-bomb", PLACEHOLDER, "亭湖区"]]),
                               "长" * (1 << 18), 400)  # 400 x 768 KiB = 315 MB of one cell
    assert len(bomb) < 1024 * 1024
    client, _ = login_as(app, store, "district", district="亭湖区")
    started = time.monotonic()
    with PeakRss() as rss:
        response = _upload(client, bomb, "workers.xlsx")
    assert response.status_code == 200
    assert "Excel 文件解压后超过 50 MiB" in response.get_data(as_text=True)
    assert rss.growth < RSS_BUDGET, f"RSS grew by {rss.growth / 2**20:.0f} MiB"
    assert time.monotonic() - started < 5
    assert store.get_node("Worker", "W-bomb") is None


def test_an_xlsx_of_three_million_empty_rows_stops_at_the_row_limit(app: Any, store: GraphStore) -> None:
    bomb = _empty_rows(_template([["编号", "姓名", "区县"], ["W-rows", "王师傅", "亭湖区"]]), 3_000_000)
    assert len(bomb) < 1024 * 1024
    client, _ = login_as(app, store, "district", district="亭湖区")
    started = time.monotonic()
    with PeakRss() as rss:
        response = _upload(client, bomb, "workers.xlsx")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f"表格超过 {MAX_SCANNED_ROWS} 行(空行也计入)" in html, html[:2000]
    assert rss.growth < RSS_BUDGET, f"RSS grew by {rss.growth / 2**20:.0f} MiB"
    assert time.monotonic() - started < 20
    assert store.get_node("Worker", "W-rows") is None


def test_a_csv_of_a_million_blank_lines_stops_at_the_row_limit() -> None:
    data = "编号,姓名,区县\n".encode() + b",,\n" * 300_000 + "W1,王师傅,亭湖区\n".encode()
    with pytest.raises(UploadError) as caught:
        read_table("workers.csv", data)
    assert upload_error_text(caught.value).startswith(f"表格超过 {MAX_SCANNED_ROWS} 行")


def test_a_cell_longer_than_any_api_field_refuses_the_file() -> None:
    # written past openpyxl, which cuts what it writes at Excel's 32,767 characters (reading does not)
    data = _expand_placeholder(_template([["编号", "姓名", "区县", "描述"], ["W1", "王师傅", "亭湖区", PLACEHOLDER]]),
                               "长" * 1000, MAX_CELL // 1000 + 1)
    with pytest.raises(UploadError) as caught:
        read_table("workers.xlsx", data)
    assert upload_error_text(caught.value).startswith(f"第 2 行有单元格超过 {MAX_CELL} 个字符")


def test_values_past_the_api_field_limits_are_row_errors(app: Any, store: GraphStore) -> None:
    data = _template([["编号", "姓名", "区县", "技能"],
                      ["W-long", "王" * 201, "亭湖区", "焊接"],          # name: the API allows 200
                      ["W-many", "李师傅", "亭湖区", "、".join(f"技能{i}" for i in range(201))],
                      ["W-ok", "赵师傅", "亭湖区", "焊接"]])
    client, _ = login_as(app, store, "district", district="亭湖区")
    response = _upload(client, data, "workers.xlsx")
    assert response.status_code == 302
    html = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "“姓名”最多 200 个字符,实际为 201 个" in html
    assert "“技能”最多 200 项,实际为 201 项" in html
    assert re.search(r'data-testid="valid-count">\s*1\s*<', html), html[:3000]


def test_reading_stops_after_the_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(spreadsheet, "READ_SECONDS", 0.0)
    data = _template([["编号", "姓名", "区县"], ["W1", "王师傅", "亭湖区"]])
    with pytest.raises(UploadError) as caught:
        read_table("workers.xlsx", data)
    assert upload_error_text(caught.value).startswith("读取文件超过 0 秒")


def test_import_previews_are_bounded_per_user_and_in_all() -> None:
    jobs = ImportJobs()
    preview = sheet_import.Preview(kind="workers")

    def job(owner: str, n: int) -> ImportJob:
        return ImportJob(id=f"{owner}-{n}", owner=owner, kind="workers", filename="w.xlsx", preview=preview)

    for n in range(JOBS_PER_USER + 2):
        jobs.add(job("alice", n))
    assert len(jobs) == JOBS_PER_USER
    assert jobs.get("alice-0") is None and jobs.get(f"alice-{JOBS_PER_USER + 1}") is not None
    running = jobs.get(f"alice-{JOBS_PER_USER - 1}") or pytest.fail("a kept job is missing")
    running.state = "running"
    for owner in range(JOBS_IN_ALL + 3):
        jobs.add(job(f"user{owner}", 0))
    assert len(jobs) == JOBS_IN_ALL
    assert jobs.get(running.id) is running  # a job still writing is never dropped
    assert jobs.get(f"user{JOBS_IN_ALL + 2}-0") is not None and jobs.get("user0-0") is None


def test_an_xlsx_row_of_a_million_cells_is_refused_before_it_is_read(app: Any, store: GraphStore) -> None:
    xlsx = _template([["编号", "姓名", "区县"], ["W-wide", PLACEHOLDER, "亭湖区"]])
    # openpyxl builds a whole row before handing it over: a million cells in one row cost ~450 MiB
    bomb = _expand_placeholder(xlsx, "</t></is></c>" + "<c><v>1</v></c>" * 100_000 + '<c t="inlineStr"><is><t>', 10)
    assert len(bomb) < 1024 * 1024
    client, _ = login_as(app, store, "district", district="亭湖区")
    with PeakRss() as rss:
        response = _upload(client, bomb, "workers.xlsx")
    assert response.status_code == 200
    assert "Excel 文件中有一行超过 16384 个单元格" in response.get_data(as_text=True)
    assert rss.growth < RSS_BUDGET, f"RSS grew by {rss.growth / 2**20:.0f} MiB"
