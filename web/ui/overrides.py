"""Confirming a volunteer that a check refused: the coordinator's override, with a second confirmation.

「确认,开始对接」 on a volunteer runs an invitation's checks (:meth:`workflow.selection.Selection.confirm`). When
the worker is at their monthly capacity, or is employed by the enterprise that posted the problem, the step is
refused and the coordinator lands here (:func:`match_confirm_override`): the page says what was refused (the
load against the capacity, the employer), and confirming anyway takes a ticked box and a reason. The reason
goes into the match's history (its timeline) and the audit event, with the override flags, as
``POST /api/v1/matches/{id}/confirm`` and ``jianglian match confirm --override-capacity`` allow.

Who may: whoever may confirm the volunteer at all (the problem district's coordinators, city coordinators,
admins; :func:`web.auth.may_act_on_match`).
"""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from graph.rules import capacity_of, problem_status
from recommender import errors as rec_errors
from web.ui import bp
from web.ui.access import EDITORS, may_act, role_required, user_name
from web.ui.context import selection, store
from web.ui.forms import ConfirmOverrideForm
from web.ui.problems import selection_error_message
from workflow import errors as wf_errors

__all__ = ["match_confirm_override", "refusals"]


def refusals(match: dict[str, Any]) -> dict[str, Any]:
    """What the checks of a confirmation would refuse now that an override may lift: ``capacity`` (the load and
    the capacity) and ``conflict`` (the employer's name); empty when the volunteer can simply be confirmed."""
    worker = store().get_node("Worker", str(match["worker_id"])) or {}
    problem = store().get_node("Problem", str(match["problem_id"])) or {}
    found: dict[str, Any] = {}
    load, capacity = selection().worker_load(str(match["worker_id"])), capacity_of(worker)
    if load >= capacity:
        found["capacity"] = {"load": load, "capacity": capacity}
    employer = worker.get("employer_id")
    if employer and employer == problem.get("enterprise_id"):
        enterprise = store().get_node("Enterprise", str(employer)) or {}
        found["conflict"] = {"employer": enterprise.get("name") or employer}
    return found


def _volunteer_or_404(match_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    try:
        match = dict(selection().get(match_id))
    except wf_errors.MatchNotFound:
        abort(404)
    problem = store().get_node("Problem", str(match["problem_id"])) or {"id": match["problem_id"]}
    if not may_act("confirm", match, problem.get("district") or match.get("district")):
        abort(403)
    return match, problem


def _back(problem: dict[str, Any]) -> Response:
    return redirect(url_for("ui.problem_detail", problem_id=problem["id"], _anchor="volunteers"))


@bp.route("/matches/<match_id>/confirm-override", methods=["GET", "POST"])
@role_required(*EDITORS)
def match_confirm_override(match_id: str) -> Response | str:
    """The second confirmation: the refusals, a box to tick and a reason; then the confirmation with the
    overrides the page showed (a check that fails only now brings the page back with it)."""
    match, problem = _volunteer_or_404(match_id)
    if match.get("state") != "volunteered":
        flash(_("这次报名已被处理,当前状态不能再确认。"), "error")
        return _back(problem)
    found = refusals(match)
    form = ConfirmOverrideForm()
    if form.is_submitted():
        if not form.validate():
            if form.csrf_token.errors:
                abort(400)
            flash(_("请勾选确认框并写明原因。"), "error")
        else:
            try:
                selection().confirm(match_id, actor=user_name(), override_capacity=form.override_capacity.data == "1",
                                    allow_conflict=form.allow_conflict.data == "1", reason=form.reason.data or "")
            except (wf_errors.CapacityExceeded, wf_errors.ConflictOfInterest):
                flash(_("情况有变:请核对以下内容后再确认。"), "error")
                return redirect(url_for("ui.match_confirm_override", match_id=match_id))
            except (rec_errors.RecommenderError, wf_errors.WorkflowError) as err:  # taken meanwhile, closed...
                flash(selection_error_message(err), "error")
                return _back(problem)
            flash(_("已确认报名,对接开始;原因已记入时间线和审计日志。"), "success")
            return _back(problem)
    elif not found:
        flash(_("现在可以直接确认这次报名。"), "success")
        return _back(problem)
    if not form.is_submitted():
        form.override_capacity.data = "1" if "capacity" in found else ""
        form.allow_conflict.data = "1" if "conflict" in found else ""
    worker = store().get_node("Worker", str(match["worker_id"])) or {"id": match["worker_id"]}
    return render_template("ui/confirm_override.html", match=match, problem=problem, worker=worker, found=found,
                           form=form, problem_open=problem_status(problem) in ("open", "matched"))
