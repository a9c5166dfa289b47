"""Request and response schemas of the JSON API (marshmallow, through APIFlask).

Unknown fields in a request body are rejected (each one listed as a bad field), integers are strict
(``"5"`` and ``5.5`` are not an integer). The id of a worker, enterprise or problem being created uses a
safe alphabet (letters of any script, digits, ``-_.``; :func:`graph.model.is_safe_id`), a skill's or
chain's name (its id) holds no path separators, quotes, control or bidirectional-control characters
(:func:`graph.model.is_safe_name_id`); ids that only refer to existing nodes are 1-128 characters
without ``/`` or control characters. Text fields accept long Chinese text (descriptions up to 200,000
characters) and are stored verbatim: no trimming, no HTML escaping (escaping is the job of whoever renders them).

The create and update bodies of workers, enterprises, problems, skills and chains (``WorkerIn``,
``WorkerPatch``... and the recommendation's ``ProblemText``) are generated from the row schema,
:data:`graph.schema.SCHEMA` (:func:`_resource`): field types, length limits, ranges, enumerations and
required fields come from there, so the API, spreadsheet imports and dataset loads agree.

Every string of a request (bodies and query strings) goes through :class:`String`, which rejects
C0 control characters (tab, newline and CR are allowed in multi-line text: titles, descriptions,
notes, reasons) and lone UTF-16 surrogates such as ``"\ud800"``: neither can be stored, exported to
a workbook or encoded as UTF-8, so they are a 422 naming the field rather than a failure later.
"""

from __future__ import annotations

import re
from typing import Any

from apiflask import Schema, fields
from apiflask.fields import Boolean, Dict, Float, Integer, List, Nested
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import RAISE, ValidationError, validates_schema

from graph.model import PROBLEM_STATUSES, SERVICE_TYPES, is_safe_id, is_safe_name_id
from graph.schema import ID_MAX, ITEMS_MAX, NAME_MAX, NAMED, SCHEMA, TITLE_MAX, Field
from workflow.notifications import KINDS
from workflow.selection import MATCH_STATES

__all__ = [
    "AuditQuery",
    "CompleteIn",
    "DeclineIn",
    "EnterpriseIn",
    "EnterprisePatch",
    "EnterpriseQuery",
    "InviteIn",
    "VolunteerIn",
    "ConfirmIn",
    "MatchQuery",
    "MarkReadDoc",
    "MarkReadIn",
    "NotificationDoc",
    "NotificationPageDoc",
    "NotificationQuery",
    "PageQuery",
    "PlanIn",
    "ApplyIn",
    "ProblemIn",
    "ProblemPatch",
    "ProblemQuery",
    "RecommendIn",
    "RecommendQuery",
    "SkillIn",
    "SkillPatch",
    "SkillQuery",
    "String",
    "ChainIn",
    "ChainPatch",
    "StatsQuery",
    "SuggestionQuery",
    "WithdrawIn",
    "WorkerIn",
    "WorkerPatch",
    "WorkerQuery",
    "ID_PATTERN",
    "NAME_ID_ERROR",
    "NEW_ID_ERROR",
    "error_responses",
    "valid_id",
]

#: Ids: 1-128 characters, no slash, no control characters, no surrounding blanks.
ID_PATTERN = r"^(?![\s])[^/\x00-\x1f\x7f]{0,127}(?<![\s])$"
_ID_RE = re.compile(ID_PATTERN)
_DATE = r"^\d{4}-\d{2}-\d{2}([T ][0-9:.+\-Z]*)?$"
_NAME = NAME_MAX
#: Characters no request string may hold: C0 controls and lone surrogates; multi-line text may hold tab, LF, CR.
_BAD_LINE = re.compile(r"[\x00-\x1f\ud800-\udfff]")
_BAD_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff]")


class String(fields.String):
    """A request string without control characters or lone surrogates (see the module docstring).

    Parameters
    ----------
    multiline
        Allow tab, newline and carriage return (long text such as a description).
    """

    def __init__(self, *args: Any, multiline: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.multiline = multiline

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        text = super()._deserialize(value, attr, data, **kwargs)
        bad = (_BAD_TEXT if self.multiline else _BAD_LINE).search(text)
        if bad is None:
            return text
        char = bad.group()
        if "\ud800" <= char <= "\udfff":
            raise ValidationError(f"含有无效的 Unicode 代理字符 U+{ord(char):04X} / "
                                  f"contains a lone surrogate U+{ord(char):04X}")
        raise ValidationError(f"含有控制字符 U+{ord(char):04X} / contains the control character U+{ord(char):04X}")


def _id(**kw: Any) -> String:
    return String(validate=[Length(min=1, max=ID_MAX), Regexp(ID_PATTERN, error="不是有效的 id / not a valid id")],
                  **kw)


#: Why a new id or a name-id was refused (both languages, as the other validation messages).
NEW_ID_ERROR = ("只能包含字母(含汉字)、数字和 - _ .,以字母、数字或 _ 开头,最多 128 个字符 / "
                "only letters (CJK included), digits and - _ ., starting with a letter, digit or _, "
                "at most 128 characters")
NAME_ID_ERROR = ("不能含有 / \\ 引号、控制字符或双向控制字符,首尾不能是空白,最多 128 个字符 / "
                 "must not hold / \\ quotes, control or bidirectional-control characters, or surrounding "
                 "blanks, at most 128 characters")


def _check_new_id(value: str) -> None:
    if not is_safe_id(value):
        raise ValidationError(NEW_ID_ERROR)


def _check_name_id(value: str) -> None:
    if not is_safe_name_id(value):
        raise ValidationError(NAME_ID_ERROR)


def _new_id(**kw: Any) -> String:
    """The id of a node being created: the safe alphabet of :func:`graph.model.is_safe_id`."""
    metadata = {"description": "letters (CJK included), digits, - _ . ; at most 128 characters"}
    metadata.update(kw.pop("metadata", {}))
    return String(validate=[Length(min=1, max=ID_MAX), _check_new_id], metadata=metadata, **kw)


def _name_id(**kw: Any) -> String:
    """A name that is the node's id (skills, chains): :func:`graph.model.is_safe_name_id`."""
    return String(validate=[Length(min=1, max=ID_MAX), _check_name_id], **kw)


def _name(**kw: Any) -> String:
    return String(validate=Length(min=1, max=_NAME), **kw)


def _short(**kw: Any) -> String:
    return String(validate=Length(max=_NAME), **kw)


def _names(item_max: int = _NAME, **kw: Any) -> List:
    return List(String(validate=Length(min=1, max=item_max)), validate=Length(max=ITEMS_MAX), **kw)


def _flag(**kw: Any) -> Boolean:
    """A JSON boolean: only ``true`` and ``false`` (no ``"yes"`` or ``1``)."""
    return Boolean(truthy={True}, falsy={False}, **kw)


class _Strict(Schema):
    class Meta:
        unknown = RAISE


# -- pagination and filters ----------------------------------------------------------------------
class PageQuery(_Strict):
    page = Integer(load_default=1, validate=Range(min=1, max=100_000),
                   metadata={"description": "1-based page number"})
    per_page = Integer(load_default=20, validate=Range(min=1, max=100),
                       metadata={"description": "items per page (at most 100)"})
    lang = String(validate=OneOf(["zh", "en"]), metadata={"description": "language of error details"})


class WorkerQuery(PageQuery):
    district = _short()
    skill = _short()
    team = _short()
    level = _short()
    active = Boolean()
    q = _short(metadata={"description": "substring of the name"})


class EnterpriseQuery(PageQuery):
    district = _short()
    industry_chain = _short()
    tag = _short(metadata={"description": "e.g. 专精特新, 小巨人, 中小微"})
    unionised = Boolean()
    q = _short()


class ProblemQuery(PageQuery):
    district = _short()
    status = String(validate=OneOf(PROBLEM_STATUSES))
    service_type = String(validate=OneOf(SERVICE_TYPES))
    enterprise_id = _short()
    skill = _short()
    industry_chain = _short(metadata={"description": "chain of the posting enterprise"})
    tag = _short(metadata={"description": "tag of the posting enterprise (专精特新 ...)"})
    unionised = Boolean(metadata={"description": "whether the posting enterprise has a union"})
    q = _short(metadata={"description": "substring of the title or description"})


class SkillQuery(PageQuery):
    category = _short()
    chain = _short(metadata={"description": "an industry chain listed in chain_ids"})
    q = _short()


class MatchQuery(PageQuery):
    problem_id = _short()
    worker_id = _short()
    state = String(validate=OneOf(MATCH_STATES))


class AuditQuery(PageQuery):
    actor = _short()
    kind = _short()
    problem_id = _short()
    match_id = _short()


class RecommendQuery(_Strict):
    top_k = Integer(load_default=10, validate=Range(min=1, max=100))
    explain = Boolean(load_default=True)
    lang = String(validate=OneOf(["zh", "en"]))


class SuggestionQuery(_Strict):
    top_k = Integer(load_default=10, validate=Range(min=1, max=100))
    lang = String(validate=OneOf(["zh", "en"]))


class StatsQuery(_Strict):
    today = String(validate=Regexp(r"^\d{4}-\d{2}-\d{2}$"), metadata={"description": "YYYY-MM-DD (default: today)"})
    lang = String(validate=OneOf(["zh", "en"]))


# -- resources: generated from the row schema (graph.schema) ----------------------------------------
def _api_field(label: str, spec: Field, *, patch: bool, doc: bool = True) -> fields.Field:
    """The marshmallow field of ``spec`` in a create (``patch`` false) or update body of ``label``."""
    kw: dict[str, Any] = {}
    if patch and spec.nullable:
        kw["allow_none"] = True
    if not patch and spec.api_required:
        kw["required"] = True
    if doc and not patch and spec.api_doc:
        kw["metadata"] = {"description": spec.api_doc}
    if spec.name == "id":
        return _new_id(**kw)
    if label in NAMED and spec.name == "name":
        return _name_id(**kw)
    if spec.references:
        return _id(**kw)
    if spec.type == "list[str]":
        return _names(spec.max_length, **kw)
    if spec.type == "bool":
        return _flag(**kw)
    if spec.type == "int":
        low, high = spec.api_range or (0, None)
        return Integer(strict=True, validate=Range(min=low, max=high), **kw)
    if spec.type == "date":
        return String(validate=Regexp(_DATE), **kw)
    if spec.choices:
        return String(validate=OneOf(spec.choices), **kw)
    if spec.type != "str":
        raise AssertionError(f"no API field for {label}.{spec.name} ({spec.type})")
    return String(validate=Length(min=1 if spec.api_required else None, max=spec.max_length),
                  multiline=spec.multiline, **kw)


def _resource(label: str, name: str, *, patch: bool = False, only: tuple[str, ...] = (), doc: bool = True,
              **hooks: Any) -> type[Schema]:
    """The request schema ``name`` of ``label``'s create or update body, from :data:`graph.schema.SCHEMA`
    (fields whose ``api``/``api_patch`` is true, or those named in ``only``); ``hooks`` are schema methods."""
    attrs: dict[str, Any] = {
        spec.name: _api_field(label, spec, patch=patch, doc=doc) for spec in SCHEMA[label]
        if (spec.name in only if only else (spec.api_patch if patch else spec.api))
    }
    attrs.update(hooks, __module__=__name__,
                 __doc__=f"{'An update' if patch else 'A create'} body of {label} (generated from graph.schema).")
    return type(name, (_Strict,), attrs)


def _title_or_description(data: dict[str, Any], *, partial: bool = False) -> None:
    if partial and "title" not in data and "description" not in data:
        return
    if not str(data.get("title") or "").strip() and not str(data.get("description") or "").strip():
        raise ValidationError("需要标题或描述 / a title or a description is required", field_name="title")


@validates_schema
def _problem_text(self: Schema, data: dict[str, Any], **_: Any) -> None:
    _title_or_description(data)


@validates_schema
def _problem_text_partial(self: Schema, data: dict[str, Any], **_: Any) -> None:
    _title_or_description(data, partial=True)


WorkerIn = _resource("Worker", "WorkerIn")
WorkerPatch = _resource("Worker", "WorkerPatch", patch=True)
EnterpriseIn = _resource("Enterprise", "EnterpriseIn")
EnterprisePatch = _resource("Enterprise", "EnterprisePatch", patch=True)
ProblemIn = _resource("Problem", "ProblemIn", _text=_problem_text)
ProblemPatch = _resource("Problem", "ProblemPatch", patch=True, _text=_problem_text_partial)
SkillIn = _resource("Skill", "SkillIn")
SkillPatch = _resource("Skill", "SkillPatch", patch=True)
ChainIn = _resource("IndustryChain", "ChainIn")
ChainPatch = _resource("IndustryChain", "ChainPatch", patch=True)


# -- recommendations ------------------------------------------------------------------------------
#: The problem a recommendation is asked for (not stored): a create body's text, skills and place.
ProblemText = _resource("Problem", "ProblemText", doc=False, _text=_problem_text,
                        only=("title", "description", "skills", "enterprise_id", "district", "service_type"))


class RecommendIn(_Strict):
    problem = Nested(ProblemText, required=True)
    top_k = Integer(load_default=10, strict=True, validate=Range(min=1, max=100))
    candidates = List(_id(), validate=Length(min=1, max=5000))
    exclude_ids = List(_id(), validate=Length(max=5000), data_key="exclude",
                       metadata={"description": "workers never to suggest"})
    explain = _flag(load_default=True)


# -- two-way selection ----------------------------------------------------------------------------
class InviteIn(_Strict):
    problem_id = _id(required=True)
    worker_id = _id(required=True)
    note = String(validate=Length(max=TITLE_MAX), load_default="", multiline=True)
    allow_conflict = _flag(load_default=False, metadata={"description": "invite an employee of the enterprise"})
    override_capacity = _flag(load_default=False, metadata={"description": "invite beyond monthly capacity"})


class VolunteerIn(_Strict):
    problem_id = _id(required=True)
    worker_id = _id(metadata={"description": "a worker user volunteers themself (default); a write key names "
                                             "the worker"})
    note = String(validate=Length(max=TITLE_MAX), load_default="", multiline=True)


class ConfirmIn(_Strict):
    allow_conflict = _flag(load_default=False, metadata={"description": "confirm an employee of the enterprise"})
    override_capacity = _flag(load_default=False, metadata={"description": "confirm beyond monthly capacity"})
    reason = String(validate=Length(max=TITLE_MAX), load_default="", multiline=True,
                    metadata={"description": "why (an override): kept in the match's history and the audit event"})


class DeclineIn(_Strict):
    reason = String(required=True, multiline=True, validate=[
        Length(min=1, max=TITLE_MAX), Regexp(r"\S", error="原因不能为空 / the reason must not be blank")])


class CompleteIn(_Strict):
    solved = _flag(required=True)
    hours = Float(required=True, allow_nan=False, validate=Range(min=0, max=10_000))
    trainees = Integer(required=True, strict=True, validate=Range(min=0, max=100_000))
    satisfaction = Integer(required=True, strict=True, validate=Range(min=1, max=5))
    note = String(validate=Length(max=TITLE_MAX), load_default="", multiline=True)


class WithdrawIn(_Strict):
    reason = String(validate=Length(max=TITLE_MAX), load_default="", multiline=True)


# -- notifications --------------------------------------------------------------------------------
class NotificationQuery(PageQuery):
    unread = Boolean(metadata={"description": "true: only unread ones; false: only read ones"})
    user = _short(metadata={"description": "API keys: the recipient's username (a logged-in user sees only "
                                           "their own and may leave it out)"})
    worker_id = _short(metadata={"description": "API keys: the notifications of the user(s) linked to this worker"})


class MarkReadIn(_Strict):
    ids = List(_id(), validate=Length(min=1, max=500),
               metadata={"description": "the notifications to mark read (all must be the recipient's)"})
    all = _flag(load_default=False, metadata={"description": "mark every unread notification of the recipient"})
    user = _id(metadata={"description": "API keys (write scope): whose notifications; a user marks their own"})

    @validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if bool(data.get("ids")) == bool(data.get("all")):
            raise ValidationError("给出 ids 或 all: true 之一 / give either ids or all: true", field_name="ids")


# -- campaign assignment --------------------------------------------------------------------------
class PlanIn(_Strict):
    problem_ids = List(_id(), validate=Length(min=1, max=2000),
                       metadata={"description": "default: every open problem"})
    method = String(load_default="optimal", validate=OneOf(["optimal", "greedy"]))
    city_team_penalty = Float(allow_nan=False, validate=Range(min=0, max=1))


class PairIn(_Strict):
    problem_id = _id(required=True)
    worker_id = _id(required=True)


class ApplyIn(_Strict):
    pairs = List(Nested(PairIn), required=True, validate=Length(min=1, max=2000))
    note = String(validate=Length(max=TITLE_MAX), load_default="", multiline=True)


# -- responses (documentation; views return plain dicts) ------------------------------------------
class ProblemDoc(Schema):
    type = String()
    title = String()
    status = Integer()
    detail = String()
    instance = String()
    errors = List(Dict())


class PageDoc(Schema):
    items = List(Dict())
    total = Integer()
    page = Integer()
    per_page = Integer()


class RecommendationDoc(Schema):
    rank = Integer()
    worker_id = String()
    name = String()
    district = String()
    score = Float()
    components = Dict(keys=String(), values=Float())
    explanation = Dict(allow_none=True)


class RecommendationsDoc(Schema):
    problem_id = String(allow_none=True)
    model_version = String()
    audit_id = String()
    items = List(Nested(RecommendationDoc))


class NotificationDoc(Schema):
    id = String()
    user_id = String(metadata={"description": "the recipient (a username)"})
    kind = String(validate=OneOf(KINDS))
    unread = Boolean()
    at = String(metadata={"description": "when the step happened (ISO 8601, China Standard Time)"})
    read_at = String()
    actor = String(metadata={"description": "who took the step (a username, apikey:<id>, "
                                            "or '<coordinator> for <worker id>')"})
    match_id = String()
    problem_id = String()
    worker_id = String()
    problem_title = String()
    worker_name = String()
    reason = String()
    text = String(metadata={"description": "the sentence, in the request's language (lang, then Accept-Language)"})


class NotificationPageDoc(PageDoc):
    items = List(Nested(NotificationDoc))
    unread = Integer(metadata={"description": "unread notifications of the same recipient(s), on every page"})


class MarkReadDoc(Schema):
    marked = Integer(metadata={"description": "how many were unread and are read now"})
    unread = Integer(metadata={"description": "unread notifications the recipient has left"})


_COMMON_ERRORS = {401: "no or bad API key", 403: "scope, role or district does not allow it",
                  429: "rate limited", 503: "store unavailable"}
_ERROR_TEXT = {400: "malformed body", 404: "not found", 409: "conflicts with the current state",
               413: "body too large", 422: "validation failed (each bad field listed)"}


def error_responses(*codes: int) -> dict[int, str]:
    """OpenAPI ``responses`` for the error statuses of an operation (bodies are problem+json)."""
    return {code: _ERROR_TEXT.get(code) or _COMMON_ERRORS[code] for code in codes} | _COMMON_ERRORS


def valid_id(value: str) -> bool:
    """Whether a path id is acceptable (ids from URLs are checked like ids in bodies)."""
    return 0 < len(value) <= ID_MAX and bool(_ID_RE.match(value))
