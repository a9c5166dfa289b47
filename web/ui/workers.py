"""Worker directory, worker profile, and the worker's own pages (problems that fit me, my invitations)."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from recommender import errors as rec_errors
from web.ui import bp
from web.ui.access import READERS, list_args, role_required, show_contact, user_name, user_role, user_worker_id
from web.ui.context import recommender, selection, store
from web.ui.forms import ActionForm, DeclineForm, VolunteerForm, WithdrawForm
from web.ui.paging import paginate
from web.ui.queries import districts, filter_workers, worker_history
from web.ui.scores import match_scores
from workflow import errors as wf_errors

__all__ = ["my_problem", "my_problems", "my_volunteer", "volunteer_error_message", "worker_detail", "worker_home",
           "workers"]


def _teams() -> list[str]:
    return sorted({str(w["team"]) for w in store().iter_nodes("Worker") if w.get("team")})


@bp.route("/workers")
@role_required(*READERS)
def workers() -> str:
    args = list_args(request.args)
    rows = filter_workers(store(), args)
    page = paginate(rows)
    loads = {w["id"]: selection().worker_load(w["id"]) for w in page.items}
    return render_template("ui/workers.html", page=page, loads=loads, districts=districts(store()),
                           teams=_teams(), args=args)


def _profile(worker_id: str) -> dict[str, Any]:
    worker = store().get_node("Worker", worker_id)
    if worker is None:
        abort(404)
    matches = selection().matches(worker_id=worker_id)
    problems = {m["problem_id"]: store().get_node("Problem", m["problem_id"]) or {} for m in matches}
    return {
        "worker": worker,
        "history": worker_history(store(), worker_id),
        "matches": sorted(matches, key=lambda m: str(m.get("updated_at") or m.get("created_at") or ""),
                          reverse=True),
        "problems": problems,
        "load": selection().worker_load(worker_id),
        "employer": store().get_node("Enterprise", worker["employer_id"]) if worker.get("employer_id") else None,
        "show_contact": show_contact(worker),
        "own_page": user_role() == "worker",
        "action_form": ActionForm(),
        "decline_form": DeclineForm(),
    }


@bp.route("/workers/<worker_id>")
@role_required(*READERS, "worker")
def worker_detail(worker_id: str) -> str:
    if user_role() == "worker" and user_worker_id() != worker_id:
        abort(403)
    return render_template("ui/worker.html", **_profile(worker_id))


@bp.route("/me")
@role_required("worker")
def worker_home() -> Response:
    worker_id = user_worker_id()
    if not worker_id:
        abort(403)
    return redirect(url_for("ui.worker_detail", worker_id=worker_id))


@bp.route("/me/problems")
@role_required("worker")
def my_problems() -> str:
    """适合我的问题: open problems ranked for the worker, and the invitations waiting for an answer."""
    worker_id = user_worker_id()
    if not worker_id or store().get_node("Worker", worker_id) is None:
        abort(403)
    suggestions = recommender().recommended_problems(worker_id, n=20)
    problems = {s.problem_id: store().get_node("Problem", s.problem_id) or {} for s in suggestions}
    mine = selection().matches(worker_id=worker_id)
    invitations = [m for m in mine if m["state"] == "invited"]
    volunteered = [m for m in mine if m["state"] == "volunteered"]
    accepted = [m for m in mine if m["state"] == "accepted"]
    # the history: every invitation and volunteer that ended (or never started), newest first
    history = sorted((m for m in mine if m["state"] in ("declined", "withdrawn", "completed")),
                     key=lambda m: str(m.get("updated_at") or ""), reverse=True)
    for m in mine:
        problems.setdefault(m["problem_id"], store().get_node("Problem", m["problem_id"]) or {})
    pending = {m["problem_id"]: m for m in mine if m["state"] in ("invited", "volunteered", "accepted")}
    return render_template("ui/my_problems.html", suggestions=suggestions, problems=problems,
                           scores=match_scores(suggestions), invitations=invitations, accepted=accepted,
                           volunteered=volunteered, history=history, pending=pending,
                           employer_id=(store().get_node("Worker", worker_id) or {}).get("employer_id"),
                           action_form=ActionForm(), decline_form=DeclineForm(), volunteer_form=VolunteerForm())


@bp.route("/me/problems/<problem_id>/volunteer", methods=["POST"])
@role_required("worker")
def my_volunteer(problem_id: str) -> Response:
    """「我想接」: the worker volunteers; a coordinator of the problem's district confirms or declines."""
    worker_id = user_worker_id()
    problem = store().get_node("Problem", problem_id)
    if not worker_id or problem is None:
        abort(404)
    form = VolunteerForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        flash(_("留言中有不能使用的字符或过长。"), "error")
        return redirect(url_for("ui.my_problem", problem_id=problem_id))
    try:
        selection().volunteer(problem_id, worker_id, actor=user_name(), note=(form.note.data or "").strip())
    except (rec_errors.RecommenderError, wf_errors.WorkflowError) as err:
        flash(volunteer_error_message(err), "error")
    else:
        flash(_("已报名,等待区县协调员确认。确认后会通知您。"), "success")
    return redirect(url_for("ui.my_problem", problem_id=problem_id))


def volunteer_error_message(err: Exception) -> str:
    """Why a volunteer was refused, as the worker reads it."""
    if isinstance(err, wf_errors.DuplicateInvitation):
        return _("您对这个问题已有报名、邀请或进行中的对接。")
    if isinstance(err, wf_errors.ConflictOfInterest):
        return _("这个问题是您所在单位提出的,按回避规定不能报名。")
    if isinstance(err, wf_errors.WorkerUnavailable):
        return _("您目前登记为不在岗,不能报名。请联系协调员。")
    if isinstance(err, wf_errors.IllegalTransition):
        return _("这个问题已解决或已关闭,不再接受报名。")
    return _("报名未能完成。")


@bp.route("/me/problems/<problem_id>")
@role_required("worker")
def my_problem(problem_id: str) -> str:
    """A problem as a worker sees it: an open one, or one they were invited to or solved. The enterprise is
    named once the worker has accepted (coordinators' pages, with the other suggested workers, stay theirs)."""
    worker_id = user_worker_id()
    problem = store().get_node("Problem", problem_id)
    if not worker_id or problem is None:
        abort(404)
    matches = selection().matches(worker_id=worker_id, problem_id=problem_id)
    solved_by = problem.get("solved_by") or []
    solved = worker_id in (solved_by if isinstance(solved_by, list) else [solved_by]) or any(
        h["problem"].get("id") == problem_id for h in worker_history(store(), worker_id))
    if (problem.get("status") or "open") != "open" and not matches and not solved:
        abort(404)
    engaged = solved or any(m["state"] in ("accepted", "completed") for m in matches)
    enterprise = (store().get_node("Enterprise", problem["enterprise_id"])
                  if engaged and problem.get("enterprise_id") else None)
    worker = store().get_node("Worker", worker_id) or {}
    own_employer = bool(worker.get("employer_id")) and worker.get("employer_id") == problem.get("enterprise_id")
    may_volunteer = ((problem.get("status") or "open") in ("open", "matched") and not own_employer
                     and worker.get("active") is not False
                     and not any(m["state"] in ("invited", "volunteered", "accepted") for m in matches))
    matches = sorted(matches, key=lambda m: str(m.get("updated_at") or ""), reverse=True)
    return render_template("ui/my_problem.html", problem=problem, matches=matches, enterprise=enterprise,
                           engaged=engaged, may_volunteer=may_volunteer, own_employer=own_employer,
                           action_form=ActionForm(), decline_form=DeclineForm(), volunteer_form=VolunteerForm(),
                           withdraw_form=WithdrawForm())
