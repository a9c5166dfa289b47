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

from graph.dataset import load_dataset
from graph.demo import generate
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


class StandInRecommender:
    """Used only while ``recommender.engine`` is not in the tree: ranks by skill overlap, same interface."""

    model_version = "stand-in@0"

    def __init__(self, store: GraphStore) -> None:
        self.store = store

    def _problem(self, problem: Any) -> dict[str, Any]:
        from recommender.errors import InvalidQuery, UnknownProblem

        if isinstance(problem, str):
            node = self.store.get_node("Problem", problem)
            if node is None:
                raise UnknownProblem(f"problem {problem!r} not found")
            return node
        if not (problem.get("title") or problem.get("description")):
            raise InvalidQuery("a problem needs a title or a description")
        return dict(problem)

    def recommend(self, problem: Any, n: int = 10, *, candidates: Any = None, exclude: Any = None,
                  explain: bool = True) -> list[Any]:
        from types import SimpleNamespace

        row = self._problem(problem)
        wanted = set(row.get("skills") or [])
        out = []
        for worker in self.store.iter_nodes("Worker"):
            if (candidates and worker["id"] not in candidates) or (exclude and worker["id"] in exclude):
                continue
            overlap = sorted(wanted & set(worker.get("skills") or []))
            score = len(overlap) + (0.5 if worker.get("district") == row.get("district") else 0.0)
            data = {"worker_id": worker["id"], "score": score,
                    "components": {"skills": float(len(overlap)), "district": score - len(overlap)},
                    "explanation": {"matched_skills": overlap, "similar_problems": [], "paths": [],
                                    "reasons": [f"掌握{s}" for s in overlap]} if explain else None}
            out.append(SimpleNamespace(to_dict=lambda d=data: d, worker_id=worker["id"], score=score))
        out.sort(key=lambda r: (-r.score, r.worker_id))
        return out[:n]

    def recommended_problems(self, worker_id: str, n: int = 10) -> list[dict[str, Any]]:
        worker = self.store.get_node("Worker", worker_id) or {}
        skills = set(worker.get("skills") or [])
        rows = [{"problem_id": p["id"], "title": p.get("title", ""), "score": float(len(skills & set(p.get("skills")
                 or []))), "components": {}} for p in self.store.iter_nodes("Problem") if p.get("status") == "open"]
        rows.sort(key=lambda r: (-r["score"], r["problem_id"]))
        return rows[:n]

    def score_pairs(self, problem_ids: Any) -> dict[str, dict[str, float]]:
        return {p: {r.worker_id: r.score for r in self.recommend(p, 20, explain=False)} for p in problem_ids}

    def refresh(self) -> None:
        pass


def real_recommender_available() -> bool:
    try:
        import recommender.engine  # noqa: F401
    except ImportError:
        return False
    return True


def make_app(store: GraphStore | None, **config: Any) -> Any:
    """An app over ``store`` with a test route that hands out CSRF tokens for session calls."""
    settings = {"STORE": store, "TESTING": True, "SECRET_KEY": "test-secret", "API_RATE_LIMIT": "100000 per minute"}
    if not real_recommender_available():
        settings["RECOMMENDER_FACTORY"] = StandInRecommender
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
