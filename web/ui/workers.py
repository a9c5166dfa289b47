"""Worker directory, worker profile, and the worker's own pages (problems that fit me, my invitations)."""

from __future__ import annotations

from typing import Any

from flask import abort, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from web.ui import bp
from web.ui.access import READERS, list_args, role_required, show_contact, user_role, user_worker_id
from web.ui.context import recommender, selection, store
from web.ui.forms import ActionForm, DeclineForm
from web.ui.paging import paginate
from web.ui.queries import districts, filter_workers, worker_history
from web.ui.scores import match_scores

__all__ = ["my_problem", "my_problems", "worker_detail", "worker_home", "workers"]


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
    invitations = selection().matches(worker_id=worker_id, state="invited")
    accepted = selection().matches(worker_id=worker_id, state="accepted")
    for m in invitations + accepted:
        problems.setdefault(m["problem_id"], store().get_node("Problem", m["problem_id"]) or {})
    return render_template("ui/my_problems.html", suggestions=suggestions, problems=problems,
                           scores=match_scores(suggestions), invitations=invitations, accepted=accepted,
                           action_form=ActionForm(), decline_form=DeclineForm())


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
    return render_template("ui/my_problem.html", problem=problem, matches=matches, enterprise=enterprise,
                           engaged=engaged, action_form=ActionForm(), decline_form=DeclineForm())
