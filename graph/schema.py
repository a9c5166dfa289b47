"""The row schema, written once: every field of every dataset label, and validation problems as codes.

Three views are derived from :data:`SCHEMA`:

* the dataset loader's checks (:func:`check_row`, used by :mod:`graph.dataset`);
* the spreadsheet columns with their Chinese headers (``COLUMNS`` of the spreadsheet module: the fields
  whose ``sheet`` is true, in this order);
* the JSON API's request schemas (:mod:`web.api.schemas` generates its marshmallow fields from here:
  types, length limits, ranges, enumerations, required fields).

A validation problem is an :class:`Issue`: a code with parameters (``Issue("type", "capacity",
{"expected": "int", "got": '"x"'})``). :func:`describe` writes it in English for the command line;
the web renders the same codes in Chinese or English through Flask-Babel
(:mod:`web.row_issues`). Nothing parses a message back.

Chinese headers and enumeration labels are product data (the names the union's spreadsheets use), not
user-interface text, which is why they live here.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from graph.model import ID_MAX_LENGTH, PROBLEM_STATUSES, SERVICE_TYPES, is_safe_id

__all__ = [
    "CODES",
    "CODE_MAX",
    "ID_MAX",
    "ITEMS_MAX",
    "LABEL_OF_KIND",
    "LEVEL_LABELS",
    "NAME_MAX",
    "NAMED",
    "ROLE_LABELS",
    "SCHEMA",
    "STATUS_LABELS",
    "TEAM_LABELS",
    "TEXT_MAX",
    "TITLE_MAX",
    "Field",
    "FieldType",
    "Issue",
    "TYPE_TEXT",
    "check_row",
    "check_value",
    "describe",
    "field_of",
    "got",
]

# -- limits (the JSON API's; spreadsheets refuse the same values) ----------------------------------
#: Ids (workers, enterprises, problems, skills, chains).
ID_MAX: Final = ID_MAX_LENGTH
#: Names and other one-line texts (a worker's name, a district, a skill, a contact).
NAME_MAX: Final = 200
#: Problem titles, notes and reasons.
TITLE_MAX: Final = 2000
#: Problem descriptions.
TEXT_MAX: Final = 200_000
#: Codes such as the unified social credit code.
CODE_MAX: Final = 64
#: Items of a list field (skills, honours, tags...).
ITEMS_MAX: Final = 200

FieldType = Literal["str", "int", "bool", "list[str]", "date", "number"]

#: Worker levels, team roles, the city team and problem statuses: ``(stored code, spreadsheet label)``.
LEVEL_LABELS: Final = (("national", "全国"), ("provincial", "省级"), ("city", "市级"))
ROLE_LABELS: Final = (("captain", "队长"), ("vice_captain", "副队长"), ("member", "队员"))
TEAM_LABELS: Final = (("city", "市级服务队"),)
STATUS_LABELS: Final = (("open", "待对接"), ("matched", "已对接"), ("solved", "已解决"), ("closed", "已关闭"))

#: Labels whose node id is the name that rows refer to.
NAMED: Final = frozenset({"District", "IndustryChain", "Skill"})
#: Spreadsheet kinds and their labels.
LABEL_OF_KIND: Final[dict[str, str]] = {"workers": "Worker", "enterprises": "Enterprise", "problems": "Problem"}

_DATE: Final = re.compile(r"^\d{4}-\d{2}-\d{2}([T ][0-9:.+\-Z]*)?$")


@dataclass(frozen=True)
class Field:
    """One field of a row.

    Attributes
    ----------
    name
        The dataset key (and the API's field name).
    type
        ``str``, ``int`` (an integer >= 0), ``bool``, ``list[str]`` (non-empty strings), ``date``
        (``YYYY-MM-DD``, optionally a time), ``number``.
    header, header_en
        The spreadsheet column header (Chinese, as the union's sheets name it) and its English name.
    max_length
        Characters (of each item, for lists), as the JSON API allows; lists hold at most :data:`ITEMS_MAX`.
    sheet, sheet_required
        Whether the field is a spreadsheet column (templates, imports, exports), and whether a sheet must
        have the column and fill it (a ``*`` in the template).
    cell_text
        Spreadsheet cells formatted as text (ids, phone numbers, codes: Excel must not turn them into numbers).
    private
        Exported only to users who may see it (contacts).
    example
        The template's example value.
    labels
        ``(stored code, spreadsheet label)`` pairs: exports write the label, imports accept either.
    choices
        The only values allowed (a closed enumeration), if any.
    references
        The label a value (or each item) refers to by id.
    api, api_patch
        Whether the API's create (``...In``) and update (``...Patch``) bodies hold the field.
    api_required, nullable
        Required in a create body; ``null`` allowed in an update body (clears it).
    api_range
        ``(min, max)`` the API allows for an integer (datasets and sheets only ask for an integer >= 0).
    api_doc
        The OpenAPI description of the field in a create body.
    multiline
        Text that may hold tab, newline and carriage return.
    dataset_check
        What the dataset loader checks: ``all`` (type and choices), ``type``, or ``none`` (fields that
        sheets and the API added later; stored data may hold other types there).
    """

    name: str
    type: FieldType
    header: str = ""
    header_en: str = ""
    max_length: int = NAME_MAX
    sheet: bool = True
    sheet_required: bool = False
    cell_text: bool = False
    private: bool = False
    example: str = ""
    labels: tuple[tuple[str, str], ...] = ()
    choices: tuple[str, ...] = ()
    references: str = ""
    api: bool = True
    api_patch: bool = True
    api_required: bool = False
    nullable: bool = True
    api_range: tuple[int, int] | None = None
    api_doc: str = ""
    multiline: bool = False
    dataset_check: Literal["all", "type", "none"] = "all"


def _id(example: str) -> Field:
    return Field("id", "str", "编号", "ID", ID_MAX, sheet_required=True, cell_text=True, example=example,
                 api_patch=False, api_doc="generated when omitted; letters (CJK included), digits, - _ .")


#: Every field of every dataset label; spreadsheet columns keep this order.
SCHEMA: Final[dict[str, tuple[Field, ...]]] = {
    "Worker": (
        _id("示例-W0001"),
        Field("name", "str", "姓名", "Name", sheet_required=True, example="王建国", api_required=True,
              nullable=False),
        Field("district", "str", "区县", "District", sheet_required=True, example="亭湖区"),
        Field("skills", "list[str]", "技能", "Skills", example="数控编程、PLC"),
        Field("honours", "list[str]", "荣誉", "Honours", example="全国劳动模范、江苏工匠"),
        Field("level", "str", "级别", "Level", example="全国", labels=LEVEL_LABELS),
        Field("team", "str", "服务队", "Service team", example="亭湖区", labels=TEAM_LABELS),
        Field("role", "str", "队内职务", "Role in the team", example="副队长", labels=ROLE_LABELS),
        Field("capacity", "int", "每月服务容量", "Monthly capacity", example="2", api_range=(0, 1000)),
        Field("active", "bool", "在岗", "Active", example="是"),
        Field("employer_id", "str", "工作单位编号", "Employer ID", ID_MAX, cell_text=True,
              references="Enterprise"),
        Field("contact", "str", "联系电话", "Phone", cell_text=True, private=True, example="13800000000",
              api_doc="private: returned with write access only"),
        Field("service_menu", "list[str]", "服务清单", "Service menu", example="技术帮扶、技能培训"),
        Field("teaches", "bool", "可授课", "Teaches", example="是"),
        Field("studio", "str", "创新工作室", "Innovation studio", example="王建国劳模创新工作室"),
        Field("mentors", "list[str]", "带徒", "Mentors", sheet=False, references="Worker", api=False,
              api_patch=False),
    ),
    "Enterprise": (
        _id("示例-E0001"),
        Field("name", "str", "企业名称", "Enterprise name", sheet_required=True, example="盐城某某机械有限公司",
              api_required=True, nullable=False),
        Field("district", "str", "区县", "District", sheet_required=True, example="盐都区"),
        Field("industry_chain", "str", "产业链", "Industry chain", example="新能源汽车及核心零部件"),
        Field("tags", "list[str]", "标签", "Tags", example="专精特新、中小微"),
        Field("unionised", "bool", "已建工会", "Has a union", example="否"),
        Field("credit_code", "str", "统一社会信用代码", "Unified social credit code", CODE_MAX, cell_text=True,
              example="91320900MA1XXXXXXX"),
        Field("address", "str", "地址", "Address", example="盐城市盐都区开放大道 1 号", dataset_check="none"),
        Field("contact_person", "str", "联系人", "Contact person", example="张经理", dataset_check="none"),
        Field("contact_phone", "str", "联系人电话", "Contact phone", cell_text=True, private=True,
              example="13900000000", dataset_check="none",
              api_doc="private: returned with write access (or the district's coordinators)"),
    ),
    "Problem": (
        _id("示例-P0001"),
        Field("title", "str", "标题", "Title", TITLE_MAX, sheet_required=True, example="数控机床主轴异响",
              multiline=True),
        Field("description", "str", "描述", "Description", TEXT_MAX, example="加工中心主轴高速运转时异响,精度下降",
              multiline=True),
        Field("enterprise_id", "str", "企业编号", "Enterprise ID", ID_MAX, sheet_required=True, cell_text=True,
              example="示例-E0001", references="Enterprise"),
        Field("district", "str", "区县", "District", sheet_required=True, example="盐都区",
              api_doc="defaults to the enterprise's district"),
        Field("service_type", "str", "服务类型", "Service type", sheet_required=True, example="技术帮扶",
              choices=SERVICE_TYPES, dataset_check="type"),
        Field("skills", "list[str]", "所需技能", "Skills needed", example="数控维修、机械装调"),
        Field("status", "str", "状态", "Status", example="待对接", labels=STATUS_LABELS, choices=PROBLEM_STATUSES,
              nullable=False, api_doc="default open"),
        Field("posted_at", "date", "发布日期", "Posted on", example="2026-11-20", api_doc="YYYY-MM-DD, default today"),
        Field("demand", "int", "需要人数", "Workers wanted", example="1", api_range=(1, 100), api_doc="workers wanted"),
        Field("solved_at", "date", "解决日期", "Solved on", sheet=False, api=False, api_patch=False),
        Field("solved_by", "list[str]", "解决人", "Solved by", sheet=False, references="Worker", api=False,
              api_patch=False),
    ),
    "Skill": (
        Field("name", "str", "技能", "Skill", ID_MAX, sheet=False, api_required=True, api_patch=False,
              api_doc="the skill's id"),
        Field("category", "str", "类别", "Category", sheet=False),
        Field("aliases", "list[str]", "别名", "Aliases", sheet=False),
        Field("chain_ids", "list[str]", "产业链", "Industry chains", sheet=False,
              api_doc="industry chains the skill serves"),
    ),
    "IndustryChain": (
        Field("name", "str", "产业链", "Industry chain", ID_MAX, sheet=False, api_required=True, api_patch=False,
              api_doc="the chain's id"),
        Field("description", "str", "说明", "Description", TITLE_MAX, sheet=False, api=False, multiline=True,
              dataset_check="none"),
    ),
    "District": (
        Field("name", "str", "区县", "District", sheet=False, api=False, api_patch=False),
        Field("neighbours", "list[str]", "相邻区县", "Neighbours", sheet=False, api=False, api_patch=False),
    ),
}


def field_of(label: str, name: str) -> Field | None:
    """The field ``name`` of ``label``, or None.

    Examples
    --------
    >>> field_of("Worker", "capacity").header
    '每月服务容量'
    >>> field_of("Worker", "nickname") is None
    True
    """
    return next((f for f in SCHEMA.get(label, ()) if f.name == name), None)


# -- problems as codes -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Issue:
    """One validation problem: a ``code``, the ``field`` it concerns (a dataset key, or empty) and the
    parameters its message needs.

    Codes of the dataset loader: ``not-object``, ``missing-id``, ``unsafe-id`` (value), ``empty-field-name``,
    ``type`` (expected, got), ``title-or-description``, ``choice`` (choices), ``duplicate-id`` (id,
    first_line), ``unknown-reference`` (target, ids, many), ``not-utf8`` (byte), ``bad-json`` (error),
    ``not-a-directory``, ``missing-file``, ``unknown-label`` (label). Codes of spreadsheet imports:
    ``required``, ``too-long`` (limit, length), ``too-many-items`` (limit, count), ``item-too-long``
    (limit, length), ``decimal-text`` (got), ``credit-code-number``, ``sample-row`` (id),
    ``unknown-district`` (value, districts), ``other-district`` (district), ``not-finite`` (a number that is
    infinite, not a number, or an integer beyond 64 bits: neither store keeps those).
    """

    code: str
    field: str = ""
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)


#: Every code an :class:`Issue` may carry (each formatter knows them all; tests/test_schema.py checks it).
CODES: Final = (
    "not-object", "missing-id", "unsafe-id", "empty-field-name", "type", "title-or-description", "choice",
    "duplicate-id", "unknown-reference", "not-utf8", "bad-json", "not-a-directory", "missing-file", "unknown-label",
    "required", "too-long", "too-many-items", "item-too-long", "decimal-text", "credit-code-number", "sample-row",
    "unknown-district", "other-district", "not-finite",
)

#: English names of the types, as messages use them.
TYPE_TEXT: Final[dict[str, str]] = {
    "str": "a string", "int": "a non-negative integer", "bool": "true or false",
    "list[str]": "a list of non-empty strings", "date": "a date YYYY-MM-DD", "number": "a number",
}


def describe(issue: Issue) -> str:
    """The English text of ``issue`` (the command line's; the web renders codes with Flask-Babel).

    Examples
    --------
    >>> describe(Issue("type", "capacity", {"expected": "int", "got": '"x"'}))
    '"capacity" must be a non-negative integer, got "x"'
    >>> describe(Issue("unknown-reference", "solved_by", {"target": "Worker", "ids": ["w1", "w2"], "many": True}))
    '"solved_by" refers to unknown worker(s) w1, w2'
    """
    p, key = issue.params, issue.field
    texts: dict[str, Any] = {
        "not-object": lambda: "a row must be a JSON object",
        "missing-id": lambda: 'missing or empty "id" (a non-empty string is required)',
        "unsafe-id": lambda: ('"id" must hold only letters, digits, "-", "_" and ".", start with a letter, digit '
                              f'or "_" and have at most {ID_MAX} characters, got "{p["value"]}"'),
        "empty-field-name": lambda: "a field name is empty",
        "type": lambda: f'"{key}" must be {TYPE_TEXT[p["expected"]]}, got {p["got"]}',
        "title-or-description": lambda: 'a problem needs a "title" or a "description"',
        "choice": lambda: f'"{key}" must be one of {", ".join(p["choices"])}',
        "duplicate-id": lambda: f"duplicate id {p['id']!r} (first at line {p['first_line']})",
        "unknown-reference": lambda: (
            f'"{key}" refers to unknown {p["target"].lower()}(s) {", ".join(p["ids"][:5])}' if p.get("many")
            else f'"{key}" refers to unknown {p["target"].lower()} {p["ids"][0]!r}'),
        "not-utf8": lambda: f"not valid UTF-8 (byte {p['byte']})",
        "bad-json": lambda: f"bad JSON: {p['error']}",
        "not-a-directory": lambda: "not a directory",
        "missing-file": lambda: "required file is missing",
        "unknown-label": lambda: f"unknown dataset label {p['label']!r}",
        "required": lambda: f'"{key}" must not be empty',
        "too-long": lambda: f'"{key}" holds at most {p["limit"]} characters, got {p["length"]}',
        "too-many-items": lambda: f'"{key}" holds at most {p["limit"]} items, got {p["count"]}',
        "item-too-long": lambda: f'each item of "{key}" holds at most {p["limit"]} characters, one has {p["length"]}',
        "decimal-text": lambda: f'"{key}" must be text; the spreadsheet stored the decimal number {p["got"]}',
        "credit-code-number": lambda: ('the spreadsheet stored the unified social credit code as a number '
                                       '(its last digits may be lost)'),
        "sample-row": lambda: f"the template's example row ({p['id']}) is skipped",
        "unknown-district": lambda: f'the district "{p["value"]}" is not one of {", ".join(p["districts"])}',
        "other-district": lambda: f"only rows of your district ({p['district']}) may be imported",
        "not-finite": lambda: f'"{key}" must be a finite number within 64 bits (not infinity, NaN or larger)',
    }
    text = texts.get(issue.code)
    return str(text()) if text is not None else issue.code


def _visible(text: str) -> str:
    r"""``text`` with invisible characters (controls, bidirectional overrides...) written as ``\uXXXX``.

    Examples
    --------
    >>> _visible("W1\u202egnp")
    'W1\\u202egnp'
    """
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def got(value: Any) -> str:
    """A value as a message quotes it (JSON, at most 60 characters).

    Examples
    --------
    >>> got("两次"), got(3)
    ('"两次"', '3')
    """
    return json.dumps(value, ensure_ascii=False)[:60]


def check_value(spec: Field, value: Any) -> bool:
    """Whether ``value`` has the type of ``spec`` (``None`` is checked by the caller).

    Examples
    --------
    >>> capacity = field_of("Worker", "capacity")
    >>> [check_value(capacity, v) for v in (2, 0, -1, True, "2")]
    [True, True, False, False, False]
    """
    kind = spec.type
    if kind == "str":
        return isinstance(value, str)
    if kind == "int":
        return isinstance(value, int) and not isinstance(value, bool) and value >= 0
    if kind == "bool":
        return isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "list[str]":
        return isinstance(value, list) and all(isinstance(v, str) and v for v in value)
    if kind == "date":
        return isinstance(value, str) and bool(_DATE.match(value))
    raise AssertionError(kind)


def _storable_number(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63
    return True


def is_finite(value: Any) -> bool:
    """False for an infinite or NaN float or an integer beyond 64 bits, alone or in a list: neither store keeps
    them (Neo4j's integers are 64-bit; the embedded store's JSON has no infinity).

    Examples
    --------
    >>> is_finite(1.5), is_finite(float("inf")), is_finite([1.0, float("nan")]), is_finite(2**64), is_finite("inf")
    (True, False, False, False, True)
    """
    if isinstance(value, list):
        return all(_storable_number(v) for v in value)
    return _storable_number(value)


def check_row(label: str, row: Any, *, new: bool = True) -> Issue | None:
    """The first problem of ``row`` as a row of ``label``, or None. The safe id alphabet applies to ``new``
    rows (every row of a dataset file; a save of a node not yet stored). References are checked by the
    caller, which knows the stored ids.

    Examples
    --------
    >>> check_row("Worker", {"id": "W1", "capacity": "两次"})
    Issue(code='type', field='capacity', params={'expected': 'int', 'got': '"两次"'})
    >>> check_row("Problem", {"id": "P1", "title": "主轴异响", "status": "open"}) is None
    True
    """
    if not isinstance(row, dict):
        return Issue("not-object")
    node_id = row.get("id")
    if not isinstance(node_id, str) or not node_id.strip():
        return Issue("missing-id", "id")
    if new and label not in NAMED and not is_safe_id(node_id):
        return Issue("unsafe-id", "id", {"value": _visible(node_id)[:60]})
    if any(not key.strip() for key in row):
        return Issue("empty-field-name")
    for key, value in row.items():
        if not is_finite(value):
            return Issue("not-finite", key)
    for spec in SCHEMA[label]:
        if spec.dataset_check == "none" or row.get(spec.name) is None:
            continue
        if not check_value(spec, row[spec.name]):
            return Issue("type", spec.name, {"expected": spec.type, "got": got(row[spec.name])})
    if label == "Problem" and not (row.get("title") or "").strip() and not (row.get("description") or "").strip():
        return Issue("title-or-description", "title")
    for spec in SCHEMA[label]:
        value = row.get(spec.name)
        if spec.choices and spec.dataset_check == "all" and value is not None and value not in spec.choices:
            return Issue("choice", spec.name, {"choices": list(spec.choices)})
    return None
