"""A coordinator's controls over a registered problem: edit it, close it (withdrawing what is still open)
or reopen it, and find any worker to invite beyond the ten suggestions."""

from __future__ import annotations

import difflib
from datetime import datetime
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from graph.dataset import props_to_row, save_row
from graph.errors import DatasetError
from graph.rules import LIVE_STATES, TIMEZONE, capacity_of, problem_status
from web.row_issues import row_error_text
from web.ui import bp
from web.ui.access import (
    EDITORS,
    can_edit_district,
    can_edit_problem,
    require_edit_district,
    role_required,
    user_district,
    user_name,
    user_role,
)
from web.ui.context import recommender, selection, store
from web.ui.forms import ActionForm, CloseProblemForm, ProblemForm
from web.ui.queries import districts, enterprise_names, filter_workers, split_list
from workflow import errors as wf_errors

__all__ = ["SEARCH_LIMIT", "check_skills", "fill_problem_choices", "find_invitable", "problem_close", "problem_edit",
           "problem_form_fields", "problem_reopen", "save_problem", "skill_options"]

#: Workers one search on the problem page lists.
SEARCH_LIMIT = 20


def fill_problem_choices(form: ProblemForm) -> dict[str, dict[str, Any]]:
    """Offer the districts and enterprises the user may register problems for; returns the enterprises."""
    mine = user_district() if user_role() == "district" else None
    enterprises = enterprise_names(store())
    form.district.choices = [(d, d) for d in ([mine] if mine else districts(store()))]
    form.enterprise_id.choices = [(e["id"], f"{e.get('name') or e['id']}({e.get('district') or ''})")
                                  for e in sorted(enterprises.values(), key=lambda e: str(e.get("name")))
                                  if not mine or e.get("district") == mine]
    return enterprises


def skill_options() -> list[dict[str, Any]]:
    """The skill taxonomy for the picker: name, category and aliases, by category then name."""
    skills = [{"name": str(n.get("name") or n["id"]), "category": str(n.get("category") or ""),
               "aliases": [str(a) for a in n.get("aliases") or []]} for n in store().iter_nodes("Skill")]
    return sorted(skills, key=lambda s: (s["category"], s["name"]))


def check_skills(form: ProblemForm, keep: Any = ()) -> list[str] | None:
    """The form's skills if the taxonomy knows each one (by name or alias, e.g. CNC), else None after adding
    an error to the field for each unknown skill, with the closest names, so typos and free text do not
    become skill nodes. Admins and city coordinators, who keep the taxonomy, may add a new skill by ticking
    ``new_skills``; skills the problem already has (``keep``) stay allowed, so an older problem remains
    editable. A store without a taxonomy takes the skills as typed."""
    entered = split_list(form.skills.data)
    skills = skill_options()
    if not skills or (form.new_skills.data and can_edit_district(None, "Skill")):
        return entered
    names: dict[str, str] = {}
    for skill in skills:
        for key in (skill["name"], *skill["aliases"]):
            names.setdefault(key.casefold(), skill["name"])
    unknown = [t for t in entered if t.casefold() not in names and t not in (keep or ())]
    for text in unknown:
        close = difflib.get_close_matches(text.casefold(), list(names), n=3, cutoff=0.5)
        hint = "、".join(dict.fromkeys(names[c] for c in close))
        form.skills.errors = [*form.skills.errors, _("技能库中没有“%(skill)s”,您是不是要找:%(hint)s?", skill=text,
                                                       hint=hint) if hint else
                              _("技能库中没有“%(skill)s”,请从技能库中选择。", skill=text)]
    return None if unknown else entered


def _problem_or_404(problem_id: str) -> dict[str, Any]:
    problem = store().get_node("Problem", problem_id)
    if problem is None:
        abort(404)
    return problem


def problem_form_fields(form: ProblemForm, skills: list[str]) -> dict[str, Any]:
    """The row fields a :class:`ProblemForm` sets, for a new problem and an edit alike."""
    return {
        "title": form.title.data.strip(),
        "description": form.description.data.strip(),
        "skills": skills,
        "enterprise_id": form.enterprise_id.data,
        "service_type": form.service_type.data,
        "district": form.district.data,
    }


def save_problem(row: dict[str, Any]) -> str | None:
    """Write the problem row (and refresh the ranking); the reason it was refused, or None."""
    try:
        save_row(store(), "Problem", row)
    except DatasetError as err:
        return "; ".join(row_error_text(e, "Problem") for e in err.errors)
    recommender().refresh()
    return None


@bp.route("/problems/<problem_id>/edit", methods=["GET", "POST"])
@role_required(*EDITORS)
def problem_edit(problem_id: str) -> str | Response:
    problem = _problem_or_404(problem_id)
    require_edit_district(problem.get("district"))
    form = ProblemForm()
    fill_problem_choices(form)
    if request.method == "GET":
        form.title.data = problem.get("title") or ""
        form.description.data = problem.get("description") or ""
        form.enterprise_id.data = problem.get("enterprise_id")
        form.district.data = problem.get("district")
        form.service_type.data = problem.get("service_type")
        form.skills.data = "、".join(str(s) for s in problem.get("skills") or [])
    skills = check_skills(form, keep=problem.get("skills")) if form.validate_on_submit() else None
    if skills is not None:
        require_edit_district(form.district.data)
        row = props_to_row("Problem", problem)
        row.update(problem_form_fields(form, skills))
        row.update({"updated_at": datetime.now(TIMEZONE).isoformat(timespec="seconds"), "updated_by": user_name()})
        reason = save_problem(row)
        if reason is None:
            flash(_("问题已修改。"), "success")
            return redirect(url_for("ui.problem_detail", problem_id=problem_id))
        flash(_("问题未能保存:%(reason)s", reason=reason), "error")
    return render_template("ui/problem_new.html", form=form, problem=problem, skills=skill_options(),
                           may_add_skills=can_edit_district(None, "Skill"))


@bp.route("/problems/<problem_id>/close", methods=["POST"])
@role_required(*EDITORS)
def problem_close(problem_id: str) -> Response:
    """Close an open or matched problem: its open invitations and accepted matches are withdrawn first
    (each one in the audit log with the reason), then the problem is ``closed``."""
    problem = _problem_or_404(problem_id)
    require_edit_district(problem.get("district"))
    form = CloseProblemForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        flash(_("请填写关闭原因。"), "error")
        return redirect(url_for("ui.problem_detail", problem_id=problem_id))
    if problem_status(problem) not in ("open", "matched"):
        flash(_("只有待对接或已对接的问题可以关闭。"), "error")
        return redirect(url_for("ui.problem_detail", problem_id=problem_id))
    reason = form.reason.data.strip()
    withdrawn = 0
    for match in selection().matches(problem_id=problem_id, state=sorted(LIVE_STATES)):
        try:
            selection().withdraw(match["id"], actor=user_name(), reason=_("问题已关闭:%(reason)s", reason=reason))
            withdrawn += 1
        except wf_errors.IllegalTransition:  # answered meanwhile: nothing left to withdraw
            pass
    row = props_to_row("Problem", store().get_node("Problem", problem_id) or problem)
    row.update({"status": "closed", "closed_at": datetime.now(TIMEZONE).isoformat(timespec="seconds"),
                "closed_by": user_name(), "close_reason": reason})
    refused = save_problem(row)
    if refused is not None:
        flash(_("问题未能保存:%(reason)s", reason=refused), "error")
    elif withdrawn:
        flash(_("问题已关闭,并撤回了 %(n)s 个进行中的邀请。", n=withdrawn), "success")
    else:
        flash(_("问题已关闭。"), "success")
    return redirect(url_for("ui.problem_detail", problem_id=problem_id))


@bp.route("/problems/<problem_id>/reopen", methods=["POST"])
@role_required(*EDITORS)
def problem_reopen(problem_id: str) -> Response:
    problem = _problem_or_404(problem_id)
    require_edit_district(problem.get("district"))
    if not ActionForm().validate_on_submit():
        abort(400)
    if problem_status(problem) != "closed":
        flash(_("只有已关闭的问题可以重新打开。"), "error")
        return redirect(url_for("ui.problem_detail", problem_id=problem_id))
    row = props_to_row("Problem", problem)
    for key in ("closed_at", "closed_by", "close_reason"):
        row.pop(key, None)
    row.update({"status": "open", "reopened_at": datetime.now(TIMEZONE).isoformat(timespec="seconds"),
                "reopened_by": user_name()})
    refused = save_problem(row)
    flash(_("问题未能保存:%(reason)s", reason=refused) if refused else _("问题已重新打开。"),
          "error" if refused else "success")
    return redirect(url_for("ui.problem_detail", problem_id=problem_id))


def find_invitable(problem: dict[str, Any], query: str) -> list[dict[str, Any]]:
    """Workers matching ``query`` (name, id, skill, honour...) with whether they can be invited now and why
    not, by the rules :meth:`workflow.selection.Selection.invite` enforces (active, monthly capacity,
    not employed by the posting enterprise, no open invitation for this problem)."""
    query = query.strip()
    if not query or not can_edit_problem(problem):
        return []
    live = {m["worker_id"]: m["state"] for m in selection().matches(problem_id=problem["id"])
            if m["state"] in LIVE_STATES}
    out = []
    for worker in filter_workers(store(), {"q": query})[:SEARCH_LIMIT]:
        load, capacity = selection().worker_load(worker["id"]), capacity_of(worker)
        if worker["id"] in live:
            blocked = _("已在对接中")
        elif worker.get("active") is False:
            blocked = _("目前不在岗")
        elif load >= capacity:
            blocked = _("本月服务容量已满")
        elif worker.get("employer_id") and worker.get("employer_id") == problem.get("enterprise_id"):
            blocked = _("受雇于提出问题的企业(利益回避)")
        else:
            blocked = ""
        out.append({"worker": worker, "load": load, "capacity": capacity, "blocked": blocked})
    return out
