"""Checks on request bodies before any view reads them: the media type, and how deep the JSON nests.

* A request with a body must say it is JSON (``Content-Type: application/json`` or ``...+json``):
  anything else, a missing type included, is 415 (it used to be read as "no body": 422 listing
  every required field, which hid the real mistake).
* JSON nested deeper than :data:`MAX_JSON_DEPTH` is 400 before it reaches the JSON decoder (10^4
  levels made the decoder raise ``RecursionError``, a 500). No request of this API nests past 3.
"""

from __future__ import annotations

import re
from typing import Final

from flask import request

from web.api import bp
from web.errors import JsonTooDeep, UnsupportedMediaType

__all__ = ["MAX_JSON_DEPTH", "check_body", "json_depth"]

MAX_JSON_DEPTH: Final = 64
_BODY_METHODS: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_TOKENS: Final = re.compile(rb'[\[\]{}"\\]')


def json_depth(data: bytes) -> int:
    """How deep arrays and objects nest in a JSON text (brackets inside strings do not count).

    Linear and without recursion, so any body can be measured before it is decoded.

    Examples
    --------
    >>> json_depth(b'{"a": [1, {"b": "[[[\\\\"]"}]}'), json_depth(b'"x"'), json_depth(b"[" * 5)
    (3, 0, 5)
    """
    depth = deepest = 0
    in_string = False
    escaped_at = -1
    for match in _TOKENS.finditer(data):
        pos, token = match.start(), match.group()
        if pos == escaped_at:
            continue
        if in_string:
            if token == b"\\":
                escaped_at = pos + 1
            elif token == b'"':
                in_string = False
        elif token == b'"':
            in_string = True
        elif token in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif token in (b"]", b"}"):
            depth -= 1
    return deepest


@bp.before_request
def check_body() -> None:
    """Refuse a body that is not JSON (415) or nests too deep (400)."""
    if request.method not in _BODY_METHODS:
        return
    data = request.get_data(cache=True)
    if not data:
        return
    mimetype = request.mimetype
    if mimetype != "application/json" and not mimetype.endswith("+json"):
        raise UnsupportedMediaType(got=request.content_type or "-")
    # a body can only nest as deep as it has opening brackets: the scan runs for the few that have many
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and json_depth(data) > MAX_JSON_DEPTH:
        raise JsonTooDeep(limit=MAX_JSON_DEPTH)
