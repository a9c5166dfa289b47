# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 04 · Campaign planning: capacity, coverage and targets
#
# The programme 劳模工匠助企行 sends model workers to enterprises across Yancheng's districts against city targets
# (person-visits 人次, problems solved, people trained). A coordinator plans a whole round at once: every open
# problem needs workers, every worker has a monthly capacity, district teams serve their own district first and
# the city team (市劳模工匠技术服务队) anywhere at a penalty. This notebook:
#
# 1. sets capacity against demand per district;
# 2. compares the optimal plan (`workflow.assign.plan_assignment`, an exact min-cost flow / LP) with the
#    greedy baseline (`greedy_assignment`) on total score and coverage;
# 3. shows how coverage degrades when fewer workers are available, where the optimum and greedy part ways;
# 4. asks *what if* the plan were carried out: simulates its invitations and outcomes on a scratch copy of the
#    graph and reads programme progress (`workflow.progress.programme_progress`) against the default targets
#    (an even split across districts) and against targets split in proportion to each district's demand.
#
# Scores come from the product ranker (`Recommender.score_pairs`, the linear fusion with the configured weights,
# comparable across problems). Nothing is written to the research store: the what-if runs on
# `demo.research.scratch_copy`.

# %%
from collections import Counter, defaultdict
from datetime import datetime

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display

from demo.research import configure_cjk_matplotlib, open_research_store, scratch_copy
from graph.rules import TIMEZONE
from recommender.engine import RankConfig, Recommender
from workflow.assign import (
    CITY_TEAM,
    apply_plan,
    assignment_inputs,
    eligible_pairs,
    greedy_assignment,
    plan_assignment,
)
from workflow.progress import programme_progress
from workflow.selection import Selection
from workflow.targets import METRICS, Targets, apportion

font = configure_cjk_matplotlib()
store = open_research_store()
print(f"store: {store.kind}")

inputs = assignment_inputs(store)
open_ids = [pid for pid, need in sorted(inputs.demand.items()) if need > 0]
# the saved learned model (if any) belongs to another store; the configured weights are the same everywhere
recommender = Recommender(store, config=RankConfig(use_learned=False))
scores = recommender.score_pairs(open_ids)
kwargs = inputs.kwargs()
print(f"{len(open_ids)} open problems needing {sum(inputs.demand[p] for p in open_ids)} workers; "
      f"{sum(len(s) for s in scores.values())} scored (problem, worker) pairs; model {recommender.model_version}")

# %% [markdown]
# ## 1. Capacity against demand, per district
#
# Demand: open slots of the district's problems. Capacity: remaining monthly capacity of the district team's
# workers (capacity minus this month's invitations; inactive workers have none). The city team, including the
# districts' delegates to it, is one pool for all districts (the dashed line). A district whose demand exceeds
# its team's capacity depends on the city team, at a 20% score penalty per pair.

# %%
demand = Counter()
for pid in open_ids:
    demand[inputs.district_of_problem.get(pid, "（未知）")] += inputs.demand[pid]
capacity = Counter()
for worker, cap in inputs.capacity.items():
    team = CITY_TEAM if worker in inputs.city_team else inputs.team_of.get(worker, "（无）")
    capacity[team] += cap
districts = sorted(set(demand) | (set(capacity) - {CITY_TEAM}), key=lambda d: -demand[d])
frame = pd.DataFrame({"demand (slots)": [demand[d] for d in districts],
                      "district-team capacity": [capacity[d] for d in districts]}, index=districts)
ax = frame.plot.bar(figsize=(11, 4.2), rot=30, title="open demand and remaining capacity per district (区县)")
ax.axhline(capacity[CITY_TEAM], ls="--", color="#c44e52", label=f"city team capacity ({capacity[CITY_TEAM]})")
ax.legend()
display(frame.T)

pairs = eligible_pairs(scores, **kwargs)
options = Counter(p for p, _, _, adjusted in pairs if adjusted > 0)
print(f"eligible workers per open problem: median {np.median([options[p] for p in open_ids]):.0f}, "
      f"min {min(options[p] for p in open_ids)}; problems with none: {sum(options[p] == 0 for p in open_ids)}")

# %% [markdown]
# ## 2. Optimal plan against greedy
#
# `objective="score"` maximises the total team-adjusted score; `objective="coverage"` first fills as many slots as
# possible, then maximises the score. Greedy takes the best remaining pair while capacity and demand allow; it is
# what a coordinator working down a sorted list would do. With ample capacity both fill every slot; the optimum
# still gains some score by not spending a versatile worker on a problem someone else could take.

# %%
plans = {}
for objective in ("score", "coverage"):
    plans[("optimal", objective)] = plan_assignment(scores, objective=objective, solver="lp", **kwargs)
    plans[("greedy", objective)] = greedy_assignment(scores, objective=objective, **kwargs)
summary = pd.DataFrame([
    {"method": m, "objective": o, "pairs": len(p.pairs), "coverage": round(p.coverage, 4),
     "total score": round(p.total, 2), "team-adjusted": round(p.objective, 2), "unmet problems": len(p.unmet),
     "ms": round(p.seconds * 1000)}
    for (m, o), p in plans.items()
]).set_index(["objective", "method"])
display(summary)
best, greedy = plans[("optimal", "score")], plans[("greedy", "score")]
moved = {(p, w) for p, w, _ in best.pairs} ^ {(p, w) for p, w, _ in greedy.pairs}
print(f"the optimum and greedy differ on {len(moved) // 2} of {len(best.pairs)} pairs; "
      f"objective gain {best.objective - greedy.objective:+.2f}")

# %% [markdown]
# ## 3. When workers are scarce
#
# The same round with only a fraction of the workers available (a random, seeded subset keeps its capacity; the
# rest has none): the situation in a busy month. With `objective="coverage"` the optimum fills every slot that
# any assignment could fill; greedy, spending scarce workers on their best problem first, leaves problems
# uncovered that a different assignment would have served.

# %%
rng = np.random.default_rng(7)
workers = sorted(inputs.capacity)
draw = dict(zip(workers, rng.random(len(workers)), strict=True))
sweep = []
for available in (1.0, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1):
    cap = {w: (c if draw[w] < available else 0) for w, c in inputs.capacity.items()}
    scarce = {**kwargs, "capacity": cap}
    for method, solve in (("optimal", lambda **kw: plan_assignment(solver="lp", **kw)), ("greedy", greedy_assignment)):
        plan = solve(scores=scores, objective="coverage", **scarce)
        sweep.append({"available": available, "method": method, "coverage": plan.coverage, "total": plan.total,
                      "capacity": sum(cap.values())})
sweep = pd.DataFrame(sweep)
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for method, group in sweep.groupby("method"):
    axes[0].plot(group["available"], group["coverage"], "o-", label=method)
    axes[1].plot(group["available"], group["total"], "o-", label=method)
axes[0].set_ylabel("coverage (filled slots / demand)")
axes[1].set_ylabel("total score of the plan")
for ax in axes:
    ax.set_xlabel("share of workers available")
    ax.grid(alpha=0.3)
    ax.legend()
fig.suptitle("objective = coverage: optimum against greedy as workers become scarce")
display(sweep.pivot_table(index="available", columns="method", values="coverage").sort_index(ascending=False))

# %% [markdown]
# Where the optimal plan's workers come from, per district: the district's own team, the city team, or nobody.
# Even where the district team has capacity to spare, city-team members (often the most experienced workers)
# take slots when their score beats the best local worker's by more than the 20% penalty.

# %%
teams = defaultdict(Counter)
for pid, worker, _ in best.pairs:
    district = inputs.district_of_problem.get(pid, "（未知）")
    own = inputs.team_of.get(worker) == district
    teams[district]["own district team" if own else "city team"] += 1
for pid, missing in best.unmet.items():
    teams[inputs.district_of_problem.get(pid, "（未知）")]["unfilled"] += missing
by_team = pd.DataFrame(teams).T.fillna(0).reindex(districts).fillna(0)
by_team = by_team.reindex(columns=[c for c in ("own district team", "city team", "unfilled") if c in by_team])
by_team.plot.bar(stacked=True, figsize=(11, 4), rot=30, color=["#4c72b0", "#dd8452", "#c44e52"][: by_team.shape[1]],
                 title="optimal plan (objective = score): who fills each district's slots")

# %% [markdown]
# ## 4. What if the plan were carried out? Progress against the targets per district
#
# A what-if on a scratch copy of the graph: every pair of the optimal plan is invited (`apply_plan`), accepts and
# completes on 15 January 2027 (phase 组织实施), with assumed outcomes: every problem solved, 20 people trained for
# a 技能培训 request, 3 for 名师带徒, 2 otherwise (on-site demonstrations). Change `TRAINEES` to test other
# assumptions. Progress is read at the end of the campaign, so each cell compares a district's campaign total
# with its target (`at risk`: more than `margin` = 10% behind).
#
# Two target scenarios with the same city totals (200 visits, 200 problems solved, 800 people trained):
#
# - **even split** (the default, `workflow.targets.Targets()`): every district gets the same share;
# - **by demand**: each district's share follows its number of open problems
#   (`workflow.targets.apportion`), passed as `district_targets` overrides.

# %%
TRAINEES = {"技能培训": 20, "名师带徒": 3}
moment = datetime(2027, 1, 15, 10, 0, tzinfo=TIMEZONE)
scratch = scratch_copy(store)
selection = Selection(scratch, clock=lambda: moment)
applied = apply_plan(selection, best, actor="notebook-what-if", model_version=recommender.model_version)
for match in applied.created:
    selection.accept(match["id"], actor=match["worker_id"])
    service = (scratch.get_node("Problem", match["problem_id"]) or {}).get("service_type")
    selection.complete(match["id"], solved=True, hours=8.0, trainees=TRAINEES.get(service, 2), satisfaction=5,
                       actor=match["worker_id"])
print(f"{len(applied.created)} invitations completed, {len(applied.skipped)} skipped")

even = Targets()
weights = [demand.get(d, 0) for d in even.districts]
by_demand = Targets(district_targets={
    d: {m: share for m, share in zip(METRICS, parts, strict=True)}
    for d, *parts in zip(even.districts, *(apportion(even.city[m], weights) for m in METRICS), strict=True)
})
scenarios = {"even split": even, "by demand": by_demand}
progress = {name: programme_progress(scratch, targets=t, today=t.end) for name, t in scenarios.items()}

cells = []
for name, report in progress.items():
    for district, entry in report["by_district"].items():
        for metric, cell in entry["total"].items():
            cells.append({"scenario": name, "district": district, "metric": metric, **cell})
cells = pd.DataFrame(cells)
display(cells.pivot_table(index="district", columns=["scenario", "metric"], values="target").astype(int))

# %%
fig, axes = plt.subplots(1, 2, figsize=(14, 6), sharey=True)
for ax, name in zip(axes, scenarios, strict=True):
    ratio = cells[cells["scenario"] == name].pivot(index="district", columns="metric", values="ratio")
    ratio = ratio.reindex(index=list(even.districts), columns=list(METRICS)).astype(float)
    image = ax.imshow(ratio.values, cmap="RdYlGn", vmin=0, vmax=2, aspect="auto")
    ax.set_xticks(range(len(METRICS)), ["人次 visits", "解决问题 solved", "培训 trained"])
    ax.set_yticks(range(len(ratio.index)), ratio.index)
    for (i, j), value in np.ndenumerate(ratio.values):
        ax.text(j, i, "–" if np.isnan(value) else f"{value:.2f}", ha="center", va="center", fontsize=8)
    at_risk = int(cells[(cells["scenario"] == name) & cells["at_risk"]].shape[0])
    ax.set_title(f"{name}: done / target ({at_risk} cells at risk)")
fig.colorbar(image, ax=axes, fraction=0.025, label="done / target")
risky = cells[cells["at_risk"]]
if len(risky):
    display(risky.pivot_table(index="district", columns="scenario", values="metric",
                              aggfunc=lambda m: ", ".join(sorted(m))).fillna("").rename_axis("at risk"))
else:
    print("no district is at risk in either scenario")

# %% [markdown]
# Under the even split, districts with few open problems cannot reach their share however well they are served,
# while districts with many problems overshoot: the at-risk list reflects where demand is, not how well the
# district performs. Splitting targets by demand puts the same city totals where the work is. Visits and problems
# solved then match their targets by construction (the plan fills every slot and every outcome was assumed
# solved); what stays at risk is people trained, which depends on each district's mix of service types: a
# district whose open problems are mostly on-site help trains few people. The city totals are the same in both
# scenarios:

# %%
display(pd.DataFrame({name: {m: c["ratio"] for m, c in report["city"]["total"].items()}
                      for name, report in progress.items()}).rename_axis("city total: done / target"))
scratch.close()
store.close()
