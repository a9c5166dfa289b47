"""Errors of the web layer and their mapping to RFC 9457 ``application/problem+json`` responses.

Every response body for an error under ``/api`` (and for ``/readyz``) is a problem document::

    {"type": "urn:jianglian:error:not-found", "title": "Not Found", "status": 404,
     "detail": "找不到 Worker 'w9'", "instance": "/api/v1/workers/w9"}

``title`` is a short English phrase that never changes for a ``type``; ``detail`` is written in
Chinese or English, chosen by the ``lang`` query parameter, then the ``lang`` cookie (the site's
switch), then ``Accept-Language`` (Chinese when none asks for English): :func:`request_language`.
Validation problems add ``errors``: one entry per bad
field, ``{"field": "body.top_k", "message": ...}``.

Handlers are registered per exception type (domain errors of :mod:`graph`, :mod:`embeddings`,
:mod:`recommender` and :mod:`workflow`, the web layer's own errors, werkzeug's HTTP errors) and never for
``Exception``: an unexpected bug still becomes a 500 through werkzeug's ``InternalServerError``,
whose handler answers with a problem document that hides the traceback. Errors answered from their
message alone are one table (:data:`_BY_MESSAGE`); the others have a handler each. A dataset row the store
refused is written in the request's language by :mod:`web.row_issues` (the pages' renderer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Literal, cast

from flask import Flask, Response, current_app, has_request_context, json, request
from flask_babel import force_locale
from werkzeug.exceptions import HTTPException, default_exceptions

from embeddings.errors import ModelNotFound as EncoderMissing
from graph.errors import (
    ConstraintViolation,
    DatasetError,
    DuplicateNode,
    NodeNotFound,
    StoreFull,
    StoreLocked,
    StoreNeedsRestart,
    StoreUnavailable,
    UnknownLabel,
)
from recommender import errors as rec_errors
from web.labels import STATUS_LABELS
from web.row_issues import dataset_error_fields
from workflow import errors as wf_errors

__all__ = [
    "PROBLEM_JSON",
    "ApiError",
    "Forbidden",
    "NotFound",
    "Unauthenticated",
    "JsonTooDeep",
    "MalformedBody",
    "UnsupportedContentEncoding",
    "UnsupportedMediaType",
    "ValidationFailed",
    "http_exception_response",
    "is_api_request",
    "problem_response",
    "register_error_handlers",
    "request_language",
]

PROBLEM_JSON = "application/problem+json"
Lang = Literal["zh", "en"]

#: slug -> (title, Chinese detail, English detail); details are ``str.format`` templates.
_CATALOGUE: dict[str, tuple[str, str, str]] = {
    "bad-request": ("Bad Request", "请求无法解析：{reason}", "The request could not be understood: {reason}"),
    "malformed-body": ("Malformed Body", "请求体不是有效的 UTF-8 JSON", "The request body is not valid UTF-8 JSON"),
    "malformed-body/encoding": ("Malformed Body", "请求体须为 UTF-8 编码的 JSON，收到的看来是 {encoding}",
                                "The request body must be JSON in UTF-8; this one looks like {encoding}"),
    "malformed-body/number": ("Malformed Body", "请求体 JSON 中有超过 {limit} 位的整数",
                              "The JSON body holds an integer of more than {limit} digits"),
    "unsupported-media-type": ("Unsupported Media Type",
                               "请求体须为 JSON（Content-Type: application/json），收到的类型为“{got}”",
                               "The request body must be JSON (Content-Type: application/json), not \"{got}\""),
    "unsupported-media-type/encoding": ("Unsupported Media Type",
                                        "请求体不能压缩（收到 Content-Encoding: {got}），请直接发送 UTF-8 JSON",
                                        "The request body must not be compressed (Content-Encoding: {got}); "
                                        "send plain UTF-8 JSON"),
    "json-too-deep": ("JSON Nested Too Deep", "请求体 JSON 嵌套超过 {limit} 层",
                      "The JSON body nests deeper than {limit} levels"),
    "validation": ("Validation Failed", "{count} 个字段无效：{fields}", "{count} invalid field(s): {fields}"),
    "unauthenticated": ("Unauthenticated", "需要有效的 API 密钥（X-API-Key）或登录会话",
                        "A valid API key (X-API-Key) or a logged-in session is required"),
    "forbidden": ("Forbidden", "无权执行此操作：{reason}", "Not allowed: {reason}"),
    "csrf": ("CSRF Token Missing Or Invalid", "会话请求须在 X-CSRFToken 头中携带有效的 CSRF 令牌",
             "Session requests must send a valid CSRF token in the X-CSRFToken header"),
    "not-found": ("Not Found", "找不到{what}", "{what_en} not found"),
    "route-not-found": ("Not Found", "没有这个 API 地址：{path}", "No API route at {path}"),
    "method-not-allowed": ("Method Not Allowed", "{path} 不支持 {method} 方法", "{path} does not allow {method}"),
    "conflict": ("Conflict", "{reason}", "{reason_en}"),
    "duplicate": ("Already Exists", "{what}已存在", "{what_en} already exists"),
    "constraint": ("Constraint Violation", "写入违反数据约束：{reason}", "The write breaks a constraint: {reason}"),
    "illegal-transition": ("Illegal Transition", "邀请当前状态为“{current}”，不能执行“{requested}”",
                           "The match is {current}; it cannot become {requested}"),
    "transition-conflict": ("Transition Conflict",
                            "该邀请已被另一请求抢先处理：读取时为“{expected_zh}”，现在为“{current_zh}”，"
                            "本次“{requested_zh}”未执行，请刷新后查看",
                            "Another request changed the match first: it was {expected} when read and is {current} "
                            "now, so it was not made {requested}; reload to see it"),
    "duplicate-invitation": ("Duplicate Invitation", "该劳模工匠对此问题已有进行中的邀请",
                             "The worker already has a live invitation for this problem"),
    "conflict-of-interest": ("Conflict Of Interest", "该劳模工匠受雇于提出问题的企业，不能受邀",
                             "The worker is employed by the enterprise that posted the problem"),
    "capacity-exceeded": ("Capacity Exceeded", "该劳模工匠本月已无剩余服务容量",
                          "The worker has no capacity left this month"),
    "assignment": ("Invalid Assignment Input", "分配参数不一致：{reason}", "Inconsistent assignment input: {reason}"),
    "invalid-query": ("Invalid Query", "推荐请求无效：{reason}", "Invalid recommendation query: {reason}"),
    "invalid-selection": ("Invalid Selection Request", "双向选择请求无效：{reason}",
                          "Invalid selection request: {reason}"),
    "worker-unavailable": ("Worker Unavailable", "该劳模工匠当前不可邀请：{reason}",
                           "The worker cannot be invited: {reason}"),
    "payload-too-large": ("Payload Too Large", "请求体超过 {limit} 字节上限", "The request body exceeds {limit} bytes"),
    "rate-limited": ("Too Many Requests", "请求过于频繁（限额 {limit}），请稍后再试",
                     "Too many requests (limit {limit}); retry later"),
    "store-unavailable": ("Store Unavailable", "图数据库暂时无法访问，请稍后重试",
                          "The graph store is unreachable; retry shortly"),
    "store-full": ("Insufficient Storage",
                   "服务器磁盘空间已满，本次修改未保存；请联系管理员清理磁盘后重试（查看数据不受影响）",
                   "The server's disk is full: the change was not saved. Ask the administrator to free disk space, "
                   "then retry (reading is not affected)"),
    # variants after "/" change the texts, not the type (urn:jianglian:error:store-full)
    "store-full/restart": ("Insufficient Storage",
                           "图数据库（Neo4j）无法写入事务日志，多为磁盘已满，本次修改未保存；"
                           "Neo4j 已停止服务（查看也不可用），请联系管理员清理其磁盘并重启 Neo4j",
                           "Neo4j could not write its transaction log (its disk is most likely full): the change was "
                           "not saved, and Neo4j serves nothing, reads included, until the administrator frees disk "
                           "space and restarts it"),
    "store-full/restart-maybe-saved": ("Insufficient Storage",
                                       "图数据库（Neo4j）已记下本次修改，但无法写入数据文件，多为磁盘已满；"
                                       "Neo4j 已停止服务（查看也不可用），请联系管理员清理其磁盘并重启 Neo4j，"
                                       "重启后本次修改会被恢复",
                                       "Neo4j logged the change but could not write its data files (its disk is most "
                                       "likely full); it serves nothing, reads included, until the administrator "
                                       "frees disk space and restarts it, and the restart will recover the change"),
    "store-unavailable/restart": ("Store Unavailable",
                                  "图数据库（Neo4j）遇到严重错误已停止服务，"
                                  "请联系管理员重启 Neo4j（原因见其 debug.log）",
                                  "Neo4j stopped after a critical error and serves nothing until the administrator "
                                  "restarts it (its debug.log says why)"),
    "model-unavailable": ("Model Unavailable", "推荐模型暂不可用：{reason}",
                          "The recommendation model is unavailable: {reason}"),
    "internal": ("Internal Server Error", "服务器内部错误，已记录", "Internal server error; it has been logged"),
    "http": ("{name}", "{description}", "{description}"),
}

_LABEL_ZH = {"Worker": "劳模工匠", "Enterprise": "企业", "Problem": "问题", "Skill": "技能",
             "IndustryChain": "产业链", "District": "地区", "Match": "邀请", "User": "用户", "ApiKey": "API 密钥",
             "Notification": "通知"}


# -- the web layer's own errors -----------------------------------------------------------------
class ApiError(Exception):
    """An error the web layer raises itself; ``slug`` picks the catalogue entry."""

    status = 400
    slug = "bad-request"

    def __init__(self, reason: str = "", *, reason_en: str | None = None, **params: Any) -> None:
        super().__init__(reason)
        self.params = {"reason": reason, "reason_en": reason_en if reason_en is not None else reason, **params}


class Unauthenticated(ApiError):
    """No credentials, or credentials that do not check out (401)."""

    status = 401
    slug = "unauthenticated"


class Forbidden(ApiError):
    """Authenticated, but the scope or the role does not allow this (403)."""

    status = 403
    slug = "forbidden"


class CsrfFailed(Forbidden):
    """A state-changing request authenticated by the session cookie without a valid CSRF token."""

    slug = "csrf"


class NotFound(ApiError):
    """A resource addressed by the URL does not exist (404)."""

    status = 404
    slug = "not-found"

    def __init__(self, label: str, node_id: str) -> None:
        super().__init__(f"{label} {node_id!r}", **_node(label, node_id))


class Conflict(ApiError):
    """The request conflicts with the current state (409)."""

    status = 409
    slug = "conflict"


class UnsupportedMediaType(ApiError):
    """A request body that is not JSON (415); ``got`` is the Content-Type sent (may be empty)."""

    status = 415
    slug = "unsupported-media-type"


class UnsupportedContentEncoding(UnsupportedMediaType):
    """A compressed body (``Content-Encoding`` other than ``identity``): 415; ``got`` is the coding sent."""

    slug = "unsupported-media-type/encoding"


class MalformedBody(ApiError):
    """A body found not to be UTF-8 JSON before decoding (400); ``variant`` picks the detail.

    ``encoding`` (with ``encoding=``: UTF-16, a BOM, a declared charset) or ``number`` (with ``limit=``: an
    integer longer than Python converts).
    """

    status = 400
    slug = "malformed-body"

    def __init__(self, variant: Literal["encoding", "number"], **params: Any) -> None:
        super().__init__(**params)
        self.slug = f"malformed-body/{variant}"


class JsonTooDeep(ApiError):
    """A JSON body nesting deeper than ``limit`` levels (400)."""

    status = 400
    slug = "json-too-deep"


class ValidationFailed(ApiError):
    """Some fields are invalid; ``errors`` maps a field path to its messages (422)."""

    status = 422
    slug = "validation"

    def __init__(self, errors: Mapping[str, str | Iterable[str]]) -> None:
        flat = {k: [v] if isinstance(v, str) else list(v) for k, v in errors.items()}
        super().__init__(", ".join(flat))
        self.errors = flat


# -- response building --------------------------------------------------------------------------
def request_language(*, accept_language: bool = True) -> Lang:
    """``zh`` or ``en`` for the current request, one rule for pages and API errors: ``?lang=`` first, then
    the ``lang`` cookie (the site's language switch), then ``Accept-Language`` (``accept_language``: API
    responses; pages are Chinese first and ignore it, :func:`web.ui.i18n.select_locale`), else Chinese."""
    if not has_request_context():
        return "zh"
    for asked in (request.args.get("lang"), request.cookies.get("lang")):
        asked = (asked or "").strip().lower()
        if asked.startswith("en"):
            return "en"
        if asked.startswith("zh"):
            return "zh"
    if not accept_language:
        return "zh"
    best = request.accept_languages.best_match(["zh", "en"])
    return "en" if best == "en" else "zh"


class _Defaults(dict[str, Any]):
    def __missing__(self, key: str) -> str:
        return ""


def problem_response(
    status: int,
    slug: str,
    *,
    errors: list[dict[str, str]] | None = None,
    headers: Mapping[str, str] | None = None,
    **params: Any,
) -> Response:
    """Build a problem+json response for a catalogue entry, in the request's language.

    Outside the API (a domain error escaping from an HTML page) the same status is answered with
    werkzeug's plain HTML error page instead.
    """
    title, zh, en = _CATALOGUE.get(slug, _CATALOGUE["http"])
    values = _Defaults(params)
    lang = request_language()
    if has_request_context() and not is_api_request() and status in default_exceptions:
        page = default_exceptions[status](description=(en if lang == "en" else zh).format_map(values))
        html = page.get_response()
        for key, value in (headers or {}).items():
            html.headers[key] = value
        return cast(Response, html)
    body: dict[str, Any] = {
        "type": f"urn:jianglian:error:{slug.partition('/')[0]}",
        "title": title.format_map(values) or "Error",
        "status": status,
        "detail": (en if lang == "en" else zh).format_map(values),
    }
    if has_request_context():
        body["instance"] = request.path
    if errors is not None:
        body["errors"] = errors
    response = current_app.response_class(
        json.dumps(body, ensure_ascii=False), status=status, mimetype=PROBLEM_JSON
    )
    response.headers["Content-Language"] = lang
    for key, value in (headers or {}).items():
        response.headers[key] = value
    return response


def is_api_request() -> bool:
    """Whether the current request should get problem+json errors (the API and the probes)."""
    path = request.path
    return path.startswith("/api/") or path == "/api" or path in ("/readyz", "/healthz")


def _validation_response(errors: Mapping[str, list[str]], *, status: int = 422) -> Response:
    items = [{"field": field, "message": message} for field, messages in errors.items() for message in messages]
    return problem_response(status, "validation", errors=items, count=len(errors), fields=", ".join(errors))


def _flatten_marshmallow(detail: Any, prefix: str = "") -> dict[str, list[str]]:
    """``{"json": {"top_k": ["..."]}}`` -> ``{"body.top_k": ["..."]}`` (nested fields joined by dots)."""
    out: dict[str, list[str]] = {}
    if isinstance(detail, Mapping):
        for key, value in detail.items():
            name = "body" if key == "json" and not prefix else ("query" if key == "query" and not prefix else str(key))
            out.update(_flatten_marshmallow(value, f"{prefix}.{name}" if prefix else name))
    elif isinstance(detail, list | tuple) and all(isinstance(m, str) for m in detail):
        out[prefix or "body"] = [str(m) for m in detail]
    elif isinstance(detail, list | tuple):
        for index, value in enumerate(detail):
            out.update(_flatten_marshmallow(value, f"{prefix}[{index}]"))
    else:
        out[prefix or "body"] = [str(detail)]
    return out


# -- handlers -----------------------------------------------------------------------------------
def _api_error(err: ApiError) -> Response:
    if isinstance(err, ValidationFailed):
        return _validation_response(err.errors)
    headers = {"WWW-Authenticate": 'ApiKey realm="jianglian", header="X-API-Key"'} if err.status == 401 else None
    return problem_response(err.status, err.slug, headers=headers, **err.params)


def _store_unavailable(err: StoreUnavailable | StoreLocked) -> Response:
    if isinstance(err, StoreNeedsRestart):  # retrying does not help: someone must restart Neo4j
        current_app.logger.error("store needs a restart: %s", err)
        return problem_response(503, "store-unavailable/restart", headers={"Retry-After": "60"})
    current_app.logger.warning("store unavailable: %s", err)
    return problem_response(503, "store-unavailable", headers={"Retry-After": "5"})


def _store_full(err: StoreFull) -> Response:
    current_app.logger.error("store full: %s", err)
    variant = "/restart-maybe-saved" if err.maybe_saved else "/restart" if err.restart_needed else ""
    return problem_response(503, "store-full" + variant, headers={"Retry-After": "60"})


def _node(label: str, node_id: str) -> dict[str, Any]:
    """The ``what`` parameters naming a node in both languages."""
    return {"what": f"{_LABEL_ZH.get(label, label)} {node_id!r}", "what_en": f"{label} {node_id!r}"}


def _node_not_found(err: NodeNotFound) -> Response:
    return problem_response(404, "not-found", **_node(err.label, err.node_id))


def _duplicate(err: DuplicateNode) -> Response:
    return problem_response(409, "duplicate", **_node(err.label, err.node_id))


def _dataset(err: DatasetError) -> Response:
    """Rows the store refused (a row saved through the API), each problem in the request's language."""
    with force_locale(request_language()):
        return _validation_response(dataset_error_fields(err))


def _illegal(err: wf_errors.IllegalTransition) -> Response:
    if isinstance(err, wf_errors.DuplicateInvitation):
        return problem_response(409, "duplicate-invitation")
    if err.current and err.requested:
        return problem_response(409, "illegal-transition", current=err.current, requested=err.requested)
    return problem_response(409, "conflict", reason=str(err), reason_en=str(err))


def _transition_conflict(err: wf_errors.TransitionConflict) -> Response:
    if not (err.expected and err.current and err.requested):  # retries used up: no single state to name
        return problem_response(409, "conflict", reason=f"并发修改冲突，请稍后重试：{err}", reason_en=str(err))
    states: dict[str, Any] = {"expected": err.expected, "current": err.current, "requested": err.requested}
    with force_locale("zh"):  # the states' names as the pages say them (web.labels), for the Chinese detail
        states.update({f"{k}_zh": str(STATUS_LABELS.get(v, v)) for k, v in list(states.items())})
    return problem_response(409, "transition-conflict", **states)


def _http_exception(err: HTTPException) -> Response | HTTPException:
    """werkzeug's HTTP errors: problem+json under /api, the default page elsewhere."""
    if not is_api_request():
        return err
    code = err.code or 500
    headers = dict(err.get_headers()) if err.response is None else dict(err.response.headers)
    headers.pop("Content-Type", None)
    headers.pop("Content-Length", None)
    if code == 500:
        original = getattr(err, "original_exception", None)
        current_app.logger.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
        return problem_response(500, "internal")
    if code == 404:
        return problem_response(404, "route-not-found", path=request.path)
    if code == 405:
        return problem_response(405, "method-not-allowed", path=request.path, method=request.method,
                                headers={k: v for k, v in headers.items() if k == "Allow"})
    if code == 413:
        return problem_response(413, "payload-too-large", limit=current_app.config.get("MAX_CONTENT_LENGTH"))
    if code == 429:
        return problem_response(429, "rate-limited", limit=err.description,
                                headers={k: v for k, v in headers.items() if k.lower().startswith(("retry-after",
                                                                                                   "x-ratelimit"))})
    if code == 400:
        original = getattr(err, "exc", None)  # webargs attaches the JSON decoding error
        if isinstance(original, ValueError):  # JSONDecodeError and UnicodeDecodeError
            return problem_response(400, "malformed-body")
        return problem_response(400, "bad-request", reason=err.description or "")
    return problem_response(code, "http", name=err.name, description=err.description or err.name)


def http_exception_response(err: HTTPException) -> Response | HTTPException:
    """What :func:`register_error_handlers` answers for a werkzeug HTTP error (problem+json under ``/api``, the
    error itself elsewhere), for a page handler that takes over the non-API case (web.ui.errorpages)."""
    return _http_exception(err)


def _apiflask_error(error: Any) -> Response:
    """APIFlask's ``HTTPError`` (validation of inputs, ``abort`` from views)."""
    status = int(error.status_code)
    if status in (400, 422) and error.detail:
        return _validation_response(_flatten_marshmallow(error.detail), status=status)
    name = error.message or "Error"
    return problem_response(status, "http", name=name, description=name, headers=dict(error.headers or {}))


#: Errors answered from their message alone: (type, status, catalogue slug, the parameter ``str(err)`` fills in
#: both languages, or ``None`` when the catalogue's text says it all). Flask picks the most specific type.
_BY_MESSAGE: tuple[tuple[type[Exception], int, str, Literal["reason", "what"] | None], ...] = (
    (ConstraintViolation, 422, "constraint", "reason"),
    (UnknownLabel, 400, "bad-request", "reason"),
    (wf_errors.MatchNotFound, 404, "not-found", "what"),
    (wf_errors.ConflictOfInterest, 409, "conflict-of-interest", None),
    (wf_errors.CapacityExceeded, 409, "capacity-exceeded", None),
    (wf_errors.SelectionError, 409, "conflict", "reason"),
    (wf_errors.AssignmentError, 422, "assignment", "reason"),
    (wf_errors.InvalidSelection, 422, "invalid-selection", "reason"),
    (wf_errors.WorkerUnavailable, 409, "worker-unavailable", "reason"),
    (rec_errors.UnknownProblem, 404, "not-found", "what"),
    (rec_errors.UnknownWorker, 404, "not-found", "what"),
    (rec_errors.InvalidQuery, 422, "invalid-query", "reason"),
    (rec_errors.ModelNotFound, 503, "model-unavailable", "reason"),
    (EncoderMissing, 503, "model-unavailable", "reason"),
)


def _by_message(status: int, slug: str, param: Literal["reason", "what"] | None) -> Any:
    def handle(err: Exception) -> Response:
        params: dict[str, Any] = {} if param is None else {param: str(err), f"{param}_en": str(err)}
        return problem_response(status, slug, **params)

    return handle


def register_error_handlers(app: Flask) -> None:
    """Register one handler per error type (no blanket ``Exception`` handler)."""
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(StoreUnavailable, _store_unavailable)
    app.register_error_handler(StoreFull, _store_full)  # a StoreUnavailable, reported as what it is
    app.register_error_handler(StoreLocked, _store_unavailable)
    app.register_error_handler(NodeNotFound, _node_not_found)
    app.register_error_handler(DuplicateNode, _duplicate)
    app.register_error_handler(DatasetError, _dataset)
    app.register_error_handler(wf_errors.IllegalTransition, _illegal)
    app.register_error_handler(wf_errors.TransitionConflict, _transition_conflict)
    for error, status, slug, param in _BY_MESSAGE:
        app.register_error_handler(error, _by_message(status, slug, param))
    app.register_error_handler(HTTPException, _http_exception)
    if hasattr(app, "error_callback"):
        # APIFlask's HTTPError handler calls ``app.error_callback``; ``app.error_processor`` would also
        # turn every werkzeug error of the HTML pages into JSON, so the attribute is set directly.
        app.error_callback = _apiflask_error
