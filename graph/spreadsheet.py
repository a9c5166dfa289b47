"""Spreadsheets of workers, enterprises and problems: columns, reading, export and templates.

Coordinators keep their lists in Excel, so this module speaks their format:

* **Templates** (:func:`template_workbook`): one header row of Chinese column names (a ``*`` marks a
  required column), an example row, every text column formatted as text so Excel keeps phone numbers
  and credit codes as typed. The example row's id is one of :data:`SAMPLE_IDS` (``示例-W0001``...),
  which validation skips with a message, so uploading the template unchanged writes nothing.
* **Labels**: levels, team roles, the city team and problem statuses are stored as codes (``national``,
  ``vice_captain``, ``city``, ``open``); sheets show and accept the labels (全国, 副队长, 市级服务队,
  待对接) and imports also accept the codes.
* **Reading** (:func:`read_table`): ``.xlsx`` with openpyxl or ``.csv`` (UTF-8 with or without BOM,
  else GB18030, which is what Excel on a Chinese Windows writes). Headers may be the Chinese names or
  the dataset keys. Phone numbers and credit codes are read as text, never numbers.
* **Validation and applying**: :mod:`graph.sheet_import`.
* **Export** (:func:`export_xlsx`, :func:`export_csv`): the same columns; CSV is UTF-8 with a BOM so
  Excel opens it with the Chinese intact. Every text cell goes through :func:`spreadsheet_text`: a
  text a spreadsheet program would run as a formula (``=``, ``+``, ``-``, ``@``, tab, CR first: OWASP's
  CSV injection guidance) gets a leading ``'``, and control characters a workbook cannot hold are
  dropped, so one bad value never breaks an export. Reading undoes the quote (:func:`unquote_text`),
  so an export imports back unchanged; ``jianglian export`` (JSON Lines) is not affected.

Columns are views of the row schema (:mod:`graph.schema`); problems are codes (:class:`UploadError`), which
the web writes in the reader's language (:mod:`web.row_issues`). The pages (:mod:`web.ui.importexport`)
call these functions. The template's 说明 sheet, sheet titles and 是/否 are product data (what the union's
spreadsheets say), not page text.

Why this module is long (about 500 lines): it is one file format read and written in both directions. The
columns, the cell rules (:func:`spreadsheet_text` on export, :func:`unquote_text` and the text-not-number rule
on reading) and the template must agree with each other for an export to import back unchanged, so they are
read and changed together; validation and applying already live apart (:mod:`graph.sheet_import`).
"""

from __future__ import annotations

import csv
import io
import re
import time
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from openpyxl import Workbook, load_workbook
from openpyxl.styles import Font, PatternFill

from graph.dataset import props_to_row
from graph.schema import LABEL_OF_KIND, SCHEMA, TEXT_MAX, Field
from graph.store import GraphStore

__all__ = [
    "COLUMNS",
    "KINDS",
    "Column",
    "Kind",
    "SAMPLE_IDS",
    "UPLOAD_ERRORS",
    "UploadError",
    "export_csv",
    "export_rows",
    "export_xlsx",
    "read_table",
    "split_list",
    "spreadsheet_text",
    "template_workbook",
    "unquote_text",
]

Kind = Literal["workers", "enterprises", "problems"]
KINDS: Final[tuple[str, ...]] = ("workers", "enterprises", "problems")
LABEL_OF: Final[dict[str, str]] = LABEL_OF_KIND
KIND_NAMES: Final[dict[str, str]] = {"workers": "劳模工匠", "enterprises": "企业", "problems": "问题"}
#: Data rows one upload may hold.
MAX_ROWS: Final = 20000
# Reading limits (issue 16, finding 2): an upload is at most 1 MiB, but a zip expands ~1000-fold and
# openpyxl keeps what it reads, so every dimension of the work is capped before or while reading.
#: Bytes all members of an ``.xlsx`` may expand to, declared in the zip directory and counted when inflated.
MAX_UNCOMPRESSED: Final = 50 * 1024 * 1024
#: Bytes of any member other than worksheets and shared strings (styles, workbook, theme...), which
#: openpyxl turns into many small objects.
MAX_PART: Final = 8 * 1024 * 1024
#: Members of an ``.xlsx`` (a template has nine).
MAX_MEMBERS: Final = 200
#: Rows read, blank ones included (a sheet can declare millions of empty rows in a few kilobytes).
MAX_SCANNED_ROWS: Final = 50_000
#: Columns read; cells further right are ignored (a template has at most 15 columns).
MAX_COLUMNS: Final = 100
#: Cells one worksheet row may hold, empty ones included (Excel's own column limit): openpyxl builds a
#: whole row before handing it over, so a row of millions of cells would cost gigabytes.
MAX_ROW_CELLS: Final = 16_384
#: Characters in one cell: the longest text the API accepts (a problem description).
MAX_CELL: Final = TEXT_MAX
#: Seconds reading one file may take.
READ_SECONDS: Final = 30.0

ColumnType = Literal["text", "str", "int", "bool", "list", "date"]
_COLUMN_TYPE: Final[dict[str, ColumnType]] = {"str": "str", "int": "int", "bool": "bool", "list[str]": "list",
                                              "date": "date"}


@dataclass(frozen=True)
class Column:
    """One spreadsheet column: a view of a :class:`graph.schema.Field` whose ``sheet`` is true."""

    spec: Field

    @property
    def key(self) -> str:
        return self.spec.name

    @property
    def header(self) -> str:
        """The Chinese header (the union's name for the column)."""
        return self.spec.header

    @property
    def type(self) -> ColumnType:
        """``text`` for cells kept as text (ids, phones, codes), else the field's type."""
        return "text" if self.spec.cell_text else _COLUMN_TYPE[self.spec.type]

    @property
    def required(self) -> bool:
        return self.spec.sheet_required

    @property
    def example(self) -> str:
        return self.spec.example

    @property
    def private(self) -> bool:
        """Exported only to users who may see it (worker contacts)."""
        return self.spec.private

    @property
    def limit(self) -> int:
        """Characters (of each item, for lists), as the JSON API allows."""
        return self.spec.max_length

    @property
    def labels(self) -> tuple[tuple[str, str], ...]:
        """``(stored code, spreadsheet label)`` pairs: exports write the label, imports accept either."""
        return self.spec.labels

    @property
    def title(self) -> str:
        return f"{self.header}*" if self.required else self.header

    def label(self, value: Any) -> Any:
        """The spreadsheet label of a stored value (the value itself when it has none)."""
        return dict(self.labels).get(value, value) if isinstance(value, str) else value

    def code(self, text: str) -> str:
        """The stored code of a label or code typed in a cell (the text itself when it is neither)."""
        for code, label in self.labels:
            if text in (label, code) or text.lower() == code.lower():
                return code
        return text


#: The template's example rows use these ids. An uploaded row with one of them is skipped with a
#: message, so uploading the template unchanged writes nothing (and never overwrites a real W0001).
SAMPLE_IDS: Final[dict[str, str]] = {kind: next(f.example for f in SCHEMA[label] if f.name == "id")
                                     for kind, label in LABEL_OF_KIND.items()}

#: The columns of each kind: the schema's fields that are spreadsheet columns, in the schema's order.
COLUMNS: Final[dict[str, tuple[Column, ...]]] = {
    kind: tuple(Column(spec) for spec in SCHEMA[label] if spec.sheet) for kind, label in LABEL_OF_KIND.items()
}

#: Text a spreadsheet would run as a formula (after any quotes that an export added): prefix one more ``'``.
_FORMULA_RE: Final = re.compile(r"^'*[=+\-@\t\r]")
#: What an export quoted: one ``'`` too many before such a text (a workbook's XML turns a CR into a LF).
_QUOTED_RE: Final = re.compile(r"^'+[=+\-@\t\r\n]")
#: C0 control characters other than tab, newline and CR (an xlsx cannot hold them).
_CONTROL_RE: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def spreadsheet_text(value: Any) -> Any:
    """A cell value that is safe to open in Excel, WPS or LibreOffice (non-text values unchanged).

    Examples
    --------
    >>> spreadsheet_text("=1+2"), spreadsheet_text("王师傅"), spreadsheet_text("-3\\x07"), spreadsheet_text(7)
    ("'=1+2", '王师傅', "'-3", 7)
    >>> spreadsheet_text("'=1"), spreadsheet_text("'ok")
    ("''=1", "'ok")
    """
    if not isinstance(value, str):
        return value
    text = _CONTROL_RE.sub("", value)
    return "'" + text if _FORMULA_RE.match(text) else text


def unquote_text(text: str) -> str:
    """Undo :func:`spreadsheet_text`'s quote, so an exported file imports back unchanged.

    Examples
    --------
    >>> unquote_text("'=1+1"), unquote_text("''=1"), unquote_text("'ok")
    ('=1+1', "'=1", "'ok")
    """
    return text[1:] if _QUOTED_RE.match(text) else text


#: English texts of :class:`UploadError` codes (the web writes them in the reader's language).
UPLOAD_ERRORS: Final[dict[str, str]] = {
    "row-cells": "a row of the workbook has more than {limit} cells",
    "xlsx-too-big": "the workbook expands to more than {limit} MiB",
    "xlsx-members": "the workbook has {count} parts (at most {limit})",
    "xlsx-unreadable": "the file cannot be read as an .xlsx workbook",
    "csv-encoding": "the CSV file is neither UTF-8 nor GBK",
    "file-type": "only .xlsx and .csv files are accepted",
    "too-many-lines": "the sheet has more than {limit} rows (blank rows count)",
    "too-slow": "reading the file took more than {seconds:g} s",
    "cell-too-long": "row {row} has a cell of more than {limit} characters",
    "too-many-rows": "at most {limit} rows may be imported at once",
    "csv-unreadable": "the CSV file cannot be read: a cell too large or a malformed line",
    "empty-file": "the file is empty: the first row must be the header",
    "unknown-kind": "unknown kind of data {kind}",
    "missing-columns": "required columns are missing: {columns}",
}


class UploadError(ValueError):
    """The file as a whole cannot be read (wrong format, no header row, too many rows): a ``code`` of
    :data:`UPLOAD_ERRORS` with ``params``; ``str()`` is English, :mod:`web.row_issues` writes it for people.
    """

    def __init__(self, code: str, **params: Any) -> None:
        self.code = code
        self.params = params
        values = {k: ", ".join(v) if isinstance(v, list) else v for k, v in params.items()}
        super().__init__(UPLOAD_ERRORS[code].format(**values))


def split_list(text: str | None) -> list[str]:
    """Split a cell or form field holding several values (、,,;;| and newlines).

    ``/`` is not a separator: it is part of values such as ``<b>bold</b>`` or ``CAD/CAM``, and neither the
    template nor the form names it.

    Examples
    --------
    >>> split_list("数控编程、PLC; 焊接\uff0c,")
    ['数控编程', 'PLC', '焊接']
    >>> split_list("<b>bold</b>、CAD/CAM")
    ['<b>bold</b>', 'CAD/CAM']
    """
    if not text:
        return []
    for sep in ("、", ",", "\uff0c", ";", "\uff1b", "\n", "|"):  # also full-width comma and semicolon
        text = text.replace(sep, "\u0001")
    return list(dict.fromkeys(part.strip() for part in text.split("\u0001") if part.strip()))


# -- reading ------------------------------------------------------------------------------------
def header_key(text: Any) -> str:
    return re.sub(r"[\s*\uff0a:\uff1a]", "", str(text or "")).lower()


#: The start of a ``<row>`` or ``<c>`` (cell) element of a worksheet, with or without a namespace prefix.
_ROW_OR_CELL: Final = re.compile(rb"<(?:[A-Za-z_][\w.\-]*:)?(row|c)[\s/>]")


class _RowCells:
    """Counts the cells of each worksheet row in a stream of XML pieces; raises past :data:`MAX_ROW_CELLS`."""

    def __init__(self) -> None:
        self.carry = b""
        self.cells = 0

    def feed(self, chunk: bytes) -> None:
        buffer = self.carry + chunk
        # a tag cut at the end of the piece is kept for the next one (tag names are short)
        cut = buffer.rfind(b"<", max(0, len(buffer) - 64))
        self.carry, buffer = (buffer[cut:], buffer[:cut]) if cut >= 0 else (b"", buffer)
        for match in _ROW_OR_CELL.finditer(buffer):
            if match.group(1) == b"row":
                self.cells = 0
                continue
            self.cells += 1
            if self.cells > MAX_ROW_CELLS:
                raise UploadError("row-cells", limit=MAX_ROW_CELLS)


def _check_xlsx(data: bytes) -> None:
    """Refuse a workbook that would expand past the limits, before openpyxl reads any of it.

    Both the sizes the zip directory declares and the bytes each member really inflates to are checked
    (zipfile stops at the declared size, and a member that inflates differently fails its CRC check).
    Reading is streamed in 1 MiB pieces, so the check itself holds little memory.
    """
    limit = MAX_UNCOMPRESSED // (1024 * 1024)
    too_big = UploadError("xlsx-too-big", limit=limit)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            if len(members) > MAX_MEMBERS:
                raise UploadError("xlsx-members", count=len(members), limit=MAX_MEMBERS)
            if sum(m.file_size for m in members) > MAX_UNCOMPRESSED:
                raise too_big
            total = 0
            for member in members:
                bulky = member.filename.startswith("xl/worksheets/") or member.filename == "xl/sharedStrings.xml"
                if not bulky and member.file_size > MAX_PART:
                    raise too_big
                size = 0
                cells = _RowCells() if member.filename.startswith("xl/worksheets/") else None
                with archive.open(member) as fh:
                    while chunk := fh.read(1024 * 1024):
                        size += len(chunk)
                        total += len(chunk)
                        if size > member.file_size or total > MAX_UNCOMPRESSED:
                            raise too_big
                        if cells is not None:
                            cells.feed(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, OSError, EOFError) as err:
        raise UploadError("xlsx-unreadable") from err


def _xlsx_rows(data: bytes) -> Iterator[Sequence[Any]]:
    """The first sheet's rows as values, at most :data:`MAX_SCANNED_ROWS` + 1 of them."""
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as err:  # openpyxl raises zipfile, KeyError, ValueError... on a bad file
        raise UploadError("xlsx-unreadable") from err
    try:
        # max_row: openpyxl stops there (it would otherwise count out every declared empty row), and
        # max_col keeps a sheet declaring 16,384 columns from padding every row to that width
        yield from book.worksheets[0].iter_rows(max_row=MAX_SCANNED_ROWS + 1, max_col=MAX_COLUMNS,
                                                values_only=True)
    except GeneratorExit:
        raise
    except Exception as err:  # malformed sheet XML surfaces while iterating
        raise UploadError("xlsx-unreadable") from err
    finally:
        book.close()


def read_table(filename: str, data: bytes) -> list[tuple[int, dict[str, Any]]]:
    """Rows of an uploaded ``.xlsx`` or ``.csv`` as ``(row number, {header: value})``, blank rows skipped.

    Reading is bounded (issue 16, finding 2): an ``.xlsx`` may expand to at most :data:`MAX_UNCOMPRESSED`
    bytes (checked before openpyxl opens it), at most :data:`MAX_SCANNED_ROWS` rows are read (blank ones
    included) and :data:`MAX_COLUMNS` columns, no cell may hold more than :data:`MAX_CELL` characters,
    at most :data:`MAX_ROWS` rows may hold data, and reading stops after :data:`READ_SECONDS`.

    Raises
    ------
    UploadError
        If the file is not a readable workbook or CSV, has no header row, or passes a limit.
    """
    started = time.monotonic()
    suffix = Path(filename or "").suffix.lower()
    if suffix == ".xlsx":
        _check_xlsx(data)
        table: Iterable[Sequence[Any]] = _xlsx_rows(data)
    elif suffix == ".csv":
        text = None
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        if text is None:
            raise UploadError("csv-encoding")
        table = csv.reader(io.StringIO(text, newline=""))
    else:
        raise UploadError("file-type")
    out: list[tuple[int, dict[str, Any]]] = []
    header: list[str] | None = None
    try:
        for number, cells in enumerate(table, 1):
            if number > MAX_SCANNED_ROWS:
                raise UploadError("too-many-lines", limit=MAX_SCANNED_ROWS)
            if time.monotonic() - started > READ_SECONDS:
                raise UploadError("too-slow", seconds=READ_SECONDS)
            values = list(cells)[:MAX_COLUMNS]
            if any(isinstance(v, str) and len(v) > MAX_CELL for v in values):
                raise UploadError("cell-too-long", row=number, limit=MAX_CELL)
            if header is None:
                if not any(v not in (None, "") for v in values):
                    continue
                header = [str(v).strip() if v is not None else "" for v in values]
                continue
            if not any(v not in (None, "") and str(v).strip() for v in values):
                continue
            out.append((number, {header[i]: v for i, v in enumerate(values) if i < len(header) and header[i]}))
            if len(out) > MAX_ROWS:
                raise UploadError("too-many-rows", limit=MAX_ROWS)
    except csv.Error as err:  # e.g. a cell over the csv module's field size limit (128 KiB)
        raise UploadError("csv-unreadable") from err
    if header is None:
        raise UploadError("empty-file")
    return out


# -- export and templates -----------------------------------------------------------------------
def _cell(column: Column, value: Any) -> Any:
    if value is None:
        return ""
    if column.type == "list":
        return spreadsheet_text("、".join(str(v) for v in value) if isinstance(value, list) else str(value))
    if column.type == "bool":
        return "是" if value else "否"
    if column.type == "text":
        return spreadsheet_text(str(value))
    return spreadsheet_text(column.label(value))


def export_rows(store: GraphStore, kind: str, *, include_private: bool = False) -> tuple[list[str], list[list[Any]]]:
    """Header and rows of one kind, in the template's columns (private columns only when allowed), every
    text made safe for spreadsheet programs by :func:`spreadsheet_text`."""
    label = LABEL_OF[kind]
    columns = [c for c in COLUMNS[kind] if include_private or not c.private]
    rows = []
    for node in store.iter_nodes(label):
        row = props_to_row(label, node)
        rows.append([_cell(c, row.get(c.key)) for c in columns])
    return [c.title.rstrip("*") for c in columns], rows


def _sheet(book: Workbook, kind: str, header: list[str], rows: Iterable[Sequence[Any]],
           columns: Sequence[Column], *, text_rows: int = 0) -> None:
    """Write one sheet; text columns are formatted as text down to ``text_rows`` (templates leave room
    for the rows coordinators will type)."""
    sheet = book.active
    assert sheet is not None
    sheet.title = KIND_NAMES[kind]
    sheet.append(header)
    for cell in sheet[1]:
        cell.font = Font(bold=True)
        cell.fill = PatternFill("solid", fgColor="FDECEA")
    for row in rows:
        sheet.append(list(row))
    for i, column in enumerate(columns, 1):
        letter = sheet.cell(row=1, column=i).column_letter
        sheet.column_dimensions[letter].width = max(10, min(40, len(column.header) * 2 + 6))
        if column.type == "text":
            for (cell,) in sheet.iter_rows(min_row=2, min_col=i, max_col=i, max_row=max(sheet.max_row, text_rows)):
                cell.number_format = "@"
    sheet.freeze_panes = "A2"


def _workbook_bytes(book: Workbook) -> bytes:
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def export_xlsx(store: GraphStore, kind: str, *, include_private: bool = False) -> bytes:
    """An ``.xlsx`` of every row of ``kind``; text columns stay text."""
    header, rows = export_rows(store, kind, include_private=include_private)
    columns = [c for c in COLUMNS[kind] if include_private or not c.private]
    book = Workbook()
    _sheet(book, kind, header, rows, columns)
    return _workbook_bytes(book)


def export_csv(store: GraphStore, kind: str, *, include_private: bool = False) -> bytes:
    """A CSV of every row of ``kind`` in UTF-8 with a BOM (so Excel shows the Chinese correctly)."""
    header, rows = export_rows(store, kind, include_private=include_private)
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return ("\ufeff" + buffer.getvalue()).encode("utf-8")


def template_workbook(kind: str) -> bytes:
    """The import template: headers (``*`` = required), one example row, and a 说明 sheet."""
    columns = COLUMNS[kind]
    book = Workbook()
    _sheet(book, kind, [c.title for c in columns], [[_example(c) for c in columns]], columns, text_rows=500)
    notes = book.create_sheet("说明")
    notes.append(["列", "说明"])
    for column in columns:
        notes.append([column.title, _HELP[column.type] + ("(必填)" if column.required else "")])
    for column in columns:
        if column.spec.choices and not column.labels:
            notes.append([column.header, "、".join(column.spec.choices)])
    for column in columns:
        if column.labels:
            notes.append([column.header, "、".join(label for _code, label in column.labels)])
    notes.append(["", f"第 2 行是示例(编号 {SAMPLE_IDS[kind]}),导入时会被跳过;请在它下面填写,或删除它。"])
    notes.append(["", "编号与已有数据相同的行会更新该数据(导入前的检查页列出每一项改动);"
                      "表中没有的列和留空的单元格保持原值。"])
    notes.column_dimensions["A"].width = 18
    notes.column_dimensions["B"].width = 70
    return _workbook_bytes(book)


_HELP: Final[dict[str, str]] = {
    "text": "文本(按文本格式填写,电话和代码不要存成数字)",
    "str": "文本",
    "int": "非负整数",
    "bool": "填“是”或“否”",
    "list": "多个值用顿号、逗号或分号分隔",
    "date": "日期,例如 2026-11-20",
}


def _example(column: Column) -> Any:
    if column.type == "int" and column.example:
        return int(column.example)
    return column.example
