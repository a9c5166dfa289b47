"""Validation problems of rows (:class:`graph.schema.Issue` codes) in the reader's language.

The dataset loader and spreadsheet imports report problems as codes with parameters; this module is the
one place that writes them for people, through Flask-Babel (Chinese message ids, English in
``messages.po``), in the locale Flask-Babel has selected (the pages' rule, or ``force_locale``).
Columns are named by their spreadsheet header in Chinese, by the schema's English header in English.
The pages use it (:func:`problem_text` and :func:`problem_column` are template globals of the import pages,
:mod:`web.ui.importexport`) and so do the API's errors (:func:`dataset_error_fields`, :mod:`web.errors`):
it imports neither.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from flask_babel import get_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from graph.dataset import FILES
from graph.errors import DatasetError, RowError
from graph.schema import ID_MAX, Issue, field_of
from graph.sheet_import import RowProblem
from graph.spreadsheet import UploadError
from web.labels import STATUS_LABELS

__all__ = [
    "column_name",
    "dataset_error_fields",
    "issue_text",
    "problem_column",
    "problem_text",
    "row_error_text",
    "upload_error_text",
]

_TYPE = {
    "str": _l("文本"), "int": _l("非负整数"), "bool": _l("“是”或“否”"), "list[str]": _l("非空的列表(用顿号分隔)"),
    "date": _l("日期(YYYY-MM-DD)"), "number": _l("数字"),
}


def _lang() -> str:
    """The language Flask-Babel renders in now (``zh`` or ``en``)."""
    return str(get_locale() or "zh")[:2]


def column_name(label: str, name: str) -> str:
    """The spreadsheet header of ``label``'s field ``name`` in the reader's language (``name`` if unknown)."""
    spec = field_of(label, name)
    if spec is None or not spec.header:
        return name
    return spec.header_en if _lang() == "en" and spec.header_en else spec.header


def _list(items: Any) -> str:
    return (", " if _lang() == "en" else "、").join(str(i) for i in items)


def _choice(value: str) -> str:
    label = STATUS_LABELS.get(value)
    return f"{value}({label})" if label is not None else value


def _unknown_reference(column: str, p: Mapping[str, Any]) -> str:
    ids = _list(p["ids"]) if p.get("many") else repr(p["ids"][0])
    if p["target"] == "Enterprise":
        return _("“%(column)s”引用了不存在的企业 %(ids)s", column=column, ids=ids)
    if p["target"] == "Worker":
        return _("“%(column)s”引用了不存在的劳模工匠 %(ids)s", column=column, ids=ids)
    return _("“%(column)s”引用了不存在的 %(target)s %(ids)s", column=column, target=p["target"], ids=ids)


def issue_text(issue: Issue, label: str) -> str:
    """``issue`` of a ``label`` row as one sentence in the reader's language.

    Examples
    --------
    >>> issue_text(Issue("type", "capacity", {"expected": "int", "got": '"x"'}), "Worker")
    '“每月服务容量”应为非负整数,实际为 "x"'
    """
    p: Mapping[str, Any] = issue.params
    column = column_name(label, issue.field) if issue.field else ""
    texts: dict[str, Callable[[], str]] = {
        "not-object": lambda: _("这一行不是 JSON 对象"),
        "missing-id": lambda: _("缺少“编号”"),
        "unsafe-id": lambda: _("“编号”只能包含字母(含汉字)、数字和 - _ .,以字母、数字或 _ 开头,最多 %(limit)s 个字符,"
                               "实际为 \"%(value)s\"", limit=ID_MAX, value=p["value"]),
        "empty-field-name": lambda: _("有一个列名是空的"),
        "type": lambda: _("“%(column)s”应为%(expected)s,实际为 %(got)s", column=column,
                          expected=str(_TYPE[p["expected"]]), got=p["got"]),
        "title-or-description": lambda: _("问题需要填写“标题”或“描述”"),
        "choice": lambda: _("“%(column)s”只能是 %(choices)s", column=column,
                            choices="、".join(_choice(c) for c in p["choices"])),
        "duplicate-id": lambda: _("编号 %(id)s 重复(第一次出现在第 %(n)s 行)", id=repr(p["id"]), n=p["first_line"]),
        "unknown-reference": lambda: _unknown_reference(column, p),
        "not-utf8": lambda: _("含有无法识别的字符"),
        "bad-json": lambda: _("无法读取这一行:%(error)s", error=p["error"]),
        "not-a-directory": lambda: _("不是一个文件夹"),
        "missing-file": lambda: _("缺少必需的文件"),
        "unknown-label": lambda: _("未知的数据类型 %(label)s", label=p["label"]),
        "required": lambda: _("“%(column)s”不能为空", column=column),
        "too-long": lambda: _("“%(column)s”最多 %(limit)s 个字符,实际为 %(length)s 个", column=column,
                              limit=p["limit"], length=p["length"]),
        "too-many-items": lambda: _("“%(column)s”最多 %(limit)s 项,实际为 %(count)s 项", column=column,
                                    limit=p["limit"], count=p["count"]),
        "item-too-long": lambda: _("“%(column)s”每项最多 %(limit)s 个字符,有一项为 %(length)s 个", column=column,
                                   limit=p["limit"], length=p["length"]),
        "decimal-text": lambda: _("“%(column)s”应为文本,Excel 把它存成了小数 %(got)s", column=column, got=p["got"]),
        "credit-code-number": lambda: _("统一社会信用代码被 Excel 存成了数字(末几位可能已丢失),"
                                        "请把该列设为文本后重新填写"),
        "sample-row": lambda: _("这是模板的示例行(编号 %(id)s),已跳过,不会导入;请删除该行,或改成真实的编号和内容",
                                id=p["id"]),
        "unknown-district": lambda: _("区县“%(value)s”不在名单中(应为 %(districts)s)", value=p["value"],
                                      districts="、".join(p["districts"])),
        "other-district": lambda: _("只能导入本区县(%(district)s)的数据", district=p["district"]),
        "not-finite": lambda: _("“%(column)s”必须是有限的数字(不能是无穷大、NaN 或超过 64 位的整数)",
                                column=column or issue.field),
    }
    text = texts.get(issue.code)
    return text() if text is not None else issue.code


def problem_column(problem: RowProblem) -> str:
    """The column a spreadsheet row problem concerns, in the reader's language ('' when none)."""
    return column_name(problem.label, problem.issue.field) if problem.column else ""


def problem_text(problem: RowProblem) -> str:
    """A spreadsheet row problem as one sentence in the reader's language."""
    return issue_text(problem.issue, problem.label)


def row_error_text(error: RowError, label: str) -> str:
    """A :class:`graph.errors.RowError` (say from :func:`graph.dataset.save_row`) in the reader's language."""
    return issue_text(error.issue, label) if error.issue is not None else error.reason


def dataset_error_fields(error: DatasetError) -> dict[str, list[str]]:
    """The bad rows of ``error`` as ``{"body.<field>": [sentence, ...]}`` for an API validation problem.

    A row of a dataset file is named by its file's label (``workers.jsonl``: ``Worker``), a row saved through
    the API by its label; a problem with no field is listed under ``body``.
    """
    fields: dict[str, list[str]] = {}
    for row_error in error.errors:
        issue = row_error.issue
        field = f"body.{issue.field}" if issue is not None and issue.field else "body"
        fields.setdefault(field, []).append(row_error_text(row_error, FILES.get(row_error.file, row_error.file)))
    return fields


def upload_error_text(error: UploadError) -> str:
    """Why an uploaded file cannot be read at all, in the reader's language.

    Examples
    --------
    >>> upload_error_text(UploadError("too-many-rows", limit=20000))
    '一次最多导入 20000 行'
    """
    p: Mapping[str, Any] = error.params
    texts: dict[str, Callable[[], str]] = {
        "row-cells": lambda: _("Excel 文件中有一行超过 %(limit)s 个单元格,无法导入", limit=p["limit"]),
        "xlsx-too-big": lambda: _("Excel 文件解压后超过 %(limit)s MiB,无法导入;请删除多余内容或拆分后分批导入",
                                  limit=p["limit"]),
        "xlsx-members": lambda: _("Excel 文件包含 %(count)s 个部件(最多 %(limit)s 个),无法导入", count=p["count"],
                                  limit=p["limit"]),
        "xlsx-unreadable": lambda: _("无法读取该 Excel 文件,请确认是 .xlsx 格式"),
        "csv-encoding": lambda: _("无法识别 CSV 文件的编码(请保存为 UTF-8 或 GBK)"),
        "file-type": lambda: _("只接受 .xlsx 或 .csv 文件"),
        "too-many-lines": lambda: _("表格超过 %(limit)s 行(空行也计入),请删除多余的空行或拆分后分批导入",
                                    limit=p["limit"]),
        "too-slow": lambda: _("读取文件超过 %(seconds)s 秒,已停止;请拆分后分批导入", seconds=f"{p['seconds']:g}"),
        "cell-too-long": lambda: _("第 %(row)s 行有单元格超过 %(limit)s 个字符,无法导入", row=p["row"],
                                   limit=p["limit"]),
        "too-many-rows": lambda: _("一次最多导入 %(limit)s 行", limit=p["limit"]),
        "csv-unreadable": lambda: _("CSV 文件无法读取:单元格过大或格式有误"),
        "empty-file": lambda: _("文件是空的:第一行应为表头"),
        "unknown-kind": lambda: _("未知的数据类型 %(label)s", label=p["kind"]),
        "missing-columns": lambda: _("缺少必填列:%(columns)s(请使用下载的模板)", columns=(
            ", " if _lang() == "en" else "、").join(column_name(p["label"], c) for c in p["columns"])),
    }
    text = texts.get(error.code)
    return text() if text is not None else str(error)
