"""The row schema is written once (graph.schema): the dataset checks, the spreadsheet columns and the API's
request schemas agree with it, and every validation code is written in Chinese and in English."""

from __future__ import annotations

import re
from typing import Any

import pytest
from marshmallow import Schema
from marshmallow.validate import Length, OneOf, Range

from graph.dataset import save_row
from graph.errors import DatasetError
from graph.memory import MemoryStore
from graph.schema import CODES, ITEMS_MAX, SCHEMA, Field, Issue, check_row, describe
from graph.spreadsheet import COLUMNS, LABEL_OF, UPLOAD_ERRORS, UploadError
from tests.api_support import make_app
from web.api import schemas
from web.row_issues import issue_text, row_error_text, upload_error_text

CJK = re.compile(r"[\u4e00-\u9fff]")
API = {  # label -> (create body, update body)
    "Worker": (schemas.WorkerIn, schemas.WorkerPatch),
    "Enterprise": (schemas.EnterpriseIn, schemas.EnterprisePatch),
    "Problem": (schemas.ProblemIn, schemas.ProblemPatch),
    "Skill": (schemas.SkillIn, schemas.SkillPatch),
    "IndustryChain": (schemas.ChainIn, schemas.ChainPatch),
}
#: A value of the wrong type for each field type.
WRONG = {"str": 3, "int": "两次", "bool": "是", "list[str]": "焊接", "date": "20261120", "number": "x"}


def _validators(field: Any) -> list[Any]:
    return list(field.validators)


def _one(field: Any, kind: type) -> Any:
    found = [v for v in _validators(field) if isinstance(v, kind)]
    assert len(found) == 1, (field, found)
    return found[0]


@pytest.mark.parametrize("kind", list(COLUMNS))
def test_every_sheet_field_is_a_column_with_its_header_type_and_limit(kind: str) -> None:
    label = LABEL_OF[kind]
    specs = [f for f in SCHEMA[label] if f.sheet]
    assert [c.key for c in COLUMNS[kind]] == [f.name for f in specs]
    for column, spec in zip(COLUMNS[kind], specs, strict=True):
        assert column.header == spec.header and CJK.search(column.header), column
        assert column.title == spec.header + ("*" if spec.sheet_required else "")
        assert column.limit == spec.max_length and column.labels == spec.labels
        assert (column.type == "text") == spec.cell_text
        if not spec.cell_text:
            assert column.type == {"list[str]": "list"}.get(spec.type, spec.type)


@pytest.mark.parametrize("label", list(API))
def test_every_api_field_has_the_schema_type_limit_and_enumeration(label: str) -> None:
    create, patch = (cls() for cls in API[label])
    for body, is_patch in ((create, False), (patch, True)):
        specs = [f for f in SCHEMA[label] if (f.api_patch if is_patch else f.api)]
        assert set(body.fields) == {f.name for f in specs}, (label, is_patch)
        for spec in specs:
            field = body.fields[spec.name]
            assert field.required == (spec.api_required and not is_patch), spec
            assert field.allow_none == (is_patch and spec.nullable), spec
            _check_api_field(spec, field)


def _check_api_field(spec: Field, field: Any) -> None:
    if spec.type == "list[str]":
        assert _one(field, Length).max == ITEMS_MAX
        assert _one(field.inner, Length).max == spec.max_length and _one(field.inner, Length).min == 1
    elif spec.type == "int":
        assert spec.api_range is not None
        rng = _one(field, Range)
        assert (rng.min, rng.max) == spec.api_range and field.strict
    elif spec.type == "bool":
        assert field.truthy == {True} and field.falsy == {False}
    elif spec.choices:
        assert tuple(_one(field, OneOf).choices) == spec.choices
    elif spec.type == "str":
        assert _one(field, Length).max == spec.max_length, spec
        assert getattr(field, "multiline", False) == spec.multiline


def test_the_openapi_document_shows_the_schema_limits() -> None:
    app = make_app(MemoryStore())
    spec = app.test_client().get("/api/v1/openapi.json").get_json()["components"]["schemas"]
    assert spec["WorkerIn"]["properties"]["name"]["maxLength"] == 200
    assert spec["WorkerIn"]["properties"]["capacity"]["maximum"] == 1000
    assert spec["ProblemIn"]["properties"]["description"]["maxLength"] == 200_000
    assert spec["ProblemIn"]["properties"]["status"]["enum"] == ["open", "matched", "solved", "closed"]
    assert spec["EnterpriseIn"]["properties"]["credit_code"]["maxLength"] == 64
    assert spec["WorkerIn"]["required"] == ["name"]


@pytest.mark.parametrize("label", list(SCHEMA))
def test_the_dataset_checks_every_typed_field(label: str) -> None:
    base: dict[str, Any] = {"id": "X1", "title": "主轴异响"} if label == "Problem" else {"id": "X1"}
    assert check_row(label, base) is None
    for spec in SCHEMA[label]:
        if spec.name == "id":  # a missing-id or unsafe-id problem, tested in test_dataset.py
            continue
        issue = check_row(label, {**base, spec.name: WRONG[spec.type]})
        if spec.dataset_check == "none":
            assert issue is None, spec
        else:
            assert issue == Issue("type", spec.name), spec
            assert describe(issue).startswith(f'"{spec.name}" must be ')


def test_a_closed_enumeration_is_checked_where_the_schema_says() -> None:
    assert check_row("Problem", {"id": "P1", "title": "t", "status": "done"}) == Issue("choice", "status")
    assert check_row("Problem", {"id": "P1", "title": "t", "service_type": "其他"}) is None  # dataset_check="type"


#: Parameters for each code, none of them Chinese (so an English text must hold no Chinese).
PARAMS: dict[str, tuple[str, dict[str, Any]]] = {
    "unsafe-id": ("id", {"value": "a/b"}),
    "type": ("capacity", {"expected": "int", "got": '"x"'}),
    "choice": ("status", {"choices": ["open", "matched"]}),
    "duplicate-id": ("id", {"id": "W1", "first_line": 2}),
    "unknown-reference": ("employer_id", {"target": "Enterprise", "ids": ["E404"], "many": False}),
    "not-utf8": ("", {"byte": 3}),
    "bad-json": ("", {"error": "Expecting value"}),
    "unknown-label": ("", {"label": "Thing"}),
    "required": ("name", {}),
    "too-long": ("name", {"limit": 200, "length": 201}),
    "too-many-items": ("skills", {"limit": 200, "count": 201}),
    "item-too-long": ("skills", {"limit": 200, "length": 201}),
    "decimal-text": ("contact", {"got": 1.5}),
    "credit-code-number": ("credit_code", {}),
    "sample-row": ("id", {"id": "X-W0001"}),
    "unknown-district": ("district", {"value": "Tinghu", "districts": ["A", "B"]}),
    "other-district": ("district", {"district": "A"}),
}


@pytest.mark.parametrize("code", CODES)
def test_every_code_is_written_in_english_for_the_cli_and_in_both_languages_on_the_site(code: str) -> None:
    field, params = PARAMS.get(code, ("", {}))
    issue = Issue(code, field, params)
    assert describe(issue) != code and not CJK.search(describe(issue))
    app = make_app(MemoryStore())
    with app.test_request_context("/?lang=zh"):
        chinese = issue_text(issue, "Worker")
    with app.test_request_context("/?lang=en"):
        english = issue_text(issue, "Worker")
    assert chinese != code and CJK.search(chinese), chinese
    assert english != chinese and not CJK.search(english), english


def test_a_row_problem_renders_with_the_column_header_in_the_reader_s_language() -> None:
    app = make_app(MemoryStore())
    issue = Issue("type", "capacity", {"expected": "int", "got": '"两次"'})
    with app.test_request_context("/?lang=zh"):
        assert issue_text(issue, "Worker") == '“每月服务容量”应为非负整数,实际为 "两次"'
    with app.test_request_context("/?lang=en"):
        assert issue_text(issue, "Worker") == '“Monthly capacity” must be a non-negative integer; got "两次"'


def test_the_generated_schemas_are_marshmallow_schemas_named_as_before() -> None:
    for create, patch in API.values():
        assert issubclass(create, Schema) and issubclass(patch, Schema)
        assert create.__name__.endswith("In") and patch.__name__.endswith("Patch")


UPLOAD_PARAMS: dict[str, dict[str, Any]] = {
    "row-cells": {"limit": 16384}, "xlsx-too-big": {"limit": 50}, "xlsx-members": {"count": 300, "limit": 200},
    "too-many-lines": {"limit": 50000}, "too-slow": {"seconds": 30.0}, "cell-too-long": {"row": 2, "limit": 9},
    "too-many-rows": {"limit": 20000}, "unknown-kind": {"kind": "x"},
    "missing-columns": {"label": "Worker", "columns": ["id", "district"]},
}


@pytest.mark.parametrize("code", list(UPLOAD_ERRORS))
def test_every_upload_error_is_written_in_both_languages(code: str) -> None:
    error = UploadError(code, **UPLOAD_PARAMS.get(code, {}))
    assert not CJK.search(str(error))
    app = make_app(MemoryStore())
    with app.test_request_context("/?lang=zh"):
        chinese = upload_error_text(error)
    with app.test_request_context("/?lang=en"):
        english = upload_error_text(error)
    assert CJK.search(chinese) and not CJK.search(english), (chinese, english)


def test_a_refused_save_is_written_in_the_reader_s_language() -> None:
    store = MemoryStore()
    with pytest.raises(DatasetError) as caught:
        save_row(store, "Problem", {"id": "P1", "title": "主轴异响", "enterprise_id": "E404"})
    (error,) = caught.value.errors
    assert error.reason == "\"enterprise_id\" refers to unknown enterprise 'E404'"  # the CLI's text, unchanged
    app = make_app(store)
    with app.test_request_context("/?lang=zh"):
        assert row_error_text(error, "Problem") == "“企业编号”引用了不存在的企业 'E404'"
    with app.test_request_context("/?lang=en"):
        assert row_error_text(error, "Problem") == "“Enterprise ID” refers to an enterprise that does not exist: 'E404'"
