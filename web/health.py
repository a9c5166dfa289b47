"""Probes for the process supervisor: ``/healthz`` (the process answers) and ``/readyz`` (the
store answers and can take writes, and a served process's ranking index is ready; 503 problem+json otherwise:
``model-unavailable`` while the index is mapped or built at start, ``store-full`` while the store's disk is
full, ``store-unavailable`` while it cannot be reached or, with a detail saying so, while Neo4j waits for a
restart after a critical error). A ready answer says the process's store, feed position, ranking
index and ``compute_threads`` (its BLAS pool size)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from graph.errors import GraphError, StoreFull, StoreNeedsRestart
from web.errors import problem_response
from web.extensions import get_state

__all__ = ["bp"]

bp = Blueprint("health", __name__)

#: The reason ``/readyz`` gives while the ranking index is being mapped or built (both languages: probes read it).
_STARTING = "排序索引正在加载 / the ranking index is loading"


@bp.get("/healthz")
def healthz() -> Response:
    """The process is alive (no store access)."""
    return jsonify(status="ok")


@bp.get("/readyz")
def readyz() -> Response:
    """Ready when the store answers a ping and, in a served process (:meth:`web.extensions.AppState.start_ranking`),
    its ranking index is mapped or built; 503 problem+json while either is not."""
    state = get_state()
    try:
        store = state.store
        store.ping()
    except StoreFull as err:  # writes are refused until the disk has room again: not ready
        return problem_response(503, "store-full/restart" if err.restart_needed else "store-full",
                                headers={"Retry-After": "60"})
    except StoreNeedsRestart:  # Neo4j panicked: nothing works until it is restarted
        return problem_response(503, "store-unavailable/restart", headers={"Retry-After": "60"})
    except GraphError:
        return problem_response(503, "store-unavailable", headers={"Retry-After": "5"})
    ranking = state.ranking_readiness()
    if ranking is not None and not ranking["ready"]:
        if "error" in ranking:
            state.start_ranking()  # try again
        return problem_response(503, "model-unavailable", reason=_STARTING, headers={"Retry-After": "2"})
    return jsonify(status="ready", store=store.kind, revision=store.revision, compute_threads=_compute_threads(),
                   **({"ranking": ranking} if ranking is not None else {}))


def _compute_threads() -> int | None:
    """The largest BLAS/OpenMP pool loaded in this process (``jianglian serve`` shares the cores out between
    its workers: :func:`web.server.compute_threads`); ``None`` if no such library is loaded."""
    from threadpoolctl import threadpool_info

    return max((int(info["num_threads"]) for info in threadpool_info()), default=None)
