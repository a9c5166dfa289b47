"""Language of the pages: Chinese by default, English when the ``lang`` parameter or cookie asks.

Message ids are the Chinese texts themselves, so the default language needs no catalogue; the
English catalogue lives in ``web/translations/en/LC_MESSAGES/messages.po`` (compiled to ``.mo`` by
``make web-i18n``; the compiled file is committed so a fresh checkout switches language too).
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, redirect, request
from flask_babel import Babel, get_locale
from werkzeug.wrappers import Response

from web.errors import request_language
from web.ui import bp

__all__ = ["LANGUAGES", "init_babel", "safe_next", "select_locale", "ui_lang"]

LANGUAGES = ("zh", "en")
COOKIE = "lang"
TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"

def select_locale() -> str:
    """``?lang=`` first, then the ``lang`` cookie, else Chinese: the API errors' rule
    (:func:`web.errors.request_language`) without ``Accept-Language``, since pages are Chinese first."""
    return request_language(accept_language=False)


def ui_lang() -> str:
    """The language code of the current request (``zh`` or ``en``)."""
    return str(get_locale() or "zh")[:2]


def init_babel(app: Flask) -> None:
    """Install Flask-Babel unless ``create_app`` did, and make our selector and catalogue the defaults."""
    app.config.setdefault("BABEL_DEFAULT_LOCALE", "zh")
    if "babel" not in app.extensions:
        Babel(app, default_locale="zh", default_translation_directories=str(TRANSLATIONS),
              locale_selector=select_locale)
        return
    config = app.extensions["babel"]
    if config.locale_selector is None:
        config.locale_selector = select_locale
    if str(TRANSLATIONS) not in config.translation_directories:
        config.translation_directories.append(str(TRANSLATIONS))


def safe_next(target: str | None, default: str) -> str:
    """Only same-site relative paths are followed after login or a language switch (no open redirect)."""
    if not target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


@bp.route("/lang/<lang>")
def set_language(lang: str) -> Response:
    """Remember the chosen language in a cookie and go back where the user was."""
    target = safe_next(request.args.get("next"), "/")
    response = redirect(target)
    if lang in LANGUAGES:
        response.set_cookie(COOKIE, lang, max_age=365 * 24 * 3600, samesite="Lax", httponly=True,
                            secure=request.is_secure)
    return response
