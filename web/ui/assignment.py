"""Campaign assignment: a proposed plan that keeps the team rule (the problem's district team first, then the
city team, other districts only when the coordinator asks), each pair with its reason; nothing is ticked, the
coordinator chooses the pairs to invite.

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
from web.ui.scores import level, match_points
from workflow.assign import CITY_TEAM, Plan, apply_plan, assignment_inputs, greedy_assignment, plan_assignment

__all__ = ["MAX_PROBLEMS", "TIER_ORDER", "assignment", "assignment_apply"]

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


def _tier(inputs: Any, problem_id: str, worker_id: str) -> str:
    """Which team rule admitted the pair: ``district`` (the problem's district team), ``city`` (a delegate to
    the city team) or ``cross`` (another district's team, only when the coordinator asked for it)."""
    team = inputs.team_of.get(worker_id)
    if team and team == inputs.district_of_problem.get(problem_id):
        return "district"
    if team == CITY_TEAM or worker_id in inputs.city_team:
        return "city"
    return "cross"


TIER_ORDER = {"district": 0, "city": 1, "cross": 2}


def _reasons(plan: Plan, inputs: Any, scores: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    """The plan's pairs as a coordinator reads them: district team first, then the city team, then others; each
    with its match level (100 = the best-scored worker for that problem) and a reason in words."""
    rows = []
    for problem_id, worker_id, _adjusted in plan.pairs:
        problem = store().get_node("Problem", problem_id) or {}
        worker = store().get_node("Worker", worker_id) or {}
        ranked = sorted(scores.get(problem_id, {}).values(), reverse=True)
        own = scores.get(problem_id, {}).get(worker_id, 0.0)
        points = match_points([*ranked, own])[-1] if ranked else 0
        shared = [s for s in worker.get("skills") or [] if s in set(problem.get("skills") or [])]
        tier = _tier(inputs, problem_id, worker_id)
        team = inputs.team_of.get(worker_id, "")
        if tier == "district":
            why = _("本区县服务队成员")
        elif tier == "city":
            why = _("本区县服务队无更合适且有余力的人选,由市服务队补充(来自%(team)s)", team=team or _("市服务队"))
        else:
            why = _("跨区县调派(来自%(team)s),按您的选择纳入", team=team)
        if shared:
            why += _(";技能对口:%(skills)s", skills="、".join(shared[:3]))
        load = inputs.capacity.get(worker_id, 0)
        why += _(";本月还可接 %(n)s 项", n=load)
        rows.append({"problem": problem_id, "worker": worker_id, "tier": tier, "team": team, "points": points,
                     "level": level(points)[1], "why": why})
    rows.sort(key=lambda r: (TIER_ORDER[r["tier"]], r["problem"], -r["points"]))
    return rows


@bp.route("/assignment")
@role_required(*EDITORS)
def assignment() -> str:
    district = _scope()
    cross = request.args.get("cross") == "1"
    inputs = assignment_inputs(store(), selection=selection())
    problem_ids = _problem_ids(inputs, district)
    plan = greedy = None
    rows: list[dict[str, Any]] = []
    if problem_ids:
        scores = recommender().score_pairs(problem_ids)
        plan = plan_assignment(scores, **inputs.kwargs(), allow_cross_district=cross)
        greedy = greedy_assignment(scores, **inputs.kwargs(), allow_cross_district=cross)
        rows = _reasons(plan, inputs, scores)
    needed = sum(inputs.demand.get(p, 0) for p in problem_ids)
    return render_template("ui/assignment.html", plan=plan, greedy=greedy, inputs=inputs, district=district,
                           districts=districts(store()), problem_count=len(problem_ids), form=ActionForm(),
                           can_choose_district=user_role() != "district", max_problems=MAX_PROBLEMS,
                           rows=rows, cross=cross, needed=needed,
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
