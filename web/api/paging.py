"""Pagination of list responses: ``page`` / ``per_page`` in, ``{"items", "total", "page",
"per_page"}`` out with ``X-Total-Count`` and an RFC 8288 ``Link`` header (first, prev, next, last)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from flask import Response, jsonify, request

__all__ = ["page_response", "paginate"]


def paginate(items: Sequence[Any], page: int, per_page: int) -> list[Any]:
    """The slice of ``items`` on ``page`` (1-based)."""
    start = (page - 1) * per_page
    return list(items[start : start + per_page])


def _link(page: int, per_page: int) -> str:
    args = {k: v for k, v in request.args.items() if k not in ("page", "per_page")}
    args.update(page=str(page), per_page=str(per_page))
    return f"{request.base_url}?{urlencode(args)}"


def page_response(items: list[Any], *, total: int | None, page: int, per_page: int,
                  extra: Mapping[str, Any] | None = None) -> Response:
    """A JSON page with the total in the body and in ``X-Total-Count``, and ``Link`` relations."""
    body: dict[str, Any] = {"items": items, "total": total, "page": page, "per_page": per_page}
    body.update(extra or {})
    response = jsonify(body)
    links = [f'<{_link(1, per_page)}>; rel="first"']
    if page > 1:
        links.append(f'<{_link(page - 1, per_page)}>; rel="prev"')
    if total is not None:
        last = max(1, -(-total // per_page))
        if page < last:
            links.append(f'<{_link(page + 1, per_page)}>; rel="next"')
        links.append(f'<{_link(last, per_page)}>; rel="last"')
        response.headers["X-Total-Count"] = str(total)
    elif len(items) == per_page:
        links.append(f'<{_link(page + 1, per_page)}>; rel="next"')
    response.headers["Link"] = ", ".join(links)
    return response
