"""Problems: filtered list, intake form, detail with ranked suggestions and explanations, invitations,
and the match timeline through to the outcome form."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from graph.model import PROBLEM_STATUSES, SERVICE_TYPES
from graph.rules import TIMEZONE, new_id
from recommender import errors as rec_errors
from web.ui import bp
from web.ui.access import (
    EDITORS,
    READERS,
    can_edit_district,
    can_edit_problem,
    list_args,
    may_act,
    on_behalf_actor,
    require_edit_district,
    role_required,
    user_name,
    user_role,
    user_worker_id,
)
from web.ui.context import recommender, selection, store
from web.ui.evidence import NODE_LABELS, localise_reason, path_elements
from web.ui.forms import (
    ActionForm,
    CloseProblemForm,
    DeclineForm,
    InviteForm,
    OnBehalfForm,
    OutcomeForm,
    ProblemForm,
    WithdrawForm,
)
from web.ui.paging import paginate
from web.ui.problem_manage import (
    check_skills,
    fill_problem_choices,
    find_invitable,
    problem_form_fields,
    save_problem,
    skill_options,
)
from web.ui.queries import chains, districts, filter_problems
from web.ui.scores import match_scores
from workflow import errors as wf_errors

__all__ = [
    "match_accept",
    "match_complete",
    "match_confirm",
    "match_decline",
    "match_decline_volunteer",
    "match_detail",
    "match_withdraw",
    "problem_detail",
    "problem_invite",
    "problem_new",
    "problems",
    "selection_error_message",
]


def selection_error_message(err: Exception) -> str:
    """A Chinese (or English) sentence for a refused selection step."""
    if isinstance(err, wf_errors.DuplicateInvitation) and err.current == "volunteered":
        return _("该劳模工匠已报名此问题,请在「报名的劳模工匠」中确认或婉拒。")
    if isinstance(err, wf_errors.DuplicateInvitation):
        return _("该劳模工匠对此问题已有进行中的邀请。")
    if isinstance(err, wf_errors.TransitionConflict):
        return _("该邀请刚被他人抢先处理，本次操作未执行，请查看最新状态。")
    if isinstance(err, wf_errors.IllegalTransition):
        return _("当前状态下不能执行此操作。")
    if isinstance(err, wf_errors.ConflictOfInterest):
        return _("该劳模工匠受雇于提出问题的企业,不能邀请(利益回避)。")
    if isinstance(err, wf_errors.CapacityExceeded):
        return _("该劳模工匠本月服务容量已满。")
    if isinstance(err, wf_errors.WorkerUnavailable):
        return _("该劳模工匠目前不在岗,不能邀请。")
    if isinstance(err, rec_errors.UnknownWorker | rec_errors.UnknownProblem | wf_errors.MatchNotFound):
        return _("找不到对应的劳模工匠、问题或邀请。")
    if isinstance(err, wf_errors.InvalidSelection):
        return _("填写的内容不完整或超出范围。")
    return _("操作未能完成。")


# -- list -------------------------------------------------------------------------------------------
@bp.route("/problems")
@role_required(*READERS)
def problems() -> str:
    args = list_args(request.args)
    rows = filter_problems(store(), args)
    return render_template(
        "ui/problems.html", page=paginate(rows), args=args, districts=districts(store()),
        chains=chains(store()), service_types=SERVICE_TYPES, statuses=PROBLEM_STATUSES,
        can_create=user_role() in EDITORS)


# -- intake -----------------------------------------------------------------------------------------
@bp.route("/problems/new", methods=["GET", "POST"])
@role_required(*EDITORS)
def problem_new() -> str | Response:
    form = ProblemForm()
    enterprises = fill_problem_choices(form)
    if request.method == "GET" and request.args.get("enterprise_id"):
        form.enterprise_id.data = request.args["enterprise_id"]
        form.district.data = enterprises.get(request.args["enterprise_id"], {}).get("district")
    skills = check_skills(form) if form.validate_on_submit() else None
    if skills is not None:
        require_edit_district(form.district.data)
        now = datetime.now(TIMEZONE)
        row = {"id": new_id("P", now), **problem_form_fields(form, skills), "status": "open",
               "posted_at": now.date().isoformat()}
        reason = save_problem(row)
        if reason is None:
            flash(_("问题已登记,以下是推荐的劳模工匠。"), "success")
            return redirect(url_for("ui.problem_detail", problem_id=row["id"]))
        flash(_("问题未能保存:%(reason)s", reason=reason), "error")
    return render_template("ui/problem_new.html", form=form, skills=skill_options(),
                           may_add_skills=can_edit_district(None, "Skill"))


# -- detail -----------------------------------------------------------------------------------------
def _suggestions(problem: dict[str, Any]) -> tuple[list[Any], dict[str, dict[str, Any]]]:
    """Ranked workers for an open problem, recorded in the audit log as shown to the current user."""
    if (problem.get("status") or "open") not in ("open", "matched"):
        return [], {}
    recs = recommender().recommend(problem["id"], n=10, explain=True)
    selection().record_recommendations(problem["id"], recs, actor=user_name(),
                                       model_version=recommender().model_version)
    workers = {r.worker_id: store().get_node("Worker", r.worker_id) or {"id": r.worker_id} for r in recs}
    return recs, workers


@bp.route("/problems/<problem_id>")
@role_required(*READERS)
def problem_detail(problem_id: str) -> str:
    problem = store().get_node("Problem", problem_id)
    if problem is None:
        abort(404)
    enterprise = store().get_node("Enterprise", problem["enterprise_id"]) if problem.get("enterprise_id") else None
    recs, rec_workers = _suggestions(problem)
    matches = selection().matches(problem_id=problem_id)
    live = {m["worker_id"]: m for m in matches if m["state"] in ("invited", "accepted", "completed")}
    match_workers = {m["worker_id"]: store().get_node("Worker", m["worker_id"]) or {} for m in matches}
    return render_template(
        "ui/problem.html", problem=problem, enterprise=enterprise, recs=recs, rec_workers=rec_workers,
        matches=matches, live=live, match_workers=match_workers, can_edit=can_edit_problem(problem),
        invite_form=InviteForm(), path_elements=path_elements, localise_reason=localise_reason,
        scores=match_scores(recs), node_labels=NODE_LABELS,
        loads={wid: selection().worker_load(wid) for wid in rec_workers},
        worker_q=request.args.get("worker_q", ""), found=find_invitable(problem, request.args.get("worker_q", "")),
        close_form=CloseProblemForm(), action_form=ActionForm())


@bp.route("/problems/<problem_id>/invite", methods=["POST"])
@role_required(*EDITORS)
def problem_invite(problem_id: str) -> Response:
    problem = store().get_node("Problem", problem_id)
    if problem is None:
        abort(404)
    require_edit_district(problem.get("district"))
    form = InviteForm()
    if not form.validate_on_submit():
        abort(400)
    worker_id = request.form.get("worker_id", "")
    try:
        match = selection().invite(problem_id, worker_id, actor=user_name(), note=(form.note.data or "").strip())
    except (rec_errors.RecommenderError, wf_errors.WorkflowError) as err:
        flash(selection_error_message(err), "error")
        return redirect(url_for("ui.problem_detail", problem_id=problem_id))
    worker = store().get_node("Worker", worker_id) or {}
    flash(_("已邀请 %(name)s。", name=worker.get("name") or worker_id), "success")
    return redirect(url_for("ui.match_detail", match_id=match["id"]))


# -- matches ----------------------------------------------------------------------------------------
def _match_or_404(match_id: str) -> dict[str, Any]:
    try:
        return dict(selection().get(match_id))
    except wf_errors.MatchNotFound:
        abort(404)


def _is_own(match: dict[str, Any]) -> bool:
    return user_role() == "worker" and user_worker_id() == match.get("worker_id")


def _problem_district(match: dict[str, Any]) -> str | None:
    problem = store().get_node("Problem", str(match["problem_id"])) or {}
    return problem.get("district") or match.get("district")


def _allowed(match: dict[str, Any]) -> dict[str, bool]:
    """Which steps the current user may take on this match (rules of :func:`web.auth.may_act_on_match`)."""
    district = _problem_district(match)
    return {action: may_act(action, match, district)
            for action in ("accept", "decline", "complete", "withdraw", "confirm")}


@bp.route("/matches/<match_id>")
@role_required(*READERS, "worker")
def match_detail(match_id: str) -> str:
    match = _match_or_404(match_id)
    if user_role() == "worker" and not _is_own(match):
        abort(403)
    problem = store().get_node("Problem", match["problem_id"]) or {"id": match["problem_id"]}
    worker = store().get_node("Worker", match["worker_id"]) or {"id": match["worker_id"]}
    return render_template("ui/match.html", match=match, problem=problem, worker=worker, allowed=_allowed(match),
                           on_behalf=not _is_own(match), action_form=ActionForm(), decline_form=DeclineForm(),
                           behalf_form=OnBehalfForm(), outcome_form=OutcomeForm())


def _back(match: dict[str, Any]) -> Response:
    back = request.form.get("back")
    if user_role() == "worker" and back == "mine":
        return redirect(url_for("ui.my_problems"))
    if user_role() == "worker" and back == "problem":
        return redirect(url_for("ui.my_problem", problem_id=match["problem_id"]))
    if back == "problem":
        return redirect(url_for("ui.problem_detail", problem_id=match["problem_id"]))
    return redirect(url_for("ui.match_detail", match_id=match["id"]))


def _transition(match_id: str, action: str, form_cls: type, step: Any, done: str) -> Response:
    """Take ``step(match, form, actor)`` if the user may and the form is complete.

    A coordinator answering an invitation (accept/decline) acts *for* the worker: the form must carry the
    ticked confirmation that they spoke to the worker (:class:`OnBehalfForm`), and the audit log and the
    timeline name both (:func:`web.ui.access.on_behalf_actor`).
    """
    match = _match_or_404(match_id)
    if not _allowed(match)[action]:
        abort(403)
    form = form_cls()
    if not form.validate_on_submit():
        if getattr(form, "csrf_token", None) is not None and form.csrf_token.errors:
            abort(400)
        flash(_("请完整填写表单。"), "error")
        return _back(match)
    actor = user_name()
    if action in ("accept", "decline") and not _is_own(match):
        if not OnBehalfForm().validate_on_submit():
            flash(_("代劳模工匠答复邀请前,请先与其本人确认,并勾选确认框。"), "error")
            return _back(match)
        actor = on_behalf_actor(str(match["worker_id"]))
        worker = store().get_node("Worker", str(match["worker_id"])) or {}
        done = _("%(done)s(由您代 %(name)s 答复)", done=done, name=worker.get("name") or match["worker_id"])
    try:
        step(match, form, actor)
    except (rec_errors.RecommenderError, wf_errors.WorkflowError) as err:
        flash(selection_error_message(err), "error")
        return _back(match)
    flash(done, "success")
    return _back(match)


@bp.route("/matches/<match_id>/accept", methods=["POST"])
@role_required(*EDITORS, "worker")
def match_accept(match_id: str) -> Response:
    return _transition(match_id, "accept", ActionForm, lambda m, f, actor: selection().accept(m["id"], actor=actor),
                       _("已接受邀请。"))


@bp.route("/matches/<match_id>/decline", methods=["POST"])
@role_required(*EDITORS, "worker")
def match_decline(match_id: str) -> Response:
    return _transition(match_id, "decline", DeclineForm, lambda m, f, actor: selection().decline(
        m["id"], reason=f.reason.data, actor=actor), _("已婉拒邀请。"))


@bp.route("/matches/<match_id>/withdraw", methods=["POST"])
@role_required(*EDITORS, "worker")
def match_withdraw(match_id: str) -> Response:
    return _transition(match_id, "withdraw", WithdrawForm, lambda m, f, actor: selection().withdraw(
        m["id"], actor=actor, reason=f.reason.data or ""), _("已撤回。"))


@bp.route("/matches/<match_id>/confirm", methods=["POST"])
@role_required(*EDITORS)
def match_confirm(match_id: str) -> Response:
    """A coordinator of the problem's district confirms a worker's volunteer: the match is accepted. Refused by
    the capacity or conflict-of-interest check, they are taken to the second confirmation that may override it
    (:mod:`web.ui.overrides`)."""
    refused: list[Exception] = []

    def step(match: dict[str, Any], form: ActionForm, actor: str) -> None:
        try:
            selection().confirm(match["id"], actor=actor)
        except (wf_errors.CapacityExceeded, wf_errors.ConflictOfInterest) as err:
            refused.append(err)
            raise

    response = _transition(match_id, "confirm", ActionForm, step, _("已确认报名,对接开始。"))
    if refused:
        return redirect(url_for("ui.match_confirm_override", match_id=match_id))
    return response


@bp.route("/matches/<match_id>/decline-volunteer", methods=["POST"])
@role_required(*EDITORS)
def match_decline_volunteer(match_id: str) -> Response:
    """A coordinator declines a worker's volunteer with a reason the worker sees."""
    return _transition(match_id, "confirm", DeclineForm, lambda m, f, actor: selection().decline_volunteer(
        m["id"], reason=f.reason.data, actor=actor), _("已婉拒该报名,劳模工匠会看到原因。"))


@bp.route("/matches/<match_id>/complete", methods=["POST"])
@role_required(*EDITORS, "worker")
def match_complete(match_id: str) -> Response:
    def step(match: dict[str, Any], form: OutcomeForm, actor: str) -> None:
        selection().complete(match["id"], solved=form.solved.data == "y", hours=float(form.hours.data or 0),
                             trainees=int(form.trainees.data or 0), satisfaction=int(form.satisfaction.data),
                             actor=actor, note=(form.note.data or "").strip())

    return _transition(match_id, "complete", OutcomeForm, step, _("服务结果已登记。"))
