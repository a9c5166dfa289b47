"""Pagination of in-memory lists for the directory pages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from flask import request, url_for

__all__ = ["PER_PAGE", "Page", "paginate"]

T = TypeVar("T")
PER_PAGE = 25


@dataclass
class Page(Generic[T]):
    items: list[T]
    number: int
    pages: int
    total: int
    endpoint: str
    args: dict[str, Any]

    def url(self, number: int) -> str:
        return url_for(self.endpoint, **{**self.args, "page": number})


def paginate(rows: Sequence[T], *, per_page: int = PER_PAGE) -> Page[T]:
    """Slice ``rows`` by the ``page`` query parameter, keeping the other filters in the page links."""
    try:
        number = max(1, int(request.args.get("page", "1")))
    except ValueError:
        number = 1
    pages = max(1, -(-len(rows) // per_page))
    number = min(number, pages)
    start = (number - 1) * per_page
    # an empty district is kept: it means "every district", where a district coordinator's lists
    # would otherwise open on their own (web.ui.access.list_args)
    args = {k: v for k, v in request.args.items() if k != "page" and (v or k == "district")}
    args.update(request.view_args or {})
    return Page(list(rows[start:start + per_page]), number, pages, len(rows), str(request.endpoint), args)
