"""Campaign assignment: preview the optimal plan against the greedy baseline, untick pairs, apply.

Applying creates one invitation per ticked pair through :func:`workflow.assign.apply_plan`, so
every invitation is re-checked (capacity, conflicts, duplicates) and lands in the audit log.
"""

from __future__ import annotations

import json
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from web.ui import bp
from web.ui.access import EDITORS, can_edit_district, role_required, user_district, user_name, user_role
from web.ui.context import recommender, selection, store
from web.ui.forms import ActionForm
from web.ui.queries import districts
from workflow.assign import Plan, apply_plan, assignment_inputs, greedy_assignment, plan_assignment

__all__ = ["MAX_PROBLEMS", "assignment", "assignment_apply"]

#: Problems planned at once (oldest first); a campaign plan is made district by district beyond that.
MAX_PROBLEMS = 200


def _scope() -> str | None:
    """The district being planned: a district coordinator's own, else the ``district`` parameter."""
    if user_role() == "district":
        return user_district()
    return request.values.get("district") or None


def _problem_ids(inputs: Any, district: str | None) -> list[str]:
    wanted = [p for p, n in inputs.demand.items() if n > 0
              and (district is None or inputs.district_of_problem.get(p) == district)]
    return sorted(wanted)[:MAX_PROBLEMS]


@bp.route("/assignment")
@role_required(*EDITORS)
def assignment() -> str:
    district = _scope()
    inputs = assignment_inputs(store(), selection=selection())
    problem_ids = _problem_ids(inputs, district)
    plan = greedy = None
    if problem_ids:
        scores = recommender().score_pairs(problem_ids)
        plan = plan_assignment(scores, **inputs.kwargs())
        greedy = greedy_assignment(scores, **inputs.kwargs())
    return render_template("ui/assignment.html", plan=plan, greedy=greedy, inputs=inputs, district=district,
                           districts=districts(store()), problem_count=len(problem_ids), form=ActionForm(),
                           can_choose_district=user_role() != "district", max_problems=MAX_PROBLEMS,
                           pair_value=lambda p, w: json.dumps([p, w], ensure_ascii=False))


@bp.route("/assignment/apply", methods=["POST"])
@role_required(*EDITORS)
def assignment_apply() -> Response:
    form = ActionForm()
    if not form.validate_on_submit():
        flash(_("表单已过期,请刷新后重试。"), "error")
        return redirect(url_for("ui.assignment"))
    pairs: list[tuple[str, str]] = []
    for raw in request.form.getlist("pair"):
        try:
            problem_id, worker_id = json.loads(raw)
        except (ValueError, TypeError):
            continue
        pairs.append((str(problem_id), str(worker_id)))
    allowed = []
    refused = 0
    for problem_id, worker_id in dict.fromkeys(pairs):
        problem = store().get_node("Problem", problem_id)
        if problem is None or not can_edit_district(problem.get("district")):
            refused += 1
            continue
        allowed.append((problem_id, worker_id))
    if not allowed:
        flash(_("没有可以派出的邀请。"), "error")
        return redirect(url_for("ui.assignment", district=request.form.get("district") or None))
    scores = recommender().score_pairs(sorted({p for p, _w in allowed}))
    chosen = [(p, w, float(scores.get(p, {}).get(w, 0.0))) for p, w in allowed]
    result = apply_plan(selection(), Plan(pairs=chosen, total=sum(s for *_x, s in chosen), coverage=0.0, unmet={}),
                        user_name(), model_version=recommender().model_version, note=_("批量派单"))
    flash(_("已发出 %(n)s 个邀请。", n=len(result.created)), "success")
    if result.skipped or refused:
        flash(_("%(n)s 对未能邀请(状态已变化、容量已满或无权限)。", n=len(result.skipped) + refused), "error")
    return redirect(url_for("ui.assignment", district=request.form.get("district") or None))
