"""Two-way selection (invitations and their transitions) and campaign assignment.

``POST /matches`` invites a worker to a problem; ``accept`` and ``decline`` (reason required) are the
worker's answer; ``complete`` records the outcome; ``withdraw`` cancels. Coordinators act on the
problems of their district (admins, city coordinators and write keys everywhere); a worker user
answers only their own invitations. ``POST /assignments/plan`` proposes worker-problem pairs for
open problems within monthly capacities; ``POST /assignments/apply`` invites the chosen pairs.
"""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify, url_for

from recommender.errors import UnknownProblem, UnknownWorker
from web import auth
from web.api import bp, schemas
from web.api.costs import rate_cost
from web.api.paging import page_response, paginate
from web.errors import Forbidden, NotFound, ValidationFailed
from web.extensions import get_state
from workflow.assign import assignment_inputs, greedy_assignment, plan_assignment
from workflow.errors import SelectionError

__all__: list[str] = []


def _problem_district(match_or_problem_id: dict[str, Any] | str) -> str | None:
    store = get_state().store
    if isinstance(match_or_problem_id, str):
        problem = store.get_node("Problem", match_or_problem_id)
        return None if problem is None else problem.get("district")
    problem = store.get_node("Problem", str(match_or_problem_id.get("problem_id")))
    if problem is not None:
        return problem.get("district")
    return match_or_problem_id.get("district")


def _match(match_id: str) -> dict[str, Any]:
    if not schemas.valid_id(match_id):
        raise NotFound("Match", match_id)
    match: dict[str, Any] = get_state().selection.get(match_id)
    return match


def _public(match: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in match.items() if k != "history_json" and v is not None}


# -- reads ----------------------------------------------------------------------------------------
@bp.get("/matches")
@auth.require("read")
@bp.input(schemas.MatchQuery, location="query", arg_name="query")
@bp.doc(summary="List matches (invitations)", security="ApiKeyAuth", tags=["matches"],
        description="A worker user sees only their own matches.", responses=schemas.error_responses(422))
def list_matches(query: dict[str, Any]) -> Response:
    principal = auth.current_principal()
    worker_id = query.get("worker_id")
    if principal is not None and principal.kind == "user" and principal.role == "worker":
        if worker_id not in (None, principal.worker_id):
            raise Forbidden("只能查看自己的邀请", reason_en="a worker may only see their own matches")
        worker_id = principal.worker_id
    rows = get_state().selection.matches(problem_id=query.get("problem_id"), worker_id=worker_id,
                                         state=query.get("state"))
    page, per_page = query["page"], query["per_page"]
    return page_response([_public(m) for m in paginate(rows, page, per_page)], total=len(rows), page=page,
                         per_page=per_page)


@bp.get("/matches/<match_id>")
@auth.require("read")
@bp.doc(summary="Get one match with its history", security="ApiKeyAuth", tags=["matches"],
        responses=schemas.error_responses(404))
def get_match(match_id: str) -> Response:
    match = _match(match_id)
    auth.check_match_view(auth.current_principal(), match)
    return jsonify(_public(match))


# -- transitions ----------------------------------------------------------------------------------
@bp.post("/matches")
@auth.require("write")  # finer: coordinator of the problem's district (check_match_action)
@bp.input(schemas.InviteIn, arg_name="data")
@bp.doc(summary="Invite a worker to a problem", security="ApiKeyAuth", tags=["matches"],
        responses={201: "invited", **schemas.error_responses(400, 404, 409, 413, 422)})
def invite(data: dict[str, Any]) -> tuple[Response, int, dict[str, str]]:
    principal = auth.current_principal()
    store = get_state().store
    problem = store.get_node("Problem", data["problem_id"])
    if problem is None:
        raise NotFound("Problem", data["problem_id"])
    if store.get_node("Worker", data["worker_id"]) is None:
        raise NotFound("Worker", data["worker_id"])
    auth.check_match_action(principal, "invite", {}, problem.get("district"))
    assert principal is not None
    match = get_state().selection.invite(
        data["problem_id"], data["worker_id"], actor=principal.actor, note=data["note"],
        allow_conflict=data["allow_conflict"], override_capacity=data["override_capacity"])
    return jsonify(_public(match)), 201, {"Location": url_for("api.get_match", match_id=match["id"])}


def _transition(match_id: str, action: str, **kwargs: Any) -> Response:
    principal = auth.current_principal()
    match = _match(match_id)
    auth.check_match_action(principal, action, match, _problem_district(match))
    assert principal is not None
    updated = getattr(get_state().selection, action)(match_id, actor=principal.actor, **kwargs)
    return jsonify(_public(updated))


@bp.post("/matches/<match_id>/accept")
@auth.require("answer")
@bp.doc(summary="The worker accepts the invitation", security="ApiKeyAuth", tags=["matches"],
        responses=schemas.error_responses(404, 409))
def accept(match_id: str) -> Response:
    return _transition(match_id, "accept")


@bp.post("/matches/<match_id>/decline")
@auth.require("answer")
@bp.input(schemas.DeclineIn, arg_name="data")
@bp.doc(summary="The worker declines, with a reason", security="ApiKeyAuth", tags=["matches"],
        responses=schemas.error_responses(400, 404, 409, 413, 422))
def decline(match_id: str, data: dict[str, Any]) -> Response:
    return _transition(match_id, "decline", reason=data["reason"])


@bp.post("/matches/<match_id>/complete")
@auth.require("write")
@bp.input(schemas.CompleteIn, arg_name="data")
@bp.doc(summary="Record the outcome of an accepted match", security="ApiKeyAuth", tags=["matches"],
        description="A solved outcome writes SOLVED into the graph and marks the problem solved.",
        responses=schemas.error_responses(400, 404, 409, 413, 422))
def complete(match_id: str, data: dict[str, Any]) -> Response:
    return _transition(match_id, "complete", solved=data["solved"], hours=data["hours"],
                       trainees=data["trainees"], satisfaction=data["satisfaction"], note=data["note"])


@bp.post("/matches/<match_id>/withdraw")
@auth.require("answer")  # finer: coordinators of the district; a worker only their own volunteer
@bp.input(schemas.WithdrawIn, arg_name="data")
@bp.doc(summary="Withdraw an invited or accepted match (or a worker's own volunteer)", security="ApiKeyAuth",
        tags=["matches"],
        responses=schemas.error_responses(400, 404, 409, 413, 422))
def withdraw(match_id: str, data: dict[str, Any]) -> Response:
    return _transition(match_id, "withdraw", reason=data["reason"])


# -- the worker's side: volunteering ------------------------------------------------------------
@bp.post("/matches/volunteer")
@auth.require("answer")
@bp.input(schemas.VolunteerIn, arg_name="data")
@bp.doc(summary="A worker volunteers for an open problem (「我想接」)", security="ApiKeyAuth", tags=["matches"],
        description="A worker user volunteers themself; a write key names the worker. A coordinator of the "
                    "problem's district then confirms or declines.",
        responses={201: "volunteered", **schemas.error_responses(400, 403, 404, 409, 413, 422)})
def volunteer(data: dict[str, Any]) -> tuple[Response, int, dict[str, str]]:
    principal = auth.current_principal()
    assert principal is not None
    worker_id = data.get("worker_id") or (principal.worker_id if principal.kind == "user" else None)
    if not worker_id:
        raise ValidationFailed({"worker_id": ["需要劳模工匠编号 / worker_id is required"]})
    store = get_state().store
    problem = store.get_node("Problem", data["problem_id"])
    if problem is None:
        raise NotFound("Problem", data["problem_id"])
    if store.get_node("Worker", worker_id) is None:
        raise NotFound("Worker", worker_id)
    auth.check_match_action(principal, "volunteer", {"worker_id": worker_id}, problem.get("district"))
    match = get_state().selection.volunteer(data["problem_id"], worker_id, actor=principal.actor, note=data["note"])
    return jsonify(_public(match)), 201, {"Location": url_for("api.get_match", match_id=match["id"])}


@bp.post("/matches/<match_id>/confirm")
@auth.require("write")
@bp.input(schemas.ConfirmIn, arg_name="data")
@bp.doc(summary="Confirm a volunteer (it becomes an accepted match)", security="ApiKeyAuth", tags=["matches"],
        description="The checks of an invitation: problem open, worker active, no conflict of interest, capacity.",
        responses=schemas.error_responses(400, 404, 409, 413, 422))
def confirm(match_id: str, data: dict[str, Any]) -> Response:
    return _transition(match_id, "confirm", allow_conflict=data["allow_conflict"],
                       override_capacity=data["override_capacity"], reason=data["reason"])


@bp.post("/matches/<match_id>/decline-volunteer")
@auth.require("write")
@bp.input(schemas.DeclineIn, arg_name="data")
@bp.doc(summary="Decline a volunteer, with a reason the worker sees", security="ApiKeyAuth", tags=["matches"],
        responses=schemas.error_responses(400, 404, 409, 413, 422))
def decline_volunteer(match_id: str, data: dict[str, Any]) -> Response:
    return _transition(match_id, "decline_volunteer", reason=data["reason"])


# -- campaign assignment --------------------------------------------------------------------------
def _district_scope(problem_ids: list[str], districts: dict[str, str]) -> None:
    principal = auth.current_principal()
    denied = sorted({districts.get(p) or "-" for p in problem_ids
                     if not auth.may_edit(principal, "Problem", districts.get(p))})
    if denied:
        raise Forbidden(f"包含其他地区的问题：{'、'.join(denied)}",
                        reason_en=f"problems of other districts: {', '.join(denied)}")


@bp.post("/assignments/plan")
@rate_cost("assignment_plan")
@auth.require("write")
@bp.input(schemas.PlanIn, arg_name="data")
@bp.doc(summary="Propose an assignment of workers to open problems", security="ApiKeyAuth",
        tags=["assignments"], responses=schemas.error_responses(400, 413, 422),
        description="Respects monthly capacities, remaining demand, conflicts of interest and earlier "
                    "declines; nothing is written. A district coordinator plans their own district.")
def plan(data: dict[str, Any]) -> Response:
    state = get_state()
    principal = auth.current_principal()
    inputs = assignment_inputs(state.store, selection=state.selection)
    problem_ids = data.get("problem_ids")
    if problem_ids is None:
        problem_ids = [p for p, n in sorted(inputs.demand.items()) if n > 0]
        if principal is not None and principal.role == "district":
            problem_ids = [p for p in problem_ids if inputs.district_of_problem.get(p) == principal.district]
    else:
        unknown = [p for p in problem_ids if p not in inputs.demand]
        if unknown:
            raise ValidationFailed({"body.problem_ids": [f"未知问题 / unknown problem(s): {', '.join(unknown[:10])}"]})
    _district_scope(problem_ids, inputs.district_of_problem)
    scores = state.recommender.score_pairs(problem_ids) if problem_ids else {}
    solver = plan_assignment if data["method"] == "optimal" else greedy_assignment
    kwargs = inputs.kwargs()
    if data.get("city_team_penalty") is not None:
        kwargs["city_team_penalty"] = data["city_team_penalty"]
    result = solver(scores, **kwargs).to_dict()
    for pair in result["pairs"]:
        pair["title"] = inputs.titles.get(pair["problem_id"], "")
        pair["name"] = inputs.names.get(pair["worker_id"], "")
    result["problem_ids"] = problem_ids
    return jsonify(result)


@bp.post("/assignments/apply")
@auth.require("write")
@bp.input(schemas.ApplyIn, arg_name="data")
@bp.doc(summary="Invite the chosen pairs of a plan", security="ApiKeyAuth", tags=["assignments"],
        responses=schemas.error_responses(400, 413, 422),
        description="Each pair is invited through the two-way selection; pairs that can no longer be "
                    "invited (capacity, duplicates, closed problems) are reported in `skipped`.")
def apply(data: dict[str, Any]) -> Response:
    state = get_state()
    principal = auth.current_principal()
    assert principal is not None
    store = state.store
    districts = {}
    for pair in data["pairs"]:
        problem = store.get_node("Problem", pair["problem_id"])
        districts[pair["problem_id"]] = (problem or {}).get("district") or ""
    _district_scope([p["problem_id"] for p in data["pairs"]], districts)
    created, skipped = [], []
    for pair in data["pairs"]:
        try:
            created.append(_public(state.selection.invite(pair["problem_id"], pair["worker_id"],
                                                          actor=principal.actor, note=data["note"])))
        except (SelectionError, UnknownProblem, UnknownWorker) as err:
            skipped.append({"problem_id": pair["problem_id"], "worker_id": pair["worker_id"], "reason": str(err)})
    return jsonify(created=created, skipped=skipped)
