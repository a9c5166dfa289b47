"""Spreadsheet imports: sheet rows checked like dataset rows, then written in atomic chunks.

* **Validation** (:func:`validate`): cells become dataset rows (:func:`_convert`: phone numbers and codes
  stay text, 是/否 become booleans, labels such as 副队长 become codes, Excel dates become ``YYYY-MM-DD``),
  each value within the JSON API's limit for its field; the rows are then checked by
  :func:`graph.dataset.check_rows` (in memory), so an import accepts exactly what the dataset loader accepts.
  Every bad row is reported with its spreadsheet row number and a problem code (:class:`RowProblem`),
  which the web writes in the reader's language (:mod:`web.row_issues`). A row whose id is stored is an
  update: the preview lists the fields it changes (:class:`FieldChange`), and it is written over the
  stored row, so columns the sheet lacks and blank cells keep their values, and so do the relationships
  derived from them (skills, a solved problem's ``solved_by`` history and status).
* **Applying** (:func:`apply_rows`): valid rows are written with :func:`graph.dataset.load_rows` in
  chunks (each chunk atomic), reporting progress after each chunk. Rows are keyed by ``编号`` so a re-run
  after an interruption is harmless.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Final

from openpyxl.utils.datetime import from_excel

from graph.dataset import check_rows, load_rows, props_to_row
from graph.schema import ITEMS_MAX, SCHEMA, Issue, got
from graph.spreadsheet import COLUMNS, LABEL_OF, SAMPLE_IDS, Column, UploadError, header_key, split_list, unquote_text
from graph.store import GraphStore

__all__ = ["CHUNK", "FieldChange", "Preview", "RowProblem", "apply_rows", "validate"]

#: Rows written per atomic chunk when applying (one progress step each).
CHUNK: Final = 100

_TRUE = {"是", "有", "已建会", "已建", "true", "yes", "y", "1", "√", "✓", "在岗"}
_FALSE = {"否", "无", "未建会", "未建", "false", "no", "n", "0", "×", "不在岗"}



@dataclass(frozen=True)
class RowProblem:
    """One bad spreadsheet row: its row number (the header is row 1), the row's label and the problem as a
    code with parameters, which :mod:`web.row_issues` writes in the reader's language."""

    row: int
    issue: Issue
    label: str

    @property
    def column(self) -> str:
        """The Chinese header of the column concerned ('' when the problem is not about one column)."""
        spec = next((f for f in SCHEMA.get(self.label, ()) if f.name == self.issue.field and f.sheet), None)
        return spec.header if spec is not None else ""


@dataclass(frozen=True)
class FieldChange:
    """One field an imported row changes in a stored node: the column header, the old and the new value as
    the spreadsheet shows them."""

    column: str
    old: str
    new: str


@dataclass
class Preview:
    """The outcome of :func:`validate`: rows ready to write and every problem found.

    ``changes`` runs parallel to ``rows``: ``None`` for a row that creates a node, else the fields it
    changes in the stored node (empty when it changes nothing).
    """

    kind: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    row_numbers: list[int] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)
    total: int = 0
    changes: list[list[FieldChange] | None] = field(default_factory=list)

    @property
    def bad_rows(self) -> int:
        return len({p.row for p in self.problems})

    @property
    def new_rows(self) -> int:
        return sum(1 for c in self.changes if c is None)

    @property
    def updated_rows(self) -> int:
        return sum(1 for c in self.changes if c)

    @property
    def unchanged_rows(self) -> int:
        return sum(1 for c in self.changes if c is not None and not c)


# -- converting cells ---------------------------------------------------------------------------
def _text(value: Any) -> str | None:
    """A cell as text; whole numbers lose Excel's ``.0`` (a phone number typed into a number cell)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "是" if value else "否"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime | date):
        return value.isoformat()[:10]
    text = unquote_text(str(value)).strip()
    return text or None


def _convert(column: Column, value: Any) -> tuple[Any, Issue | None]:
    """``(dataset value, problem or None)``; an unconvertible value is kept so the dataset validation
    reports it too."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None, None
    if column.type == "text":
        if isinstance(value, float) and not value.is_integer():
            return _text(value), Issue("decimal-text", column.key, {"got": value})
        if column.key == "credit_code" and isinstance(value, int | float) and len(str(int(value))) > 15:
            return _text(value), Issue("credit-code-number", column.key)
        return _text(value), None
    if column.type == "str":
        text = _text(value)
        return (column.code(text) if text is not None and column.labels else text), None
    if column.type == "int":
        if isinstance(value, bool):
            return value, None
        if isinstance(value, int):
            return value, None
        if isinstance(value, float) and value.is_integer():
            return int(value), None
        text = str(value).strip()
        if re.fullmatch(r"\d+(\.0+)?", text):
            return int(float(text)), None
        return text, Issue("type", column.key, {"expected": "int", "got": got(text[:30])})
    if column.type == "bool":
        if isinstance(value, bool):
            return value, None
        text = _text(value) or ""
        if text.lower() in _TRUE:
            return True, None
        if text.lower() in _FALSE:
            return False, None
        return text, Issue("type", column.key, {"expected": "bool", "got": got(text[:30])})
    if column.type == "list":
        return split_list(_text(value)), None
    if column.type == "date":
        if isinstance(value, datetime | date):
            return value.isoformat()[:10], None
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                moment = from_excel(value)
            except (ValueError, OverflowError, TypeError):
                moment = None
            if isinstance(moment, datetime | date):
                return moment.isoformat()[:10], None
        text = (_text(value) or "").replace("/", "-").replace(".", "-")
        match = re.fullmatch(r"(\d{4})-(\d{1,2})-(\d{1,2})", text)
        if match:
            y, m, d = (int(g) for g in match.groups())
            try:
                return date(y, m, d).isoformat(), None
            except ValueError:
                pass
        return text, Issue("type", column.key, {"expected": "date", "got": got(text[:30])})
    raise AssertionError(column.type)


def _too_long(column: Column, value: Any) -> Issue | None:
    """Why ``value`` is longer than the JSON API would accept for this field, or None."""
    if isinstance(value, str) and len(value) > column.limit:
        return Issue("too-long", column.key, {"limit": column.limit, "length": len(value)})
    if isinstance(value, list):
        if len(value) > ITEMS_MAX:
            return Issue("too-many-items", column.key, {"limit": ITEMS_MAX, "count": len(value)})
        longest = max((len(v) for v in value), default=0)
        if longest > column.limit:
            return Issue("item-too-long", column.key, {"limit": column.limit, "length": longest})
    return None


# -- validation ---------------------------------------------------------------------------------
def _match_columns(kind: str, header: Iterable[str]) -> tuple[dict[str, Column], list[str]]:
    by_name: dict[str, Column] = {}
    for column in COLUMNS[kind]:
        by_name[header_key(column.header)] = column
        by_name[header_key(column.key)] = column
    found: dict[str, Column] = {}
    unknown: list[str] = []
    for name in header:
        match = by_name.get(header_key(name))
        if match is None:
            unknown.append(name)
        else:
            found[name] = match
    return found, unknown


def validate(
    store: GraphStore,
    kind: str,
    records: Sequence[tuple[int, Mapping[str, Any]]],
    *,
    district: str | None = None,
    districts: Iterable[str] = (),
) -> Preview:
    """Check spreadsheet rows and collect every problem, in Chinese, by spreadsheet row number.

    Parameters
    ----------
    records
        ``(row number, {header: value})`` from :func:`read_table`.
    district
        A district coordinator's district: rows of other districts are refused.
    districts
        The known district names; a row naming another district is refused (typos such as 亭湖).

    Raises
    ------
    UploadError
        If a required column is missing from the header.
    """
    if kind not in COLUMNS:
        raise UploadError("unknown-kind", kind=kind)
    label = LABEL_OF[kind]
    preview = Preview(kind=kind, total=len(records))
    header: dict[str, None] = {}
    for _number, record in records:
        header.update(dict.fromkeys(record))
    found, _unknown = _match_columns(kind, header)
    present = {c.key for c in found.values()}
    missing = [c.key for c in COLUMNS[kind] if c.required and c.key not in present]
    if records and missing:
        raise UploadError("missing-columns", label=label, columns=missing)
    known_districts = set(districts)
    stored = {n["id"]: n for n in store.iter_nodes(label)}
    converted: list[tuple[int, dict[str, Any]]] = []
    for number, record in records:
        row: dict[str, Any] = {}
        problems: list[RowProblem] = []
        for name, value in record.items():
            column = found.get(name)
            if column is None:
                continue
            converted_value, problem = _convert(column, value)
            problem = problem or _too_long(column, converted_value)
            if problem:
                problems.append(RowProblem(number, problem, label))
            if converted_value is not None and converted_value != []:
                row[column.key] = converted_value
        if row.get("id") in SAMPLE_IDS.values():
            preview.problems.append(RowProblem(number, Issue("sample-row", "id", {"id": row["id"]}), label))
            continue
        for column in COLUMNS[kind]:
            if column.required and row.get(column.key) in (None, ""):
                problems.append(RowProblem(number, Issue("required", column.key), label))
        if kind == "problems" and row.get("id") not in stored:  # an update without a status keeps the stored one
            row.setdefault("status", "open")
        for column in COLUMNS[kind]:
            # closed enumerations the dataset loader does not check itself (stored data may hold older values)
            choices, value = column.spec.choices, row.get(column.key)
            if choices and column.spec.dataset_check != "all" and value and value not in choices:
                problems.append(RowProblem(number, Issue("choice", column.key, {"choices": list(choices)}), label))
        row_district = row.get("district")
        if row_district and known_districts and row_district not in known_districts:
            problems.append(RowProblem(number, Issue("unknown-district", "district", {
                "value": row_district, "districts": sorted(known_districts)}), label))
        elif district and row_district and row_district != district:
            problems.append(RowProblem(number, Issue("other-district", "district", {"district": district}), label))
        preview.problems.extend(problems)
        if not problems:
            converted.append((number, row))
    # the dataset loader's own checks (types, duplicates, references), run on the remaining rows
    known = {lab: {n["id"] for n in store.iter_nodes(lab)} for lab in ("Enterprise", "Worker")}
    line_to_row = {i: number for i, (number, _row) in enumerate(converted, 1)}
    data = check_rows(label, [row for _n, row in converted], known=known)
    bad_lines: set[int] = set()
    for error in data.errors:
        number = line_to_row.get(error.line, error.line)
        bad_lines.add(error.line)
        issue = error.issue or Issue("bad-json", params={"error": error.reason})
        if "first_line" in issue.params:  # a line of the file written above: name the spreadsheet row instead
            first = issue.params["first_line"]
            issue = Issue(issue.code, issue.field, {**issue.params, "first_line": line_to_row.get(first, first)})
        preview.problems.append(RowProblem(number, issue, label))
    good = {row["id"] for row in data.rows.get(label, [])}
    for i, (number, row) in enumerate(converted, 1):
        if i not in bad_lines and row["id"] in good:
            preview.row_numbers.append(number)
            node = stored.get(row["id"])
            if node is None:
                preview.changes.append(None)
                preview.rows.append(row)
                continue
            # an update writes the stored row with the sheet's cells over it: columns the sheet lacks and
            # blank cells keep their values, and so do the relationships derived from them (skills, the
            # solved_by history), which a partial row would otherwise drop
            old = props_to_row(label, node)
            preview.changes.append(_changes(kind, old, row))
            preview.rows.append({**old, **row})
    preview.problems.sort(key=lambda p: p.row)
    return preview


def _shown(column: Column, value: Any) -> str:
    """A value as the spreadsheet shows it (labels, 是/否, lists joined with 、)."""
    if value is None:
        return ""
    if isinstance(value, list):
        return "、".join(str(v) for v in value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return str(column.label(value))


def _changes(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """The fields of ``new`` (the columns the sheet has) whose value differs from the stored row ``old``;
    columns the sheet does not have keep their stored values (the write merges)."""
    out = []
    for column in COLUMNS[kind]:
        if column.key == "id" or column.key not in new:
            continue
        before, after = _shown(column, old.get(column.key)), _shown(column, new[column.key])
        if before != after:
            out.append(FieldChange(column.header, before, after))
    return out


# -- applying -----------------------------------------------------------------------------------
def apply_rows(store: GraphStore, kind: str, rows: Sequence[Mapping[str, Any]], *,
               progress: Callable[[int, int], None] | None = None, chunk: int = CHUNK) -> int:
    """Write validated rows in atomic chunks with :func:`graph.dataset.load_rows`; returns rows written.

    ``progress(done, total)`` is called after each chunk.

    Raises
    ------
    graph.errors.DatasetError
        If a chunk no longer validates (the store changed since the preview); earlier chunks stay.
    """
    label = LABEL_OF[kind]
    total = len(rows)
    done = 0
    if progress:
        progress(0, total)
    for start in range(0, total, chunk):
        part = rows[start:start + chunk]
        load_rows(store, label, part)
        done += len(part)
        if progress:
            progress(done, total)
    return done


