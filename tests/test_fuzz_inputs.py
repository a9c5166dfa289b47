"""Our own generators against the real app (issue 16, the fuzz run): hostile ids, Unicode edge cases, JSON
nesting around the 64-level limit and spreadsheet shapes for the import page.

schemathesis (``tests/test_fuzz_api.py``) generates from the OpenAPI document, so it rarely produces what an
attacker or a badly saved file sends: path separators, quotes and bidirectional overrides in ids, lone
surrogates and combining marks in text, bodies nested just past the limit, header-only or blank-row sheets.
These strategies do, and post each example through the Flask test client to an app over a real embedded
store holding demo data. The property everywhere: never a 5xx; an API 4xx is an RFC 9457 problem document;
a page 4xx is an HTML page saying what is wrong; an upload is either a preview or the import page with an
error message; an applied import ends ``done`` or ``failed``, never stuck.

Examples are derandomized (the same run every time) and bounded: the whole module takes well under a minute
on two cores. Run it with ``.venv/bin/python -m pytest -q tests/test_fuzz_inputs.py``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import tempfile
import time
from typing import Any
from urllib.parse import quote

import pytest
from flask.testing import FlaskClient
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from demo.generator import generate
from graph.dataset import load_dataset
from graph.memory import MemoryStore
from graph.spreadsheet import COLUMNS, MAX_CELL
from web.api.bodies import MAX_JSON_DEPTH
from web.auth import create_api_key

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import login_as, make_app  # noqa: E402


def fuzz(examples: int) -> settings:
    """Reproducible, bounded settings: the same examples every run, no per-example deadline."""
    return settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                    suppress_health_check=list(HealthCheck))
DISTRICT = "亭湖区"


class Target:
    """The app under test, its store, API key headers and logged-in page clients."""

    def __init__(self) -> None:
        self.store = MemoryStore()
        with tempfile.TemporaryDirectory() as data:
            generate(data, scale=0.05, seed=11)
            load_dataset(self.store, data)
        # the login throttle would turn most login examples into 429 after 30 tries: raised so they reach the form
        self.app = make_app(self.store, LOGIN_FAILURES_PER_USER="100000 per minute",
                            LOGIN_FAILURES_PER_ADDRESS="100000 per minute")
        self.write = {"X-API-Key": create_api_key(self.store, name="fuzz-write", scope="write").key}
        self.read = {"X-API-Key": create_api_key(self.store, name="fuzz-read", scope="read").key}
        self.admin, _ = login_as(self.app, self.store, "admin")
        self.district, _ = login_as(self.app, self.store, "district", district=DISTRICT)
        created = self.app.test_client().post("/api/v1/enterprises", headers=self.write, json={
            "id": "E-fz0", "name": "盐城匠联机械厂", "district": DISTRICT})
        assert created.status_code == 201, created.get_data(as_text=True)
        self.worker_id = next(iter(self.store.iter_nodes("Worker")))["id"]
        self.problem_id = next(iter(self.store.iter_nodes("Problem")))["id"]


@pytest.fixture(scope="module")
def target() -> Target:
    return Target()


# -- what every answer must be ---------------------------------------------------------------------------
def _check_api(response: Any, what: str) -> int:
    """No 5xx; a 4xx is a problem document whose status matches the response's."""
    status = int(response.status_code)
    assert status < 500, f"{what}: {status} {response.get_data(as_text=True)[:300]}"
    if status >= 400:
        assert response.mimetype == "application/problem+json", f"{what}: {status} {response.mimetype}"
        body = json.loads(response.get_data(as_text=True))
        assert body["status"] == status and body["type"].startswith("urn:jianglian:error:"), (what, body)
        assert body["title"] and body["detail"], (what, body)
    return status


def _check_page(response: Any, what: str) -> int:
    """No 5xx; a 4xx is an HTML page (the app's error page), not an empty or stack-trace answer."""
    status = int(response.status_code)
    text = response.get_data(as_text=True)
    assert status < 500, f"{what}: {status} {text[:300]}"
    if status >= 400:
        assert response.mimetype == "text/html" and "<html" in text.lower() and "Traceback" not in text, what
    return status


def _q(text: str) -> str:
    """``text`` percent-encoded as UTF-8 bytes; lone surrogates become the invalid bytes a client could send."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def _raw_json(value: Any, *, ascii_escapes: bool) -> bytes:
    """JSON bytes of ``value``: lone surrogates as ``\\ud800`` escapes, or as (invalid) UTF-8 bytes."""
    text = json.dumps(value, ensure_ascii=ascii_escapes)
    return text.encode("utf-8", "surrogatepass")


def _post_json(client: FlaskClient, path: str, body: bytes, headers: dict[str, str], method: str = "POST") -> Any:
    return client.open(path, method=method, data=body, headers={**headers, "Content-Type": "application/json"})


# -- strategies: ids ---------------------------------------------------------------------------------------
_HOSTILE = ["/", "\\", "..", "../", "..\\..\\win", "'", '"', "`", "; DROP", "%2F", "%00", "?", "#", "&", " ",
            "\t", "\n", "\r", "\x00", "\x07", "\x1b", "\x7f", "\x85", "\u202e", "\u202d", "\u2066", "\u200b",
            "\u200d", "\ufeff", "\u00a0", "\u3000", "\ud800", "\udfff", "<b>", "{{7*7}}", "${x}", "*", "$", "-rf"]
_SAFE = ["W0001", "P-1", "E_2", "匠联", "亭湖区", "工匠.3", "𠀀", "Ω"]
_piece = st.one_of(st.sampled_from(_HOSTILE), st.sampled_from(_SAFE), st.text(min_size=1, max_size=4))
ids = st.one_of(
    st.lists(_piece, min_size=1, max_size=5).map("".join),
    st.text(min_size=1, max_size=20),
    st.builds(lambda ch, n: ch * n, st.sampled_from(["W", "匠", "𠜎", "../"]), st.integers(120, 3000)),
)


@fuzz(100)
@given(node_id=ids, kind=st.sampled_from(["workers", "enterprises", "problems", "skills", "industry-chains"]))
@example(node_id="..\\..\\win", kind="workers")
@example(node_id="W1\u202egnp.exe", kind="problems")
@example(node_id="\ud800", kind="enterprises")
def test_hostile_ids_in_paths_and_bodies(target: Target, node_id: str, kind: str) -> None:
    client = target.app.test_client()
    path = f"/api/v1/{kind}/{_q(node_id)}"
    _check_api(client.get(path, headers=target.read), f"GET {path}")
    _check_api(_post_json(client, path, _raw_json({"name": "x"}, ascii_escapes=True), target.write, "PATCH"),
               f"PATCH {path}")
    body = {"id": node_id, "name": "王师傅", "title": "主轴异响", "district": DISTRICT}
    for ascii_escapes in (True, False):
        created = _check_api(_post_json(client, f"/api/v1/{kind}", _raw_json(body, ascii_escapes=ascii_escapes),
                                        target.write), f"POST /api/v1/{kind} id={node_id!r}")
        assert created != 201 or kind in ("skills", "industry-chains") or re.fullmatch(r"[\w.-]+", node_id), \
            f"an id outside the safe alphabet was accepted: {node_id!r}"
    _check_api(_post_json(client, "/api/v1/matches",
                          _raw_json({"problem_id": node_id, "worker_id": node_id}, ascii_escapes=True),
                          target.write), "POST /api/v1/matches")
    _check_api(client.get(f"/api/v1/matches/{_q(node_id)}", headers=target.read), "GET match")
    _check_api(client.get(f"/api/v1/workers?district={_q(node_id)}&skill={_q(node_id)}", headers=target.read),
               "GET workers?district=")
    for page in (f"/workers/{_q(node_id)}", f"/problems/{_q(node_id)}", f"/enterprises/{_q(node_id)}",
                 f"/matches/{_q(node_id)}", f"/import/{_q(node_id)}", f"/problems/new?enterprise_id={_q(node_id)}",
                 f"/problems/{target.problem_id}?worker_q={_q(node_id)}"):
        _check_page(target.admin.get(page), f"GET {page}")


# -- strategies: Unicode edge cases ----------------------------------------------------------------------
_UNICODE = ["\ud800", "\udbff", "\udc00", "\udfff", "a\ud800b", "\udfff\ud800",  # lone and reversed surrogates
            "e\u0301", "a" + "\u0300" * 60, "\u0e49" * 20,                          # combining marks
            "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad",             # zero-width, soft hyphen
            "\x00", "a\x00b", "\x1b[31m", "\x7f", "\x85", "\u2028", "\u2029",       # NUL, controls, separators
            "\u202e", "\u2067", "\u061c",                                          # bidirectional controls
            "😀", "👨\u200d👩\u200d👧", "🇨🇳", "🏳️\u200d🌈", "\U0001f9d1\U0001f3fd",          # emoji, sequences
            "𠀀", "𪚥", "\U0010ffff", "\U000e0041", "\ufffe", "\uffff", "\ufffd",      # 4-byte, noncharacters
            "İ", "ß", "ﬀ", "Å", "ｆｕｌｌ", "焊接", "数控", " ", "\u3000"]
unicode_text = st.one_of(
    st.lists(st.one_of(st.sampled_from(_UNICODE), st.text(max_size=3)), min_size=1, max_size=6).map("".join),
    st.text(alphabet=st.characters(exclude_categories=()), min_size=1, max_size=12),
)


@fuzz(150)
@given(text=unicode_text, ascii_escapes=st.booleans())
@example(text="\ud800", ascii_escapes=True)
@example(text="a" + "\u0300" * 60 + "\x00", ascii_escapes=False)
def test_unicode_edge_cases_in_api_bodies_and_queries(target: Target, text: str, ascii_escapes: bool) -> None:
    client = target.app.test_client()

    def post(path: str, body: Any, method: str = "POST", headers: dict[str, str] = target.write) -> int:
        raw = _raw_json(body, ascii_escapes=ascii_escapes)
        return _check_api(_post_json(client, path, raw, headers, method), f"{method} {path} {text!r}")

    stored = post("/api/v1/problems", {"title": text, "description": text, "skills": [text]})
    event(f"problem posted: {stored}")
    if stored == 201:
        assert not re.search(r"[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f]", text), f"stored {text!r}"
    post(f"/api/v1/workers/{target.worker_id}", {"name": text, "honours": [text]}, "PATCH")
    post("/api/v1/skills", {"name": text})
    post("/api/v1/matches", {"problem_id": target.problem_id, "worker_id": target.worker_id, "note": text})
    for field in ("q", "district", "skill", "lang", "page"):
        _check_api(client.get(f"/api/v1/workers?{field}={_q(text)}", headers=target.read), f"GET ?{field}")
    _check_api(client.get(f"/api/v1/problems?q={_q(text)}&status={_q(text)}", headers=target.read), "problems?q=")


@fuzz(30)
@given(text=unicode_text)
@example(text="👨\u200d👩\u200d👧" + "e\u0301" * 30 + "𪚥")
def test_unicode_edge_cases_reach_the_ranking(target: Target, text: str) -> None:
    client = target.app.test_client()
    for ascii_escapes in (True, False):
        raw = _raw_json({"problem": {"title": text, "description": text, "skills": [text]}, "top_k": 3},
                        ascii_escapes=ascii_escapes)
        _check_api(_post_json(client, "/api/v1/recommendations", raw, target.read), f"ranking {text!r}")


def _form(client: FlaskClient, path: str, fields: dict[str, str]) -> Any:
    """A urlencoded POST built by hand, so that lone surrogates go out as the bytes a browser could send."""
    token = client.get("/_test/csrf").get_data(as_text=True)
    body = "&".join(f"{_q(k)}={_q(v)}" for k, v in {"csrf_token": token, **fields}.items())
    return client.post(path, data=body.encode("ascii"), content_type="application/x-www-form-urlencoded")


@fuzz(40)
@given(text=unicode_text)
@example(text="\ud800")
@example(text="admin\x00")
def test_unicode_edge_cases_in_page_forms_and_searches(target: Target, text: str) -> None:
    anonymous = target.app.test_client()
    _check_page(_form(anonymous, "/login", {"username": text, "password": text}), f"login {text!r}")
    for page in ("/workers", "/problems", "/enterprises"):
        _check_page(target.admin.get(f"{page}?q={_q(text)}&district={_q(text)}"), f"GET {page}?q=")
    enterprise = next(iter(target.store.iter_nodes("Enterprise")))
    _check_page(_form(target.admin, "/problems/new", {
        "title": text, "description": text, "enterprise_id": enterprise["id"], "service_type": "技术帮扶",
        "skills": text, "district": enterprise["district"]}), f"problem form {text!r}")
    _check_page(_form(target.admin, "/apikeys", {"name": text, "scope": "read"}), f"api key form {text!r}")


# -- strategies: JSON nesting near and past the limit --------------------------------------------------------
_key = st.sampled_from(["a", "problem", "title", "[", "]", "{", '"', "\\", "\\\"[", "层"])
_leaf = st.one_of(st.none(), st.integers(), st.sampled_from(["x", "[[[[", "]]}}", '\\"[{', "\\\\", "深"]))


@st.composite
def nested(draw: st.DrawFn) -> tuple[Any, int]:
    """A JSON value nested ``depth`` levels (lists and objects mixed, brackets inside strings), and ``depth``."""
    depth = draw(st.one_of(st.integers(MAX_JSON_DEPTH - 3, MAX_JSON_DEPTH + 3), st.integers(1, 200)))
    value: Any = draw(_leaf)
    for _ in range(depth):
        if draw(st.booleans()):
            value = [value, draw(_leaf)] if draw(st.booleans()) else [value]
        else:
            value = {draw(_key): value}
    return value, depth


def _depth(value: Any) -> int:
    """How deep a decoded JSON value nests (the oracle; iterative, so any depth is fine)."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, (list, dict)):
            level += 1
            deepest = max(deepest, level)
            stack.extend((child, level) for child in (item.values() if isinstance(item, dict) else item))
    return deepest


@fuzz(150)
@given(value=nested(), where=st.sampled_from(["body", "problem", "title", "skills", "patch"]),
       cut=st.integers(0, 3))
@example(value=([[[[]]]] * 1, 4), where="body", cut=0)
def test_json_nesting_near_and_past_the_limit(target: Target, value: tuple[Any, int], where: str, cut: int) -> None:
    tree, _ = value
    body = {"body": tree, "problem": {"problem": tree, "top_k": 3}, "title": {"title": tree},
            "skills": {"title": "t", "skills": [tree]}, "patch": {"name": tree}}[where]
    path, method = {"problem": ("/api/v1/recommendations", "POST"),
                    "patch": (f"/api/v1/workers/{target.worker_id}", "PATCH")}.get(where, ("/api/v1/problems", "POST"))
    raw = json.dumps(body, ensure_ascii=False).encode("utf-8")
    if cut:  # a truncated body is malformed, however deep it got before the cut
        raw = raw[: len(raw) * cut // 4]
    client = target.app.test_client()
    response = _post_json(client, path, raw, target.write, method)
    status = _check_api(response, f"{method} {path} depth {_depth(body)} cut {cut}")
    event(f"{'past' if _depth(body) > MAX_JSON_DEPTH else 'within'} the limit{', cut' if cut else ''}: {status}")
    if not cut and _depth(body) > MAX_JSON_DEPTH:
        assert status == 400 and response.get_json()["type"].endswith(":json-too-deep"), response.get_json()
    elif not cut:
        assert status != 400 or not response.get_json()["type"].endswith(":json-too-deep")
    assert status != 201 or _depth(body) <= 3


# -- strategies: charsets, media types, content codings and long numbers ---------------------------------------
_ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
              "gb18030", "gbk", "big5", "shift_jis", "euc-kr", "latin-1", "cp1252", "koi8-r"]
_NOT_UTF8 = {"utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"}
_JSON_TYPES = ["application/json", "APPLICATION/JSON", "Application/Json", "application/problem+json",
               "application/merge-patch+json", "application/vnd.jianglian+json", "application/json;"]
_OTHER_TYPES = ["text/json", "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                "application/octet-stream", "application/xml", "*/*", "application", ""]
_ODD_TYPES = ["application/json; charset", "application/json; =x", "application/json\t", "application/json ;;",
              'application/json; charset="utf-8"; q=1', "application/json; boundary=--", "json", "+json"]
_CHARSETS = [None, "utf-8", "UTF-8", "utf8", "utf-16", "UTF-32", "gb18030", "latin-1", "bogus", "", "é", "x" * 300]
_CODINGS = [None, "identity", "gzip", "deflate", "br", "x-unknown", "GZIP", "gzip, identity"]


@st.composite
def encoded_bodies(draw: st.DrawFn) -> dict[str, Any]:
    """A problem as JSON in some encoding, under some Content-Type (with or without a charset) and coding."""
    cjk = draw(st.booleans())
    title = draw(st.sampled_from(["主轴异响", "焊缝开裂 Ω", "PLC 报警", "éàü", "Привет"])) if cjk else "spindle noise"
    value: dict[str, Any] = {"title": title, "description": draw(st.sampled_from(["", "数控机床", "x" * 300]))}
    if draw(st.booleans()):
        value["demand"] = draw(st.integers(1, 3))
    encoding = draw(st.sampled_from(_ENCODINGS))
    text = json.dumps(value, ensure_ascii=draw(st.booleans()))
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:  # a legacy encoding without these characters: the escaped form always encodes
        data = json.dumps(value, ensure_ascii=True).encode(encoding)
    media = draw(st.one_of(st.sampled_from(_JSON_TYPES), st.sampled_from(_OTHER_TYPES), st.sampled_from(_ODD_TYPES)))
    charset = draw(st.sampled_from(_CHARSETS))
    content_type = media if charset is None else f"{media}; charset={charset}"
    return {"data": data, "encoding": encoding, "media": media, "charset": charset, "content_type": content_type,
            "coding": draw(st.sampled_from(_CODINGS))}


def _send(client: FlaskClient, path: str, method: str, body: dict[str, Any], headers: dict[str, str]) -> Any:
    sent = dict(headers)
    if body["content_type"] or body["media"]:
        sent["Content-Type"] = body["content_type"]
    if body["coding"] is not None:
        sent["Content-Encoding"] = body["coding"]
    return client.open(path, method=method, data=body["data"], headers=sent)


@fuzz(120)
@given(body=encoded_bodies(), route=st.sampled_from(["post", "rank", "patch"]))
@example(body={"data": '{"title": "主轴"}'.encode("utf-16"), "encoding": "utf-16", "media": "application/json",
               "charset": "utf-16", "content_type": "application/json; charset=utf-16", "coding": None}, route="post")
@example(body={"data": b'\xef\xbb\xbf{"title": "t"}', "encoding": "utf-8-sig", "media": "application/json",
               "charset": None, "content_type": "application/json", "coding": None}, route="rank")
@example(body={"data": b'{"title": "t"}', "encoding": "utf-8", "media": "application/json", "charset": None,
               "content_type": "application/json", "coding": "gzip"}, route="post")
def test_charsets_media_types_and_content_codings(target: Target, body: dict[str, Any], route: str) -> None:
    client = target.app.test_client()
    if route == "rank":  # the same bytes, wrapped as the ranking's query
        body = {**body, "data": b'{"top_k": 3, "problem": ' + body["data"] + b"}"} if body["encoding"] in (
            "utf-8", "latin-1", "cp1252", "koi8-r", "gb18030", "gbk", "big5", "shift_jis", "euc-kr") else body
        path, method, headers = "/api/v1/recommendations", "POST", target.read
    elif route == "patch":
        path, method, headers = f"/api/v1/workers/{target.worker_id}", "PATCH", target.write
    else:
        path, method, headers = "/api/v1/problems", "POST", target.write
    response = _send(client, path, method, body, headers)
    what = f"{method} {path} {body['encoding']} {body['content_type']!r} coding {body['coding']!r}"
    status = _check_api(response, what)
    kind = response.get_json()["type"].rsplit(":", 1)[1] if status >= 400 else "ok"
    event(f"{body['encoding'] in _NOT_UTF8 and 'not utf-8' or 'utf-8 or legacy'}: {status} {kind}")
    plain = body["coding"] in (None, "identity")
    if body["media"] in _JSON_TYPES and plain and body["encoding"] in _NOT_UTF8:
        assert (status, kind) == (400, "malformed-body"), (what, response.get_json())
        assert "UTF-16" in response.get_json()["detail"] or "UTF-32" in response.get_json()["detail"] or \
            "BOM" in response.get_json()["detail"]
    if body["media"] in _JSON_TYPES and not plain:
        assert (status, kind) == (415, "unsupported-media-type"), (what, response.get_json())
    if body["media"] in _OTHER_TYPES:
        assert (status, kind) == (415, "unsupported-media-type"), (what, response.get_json())
    if body["media"] in _JSON_TYPES and plain and body["data"].isascii() and b"\x00" not in body["data"]:
        # plain ASCII JSON under a JSON type: whatever charset is declared, it is read (RFC 8259 8.1)
        assert kind not in ("malformed-body", "unsupported-media-type"), (what, response.get_json())


@fuzz(40)
@given(digits=st.one_of(st.integers(4295, 4305), st.integers(1, 40), st.integers(4301, 20_000)),
       sign=st.sampled_from(["", "-"]), where=st.sampled_from(["demand", "top", "list", "string", "float"]))
@example(digits=4301, sign="", where="demand")
def test_integers_too_long_to_convert_are_400(target: Target, digits: int, sign: str, where: str) -> None:
    number = sign + "9" * digits
    raw = {"demand": f'{{"title": "t", "demand": {number}}}', "top": number,
           "list": f'{{"title": "t", "skills": [{number}]}}', "string": f'{{"title": "{number}"}}',
           "float": f'{{"title": "t", "demand": {number}.5}}'}[where].encode()
    response = _post_json(target.app.test_client(), "/api/v1/problems", raw, target.write)
    status = _check_api(response, f"{where} {digits} digits")
    kind = response.get_json()["type"].rsplit(":", 1)[1] if status >= 400 else "ok"
    event(f"{where}, {'over' if digits > 4300 else 'within'} 4300 digits: {status} {kind}")
    if digits > 4300 and where in ("demand", "top", "list"):
        assert (status, kind) == (400, "malformed-body") and "4300" in response.get_json()["detail"]
    else:
        assert kind != "malformed-body"


@fuzz(40)
@given(encoding=st.one_of(st.just("utf-8"), st.sampled_from(_ENCODINGS)), media=st.one_of(
    st.just("application/x-www-form-urlencoded"), st.sampled_from(
        ["multipart/form-data", "multipart/form-data; boundary=zz", "application/json", "text/plain", ""])),
       charset=st.sampled_from(_CHARSETS), page=st.sampled_from(["/login", "/problems/new", "/apikeys", "/import"]))
def test_page_forms_in_other_charsets_and_media_types(target: Target, encoding: str, media: str,
                                                      charset: str | None, page: str) -> None:
    client = target.app.test_client() if page == "/login" else target.admin
    token = client.get("/_test/csrf").get_data(as_text=True)
    fields = {"csrf_token": token, "username": "admin", "password": "错误", "title": "主轴异响",
              "name": "平台", "scope": "read", "kind": "workers"}
    text = "&".join(f"{k}={v}" for k, v in fields.items())
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError:
        data = text.encode(encoding, "replace")
    content_type = media if charset is None else f"{media}; charset={charset}"
    response = client.post(page, data=data, headers={"Content-Type": content_type} if content_type else {})
    status = _check_page(response, f"POST {page} {encoding} {content_type!r}")
    event(f"{page}: {status}")


# -- strategies: spreadsheet shapes for the import page --------------------------------------------------------
def _cell_value(clean_only: bool) -> st.SearchStrategy[Any]:
    text = unicode_text if not clean_only else st.sampled_from(["王师傅", DISTRICT, "焊接、数控", "是", "2", "W-fz1"])
    return st.one_of(
        st.none(), st.just(""), st.just("   "), text, st.integers(-(2**40), 2**40), st.booleans(),
        st.floats(allow_nan=True, allow_infinity=True), st.dates(dt.date(1900, 1, 1), dt.date(2100, 1, 1)),
        st.sampled_from(["=1+1", "'=cmd|' /C calc'!A0", "@SUM(A1)", "待对接", "全国", "W-fz1", "W-fz1 ", "示例-W0001"]),
    )


#: Per header, a value the row's kind accepts in 亭湖区 (``E-fz0`` is an enterprise the target creates there).
_PLAUSIBLE: dict[str, Any] = {
    **{c.header: c.example for columns in COLUMNS.values() for c in columns if c.example},
    "区县": DISTRICT, "服务队": DISTRICT, "工作单位编号": "E-fz0", "企业编号": "E-fz0",
}


@st.composite
def sheets(draw: st.DrawFn) -> tuple[str, str, bytes]:
    """``(kind, filename, bytes)`` of an upload: a sheet of some shape, or bytes that only claim to be one."""
    kind = draw(st.sampled_from(sorted(COLUMNS)))
    fmt = draw(st.sampled_from(["xlsx", "xlsx", "csv", "csv", "other"]))
    if fmt == "other":
        name = draw(st.sampled_from(["t.xlsx", "t.csv", "t.xls", "t.txt", "t", ".xlsx", "t.XLSX", "../t.csv"]))
        data = draw(st.one_of(st.just(b""), st.binary(max_size=200), st.just(b"PK\x03\x04" + b"\x00" * 40),
                              st.just("编号,姓名\n".encode("utf-16")), st.just(b"\xef\xbb\xbf")))
        return kind, name, data
    columns = COLUMNS[kind]
    headers = [c.title if draw(st.booleans()) else c.header for c in columns]
    shape = draw(st.sampled_from(["all", "missing", "extra", "shuffled", "blank-header", "none"]))
    if shape == "missing":
        headers = draw(st.lists(st.sampled_from(headers), unique=True, max_size=len(headers)))
    elif shape == "extra":
        headers = headers + draw(st.lists(st.one_of(st.sampled_from(["备注", "编号", "", "姓名 ", "ID"]), unicode_text),
                                          min_size=1, max_size=3))
    elif shape == "shuffled":
        headers = draw(st.permutations(headers))
    elif shape == "blank-header":
        headers = ["" for _ in headers]
    elif shape == "none":
        headers = []
    clean = draw(st.booleans())  # half the sheets hold plausible values, so that previews and applies happen
    rows: list[list[Any]] = []
    for _ in range(draw(st.integers(0, 6))):
        row_shape = draw(st.sampled_from(["full", "full", "short", "long", "blank", "merged"]))
        width = {"short": max(0, len(headers) - 2), "long": len(headers) + 3}.get(row_shape, len(headers))
        row = [draw(_cell_value(clean)) for _ in range(width)]
        if clean:  # mostly the value a coordinator would type in that column, now and then anything
            row = [_PLAUSIBLE.get(h.rstrip("*"), v) if draw(st.integers(0, 11)) else v
                   for h, v in zip(headers + [""] * width, row, strict=False)]
        if row_shape == "blank":
            row = [draw(st.sampled_from([None, "", " ", "\u3000"])) for _ in range(width)]
        elif row_shape == "merged" and row:  # what a merged block leaves: a value at the top left, blanks after
            row = [row[0]] + [None] * (width - 1)
        if clean and "编号" in [h.rstrip("*") for h in headers[:width]]:
            row[[h.rstrip("*") for h in headers].index("编号")] = f"{kind[0].upper()}-fz{draw(st.integers(1, 3))}"
        rows.append(row)
    if draw(st.integers(0, 7)) == 0 and rows and rows[-1]:  # one huge cell, past the longest field or not
        rows[-1][-1] = "长" * draw(st.sampled_from([2_001, MAX_CELL, MAX_CELL + 1, 140_000]))
    if fmt == "csv":
        out = io.StringIO(newline="")
        writer = csv.writer(out)
        for line in ([headers] if headers else []) + rows:
            writer.writerow(["" if v is None else v for v in line])
        encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "gb18030"]))
        errors = "surrogatepass" if encoding == "utf-8" else "replace"  # lone surrogates as invalid UTF-8 bytes
        return kind, f"{kind}.csv", out.getvalue().encode(encoding, errors)
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    for line in ([headers] if headers else []) + rows:
        sheet.append([_storable(v) for v in line])
    merge: bool = draw(st.booleans())
    if rows and merge:  # a real merged block over the first rows' first two columns
        sheet.merge_cells(start_row=2, start_column=1, end_row=min(3, 1 + len(rows)), end_column=2)
    buffer = io.BytesIO()
    book.save(buffer)
    return kind, f"{kind}.xlsx", buffer.getvalue()


def _storable(value: Any) -> Any:
    """What openpyxl can write of a cell value (it refuses control characters, lone surrogates and NaN)."""
    if isinstance(value, str):
        value = ILLEGAL_CHARACTERS_RE.sub("", value.encode("utf-8", "replace").decode("utf-8"))
        return value
    if isinstance(value, float) and value != value:
        return "NaN"
    return value


def _upload(client: FlaskClient, kind: str, filename: str, data: bytes) -> Any:
    token = client.get("/_test/csrf").get_data(as_text=True)
    return client.post("/import", data={"csrf_token": token, "kind": kind, "file": (io.BytesIO(data), filename)},
                       content_type="multipart/form-data")


@fuzz(150)
@given(upload=sheets(), as_admin=st.booleans(), apply=st.booleans())
@example(upload=("workers", "workers.csv", b""), as_admin=True, apply=False)
@example(upload=("workers", "workers.xlsx", b"PK\x03\x04" + b"\x00" * 40), as_admin=True, apply=False)
@example(upload=("problems", "problems.csv", "编号*,标题*\n".encode()), as_admin=False, apply=False)
@example(upload=("workers", "workers.csv", ("编号,姓名,区县\n" + "W-fz1,王师傅,亭湖区,多余,多余\n,,\n\n").encode()),
         as_admin=False, apply=True)
@example(upload=("enterprises", "e.csv", ("编号,企业名称,区县\nE-fz1," + "长" * 140_000 + ",亭湖区\n").encode()),
         as_admin=True, apply=False)
def test_spreadsheet_shapes_on_the_import_page(target: Target, upload: tuple[str, str, bytes], as_admin: bool,
                                                apply: bool) -> None:
    kind, filename, data = upload
    client = target.admin if as_admin else target.district
    response = _upload(client, kind, filename, data)
    status = _check_page(response, f"upload {filename} ({len(data)} bytes)")
    if status == 200:  # refused: the import page again, with the reason (a flash, or the file field's error)
        html = response.get_data(as_text=True)
        assert 'class="flash error"' in html or '<div class="error">' in html, "an upload refused without a reason"
        event("upload refused")
        return
    assert status == 302, status
    preview = target.admin.get(response.headers["Location"]) if as_admin else target.district.get(
        response.headers["Location"])
    _check_page(preview, f"preview of {filename}")
    assert preview.status_code == 200
    event("preview")
    if not apply:
        return
    job = response.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    _check_page(_form(client, f"/import/{job}/apply", {}), "apply")
    deadline = time.monotonic() + 30
    state = "running"
    while state in ("preview", "running") and time.monotonic() < deadline:
        progress = client.get(f"/import/{job}/progress")
        assert progress.status_code == 200
        state = progress.get_json()["state"]
        if state == "preview":  # nothing valid to write: apply leaves it a preview
            break
        time.sleep(0.02)
    assert state in ("preview", "done", "failed"), f"import stuck in {state!r}"
    event(f"apply: {state}")
