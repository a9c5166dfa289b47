"""Rankings: workers for a new or stored problem, problems for a worker.

Every ranked list shown is recorded as a ``recommendations_shown`` audit event (who asked, which
model version, the ranking) through :class:`workflow.selection.Selection`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from flask import Response, jsonify

from graph.store import GraphStore
from web import auth
from web.api import bp, schemas
from web.api.costs import rate_cost
from web.errors import Forbidden, NotFound, ValidationFailed
from web.extensions import get_state

__all__ = ["recommendation_items"]


def _as_dict(obj: Any) -> dict[str, Any]:
    if hasattr(obj, "to_dict"):
        return dict(obj.to_dict())
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dataclasses.asdict(obj)
    return dict(obj)


def recommendation_items(store: GraphStore, recs: Sequence[Any]) -> list[dict[str, Any]]:
    """Ranked recommendations as JSON, with each worker's name and district."""
    items = []
    for rank, rec in enumerate(recs, 1):
        data = _as_dict(rec)
        worker = store.get_node("Worker", str(data["worker_id"])) or {}
        items.append({"rank": rank, "worker_id": data["worker_id"], "name": worker.get("name"),
                      "district": worker.get("district"), **data})
    return items


def _ranked(problem: dict[str, Any] | str, *, top_k: int, explain: bool, candidates: list[str] | None = None,
            exclude: list[str] | None = None, query: dict[str, Any] | None = None) -> Response:
    state = get_state()
    principal = auth.current_principal()
    assert principal is not None
    rec = state.recommender
    recs = rec.recommend(problem, top_k, candidates=candidates, exclude=exclude, explain=explain)
    model_version = str(getattr(rec, "model_version", ""))
    problem_id = problem if isinstance(problem, str) else None
    audit_id = state.selection.record_recommendations(problem_id, recs, actor=principal.actor,
                                                      model_version=model_version, query=query)
    return jsonify(problem_id=problem_id, model_version=model_version, audit_id=audit_id,
                   items=recommendation_items(state.store, recs))


@bp.post("/recommendations")
@rate_cost("recommend")
@auth.require("read")
@bp.input(schemas.RecommendIn, arg_name="data")
@bp.doc(summary="Rank workers for a new problem", security="ApiKeyAuth", tags=["recommendations"],
        description="Returns the top_k workers with fused score, score components and explanations "
                    "(similar solved problems, matched skills, graph paths, reasons in Chinese). "
                    "Read scope is enough: the request only records an audit event.",
        responses={200: "ranked workers", **schemas.error_responses(400, 413, 422)})
def recommend_new(data: dict[str, Any]) -> Response:
    """POST /recommendations"""
    store = get_state().store
    unknown = [w for w in data.get("candidates") or [] if store.get_node("Worker", w) is None]
    if unknown:
        raise ValidationFailed({"body.candidates": [f"未知劳模工匠 / unknown worker(s): {', '.join(unknown[:10])}"]})
    if set(data.get("candidates") or []) & set(data.get("exclude_ids") or []):
        raise ValidationFailed({"body.exclude": ["不能同时在 candidates 中 / also listed in candidates"]})
    enterprise = data["problem"].get("enterprise_id")
    if enterprise is not None and store.get_node("Enterprise", enterprise) is None:
        raise ValidationFailed({"body.problem.enterprise_id": [f"未知企业 / unknown enterprise {enterprise!r}"]})
    return _ranked(dict(data["problem"]), top_k=data["top_k"], explain=data["explain"],
                   candidates=data.get("candidates"), exclude=data.get("exclude_ids"),
                   query={"problem": data["problem"], "top_k": data["top_k"],
                          "candidates": data.get("candidates"), "exclude": data.get("exclude_ids")})


@bp.get("/problems/<problem_id>/recommendations")
@rate_cost("recommend")
@auth.require("read")
@bp.input(schemas.RecommendQuery, location="query", arg_name="query")
@bp.doc(summary="Rank workers for a stored problem", security="ApiKeyAuth", tags=["recommendations"],
        responses={200: "ranked workers", **schemas.error_responses(404, 422)})
def recommend_stored(problem_id: str, query: dict[str, Any]) -> Response:
    """GET /problems/{id}/recommendations"""
    principal = auth.current_principal()
    if principal is not None and principal.kind == "user" and principal.role == "worker":
        raise Forbidden("劳模工匠不能查看问题的候选人排名",
                             reason_en="workers cannot see the candidate ranking of a problem")
    store = get_state().store
    if not schemas.valid_id(problem_id) or store.get_node("Problem", problem_id) is None:
        raise NotFound("Problem", problem_id)
    return _ranked(problem_id, top_k=query["top_k"], explain=query["explain"],
                   query={"problem_id": problem_id, "top_k": query["top_k"]})


@bp.get("/workers/<worker_id>/recommended-problems")
@rate_cost("recommended_problems")
@auth.require("read")
@bp.input(schemas.SuggestionQuery, location="query", arg_name="query")
@bp.doc(summary="Open problems that fit a worker", security="ApiKeyAuth", tags=["recommendations"],
        responses={200: "ranked problems", **schemas.error_responses(404, 422)})
def problems_for_worker(worker_id: str, query: dict[str, Any]) -> Response:
    """GET /workers/{id}/recommended-problems"""
    auth.check_worker_view(auth.current_principal(), worker_id)
    state = get_state()
    if not schemas.valid_id(worker_id) or state.store.get_node("Worker", worker_id) is None:
        raise NotFound("Worker", worker_id)
    suggestions = state.recommender.recommended_problems(worker_id, query["top_k"])
    items = [{"rank": rank, **_as_dict(s)} for rank, s in enumerate(suggestions, 1)]
    return jsonify(worker_id=worker_id, model_version=str(getattr(state.recommender, "model_version", "")),
                   items=items)
