"""Fixtures and helpers shared by the web API tests (imported explicitly by ``tests/test_api*.py``).

The app runs over an in-memory store loaded with the deterministic demo dataset at scale 0.1
(11 districts, 60 enterprises, 120 workers, 220 problems) and the real recommender over it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from flask_wtf.csrf import generate_csrf

from demo.generator import generate
from graph.dataset import load_dataset
from graph.memory import MemoryStore
from graph.store import GraphStore
from web import create_app
from web.auth import SESSION_AT_KEY, SESSION_GEN_KEY, create_api_key, create_user

__all__ = [
    "PASSWORD",
    "api_app",
    "assert_problem",
    "demo_dir",
    "keys",
    "login_as",
    "make_app",
    "store",
]

PASSWORD = "correct horse battery"


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo dataset at scale 0.1, generated once per session."""
    out = tmp_path_factory.mktemp("demo")
    generate(out, scale=0.1, seed=7)
    return out


@pytest.fixture
def store(demo_dir: Path) -> Iterator[GraphStore]:
    """A fresh in-memory store holding the demo data."""
    s = MemoryStore()
    load_dataset(s, demo_dir)
    yield s
    s.close()


def make_app(store: GraphStore | None, **config: Any) -> Any:
    """An app over ``store`` with a test route that hands out CSRF tokens for session calls.

    The app ranks with the real :class:`recommender.engine.Recommender` (built on first use); there is no
    stand-in to fall back on, so an engine that fails to import fails every test that ranks.
    """
    # the limiter counts in this app's memory: with JIANGLIAN_DATA_DIR set (make test sets it), the default would
    # be one SQLite file shared by every app of the run, and one test's failed logins would throttle the next's
    settings = {"STORE": store, "TESTING": True, "SECRET_KEY": "test-secret", "API_RATE_LIMIT": "100000 per minute",
                "RATELIMIT_STORAGE_URI": "memory://"}
    settings.update(config)
    app = create_app(settings)
    app.add_url_rule("/_test/csrf", "test_csrf", lambda: generate_csrf())
    return app


@pytest.fixture
def api_app(store: GraphStore) -> Any:
    return make_app(store)


@pytest.fixture
def keys(store: GraphStore) -> dict[str, dict[str, str]]:
    """Headers for a read key and a write key."""
    read = create_api_key(store, name="platform-read", scope="read")
    write = create_api_key(store, name="platform-write", scope="write")
    return {"read": {"X-API-Key": read.key}, "write": {"X-API-Key": write.key}}


def login_as(app: Any, store: GraphStore, role: str, *, district: str | None = None,
             worker_id: str | None = None, username: str | None = None) -> tuple[FlaskClient, dict[str, str]]:
    """A client logged in (Flask-Login session) as a new user of ``role``, and its CSRF header.

    The session holds what :func:`web.auth.start_session` writes at a real login.
    """
    username = username or f"{role}-{district or worker_id or 'user'}"
    if store.get_node("User", username) is None:
        create_user(store, username, PASSWORD, role=role, district=district, worker_id=worker_id)
    node = store.get_node("User", username) or {}
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = username
        session["_fresh"] = True
        session[SESSION_GEN_KEY] = int(node.get("session_gen", 0))
        session[SESSION_AT_KEY] = int(time.time())
    token = client.get("/_test/csrf").get_data(as_text=True)
    return client, {"X-CSRFToken": token}


def assert_problem(response: Any, status: int, *, slug: str | None = None) -> dict[str, Any]:
    """Check an RFC 9457 problem document and return it."""
    assert response.status_code == status, response.get_data(as_text=True)[:500]
    assert response.mimetype == "application/problem+json"
    body = json.loads(response.get_data(as_text=True))
    assert body["status"] == status
    assert body["type"].startswith("urn:jianglian:error:")
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    if slug is not None:
        assert body["type"] == f"urn:jianglian:error:{slug}", body
    return dict(body)
