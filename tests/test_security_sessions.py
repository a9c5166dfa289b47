"""Issue 16, findings 1 and 4: demo logins on real data, user administration from the command line,
login throttling, and sessions that really end (logout, password change, disabling, lifetime, rotation).

Real app, real embedded store, real login form; no stand-ins.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient

from graph.memory import MemoryStore
from graph.store import GraphStore
from tests import api_support
from tests.api_support import PASSWORD, assert_problem, make_app
from web.auth import SESSION_AT_KEY, create_user, disable_user, login, set_password

demo_dir = api_support.demo_dir
store = api_support.store

COOKIE = "jianglian_session"


def _token(client: FlaskClient, url: str = "/login") -> str:
    html = client.get(url).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html)
    assert match, f"no CSRF token on {url}"
    return match.group(1)


def _post_login(client: FlaskClient, username: str, password: str, **kw: Any) -> Any:
    return client.post("/login", data={"username": username, "password": password,
                                       "csrf_token": _token(client)}, **kw)


def _logged_in(app: Any, username: str, password: str = PASSWORD) -> FlaskClient:
    client = app.test_client()
    response = _post_login(client, username, password)
    assert response.status_code == 302, response.get_data(as_text=True)[:300]
    assert client.get("/dashboard").status_code == 200
    return client


def _copy(app: Any, client: FlaskClient) -> FlaskClient:
    """Another browser holding a copy of ``client``'s session cookie."""
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    thief = app.test_client()
    thief.set_cookie(COOKIE, cookie.value)
    return thief


def _is_logged_in(client: FlaskClient) -> bool:
    page = client.get("/dashboard")
    api = client.get("/api/v1/workers")
    assert (page.status_code == 200) == (api.status_code == 200), (page.status_code, api.status_code)
    return page.status_code == 200


# -- finding 1: demo logins, user administration, throttling ------------------------------------------
def test_demo_if_empty_creates_no_demo_logins_on_a_store_with_data(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import main

    s = MemoryStore(tmp_path / "store")
    s.create_node("Worker", "W1", {"name": "王师傅", "district": "亭湖区"})  # e.g. after `jianglian load` of real data
    s.close()
    monkeypatch.setenv("JIANGLIAN_STORE", "memory")
    monkeypatch.setenv("JIANGLIAN_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(main, ["demo", "--if-empty"])
    assert result.exit_code == 0, result.output
    assert "already holds data" in result.output and "user create" in result.output
    s = MemoryStore(tmp_path / "store")
    try:
        assert list(s.iter_nodes("User")) == []
        assert login(s, "admin", "jianglian-demo") is None
    finally:
        s.close()


def test_cli_changes_a_password_and_disables_and_enables_a_user(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from cli.main import main

    monkeypatch.setenv("JIANGLIAN_STORE", "memory")
    monkeypatch.setenv("JIANGLIAN_DATA_DIR", str(tmp_path))
    runner = CliRunner()
    assert runner.invoke(main, ["user", "create", "chen", "--role", "city", "--password-stdin"],
                         input="first password\n").exit_code == 0
    changed = runner.invoke(main, ["user", "passwd", "chen", "--password-stdin"], input="second password\n")
    assert changed.exit_code == 0, changed.output
    short = runner.invoke(main, ["user", "passwd", "chen", "--password-stdin"], input="short\n")
    assert short.exit_code != 0 and "8 characters" in short.output
    unknown = runner.invoke(main, ["user", "passwd", "nobody", "--password-stdin"], input="long enough\n")
    assert unknown.exit_code != 0 and "no user 'nobody'" in unknown.output
    s = MemoryStore(tmp_path / "store")
    assert login(s, "chen", "first password") is None and login(s, "chen", "second password") is not None
    s.close()

    assert runner.invoke(main, ["user", "disable", "chen"]).exit_code == 0
    assert "chen\tcity\t\tdisabled" in runner.invoke(main, ["user", "list"]).output
    s = MemoryStore(tmp_path / "store")
    assert login(s, "chen", "second password") is None
    s.close()
    assert runner.invoke(main, ["user", "enable", "chen"]).exit_code == 0
    s = MemoryStore(tmp_path / "store")
    assert login(s, "chen", "second password") is not None
    s.close()
    assert runner.invoke(main, ["user", "disable", "nobody"]).exit_code != 0


def test_wrong_passwords_for_one_username_lock_its_logins_for_a_while(store: GraphStore) -> None:
    create_user(store, "chen", PASSWORD, role="city")
    create_user(store, "li", PASSWORD, role="city")
    app = make_app(store)  # the default limit: 10 failures per username in 15 minutes
    client = app.test_client()
    for _ in range(10):
        wrong = _post_login(client, "chen", "not the password")
        assert wrong.status_code == 200 and "用户名或密码错误" in wrong.get_data(as_text=True)
    right = _post_login(client, "chen", PASSWORD)
    assert right.status_code == 429
    assert "登录失败次数过多,请 15 分钟后再试" in right.get_data(as_text=True)
    assert client.get("/dashboard").status_code == 302
    # from another address too (the lock is on the username) ...
    other = app.test_client()
    refused = _post_login(other, "chen", PASSWORD, environ_base={"REMOTE_ADDR": "10.0.0.9"})
    assert refused.status_code == 429
    english = other.post("/login?lang=en", data={"username": "chen", "password": PASSWORD,
                                                 "csrf_token": _token(other, "/login?lang=en")})
    assert "Too many failed logins; try again in 15 minute(s)." in english.get_data(as_text=True)
    # ... while another user logs in from the same address
    assert _post_login(client, "li", PASSWORD).status_code == 302


def test_wrong_passwords_from_one_address_lock_it_and_the_lock_ends(store: GraphStore) -> None:
    for name in ("u1", "u2", "u3", "ok"):
        create_user(store, name, PASSWORD, role="viewer")
    app = make_app(store, LOGIN_FAILURES_PER_ADDRESS="3 per 2 seconds")
    client = app.test_client()
    for name in ("u1", "u2", "u3"):
        assert _post_login(client, name, "wrong password").status_code == 200
    assert _post_login(client, "ok", PASSWORD).status_code == 429
    elsewhere = app.test_client()
    assert _post_login(elsewhere, "ok", PASSWORD, environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code == 302
    time.sleep(2.2)
    assert _post_login(client, "ok", PASSWORD).status_code == 302


# -- finding 4: sessions end ---------------------------------------------------------------------------
def test_logout_ends_a_copied_session_cookie(store: GraphStore) -> None:
    create_user(store, "chen", PASSWORD, role="admin")
    app = make_app(store)
    client = _logged_in(app, "chen")
    thief = _copy(app, client)
    assert _is_logged_in(thief)
    client.post("/logout", data={"csrf_token": _token(client, "/dashboard")})
    assert not _is_logged_in(client)
    assert not _is_logged_in(thief)
    assert_problem(thief.get("/api/v1/workers"), 401)
    assert thief.get("/apikeys").status_code == 302  # the page that made a write key with the stolen cookie
    # a new app over the same store (a restart) does not bring it back either
    assert not _is_logged_in(_copy(make_app(store), thief))
    # logging in again works, with a new session
    assert _is_logged_in(_logged_in(app, "chen"))


def test_password_change_and_disabling_end_every_session(store: GraphStore) -> None:
    create_user(store, "chen", PASSWORD, role="city")
    app = make_app(store)
    laptop, phone = _logged_in(app, "chen"), _logged_in(app, "chen")
    set_password(store, "chen", "a new password")
    assert not _is_logged_in(laptop) and not _is_logged_in(phone)
    again = _logged_in(app, "chen", "a new password")
    disable_user(store, "chen")
    assert not _is_logged_in(again)
    assert _post_login(app.test_client(), "chen", "a new password").status_code == 200  # refused: disabled
    disable_user(store, "chen", active=True)
    assert not _is_logged_in(again)  # enabling does not revive old sessions
    _logged_in(app, "chen", "a new password")


def test_a_session_ends_after_its_lifetime_even_while_in_use(store: GraphStore) -> None:
    create_user(store, "chen", PASSWORD, role="city")
    app = make_app(store)
    client = _logged_in(app, "chen")
    lifetime = app.permanent_session_lifetime.total_seconds()
    assert lifetime == 12 * 3600
    with client.session_transaction() as session:
        session[SESSION_AT_KEY] = int(time.time() - lifetime + 60)
    assert _is_logged_in(client)
    with client.session_transaction() as session:
        session[SESSION_AT_KEY] = int(time.time() - lifetime - 1)
    assert not _is_logged_in(client)


def test_login_rotates_the_session_and_old_style_sessions_are_refused(store: GraphStore) -> None:
    create_user(store, "chen", PASSWORD, role="city")
    app = make_app(store)
    client = app.test_client()
    token = _token(client)
    with client.session_transaction() as session:
        before = dict(session)
    assert before.get("csrf_token")
    assert client.post("/login", data={"username": "chen", "password": PASSWORD,
                                       "csrf_token": token}).status_code == 302
    with client.session_transaction() as session:
        after = dict(session)
    assert after.get("_user_id") == "chen" and after.get("csrf_token") != before["csrf_token"]
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None and cookie.expires is not None  # the cookie has a lifetime too
    # a session naming a user without what a login writes (forged with the key, or from before this
    # check) is anonymous
    legacy = app.test_client()
    with legacy.session_transaction() as session:
        session["_user_id"] = "chen"
        session["_fresh"] = True
    assert not _is_logged_in(legacy)
