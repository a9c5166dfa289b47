"""Campaign-wide assignment: propose invitations for every open problem at once.

Why this module is long: the assignment's inputs, its three solvers (min-cost flow, LP, greedy) and the
plan they share are one model; the solvers check each other in the tests and change together.

Given fused scores for (problem, worker) pairs, each worker's remaining capacity and each problem's
remaining demand (how many workers it needs), :func:`plan_assignment` finds the plan with the
largest total score. The problem is a min-cost flow::

    source --cap: capacity(w)--> worker w --cap 1, cost -score--> problem p --cap: demand(p)--> sink
    source ------------------------------ cap: total demand, cost 0 ---------------------------> sink

The bypass edge lets a slot stay empty, so the flow maximises the total score rather than the
number of filled slots (a pair with a negative fused score is never worth using);
``objective="coverage"`` drops it and fills as many slots as possible first, then maximises the
score among those plans (``networkx.max_flow_min_cost``).

Two exact solvers give the same optimum (the tests hold both against brute force):

- ``solver="flow"``: networkx network simplex on integer-scaled costs (the reference; pure Python,
  seconds at the city's ~50k scored pairs);
- ``solver="lp"``: the same problem as a linear programme solved by HiGHS (scipy), whose constraint
  matrix (a bipartite incidence matrix) is totally unimodular, so the simplex vertex is integral.
  It starts from each problem's and each worker's best pairs and adds any left-out pair whose
  reduced cost under the LP duals is negative until none is (column generation), so the optimum
  is exact while the LP stays small: the choice for province-scale plans.

Team rules (district team first, escalation to the city team):

- a problem in district D draws from workers whose ``team`` is D at their full score;
- city-team workers (``team == "city"`` or listed in ``city_team``: each district's delegates to
  the 市劳模工匠技术服务队) are used anywhere at a penalty;
- workers of other district teams only with ``allow_cross_district``, at a larger penalty;
- pairs in ``conflicts`` (a worker employed by the posting enterprise, or already invited or
  declined) are never used, nor (if given) pairs whose score is not above ``min_score``.

A penalty ``q`` lowers a score ``s`` by ``q * |s|`` (``s * (1 - q)`` for a positive score): fused
scores are signed and have no fixed scale, and this lowers every value whatever its sign or scale.
:func:`greedy_assignment` takes pairs best first while feasible: the baseline the benchmark
compares against.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

import numpy as np
import scipy.sparse as sp

from graph.rules import LIVE_STATES, capacity_of, problem_status
from graph.store import GraphStore
from recommender.errors import UnknownProblem, UnknownWorker
from workflow.errors import AssignmentError, SelectionError
from workflow.selection import Selection

__all__ = [
    "CITY_TEAM",
    "AppliedPlan",
    "AssignmentInputs",
    "Plan",
    "apply_plan",
    "assignment_inputs",
    "eligible_pairs",
    "greedy_assignment",
    "open_problem_ids",
    "plan_assignment",
]

#: The ``team`` value of city-team workers (市劳模工匠技术服务队).
CITY_TEAM: Final = "city"
#: Costs are integers for the network simplex: scores are scaled by this factor and rounded.
SCALE: Final = 1_000_000

Objective = Literal["score", "coverage"]
Solver = Literal["flow", "lp"]


@dataclass
class Plan:
    """A proposed assignment.

    Attributes
    ----------
    pairs
        ``(problem_id, worker_id, fused score)``, ordered by problem then score (best first).
    total
        Sum of the fused scores of the pairs.
    coverage
        Filled slots over total demand (1.0 when nothing is demanded).
    unmet
        Problems left with unfilled slots: ``problem_id -> slots``.
    objective
        Sum of the team-adjusted scores: the quantity the solver maximised.
    method, seconds
        Which algorithm made the plan and how long it took.
    adjusted
        The team-adjusted score of each chosen pair.
    stats
        Solver counters: ``pairs`` eligible, and for the LP ``lp_rounds`` and ``lp_columns`` (pairs
        in the final LP).
    """

    pairs: list[tuple[str, str, float]]
    total: float
    coverage: float
    unmet: dict[str, int]
    objective: float = 0.0
    method: str = ""
    seconds: float = 0.0
    adjusted: dict[tuple[str, str], float] = field(default_factory=dict, repr=False)
    stats: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "pairs": [{"problem_id": p, "worker_id": w, "score": s} for p, w, s in self.pairs],
            "total": self.total,
            "coverage": self.coverage,
            "unmet": dict(self.unmet),
            "objective": self.objective,
            "method": self.method,
            "seconds": self.seconds,
            "stats": dict(self.stats),
        }


def _check(capacity: Mapping[str, int], demand: Mapping[str, int], penalties: Sequence[float]) -> None:
    for name, table in (("capacity", capacity), ("demand", demand)):
        bad = [k for k, v in table.items() if isinstance(v, bool) or not isinstance(v, int) or v < 0]
        if bad:
            raise AssignmentError(f"{name} must be a non-negative integer (bad: {', '.join(map(str, bad[:5]))})")
    for penalty in penalties:
        if not 0 <= penalty < 1:
            raise AssignmentError("penalties are fractions of the score in [0, 1)")


def eligible_pairs(
    scores: Mapping[str, Mapping[str, float]],
    *,
    capacity: Mapping[str, int],
    demand: Mapping[str, int],
    team_of: Mapping[str, str],
    district_of_problem: Mapping[str, str],
    conflicts: Collection[tuple[str, str]] = frozenset(),
    city_team: Collection[str] = frozenset(),
    city_team_penalty: float = 0.2,
    allow_cross_district: bool = False,
    cross_district_penalty: float = 0.4,
    min_score: float | None = None,
) -> list[tuple[str, str, float, float]]:
    """The pairs a plan may use: ``(problem_id, worker_id, score, adjusted score)``, sorted by ids.

    Problems missing from ``demand`` need one worker; workers missing from ``capacity`` have none.
    ``conflicts`` holds ``(problem_id, worker_id)`` pairs.

    Examples
    --------
    >>> eligible_pairs({"p1": {"a": 0.9, "b": 0.5, "c": 0.8}}, capacity={"a": 1, "b": 1, "c": 1},
    ...                demand={"p1": 1}, team_of={"a": "亭湖区", "b": "city", "c": "盐都区"},
    ...                district_of_problem={"p1": "亭湖区"})
    [('p1', 'a', 0.9, 0.9), ('p1', 'b', 0.5, 0.4)]
    >>> eligible_pairs({"p1": {"b": -0.5}}, capacity={"b": 1}, demand={}, team_of={"b": "city"},
    ...                district_of_problem={"p1": "亭湖区"})
    [('p1', 'b', -0.5, -0.6)]
    """
    _check(capacity, demand, (city_team_penalty, cross_district_penalty))
    blocked = set(conflicts)
    city = set(city_team)
    out: list[tuple[str, str, float, float]] = []
    for problem in sorted(scores):
        if demand.get(problem, 1) <= 0:
            continue
        district = district_of_problem.get(problem)
        for worker in sorted(scores[problem]):
            score = float(scores[problem][worker])
            if not math.isfinite(score) or capacity.get(worker, 0) <= 0 or (
                    min_score is not None and score <= min_score):
                continue
            if (problem, worker) in blocked:
                continue
            team = team_of.get(worker)
            if district and team == district:
                penalty = 0.0
            elif team == CITY_TEAM or worker in city:
                penalty = city_team_penalty
            elif allow_cross_district:
                penalty = cross_district_penalty
            else:
                continue
            out.append((problem, worker, score, score - penalty * abs(score)))
    return out


def _finish(chosen: list[tuple[str, str, float, float]], demand: Mapping[str, int],
            problems: Collection[str], method: str, started: float) -> Plan:
    filled: dict[str, int] = defaultdict(int)
    for problem, _, _, _ in chosen:
        filled[problem] += 1
    wanted = {p: demand.get(p, 1) for p in problems}
    total_demand = sum(wanted.values())
    unmet = {p: n - filled[p] for p, n in sorted(wanted.items()) if n - filled[p] > 0}
    chosen = sorted(chosen, key=lambda c: (c[0], -c[2], c[1]))
    return Plan(
        pairs=[(p, w, s) for p, w, s, _ in chosen],
        total=math.fsum(c[2] for c in chosen),
        coverage=(len(chosen) / total_demand) if total_demand else 1.0,
        unmet=unmet,
        objective=math.fsum(c[3] for c in chosen),
        method=method,
        seconds=time.perf_counter() - started,
        adjusted={(p, w): a for p, w, _, a in chosen},
    )


def plan_assignment(
    scores: Mapping[str, Mapping[str, float]],
    *,
    capacity: Mapping[str, int],
    demand: Mapping[str, int],
    team_of: Mapping[str, str],
    district_of_problem: Mapping[str, str],
    conflicts: Collection[tuple[str, str]] = frozenset(),
    city_team_penalty: float = 0.2,
    city_team: Collection[str] = frozenset(),
    allow_cross_district: bool = False,
    cross_district_penalty: float = 0.4,
    min_score: float | None = None,
    objective: Objective = "score",
    solver: Solver = "flow",
    price_k: int = 10,
) -> Plan:
    """The assignment with the largest total team-adjusted score (min-cost flow).

    Parameters
    ----------
    scores
        ``problem_id -> worker_id -> fused score`` (any sign); the problems to plan for are its keys.
    capacity
        Remaining capacity per worker (absent workers have none).
    demand
        Remaining demand per problem (absent problems need one worker).
    team_of, district_of_problem
        The worker's team (a district name or ``"city"``) and the problem's district.
    conflicts
        ``(problem_id, worker_id)`` pairs never to use.
    city_team_penalty, cross_district_penalty
        Fractions of ``|score|`` lost by city-team and (when allowed) other-district workers.
    city_team
        Workers on the city team besides their district team.
    min_score
        If given, pairs scoring at most this are never used.
    objective
        ``"score"`` maximises the total; ``"coverage"`` fills as many slots as possible, then
        maximises the total among those plans.
    solver
        ``"flow"`` (networkx network simplex) or ``"lp"`` (HiGHS with column generation); both exact.
    price_k
        ``"lp"`` only: each problem's and each worker's ``price_k`` best pairs start the LP.

    Raises
    ------
    AssignmentError
        On negative capacity or demand, or a penalty outside ``[0, 1)``.

    Examples
    --------
    Greedy gives ``a`` to ``p1`` and leaves ``p2`` empty; the optimum uses both workers:

    >>> plan = plan_assignment({"p1": {"a": 0.9, "b": 0.7}, "p2": {"a": 0.8}},
    ...                        capacity={"a": 1, "b": 1}, demand={}, team_of={"a": "D", "b": "D"},
    ...                        district_of_problem={"p1": "D", "p2": "D"})
    >>> plan.pairs, round(plan.total, 6), plan.coverage
    ([('p1', 'b', 0.7), ('p2', 'a', 0.8)], 1.5, 1.0)
    """
    started = time.perf_counter()
    pairs = eligible_pairs(
        scores, capacity=capacity, demand=demand, team_of=team_of, district_of_problem=district_of_problem,
        conflicts=conflicts, city_team=city_team, city_team_penalty=city_team_penalty,
        allow_cross_district=allow_cross_district, cross_district_penalty=cross_district_penalty,
        min_score=min_score,
    )
    if objective == "score":  # a pair worth nothing or less never raises the total
        pairs = [c for c in pairs if c[3] > 0]
    if objective not in ("score", "coverage") or solver not in ("flow", "lp"):
        raise AssignmentError(f"unknown objective {objective!r} or solver {solver!r}")
    stats = {"pairs": len(pairs)}
    if not pairs:
        chosen: list[tuple[str, str, float, float]] = []
    elif solver == "lp":
        chosen = _solve_lp(pairs, capacity, demand, objective, price_k, stats)
    else:
        chosen = _solve_flow(pairs, capacity, demand, objective)
    plan = _finish(chosen, demand, scores.keys(), f"{solver}/{objective}", started)
    plan.stats = stats
    return plan


def _solve_flow(pairs: list[tuple[str, str, float, float]], capacity: Mapping[str, int],
                demand: Mapping[str, int], objective: Objective) -> list[tuple[str, str, float, float]]:
    import networkx as nx  # the solvers are imported when a plan is made, not by every process that imports this

    graph = nx.DiGraph()
    source, sink = ("source", ""), ("sink", "")
    per_worker: dict[str, int] = defaultdict(int)
    problems: dict[str, int] = {}
    for problem, worker, _, adjusted in pairs:
        per_worker[worker] += 1
        problems[problem] = demand.get(problem, 1)
        # a worker serves a problem at most once: capacity 1 on the pair
        graph.add_edge(("w", worker), ("p", problem), capacity=1, weight=-round(adjusted * SCALE))
    for worker, n in per_worker.items():
        graph.add_edge(source, ("w", worker), capacity=min(capacity[worker], n), weight=0)
    for problem, n in problems.items():
        graph.add_edge(("p", problem), sink, capacity=n, weight=0)
    try:
        if objective == "coverage":
            flow = nx.max_flow_min_cost(graph, source, sink)
        else:
            supply = min(sum(problems.values()), sum(min(capacity[w], n) for w, n in per_worker.items()))
            graph.add_edge(source, sink, capacity=supply, weight=0)
            graph.nodes[source]["demand"] = -supply
            graph.nodes[sink]["demand"] = supply
            flow = nx.min_cost_flow(graph)
    except nx.NetworkXException as err:  # cannot happen with the bypass edge; translate if it does
        raise AssignmentError(f"min-cost flow failed: {err}") from err
    return [(p, w, s, a) for p, w, s, a in pairs if flow[("w", w)].get(("p", p), 0) > 0]


def _solve_lp(pairs: list[tuple[str, str, float, float]], capacity: Mapping[str, int], demand: Mapping[str, int],
              objective: Objective, price_k: int, stats: dict[str, int]) -> list[tuple[str, str, float, float]]:
    """HiGHS on the pairs' LP with column generation from each problem's and worker's best pairs."""
    from scipy.optimize import linprog

    workers = sorted({c[1] for c in pairs})
    problems = sorted({c[0] for c in pairs})
    w_at = {w: i for i, w in enumerate(workers)}
    p_at = {p: i for i, p in enumerate(problems)}
    wi = np.array([w_at[c[1]] for c in pairs], dtype=np.int64)
    pi = np.array([p_at[c[0]] for c in pairs], dtype=np.int64)
    value = np.array([c[3] for c in pairs], dtype=np.float64)
    n_w, n_p, n = len(workers), len(problems), len(pairs)
    b = np.concatenate([[float(capacity[w]) for w in workers], [float(demand.get(p, 1)) for p in problems]])

    # start from each problem's and each worker's best pairs (a problem needing d workers keeps d + k)
    active = np.zeros(n, dtype=bool)
    order = np.lexsort((np.arange(n), -value))
    taken_p = np.zeros(n_p, dtype=np.int64)
    taken_w = np.zeros(n_w, dtype=np.int64)
    keep_p = np.array([int(demand.get(p, 1)) + price_k for p in problems])
    for j in order:
        if taken_p[pi[j]] < keep_p[pi[j]] or taken_w[wi[j]] < price_k:
            active[j] = True
            taken_p[pi[j]] += 1
            taken_w[wi[j]] += 1

    def solve(cost: np.ndarray, floor: int | None) -> tuple[np.ndarray, float]:
        while True:
            cols = np.flatnonzero(active)
            rows = np.concatenate([wi[cols], n_w + pi[cols]])
            at = np.concatenate([np.arange(len(cols)), np.arange(len(cols))])
            a_ub = sp.csr_matrix((np.ones(len(rows)), (rows, at)), shape=(n_w + n_p, len(cols)))
            b_ub = b
            if floor is not None:  # at least `floor` slots filled: -sum(x) <= -floor
                a_ub = sp.vstack([a_ub, sp.csr_matrix(-np.ones((1, len(cols))))]).tocsr()
                b_ub = np.concatenate([b, [-float(floor)]])
            res = linprog(cost[cols], A_ub=a_ub, b_ub=b_ub, bounds=(0, 1), method="highs-ds")
            stats["lp_rounds"] = stats.get("lp_rounds", 0) + 1
            stats["lp_columns"] = len(cols)
            if res.status != 0:
                raise AssignmentError(f"the assignment LP failed: {res.message}")
            y = res.ineqlin.marginals
            reduced = cost - y[wi] - y[n_w + pi] + (y[-1] if floor is not None else 0.0)
            missing = ~active & (reduced < -1e-9)
            if not missing.any():
                x = np.zeros(n)
                x[cols] = res.x
                return x, float(res.fun)
            active[missing] = True  # priced in: the LP over the active pairs was not yet optimal

    if objective == "coverage":
        _, fun = solve(-np.ones(n), None)
        x, _ = solve(-value, int(round(-fun)))
    else:
        x, _ = solve(-value, None)
    if np.abs(x - np.round(x)).max() > 1e-6:  # not a vertex (should not happen with simplex): use the flow
        support = [pairs[j] for j in np.flatnonzero(active)]
        return _solve_flow(support, capacity, demand, objective)
    return [pairs[j] for j in np.flatnonzero(x > 0.5)]


def greedy_assignment(
    scores: Mapping[str, Mapping[str, float]],
    *,
    capacity: Mapping[str, int],
    demand: Mapping[str, int],
    team_of: Mapping[str, str],
    district_of_problem: Mapping[str, str],
    conflicts: Collection[tuple[str, str]] = frozenset(),
    city_team_penalty: float = 0.2,
    city_team: Collection[str] = frozenset(),
    allow_cross_district: bool = False,
    cross_district_penalty: float = 0.4,
    min_score: float | None = None,
    objective: Objective = "score",
) -> Plan:
    """The baseline: take eligible pairs best adjusted score first while capacity and demand allow.

    Same parameters and rules as :func:`plan_assignment`; with ``objective="score"`` pairs worth
    nothing or less are left out (they would lower the total), with ``"coverage"`` they are taken too.
    """
    started = time.perf_counter()
    pairs = eligible_pairs(
        scores, capacity=capacity, demand=demand, team_of=team_of, district_of_problem=district_of_problem,
        conflicts=conflicts, city_team=city_team, city_team_penalty=city_team_penalty,
        allow_cross_district=allow_cross_district, cross_district_penalty=cross_district_penalty,
        min_score=min_score,
    )
    if objective == "score":
        pairs = [c for c in pairs if c[3] > 0]
    cap_left = dict(capacity)
    need = {p: demand.get(p, 1) for p in scores}
    chosen = []
    for pair in sorted(pairs, key=lambda c: (-c[3], c[0], c[1])):
        problem, worker = pair[0], pair[1]
        if cap_left.get(worker, 0) > 0 and need[problem] > 0:
            cap_left[worker] -= 1
            need[problem] -= 1
            chosen.append(pair)
    return _finish(chosen, demand, scores.keys(), f"greedy/{objective}", started)


# -- from the store -------------------------------------------------------------------------------
@dataclass
class AssignmentInputs:
    """What :func:`plan_assignment` needs besides the scores, read from a store."""

    capacity: dict[str, int]
    demand: dict[str, int]
    team_of: dict[str, str]
    district_of_problem: dict[str, str]
    conflicts: set[tuple[str, str]]
    city_team: set[str]
    titles: dict[str, str] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`plan_assignment` and :func:`greedy_assignment`."""
        return {"capacity": self.capacity, "demand": self.demand, "team_of": self.team_of,
                "district_of_problem": self.district_of_problem, "conflicts": self.conflicts,
                "city_team": self.city_team}


def _demand_of(problem: Mapping[str, Any]) -> int:
    value = problem.get("demand")
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 1


def assignment_inputs(store: GraphStore, *, selection: Selection | None = None) -> AssignmentInputs:
    """Remaining capacity, remaining demand, teams, districts and excluded pairs from the store.

    - remaining capacity: ``capacity`` (default 2) minus :meth:`Selection.worker_load`; inactive
      workers have none;
    - remaining demand: ``demand`` (default 1) minus live (invited or accepted) matches, for open
      and matched problems;
    - excluded pairs: the worker's employer posted the problem, the worker already has a live
      match for it, or declined it before (they are not asked twice).
    """
    selection = selection or Selection(store)
    live: dict[str, int] = defaultdict(int)
    conflicts: set[tuple[str, str]] = set()
    loads = selection.loads()
    for match in store.iter_nodes("Match"):
        state = match.get("state")
        pair = (str(match.get("problem_id")), str(match.get("worker_id")))
        if state in LIVE_STATES:
            live[pair[0]] += 1
            conflicts.add(pair)
        elif state == "declined":
            conflicts.add(pair)
    capacity: dict[str, int] = {}
    team_of: dict[str, str] = {}
    city_team: set[str] = set()
    employer: dict[str, list[str]] = defaultdict(list)
    names: dict[str, str] = {}
    for worker in store.iter_nodes("Worker"):
        wid = worker["id"]
        names[wid] = str(worker.get("name") or wid)
        capacity[wid] = 0 if worker.get("active") is False else max(0, capacity_of(worker) - loads.get(wid, 0))
        if worker.get("team"):
            team_of[wid] = str(worker["team"])
        if worker.get("city_team") is True:
            city_team.add(wid)
        if worker.get("employer_id"):
            employer[str(worker["employer_id"])].append(wid)
    demand: dict[str, int] = {}
    district_of_problem: dict[str, str] = {}
    titles: dict[str, str] = {}
    for problem in store.iter_nodes("Problem"):
        pid = problem["id"]
        titles[pid] = str(problem.get("title") or "")
        if problem.get("district"):
            district_of_problem[pid] = str(problem["district"])
        open_ = problem_status(problem) in ("open", "matched")
        demand[pid] = max(0, _demand_of(problem) - live[pid]) if open_ else 0
        for wid in employer.get(str(problem.get("enterprise_id")), []):
            conflicts.add((pid, wid))
    return AssignmentInputs(capacity=capacity, demand=demand, team_of=team_of,
                            district_of_problem=district_of_problem, conflicts=conflicts, city_team=city_team,
                            titles=titles, names=names)


def open_problem_ids(store: GraphStore, *, selection: Selection | None = None) -> list[str]:
    """Open or matched problems that still need workers (remaining demand above zero), by id."""
    inputs = assignment_inputs(store, selection=selection)
    return [p for p, n in sorted(inputs.demand.items()) if n > 0]


@dataclass
class AppliedPlan:
    """What :func:`apply_plan` did: the invitations made and the pairs it could not invite (with why)."""

    created: list[dict[str, Any]]
    skipped: list[tuple[str, str, str]]


def apply_plan(selection: Selection, plan: Plan, actor: str, *, model_version: str | None = None,
               note: str = "") -> AppliedPlan:
    """Invite every pair of the plan; pairs that can no longer be invited are reported, not raised.

    Things may have changed since the plan was made (another coordinator invited the worker,
    the problem was closed): each invitation is checked again by :meth:`Selection.invite`.
    """
    created: list[dict[str, Any]] = []
    skipped: list[tuple[str, str, str]] = []
    for problem_id, worker_id, score in plan.pairs:
        try:
            created.append(selection.invite(problem_id, worker_id, actor=actor, note=note,
                                            model_version=model_version, score=score))
        except (SelectionError, UnknownProblem, UnknownWorker) as err:
            skipped.append((problem_id, worker_id, str(err)))
    return AppliedPlan(created=created, skipped=skipped)
