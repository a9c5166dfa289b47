"""The error pages people see (403, 404, ...): Chinese first, English on request, a way back.

Registered for the whole app by code; requests under ``/api`` still get problem+json from
:mod:`web.errors` (delegated below). The page stands alone (no menu, no store reads), so it renders even
when the error is the store's.
"""

from __future__ import annotations

from typing import Any

from flask import render_template
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from web import errors
from web.ui import bp

__all__ = ["PAGES", "error_page"]

#: status -> (title, explanation)
PAGES: dict[int, tuple[Any, Any]] = {
    400: (_l("请求有误"), _l("提交的内容不完整或已过期,请返回上一页刷新后重试。")),
    403: (_l("没有权限"), _l("您的账号无权查看或操作此页面。如需开通,请联系本区县协调员或管理员。")),
    404: (_l("找不到页面"), _l("您要找的页面或记录不存在,可能已被删除,或链接有误。")),
    405: (_l("不支持的操作"), _l("此页面不支持这种操作,请从页面上的按钮进入。")),
    413: (_l("内容过大"), _l("上传的文件或提交的内容超过了大小限制。")),
    429: (_l("操作太频繁"), _l("操作次数过多,请稍候再试。")),
    500: (_l("服务器内部错误"), _l("系统出现了意外错误,已记录。请稍后重试,或联系管理员。")),
}


def error_page(err: HTTPException) -> Response | HTTPException | tuple[str, int, dict[str, str]]:
    """A person's error page; problem+json for the API (the handlers of :mod:`web.errors`)."""
    if errors.is_api_request():
        return errors.http_exception_response(err)
    code = err.code or 500
    title, text = PAGES.get(code, (err.name, err.description or ""))
    headers = {k: v for k, v in err.get_headers() if k.lower() in ("retry-after", "allow")}
    return render_template("ui/error.html", code=code, title=title, text=text), code, headers


for _code in PAGES:
    bp.app_errorhandler(_code)(error_page)
