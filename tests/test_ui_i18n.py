"""Language of the pages: Chinese by default, English by parameter or cookie, catalogue complete and compiled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from graph.store import GraphStore
from tests import api_support
from tests.api_support import login_as, make_app

demo_dir = api_support.demo_dir
store = api_support.store

REPO = Path(__file__).resolve().parent.parent
CATALOGUE = REPO / "web" / "translations" / "en" / "LC_MESSAGES"


def _extracted() -> set[str]:
    method_map = [("web/ui/**.py", "python"), ("web/templates/ui/**.html", "jinja2")]
    found = set()
    for _file, _line, message, _comments, _context in extract_from_dir(
            str(REPO), method_map, keywords={"_": None, "_l": None, "gettext": None, "lazy_gettext": None}):
        found.add(message if isinstance(message, str) else message[0])
    return found


def test_every_page_text_has_an_english_translation_and_the_mo_is_current() -> None:
    with open(CATALOGUE / "messages.po", "rb") as fh:
        po = read_po(fh)
    with open(CATALOGUE / "messages.mo", "rb") as fh:
        mo = read_mo(fh)
    translated = {m.id: m.string for m in po if m.id}
    missing = sorted(m for m in _extracted() if not translated.get(m))
    assert not missing, f"untranslated (run make web-i18n-update, translate, make web-i18n): {missing[:10]}"
    compiled = {m.id: m.string for m in mo if m.id}
    assert compiled == translated, "messages.mo is stale: run make web-i18n"


def test_chinese_by_default_english_on_request(store: GraphStore) -> None:
    app = make_app(store)
    client, _ = login_as(app, store, "admin")
    zh = client.get("/dashboard").get_data(as_text=True)
    assert "进企服务人次" in zh and 'lang="zh"' in zh
    en = client.get("/dashboard?lang=en").get_data(as_text=True)
    assert "Person-visits to enterprises" in en and "进企服务人次" not in en
    switch = client.get("/lang/en?next=/problems")
    assert switch.status_code == 302 and switch.headers["Location"] == "/problems"
    assert "New problem" in client.get("/problems").get_data(as_text=True)
    client.get("/lang/zh?next=//evil.example")
    assert "登记新问题" in client.get("/problems").get_data(as_text=True)
    assert client.get("/lang/xx?next=/problems").headers["Location"] == "/problems"


def test_login_page_switches_language_before_login(store: GraphStore) -> None:
    client: Any = make_app(store).test_client()
    assert "登录" in client.get("/login").get_data(as_text=True)
    assert "Log in" in client.get("/login?lang=en").get_data(as_text=True)
