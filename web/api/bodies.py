"""Checks on request bodies before any view reads them: the media type, and how deep the JSON nests.

* A request with a body must say it is JSON (``Content-Type: application/json`` or ``...+json``):
  anything else, a missing type included, is 415 (it used to be read as "no body": 422 listing
  every required field, which hid the real mistake).
* A compressed body (``Content-Encoding`` other than ``identity``) is 415: it used to be read as if it
  were plain JSON.
* JSON must be UTF-8 (RFC 8259, section 8.1). A body in UTF-16 or UTF-32 (with or without a byte-order
  mark), one starting with a UTF-8 byte-order mark, or one that is not UTF-8 while its ``charset`` names
  another encoding is 400 ``malformed-body`` saying which encoding it seems to be in (a declared charset
  is otherwise ignored, as RFC 8259 asks: ``application/json`` has no such parameter).
* JSON nested deeper than :data:`MAX_JSON_DEPTH` is 400 before it reaches the JSON decoder (10^4
  levels made the decoder raise ``RecursionError``, a 500). No request of this API nests past 3.
* An integer literal longer than Python converts (``sys.get_int_max_str_digits()``, 4300 digits) is 400:
  the decoder raised a bare ``ValueError``, a 500.
"""

from __future__ import annotations

import codecs
import json
import re
import sys
from typing import Final

from flask import request

from web.api import bp
from web.errors import JsonTooDeep, MalformedBody, UnsupportedContentEncoding, UnsupportedMediaType

__all__ = ["MAX_JSON_DEPTH", "body_encoding", "check_body", "json_depth", "long_integer"]

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


_UTF8_NAMES: Final = frozenset({"utf-8", "utf8"})
_BOMS: Final = (  # UTF-32 first: its little-endian mark starts with UTF-16's
    (codecs.BOM_UTF8, "UTF-8 with a byte-order mark (BOM)"),
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def body_encoding(data: bytes, charset: str | None = None) -> str | None:
    """The encoding a body seems to be in when it cannot be UTF-8 JSON; ``None`` when it may be.

    Examples
    --------
    >>> body_encoding('{"a": 1}'.encode("utf-16")), body_encoding('{"a": 1}'.encode("utf-16-le"))
    ('UTF-16', 'UTF-16 or UTF-32')
    >>> body_encoding('{"a": "é"}'.encode("latin-1"), "ISO-8859-1"), body_encoding(b'{"a": 1}', "latin-1")
    ('ISO-8859-1', None)
    """
    for bom, name in _BOMS:
        if data.startswith(bom):
            return name
    if b"\x00" in data[:4]:  # JSON text starts with ASCII, and an unescaped NUL is never valid JSON
        return "UTF-16 or UTF-32"
    if charset and charset.strip().lower() not in _UTF8_NAMES:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return charset.strip()[:40]
    return None


class _TooLong(Exception):
    pass


def long_integer(data: bytes, limit: int) -> bool:
    """Whether the JSON text holds an integer literal of more than ``limit`` digits (not counting strings).

    Examples
    --------
    >>> long_integer(b'{"n": ' + b"9" * 20 + b'}', 10), long_integer(b'{"s": "' + b"9" * 20 + b'"}', 10)
    (True, False)
    """
    if not re.search(rb"[0-9]{%d}" % (limit + 1), data):  # cheap: most bodies have no such run of digits
        return False

    def checked(text: str) -> int:
        if len(text.lstrip("-")) > limit:
            raise _TooLong
        return int(text)

    try:
        json.loads(data, parse_int=checked)
    except _TooLong:
        return True
    except ValueError:  # other faults: the real decoding reports them
        return False
    return False


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
    coding = (request.content_encoding or "").strip().lower()
    if coding and coding != "identity":
        raise UnsupportedContentEncoding(got=coding[:40])
    encoding = body_encoding(data, request.mimetype_params.get("charset"))
    if encoding is not None:
        raise MalformedBody("encoding", encoding=encoding)
    # a body can only nest as deep as it has opening brackets: the scan runs for the few that have many
    if data.count(b"[") + data.count(b"{") > MAX_JSON_DEPTH and json_depth(data) > MAX_JSON_DEPTH:
        raise JsonTooDeep(limit=MAX_JSON_DEPTH)
    digits = sys.get_int_max_str_digits()
    if digits and long_integer(data, digits):
        raise MalformedBody("number", limit=digits)
