"""The application factory.

``create_app(test_config=None)`` builds the app in three layers of settings: the defaults below,
then ``JIANGLIAN_*`` environment variables (``app.config.from_prefixed_env("JIANGLIAN")``, so
``JIANGLIAN_SESSION_COOKIE_SECURE=true`` sets ``SESSION_COOKIE_SECURE``), then ``test_config``.
Nothing touches the environment, the disk or the network at import time; the store is opened on
first use (see :mod:`web.extensions`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apiflask import APIFlask
from flask import Response, current_app, request
from flask_limiter import Limiter
from flask_wtf.csrf import CSRFProtect

from recommender.threads import query_threads
from web import auth, errors, extensions, outbox, throttle
from web.ratelimit_store import storage_uri

__all__ = ["DEFAULTS", "create_app"]

_VENDOR = "/static/vendor/swagger-ui"

#: Content-Security-Policy of every response: only this origin (no CDN, no inline script).
DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

DEFAULTS: dict[str, Any] = {
    # secrets and storage (None: resolved at start-up, see below and web.extensions)
    "SECRET_KEY": None,
    "STORE": None,
    "DATA_DIR": None,
    "STORE_RETRY_SECONDS": 2.0,
    # requests
    "MAX_CONTENT_LENGTH": 1024 * 1024,
    "JSON_AS_ASCII": False,
    # sessions
    "SESSION_COOKIE_NAME": "jianglian_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    "SESSION_COOKIE_SECURE": False,  # set true behind HTTPS: JIANGLIAN_SESSION_COOKIE_SECURE=true
    "REMEMBER_COOKIE_HTTPONLY": True,
    "REMEMBER_COOKIE_SAMESITE": "Lax",
    "REMEMBER_COOKIE_SECURE": False,
    "PERMANENT_SESSION_LIFETIME": 12 * 3600,  # also the longest a login lasts (web.auth.session_is_current)
    # failed logins before further attempts are refused for a while (web.throttle)
    "LOGIN_FAILURES_PER_USER": "10 per 15 minutes",
    "LOGIN_FAILURES_PER_ADDRESS": "30 per 15 minutes",
    # security headers
    "CONTENT_SECURITY_POLICY": DEFAULT_CSP,
    # rate limiting of the API, per API key (or per user, or per address when anonymous): a budget of
    # which the ranking routes spend more than 1 per call (web.api.costs, merged over its DEFAULT_COSTS)
    "API_RATE_LIMIT": "600 per minute",
    "API_RATE_COSTS": {},
    # the same, per user, for the pages that rank (a problem's candidates, a worker's problems, the assignment
    # plan), at the same costs: a session cannot ask for more ranking than a key (PAGE_RANKING_VIEWS)
    "PAGE_RATE_LIMIT": "600 per minute",
    # where the API budget and the login throttle count: empty = <data dir>/ratelimits.sqlite3, shared by every
    # worker process and kept across restarts (web.ratelimit_store); memory:// counts per process
    "RATELIMIT_STORAGE_URI": "",
    # notification e-mail (web.outbox, workflow.outbox): no SMTP_HOST, no mail (notifications stay in the app)
    "SMTP_HOST": "",
    "SMTP_PORT": None,  # 25, or 465 with SMTP_SECURITY=ssl
    "SMTP_FROM": "",
    "SMTP_SECURITY": "none",  # none | starttls | ssl
    "SMTP_USER": "",
    "SMTP_PASSWORD": "",
    "SMTP_TIMEOUT": 10.0,
    "PUBLIC_URL": "",  # e.g. https://jianglian.union.local: mails end with a link to the notification
    "OUTBOX_SENDER": True,  # the web process sends; false when `jianglian outbox send --loop` runs instead
    "OUTBOX_INTERVAL": 30.0,
    "OUTBOX_RETRY_SECONDS": 30.0,
    "OUTBOX_MAX_ATTEMPTS": 8,
    "RATELIMIT_HEADERS_ENABLED": True,
    # OpenAPI document and the interactive docs (assets served locally by `make web-assets`)
    "INFO": {"description": "Jianglian (匠联) JSON API for the union platform: recommendations, resources, "
                            "two-way selection, campaign assignment and programme progress. "
                            "Authenticate with an `X-API-Key` header."},
    "TAGS": [
        {"name": "recommendations", "description": "为问题推荐劳模工匠 / ranked workers for a problem"},
        {"name": "workers", "description": "劳模工匠资源清单 / the resource list"},
        {"name": "enterprises", "description": "企业 / enterprises"},
        {"name": "problems", "description": "企业需求清单 / the demand list"},
        {"name": "skills", "description": "技能 / skills"},
        {"name": "industry-chains", "description": "产业链 / industry chains"},
        {"name": "matches", "description": "双向选择 / two-way selection: invitations and outcomes"},
        {"name": "assignments", "description": "批量派单 / campaign assignment"},
        {"name": "notifications", "description": "通知 / a user's notifications: the list, marking read"},
        {"name": "stats", "description": "目标进度与审计 / programme progress and audit log"},
    ],
    "SECURITY_SCHEMES": {"ApiKeyAuth": {"type": "apiKey", "in": "header", "name": auth.API_KEY_HEADER}},
    "AUTO_SERVERS": False,
    "AUTO_404_RESPONSE": False,
    "VALIDATION_ERROR_STATUS_CODE": 422,
    "DOCS_FAVICON": f"{_VENDOR}/favicon-32x32.png",
    "SWAGGER_UI_CSS": f"{_VENDOR}/swagger-ui.css",
    "SWAGGER_UI_BUNDLE_JS": f"{_VENDOR}/swagger-ui-bundle.js",
    "SWAGGER_UI_STANDALONE_PRESET_JS": f"{_VENDOR}/swagger-ui-standalone-preset.js",
}


def create_app(test_config: Mapping[str, Any] | None = None) -> APIFlask:
    """Build the Jianglian web app (UI pages, JSON API under ``/api/v1``, health probes).

    Parameters
    ----------
    test_config
        Settings applied last; tests pass e.g. ``{"STORE": MemoryStore(), "SECRET_KEY": "t"}``.
    """
    app = APIFlask(
        __name__,
        title="Jianglian API",
        version="v1",
        spec_path="/openapi.json",
        docs_path=None,  # our own docs page (web.api.docs) loads local assets under a strict CSP
        openapi_blueprint_url_prefix="/api/v1",
        json_errors=False,  # problem+json for /api only, HTML pages keep their own error pages
    )
    app.config.from_mapping(DEFAULTS)
    app.config.from_prefixed_env("JIANGLIAN")
    query_threads()  # a wrong JIANGLIAN_QUERY_THREADS stops the start, not the first recommendation
    if test_config is not None:
        app.config.from_mapping(test_config)

    state = extensions.init_app(app)
    secret = app.config.get("SECRET_KEY")
    if secret is not None and not isinstance(secret, str | bytes):  # from_prefixed_env parsed digits as JSON
        app.config["SECRET_KEY"] = str(secret)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(app, state)
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        app.config["RATELIMIT_STORAGE_URI"] = _limiter_storage(app, state)

    errors.register_error_handlers(app)
    auth.init_auth(app)
    csrf = CSRFProtect(app)
    limiter = Limiter(auth.rate_limit_key, app=app, storage_uri=app.config["RATELIMIT_STORAGE_URI"],
                      headers_enabled=app.config["RATELIMIT_HEADERS_ENABLED"])
    app.extensions["jianglian_limiter"] = limiter
    throttle.init_throttle(app, limiter)

    from web.api import bp as api_bp
    from web.api import costs
    from web.health import bp as health_bp
    from web.ui import init_app as init_ui

    csrf.exempt(api_bp)  # session-authenticated API writes are checked in web.auth.require (X-CSRFToken)
    app.extensions["jianglian_rate_costs"] = costs.check_costs(app.config.get("API_RATE_COSTS"))
    limiter.shared_limit(lambda: str(current_app.config["API_RATE_LIMIT"]), scope="api",
                         cost=costs.request_cost)(api_bp)
    limiter.exempt(health_bp)
    app.register_blueprint(api_bp)
    app.register_blueprint(health_bp)

    init_ui(app)  # language selection (Flask-Babel) and the pages' blueprint
    _limit_ranking_pages(app, limiter, costs.request_cost)

    app.after_request(_security_headers)
    outbox.init_outbox(app)  # the e-mail sender thread, when SMTP_HOST is set (README: Settings)
    return app


#: Pages that rank, and the cost class (``web.api.costs``) each spends of ``PAGE_RATE_LIMIT``.
PAGE_RANKING_VIEWS: dict[str, str] = {"ui.problem_detail": "recommend", "ui.my_problems": "recommended_problems",
                                      "ui.assignment": "assignment_plan"}


def _limit_ranking_pages(app: APIFlask, limiter: Limiter, cost: Any) -> None:
    """Put the pages that rank under one ``PAGE_RATE_LIMIT`` budget per user, spent at the API's costs."""
    for endpoint, name in PAGE_RANKING_VIEWS.items():
        view: Any = app.view_functions.get(endpoint)
        if view is None:  # a page renamed or gone: nothing to limit (tests/test_security_cost_limits.py notices)
            continue
        view.rate_cost = name
        limited: Any = limiter.shared_limit(lambda: str(current_app.config["PAGE_RATE_LIMIT"]),
                                            scope="ranking-pages", cost=cost)(view)
        app.view_functions[endpoint] = limited


def _limiter_storage(app: APIFlask, state: extensions.AppState) -> str:
    """``sqlite:///<data dir>/ratelimits.sqlite3``: one budget per key across worker processes and restarts.

    An app given a ready store and no data directory (tests) counts in memory instead.
    """
    if app.config.get("STORE") is not None and not isinstance(app.config.get("STORE"), str) \
            and not app.config.get("DATA_DIR"):
        return "memory://"
    Path(state.data_dir).mkdir(parents=True, exist_ok=True)
    return storage_uri(Path(state.data_dir) / "ratelimits.sqlite3")


def _secret_key(app: APIFlask, state: extensions.AppState) -> str:
    """The persisted secret key under the data directory (made once), so sessions survive restarts.

    An app given a ready store and no data directory (tests) gets a throw-away key instead.
    """
    if app.config.get("STORE") is not None and not isinstance(app.config.get("STORE"), str) \
            and not app.config.get("DATA_DIR"):
        return secrets.token_hex(32)
    path = Path(state.data_dir) / "secret_key"
    try:
        return path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process wrote it first: use theirs
        return path.read_text(encoding="ascii").strip()
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(key)
    return key


def _security_headers(response: Response) -> Response:
    headers = response.headers
    # Pages and API answers may hold contacts and phone numbers: no browser or proxy keeps a copy.
    # Static assets (CSS, scripts, vendored docs) stay cacheable.
    if not (request.endpoint or "").endswith("static"):
        headers.setdefault("Cache-Control", "no-store")
    headers.setdefault("Content-Security-Policy", current_app.config["CONTENT_SECURITY_POLICY"])
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
    return response
