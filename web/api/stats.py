"""Programme progress against the campaign targets and the audit log (admins)."""

from __future__ import annotations

from datetime import date
from typing import Any

from flask import Response, jsonify

from web import auth
from web.api import bp, schemas
from web.api.paging import page_response
from web.errors import ValidationFailed
from web.extensions import get_state
from workflow.progress import programme_progress

__all__: list[str] = []


@bp.get("/stats/targets")
@auth.require("read")
@bp.input(schemas.StatsQuery, location="query", arg_name="query")
@bp.doc(summary="Progress per district x phase x metric against the programme targets", security="ApiKeyAuth",
        tags=["stats"], responses=schemas.error_responses(422),
        description="Metrics: visits (person-visits), problems_solved, people_trained; each cell has target, "
                    "done, ratio and at_risk.")
def targets(query: dict[str, Any]) -> Response:
    today = None
    if query.get("today"):
        try:
            today = date.fromisoformat(query["today"])
        except ValueError as err:
            raise ValidationFailed({"query.today": ["不是有效日期 / not a valid date"]}) from err
    return jsonify(programme_progress(get_state().store, today=today))


@bp.get("/audit")
@auth.require("admin")
@bp.input(schemas.AuditQuery, location="query", arg_name="query")
@bp.doc(summary="Audit log, newest first (admins)", security="ApiKeyAuth", tags=["stats"],
        description="Who saw which recommendation, who invited, accepted, declined, completed.",
        responses=schemas.error_responses(422))
def audit(query: dict[str, Any]) -> Response:
    state = get_state()
    page, per_page = query["page"], query["per_page"]
    filters = {k: query[k] for k in ("actor", "kind", "problem_id", "match_id") if query.get(k) is not None}
    events = state.selection.audit(limit=per_page, offset=(page - 1) * per_page, **filters)
    total = state.store.count_nodes("AuditEvent", where=filters or None)
    items = [{k: v for k, v in e.items() if k != "detail_json"} for e in events]
    return page_response(items, total=total, page=page, per_page=per_page)
