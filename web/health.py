"""Probes for the process supervisor: ``/healthz`` (the process answers) and ``/readyz`` (the
store answers too; 503 problem+json otherwise)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from graph.errors import GraphError
from web.errors import problem_response
from web.extensions import get_state

__all__ = ["bp"]

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive (no store access)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when the store answers a ping; 503 problem+json while it does not."""
    state = get_state()
    try:
        store = state.store
        store.ping()
    except GraphError:
        return problem_response(503, "store-unavailable", headers={"Retry-After": "5"})
    return jsonify(status="ready", store=store.kind, revision=store.revision)
