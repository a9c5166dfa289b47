"""Users, roles, API keys and every permission rule, in one place (the UI reuses these functions).

Why this module is long: it is the security boundary (principals, permission rules, users, API keys,
sessions), kept in one file on purpose so that a review of who may do what reads one module;
``docs/security.md`` maps each control here to the test that holds it.

Who can call what
-----------------
Two kinds of callers are recognised, both turned into a :class:`Principal`:

* **The platform**, with an ``X-API-Key`` header. A key has the scope ``read`` (GET requests and
  recommendation queries) or ``write`` (everything a coordinator can do, city-wide). Keys are
  random secrets of the form ``jl_<key id>_<secret>``, shown once at creation; the store keeps the
  key id, its SHA-256 hash, a name, the scope and the revocation time, never the key itself.
* **Logged-in users** (a Flask-Login session from the UI), with a role:

  ========= ===================================================================================
  admin     everything, including the audit log and user management
  city      city coordinator: reads and edits every district
  district  district coordinator: reads everything, edits only the problems, workers and
            enterprises of their own district (and their matches)
  viewer    reads only; never sees worker contacts
  worker    a model worker or craftsman linked to ``worker_id``: sees the problems recommended
            to them and their own matches, accepts or declines their own invitations
  ========= ===================================================================================

A state-changing request authenticated by the session cookie must carry the CSRF token in the
``X-CSRFToken`` header (the API blueprint is exempt from form CSRF only for API-key calls).

Sessions
--------
The session cookie is signed, not stored, so a copy of it would otherwise work until it expires.
Each user node keeps a ``session_gen`` counter; :func:`start_session` writes it into the session
with the login time, and the user loader accepts a session only while both still hold: the counter
is unchanged (logging out, changing the password or disabling the user bumps it, which ends every
session of that user) and the login is younger than ``PERMANENT_SESSION_LIFETIME``. Logging in
starts from an empty session (nothing from before the login, such as its CSRF token, carries over).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import wraps
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from flask import Flask, current_app, g, request, session
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from graph.errors import DuplicateNode, NodeNotFound
from graph.store import GraphStore
from web.errors import CsrfFailed, Forbidden, Unauthenticated

__all__ = [
    "API_KEY_HEADER",
    "DEMO_PASSWORD",
    "ROLES",
    "SCOPES",
    "SESSION_AT_KEY",
    "SESSION_GEN_KEY",
    "ApiKeyCreated",
    "Principal",
    "SessionUser",
    "authenticate_api_key",
    "can_see_contact",
    "can_write",
    "check_edit",
    "check_match_action",
    "check_match_view",
    "check_worker_view",
    "create_api_key",
    "create_user",
    "current_principal",
    "demo_logins",
    "disable_user",
    "end_session",
    "end_sessions",
    "ensure_demo_users",
    "get_user",
    "init_auth",
    "list_api_keys",
    "list_users",
    "login",
    "may_edit",
    "may_act_on_match",
    "require",
    "revoke_api_key",
    "session_is_current",
    "set_password",
    "start_session",
]

log = logging.getLogger(__name__)

Role = Literal["admin", "city", "district", "viewer", "worker"]
Scope = Literal["read", "write"]
ROLES: tuple[str, ...] = ("admin", "city", "district", "viewer", "worker")
SCOPES: tuple[str, ...] = ("read", "write")
API_KEY_HEADER = "X-API-Key"
DEMO_PASSWORD = "jianglian-demo"
_COORDINATORS = frozenset({"admin", "city", "district"})
_KEY_RE = re.compile(r"^jl_([0-9a-f]{12})_([A-Za-z0-9_\-]{20,100})$")
_USERNAME_RE = re.compile(r"^[A-Za-z0-9_.\-\u4e00-\u9fff]{2,64}$")
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
#: Session keys: the user's session generation at login, and the login time (seconds since the epoch).
SESSION_GEN_KEY = "_jl_gen"
SESSION_AT_KEY = "_jl_at"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# -- principals ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Principal:
    """Who is calling: an API key (``kind="apikey"``, role ``platform``) or a logged-in user."""

    kind: Literal["apikey", "user"]
    id: str
    role: str
    scope: str = "read"
    district: str | None = None
    worker_id: str | None = None
    name: str = ""

    @property
    def actor(self) -> str:
        """How the audit log names this caller: the username (as the UI writes it) or ``apikey:<key id>``
        (never a secret)."""
        return self.id if self.kind == "user" else f"apikey:{self.id}"

    @property
    def is_admin(self) -> bool:
        return self.kind == "user" and self.role == "admin"


def can_write(p: Principal | None) -> bool:
    """Coordinators and write-scoped keys may change data (subject to :func:`may_edit`)."""
    if p is None:
        return False
    if p.kind == "apikey":
        return p.scope == "write"
    return p.role in _COORDINATORS


def may_edit(p: Principal | None, label: str, *districts: str | None) -> bool:
    """Whether ``p`` may create or update a ``label`` row whose district is (or becomes) ``districts``.

    Skills and industry chains are the city-wide taxonomy: admins, city coordinators and write keys
    only. A district coordinator edits workers, problems and enterprises of their own district.
    """
    if not can_write(p):
        return False
    assert p is not None
    if p.kind == "apikey" or p.role in ("admin", "city"):
        return True
    if label not in ("Worker", "Problem", "Enterprise"):
        return False
    return bool(p.district) and all(d == p.district for d in districts)


def check_edit(p: Principal | None, label: str, *districts: str | None) -> None:
    """Raise :class:`~web.errors.Forbidden` unless :func:`may_edit`."""
    if may_edit(p, label, *districts):
        return
    assert p is not None
    if not can_write(p):
        raise Forbidden("需要写权限", reason_en="write access is required")
    if p.role == "district" and label in ("Worker", "Problem", "Enterprise"):
        raise Forbidden(f"地区协调员只能编辑本地区（{p.district}）的数据",
                        reason_en=f"a district coordinator edits only their own district ({p.district})")
    raise Forbidden("只有管理员和市级协调员可以编辑技能和产业链",
                    reason_en="only admins and city coordinators edit skills and industry chains")


def can_see_contact(p: Principal | None, worker: Mapping[str, Any]) -> bool:
    """A worker's contact is private: write keys, admins, city coordinators, the district's
    coordinator and the worker themself."""
    if p is None:
        return False
    if p.kind == "apikey":
        return p.scope == "write"
    if p.role in ("admin", "city"):
        return True
    if p.role == "district":
        return bool(p.district) and worker.get("district") == p.district
    return p.role == "worker" and p.worker_id == worker.get("id")


def may_act_on_match(p: Principal | None, action: str, match: Mapping[str, Any],
                     problem_district: str | None) -> bool:
    """Invite / complete / withdraw / confirm (a volunteer) are coordinator actions on the problem's
    district; the invited worker may also ``accept`` or ``decline`` their own match, and a worker
    may ``volunteer`` themself and may ``withdraw`` their own volunteer. A coordinator does not
    volunteer for a worker (they invite); a write key may (the platform relaying the worker's choice)."""
    if p is None:
        return False
    if p.kind == "user" and p.role == "worker":
        own = bool(p.worker_id) and match.get("worker_id") == p.worker_id
        if action in ("accept", "decline", "volunteer"):
            return own
        if action == "withdraw" and match.get("state") == "volunteered":
            return own
    if action == "volunteer":
        return p.kind == "apikey" and p.scope == "write"
    return may_edit(p, "Problem", problem_district)


def check_match_action(p: Principal | None, action: str, match: Mapping[str, Any],
                       problem_district: str | None) -> None:
    """Raise :class:`~web.errors.Forbidden` unless :func:`may_act_on_match`."""
    if may_act_on_match(p, action, match, problem_district):
        return
    assert p is not None
    if p.kind == "user" and p.role == "worker":
        raise Forbidden("劳模工匠只能答复发给自己的邀请、为自己报名",
                        reason_en="a worker may only answer their own invitations and volunteer themself")
    if action == "volunteer":
        raise Forbidden("协调员不能代劳模工匠报名,请直接邀请",
                        reason_en="a coordinator does not volunteer for a worker: invite them instead")
    check_edit(p, "Problem", problem_district)


def check_match_view(p: Principal | None, match: Mapping[str, Any]) -> None:
    """A worker sees only their own matches; everyone else with read access sees all."""
    if p is not None and p.kind == "user" and p.role == "worker" and match.get("worker_id") != p.worker_id:
        raise Forbidden("只能查看自己的邀请", reason_en="a worker may only see their own matches")


def check_worker_view(p: Principal | None, worker_id: str) -> None:
    """Recommended problems of a worker: that worker, or anyone who is not a worker."""
    if p is not None and p.kind == "user" and p.role == "worker" and p.worker_id != worker_id:
        raise Forbidden("只能查看推荐给自己的问题", reason_en="a worker may only see problems recommended to them")


# -- users --------------------------------------------------------------------------------------
class SessionUser(UserMixin):  # type: ignore[misc]
    """A logged-in user as Flask-Login sees it (built from a ``User`` node)."""

    def __init__(self, node: Mapping[str, Any]) -> None:
        self.id = str(node["id"])
        self.username = self.id
        self.role = str(node.get("role") or "viewer")
        self.district = node.get("district")
        self.worker_id = node.get("worker_id")
        self.display_name = str(node.get("display_name") or node["id"])
        self.session_gen = _generation(node)
        self._active = bool(node.get("active", True))

    @property
    def is_active(self) -> bool:
        return self._active

    def principal(self) -> Principal:
        return Principal("user", self.id, self.role, district=self.district, worker_id=self.worker_id,
                         name=self.display_name)


def _public_user(node: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in node.items() if k != "password_hash" and v is not None}


def create_user(
    store: GraphStore,
    username: str,
    password: str,
    *,
    role: str,
    district: str | None = None,
    worker_id: str | None = None,
    display_name: str | None = None,
    demo: bool = False,
) -> dict[str, Any]:
    """Create a user with a hashed password; returns the user without the hash.

    Raises
    ------
    ValueError
        On an invalid username, a short password, an unknown role, a district role without a
        district or a worker role without a worker id.
    graph.errors.DuplicateNode
        If the username is taken.
    """
    if not _USERNAME_RE.match(username):
        raise ValueError("username: 2-64 letters, digits, Chinese characters, '.', '_' or '-'")
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password: at least 8 characters")
    if role == "district" and not district:
        raise ValueError("a district coordinator needs a district")
    if role == "worker" and not worker_id:
        raise ValueError("a worker user needs a worker id")
    props = {
        "password_hash": generate_password_hash(password),
        "role": role,
        "district": district if role == "district" else None,
        "worker_id": worker_id if role == "worker" else None,
        "display_name": display_name or username,
        "active": True,
        "created_at": _now(),
        "demo": demo,
    }
    node = store.create_node("User", username, {k: v for k, v in props.items() if v is not None})
    return _public_user(node)


def get_user(store: GraphStore, username: str) -> dict[str, Any] | None:
    """A user without the password hash, or ``None``."""
    node = store.get_node("User", username)
    return None if node is None else _public_user(node)


def list_users(store: GraphStore) -> list[dict[str, Any]]:
    """Every user, without password hashes, ordered by username."""
    return [_public_user(n) for n in store.iter_nodes("User")]


def set_password(store: GraphStore, username: str, password: str) -> None:
    """Replace a user's password and end every session of that user.

    Raises
    ------
    ValueError
        On a password shorter than 8 characters.
    graph.errors.NodeNotFound
        If there is no such user.
    """
    if len(password) < 8:
        raise ValueError("password: at least 8 characters")
    node = _user_node(store, username)
    store.update_node("User", username, {"password_hash": generate_password_hash(password),
                                         "session_gen": _generation(node) + 1, "password_changed_at": _now()})
    log.info("user %s: password changed, sessions ended", username)


def disable_user(store: GraphStore, username: str, *, active: bool = False) -> dict[str, Any]:
    """Disable a user (no login, every session ended at once), or enable them again with ``active=True``.

    Raises :class:`~graph.errors.NodeNotFound` if there is no such user.
    """
    node = _user_node(store, username)
    props: dict[str, Any] = {"active": active, "disabled_at": None if active else _now()}
    if not active:
        props["session_gen"] = _generation(node) + 1
    log.info("user %s %s", username, "enabled" if active else "disabled")
    return _public_user(store.update_node("User", username, props))


def end_sessions(store: GraphStore, username: str) -> None:
    """End every session of ``username`` (bumps the user's session generation; no-op for an unknown user)."""
    node = store.get_node("User", username)
    if node is not None:
        store.update_node("User", username, {"session_gen": _generation(node) + 1})


def _user_node(store: GraphStore, username: str) -> dict[str, Any]:
    node = store.get_node("User", username)
    if node is None:
        raise NodeNotFound("User", username)
    return node


def _generation(node: Mapping[str, Any]) -> int:
    value = node.get("session_gen", 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def login(store: GraphStore, username: str, password: str) -> SessionUser | None:
    """Check a username and password; the :class:`SessionUser` to pass to ``login_user`` or ``None``."""
    node = store.get_node("User", username)
    if node is None or not node.get("active", True):
        check_password_hash(generate_password_hash("x"), password)  # same cost whether or not the user exists
        return None
    if not check_password_hash(str(node.get("password_hash", "")), password):
        return None
    return SessionUser(node)


_DEMO_USERS: tuple[tuple[str, str, str], ...] = (
    ("admin", "admin", "演示管理员"),
    ("city", "city", "市总工会协调员"),
    ("district", "district", "区县协调员"),
    ("viewer", "viewer", "只读用户"),
    ("worker", "worker", "劳模工匠"),
)


def ensure_demo_users(store: GraphStore) -> list[str]:
    """Create the demo logins (password :data:`DEMO_PASSWORD`) that do not exist yet.

    The district coordinator gets 亭湖区 (or the first district in the store) and the worker login is
    linked to the first worker of that district. Returns the usernames created.
    """
    districts = [n["id"] for n in store.iter_nodes("District")]
    district = "亭湖区" if "亭湖区" in districts else (districts[0] if districts else "亭湖区")
    workers = store.list_nodes("Worker", where={"district": district}, limit=1) or store.list_nodes("Worker", limit=1)
    created = []
    for username, role, display in _DEMO_USERS:
        if store.get_node("User", username) is not None:
            continue
        if role == "worker" and not workers:
            continue
        try:
            create_user(store, username, DEMO_PASSWORD, role=role, display_name=display, demo=True,
                        district=district if role == "district" else None,
                        worker_id=workers[0]["id"] if role == "worker" else None)
        except DuplicateNode:  # another process made it meanwhile
            continue
        created.append(username)
    return created


def demo_logins(store: GraphStore, *, checked: Path | None = None) -> list[dict[str, str]]:
    """Demo users whose password is still :data:`DEMO_PASSWORD` (``jianglian serve`` prints them).

    Parameters
    ----------
    checked
        A file remembering which stored password hashes were already checked against the demo password (by the
        sha256 of the hash string, with the answer): an unchanged hash is not checked again. A scrypt check costs
        about 0.2 s a user, a second of ``serve``'s start for the five demo logins; a changed password has a
        new hash (a new salt), so it is checked. Unreadable or unwritable: every hash is checked.
    """
    known: dict[str, bool] = {}
    if checked is not None:
        try:
            loaded = json.loads(checked.read_text(encoding="utf-8"))
            known = {str(k): bool(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}
        except (OSError, ValueError):
            known = {}
    seen: dict[str, bool] = {}
    out = []
    for node in store.iter_nodes("User"):
        if not node.get("demo"):
            continue
        stored = str(node.get("password_hash", ""))
        key = hashlib.sha256(stored.encode("utf-8")).hexdigest()
        still = known[key] if key in known else check_password_hash(stored, DEMO_PASSWORD)
        seen[key] = still
        if still:
            out.append({"username": node["id"], "password": DEMO_PASSWORD, "role": str(node.get("role")),
                        "district": str(node.get("district") or ""), "worker_id": str(node.get("worker_id") or "")})
    if checked is not None and seen != known:
        try:
            tmp = checked.with_name(f".{checked.name}.{os.getpid()}")
            tmp.write_text(json.dumps(seen), encoding="utf-8")
            os.replace(tmp, checked)
        except OSError:
            pass
    return out


# -- API keys -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ApiKeyCreated:
    """A new key: ``key`` is the only time the secret is available."""

    id: str
    key: str
    name: str
    scope: str


def _key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def create_api_key(store: GraphStore, *, name: str, scope: str = "read", created_by: str = "cli") -> ApiKeyCreated:
    """Create a key; only its SHA-256 hash is stored."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    if not name.strip():
        raise ValueError("a key needs a name (who uses it)")
    for _ in range(5):
        key_id = secrets.token_hex(6)
        raw = f"jl_{key_id}_{secrets.token_urlsafe(32)}"
        try:
            store.create_node("ApiKey", key_id, {
                "name": name.strip(), "scope": scope, "key_hash": _key_hash(raw), "prefix": f"jl_{key_id}",
                "created_at": _now(), "created_by": created_by, "active": True,
            })
        except DuplicateNode:
            continue
        log.info("api key %s created (%s, scope %s)", key_id, name, scope)
        return ApiKeyCreated(key_id, raw, name.strip(), scope)
    raise RuntimeError("could not allocate a unique key id")


def revoke_api_key(store: GraphStore, key_id: str) -> dict[str, Any]:
    """Revoke a key at once (raises :class:`~graph.errors.NodeNotFound`)."""
    key_id = key_id.removeprefix("jl_").split("_")[0]
    node = store.update_node("ApiKey", key_id, {"active": False, "revoked_at": _now()})
    log.info("api key %s revoked", key_id)
    return {k: v for k, v in node.items() if k != "key_hash"}


def list_api_keys(store: GraphStore) -> list[dict[str, Any]]:
    """Every key without its hash."""
    return [{k: v for k, v in n.items() if k != "key_hash"} for n in store.iter_nodes("ApiKey")]


def authenticate_api_key(store: GraphStore, raw: str) -> Principal | None:
    """The principal of a valid, active key, else ``None`` (constant-time comparison)."""
    match = _KEY_RE.match(raw.strip())
    if match is None:
        return None
    key_id = match.group(1)
    node = store.get_node("ApiKey", key_id)
    if node is None:
        return None
    if not hmac.compare_digest(str(node.get("key_hash", "")), _key_hash(raw.strip())):
        log.warning("api key %s: wrong secret", key_id)
        return None
    if not node.get("active", True):
        log.info("api key %s: revoked key used", key_id)
        return None
    return Principal("apikey", key_id, "platform", scope=str(node.get("scope", "read")), name=str(node.get("name")))


# -- request authentication ---------------------------------------------------------------------
def current_principal() -> Principal | None:
    """The caller of the current request (cached per request).

    An ``X-API-Key`` header wins over the session; a key that does not check out raises
    :class:`~web.errors.Unauthenticated` instead of falling back to the session.
    """
    if "jl_principal" in g:
        return cast(Principal | None, g.jl_principal)
    from web.extensions import get_state

    principal: Principal | None = None
    raw = request.headers.get(API_KEY_HEADER)
    if raw is not None:
        principal = authenticate_api_key(get_state().store, raw)
        if principal is None:
            g.jl_principal = None
            raise Unauthenticated()
    elif current_user is not None and current_user.is_authenticated:
        principal = current_user.principal()
    g.jl_principal = principal
    return principal


def rate_limit_key() -> str:
    """Flask-Limiter key: the API key id or the username; the client address for anonymous calls."""
    try:
        principal = current_principal()
    except Unauthenticated:
        principal = None
    if principal is not None:
        return f"{principal.kind}:{principal.id}"
    return f"ip:{request.remote_addr or '-'}"


def _check_csrf() -> None:
    from flask_wtf.csrf import validate_csrf
    from wtforms import ValidationError

    token = request.headers.get("X-CSRFToken") or request.headers.get("X-CSRF-Token")
    try:
        validate_csrf(token)
    except ValidationError as err:
        raise CsrfFailed(str(err)) from err


F = TypeVar("F", bound=Callable[..., Any])


def require(access: Literal["read", "write", "answer", "admin"] = "read") -> Callable[[F], F]:
    """Decorator for API views: authenticate, check the scope or role, check CSRF for sessions.

    ``read``: any key or user; ``write``: a write key or a coordinator (finer district checks are
    made in the view with :func:`check_edit`); ``answer``: like ``write`` but worker users too (they
    accept or decline their own invitations, checked by :func:`check_match_action`); ``admin``: an
    admin user. The checks run before the body is validated, so a caller without the right gets 403
    rather than a list of field errors.
    """

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = current_principal()
            if principal is None:
                raise Unauthenticated()
            if principal.kind == "user" and request.method not in _SAFE_METHODS:
                _check_csrf()
            answering = access == "answer" and principal.kind == "user" and principal.role == "worker"
            if access in ("write", "answer") and not can_write(principal) and not answering:
                if principal.kind == "apikey":
                    raise Forbidden("此 API 密钥只有读权限", reason_en="this API key has read scope only")
                raise Forbidden(f"角色“{principal.role}”没有写权限", reason_en=f"role {principal.role} cannot write")
            if access == "admin" and not principal.is_admin:
                raise Forbidden("仅管理员可用", reason_en="admins only")
            return view(*args, **kwargs)

        wrapper._jl_access = access  # type: ignore[attr-defined]
        return cast(F, wrapper)

    return decorate


def start_session(user: SessionUser) -> None:
    """Log ``user`` in on a fresh session that records their session generation and the login time."""
    session.clear()
    login_user(user)
    session[SESSION_GEN_KEY] = user.session_gen
    session[SESSION_AT_KEY] = int(time.time())
    session.permanent = True  # the cookie expires with PERMANENT_SESSION_LIFETIME too


def end_session(store: GraphStore) -> None:
    """Log the current user out and revoke every copy of their session cookie (see :func:`end_sessions`)."""
    if current_user is not None and current_user.is_authenticated:
        end_sessions(store, current_user.id)
    logout_user()
    session.clear()


def session_is_current(node: Mapping[str, Any]) -> bool:
    """Whether the current session of user ``node`` may still be used: it was started by
    :func:`start_session`, the user's session generation has not moved since, and it is younger
    than ``PERMANENT_SESSION_LIFETIME``."""
    gen, at = session.get(SESSION_GEN_KEY), session.get(SESSION_AT_KEY)
    if not isinstance(gen, int) or not isinstance(at, int | float) or gen != _generation(node):
        return False
    age = time.time() - float(at)
    return -60 <= age <= current_app.permanent_session_lifetime.total_seconds()


def init_auth(app: Flask) -> LoginManager:
    """Set up Flask-Login (the UI's login view is ``LOGIN_VIEW``, default ``ui.login``)."""
    manager = LoginManager()
    manager.init_app(app)
    manager.login_view = app.config.get("LOGIN_VIEW", "ui.login")

    @manager.user_loader
    def load_user(user_id: str) -> SessionUser | None:
        from web.extensions import get_state

        try:
            node = get_state(current_app).store.get_node("User", user_id)
        except NodeNotFound:
            return None
        if node is None or not node.get("active", True) or not session_is_current(node):
            return None
        return SessionUser(node)

    return manager
