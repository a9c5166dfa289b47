"""Campaign assignment: constraints, optimality against brute force, and the case greedy loses."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from graph.memory import MemoryStore
from graph.rules import TIMEZONE
from workflow.assign import (
    Plan,
    apply_plan,
    assignment_inputs,
    greedy_assignment,
    open_problem_ids,
    plan_assignment,
)
from workflow.errors import AssignmentError
from workflow.selection import Selection

CITY_PENALTY, CROSS_PENALTY = 0.2, 0.4


@dataclass
class Instance:
    scores: dict[str, dict[str, float]]
    capacity: dict[str, int]
    demand: dict[str, int]
    team_of: dict[str, str]
    district_of_problem: dict[str, str]
    conflicts: set[tuple[str, str]] = field(default_factory=set)
    city_team: set[str] = field(default_factory=set)
    allow_cross_district: bool = False

    def kwargs(self) -> dict:
        return {"capacity": self.capacity, "demand": self.demand, "team_of": self.team_of,
                "district_of_problem": self.district_of_problem, "conflicts": self.conflicts,
                "city_team": self.city_team, "allow_cross_district": self.allow_cross_district,
                "city_team_penalty": CITY_PENALTY, "cross_district_penalty": CROSS_PENALTY}


# An independent statement of the rules (not workflow.assign.eligible_pairs): the value of a pair,
# or None when the plan may not use it.
def value(inst: Instance, problem: str, worker: str) -> float | None:
    score = inst.scores[problem][worker]
    if (problem, worker) in inst.conflicts or inst.capacity.get(worker, 0) == 0:
        return None
    if inst.team_of.get(worker) == inst.district_of_problem.get(problem):
        return score
    if inst.team_of.get(worker) == "city" or worker in inst.city_team:
        return score - CITY_PENALTY * abs(score)
    return score - CROSS_PENALTY * abs(score) if inst.allow_cross_district else None


def violations(plan: Plan, inst: Instance) -> list[str]:
    """Every way ``plan`` breaks the instance's constraints or misreports its totals."""
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    used: dict[str, int] = {}
    filled: dict[str, int] = {}
    objective = 0.0
    for p, w, s in plan.pairs:
        if (p, w) in seen:
            problems.append(f"{p}/{w} twice")
        seen.add((p, w))
        if p not in inst.scores or w not in inst.scores[p]:
            problems.append(f"{p}/{w} has no score")
            continue
        if s != inst.scores[p][w]:
            problems.append(f"{p}/{w} reports score {s}")
        v = value(inst, p, w)
        if v is None:
            problems.append(f"{p}/{w} is not allowed (team, conflict or capacity)")
            continue
        objective += v
        used[w] = used.get(w, 0) + 1
        filled[p] = filled.get(p, 0) + 1
    problems += [f"{w} over capacity" for w, n in used.items() if n > inst.capacity.get(w, 0)]
    problems += [f"{p} over demand" for p, n in filled.items() if n > inst.demand.get(p, 1)]
    total_demand = sum(inst.demand.get(p, 1) for p in inst.scores)
    if not math.isclose(plan.total, sum(s for _, _, s in plan.pairs), abs_tol=1e-9):
        problems.append("total is not the sum of the scores")
    if not math.isclose(plan.objective, objective, abs_tol=1e-9):
        problems.append("objective is not the sum of the adjusted scores")
    expected_coverage = len(plan.pairs) / total_demand if total_demand else 1.0
    if not math.isclose(plan.coverage, expected_coverage):
        problems.append("coverage is wrong")
    unmet = {p: inst.demand.get(p, 1) - filled.get(p, 0) for p in inst.scores
             if inst.demand.get(p, 1) - filled.get(p, 0) > 0}
    if plan.unmet != unmet:
        problems.append(f"unmet {plan.unmet} != {unmet}")
    return problems


def brute_force(inst: Instance) -> tuple[float, tuple[int, float]]:
    """Best objective, and best (filled slots, objective) lexicographically, over every feasible subset."""
    pairs = [(p, w, v) for p in inst.scores for w in inst.scores[p]
             if (v := value(inst, p, w)) is not None]
    best_score, best_coverage = 0.0, (0, 0.0)
    for mask in range(1 << len(pairs)):
        chosen = [pairs[i] for i in range(len(pairs)) if mask >> i & 1]
        used: dict[str, int] = {}
        filled: dict[str, int] = {}
        for p, w, _ in chosen:
            used[w] = used.get(w, 0) + 1
            filled[p] = filled.get(p, 0) + 1
        if any(n > inst.capacity.get(w, 0) for w, n in used.items()) or any(
                n > inst.demand.get(p, 1) for p, n in filled.items()):
            continue
        total = sum(v for _, _, v in chosen)
        best_score = max(best_score, total)
        best_coverage = max(best_coverage, (len(chosen), total))
    return best_score, best_coverage


DISTRICTS = ["亭湖区", "盐都区"]


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    n_problems = draw(st.integers(1, 3))
    n_workers = draw(st.integers(1, 4))
    problems = [f"P{i}" for i in range(n_problems)]
    workers = [f"W{i}" for i in range(n_workers)]
    score = st.one_of(st.just(0.0), st.floats(-1.0, 1.0, allow_nan=False).map(lambda x: round(x, 3)))
    scores = {p: {w: draw(score) for w in draw(st.sets(st.sampled_from(workers), min_size=1))} for p in problems}
    teams = st.sampled_from([*DISTRICTS, "city"])
    conflicts = {(p, w) for p in problems for w in scores[p] if draw(st.integers(0, 5)) == 0}
    return Instance(
        scores=scores,
        capacity={w: draw(st.integers(0, 2)) for w in workers},
        demand={p: draw(st.integers(0, 2)) for p in problems},
        team_of={w: draw(teams) for w in workers},
        district_of_problem={p: draw(st.sampled_from(DISTRICTS)) for p in problems},
        conflicts=conflicts,
        city_team={w for w in workers if draw(st.integers(0, 4)) == 0},
        allow_cross_district=draw(st.booleans()),
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(), st.sampled_from(["flow", "lp"]), st.integers(1, 3))
def test_plans_respect_every_constraint_and_are_optimal(inst: Instance, solver: str, price_k: int) -> None:
    flow = plan_assignment(inst.scores, solver=solver, price_k=price_k, **inst.kwargs())
    greedy = greedy_assignment(inst.scores, **inst.kwargs())
    coverage = plan_assignment(inst.scores, objective="coverage", solver=solver, price_k=price_k, **inst.kwargs())
    for plan in (flow, greedy, coverage):
        assert violations(plan, inst) == []
    best_score, (best_filled, best_total_at_coverage) = brute_force(inst)
    assert flow.objective == pytest.approx(best_score, abs=1e-5)
    assert all(flow.adjusted[(p, w)] > 0 for p, w, _ in flow.pairs)  # nothing that lowers the total
    assert greedy.objective <= flow.objective + 1e-9
    assert len(coverage.pairs) == best_filled
    assert coverage.objective == pytest.approx(best_total_at_coverage, abs=1e-5)


def test_the_lp_prices_in_pairs_left_out_of_its_start() -> None:
    # with one pair per problem and worker to start from, P1 starts with A only: B must be priced in
    scores = {"P1": {"A": 0.9, "B": 0.7}, "P2": {"A": 0.8, "C": 0.1}, "P3": {"C": 0.5, "B": 0.6}}
    kwargs = {"capacity": dict.fromkeys("ABC", 1), "demand": {}, "team_of": dict.fromkeys("ABC", "D"),
              "district_of_problem": dict.fromkeys(scores, "D")}
    reference = plan_assignment(scores, solver="flow", **kwargs)
    for price_k in (0, 1, 5):
        lp = plan_assignment(scores, solver="lp", price_k=price_k, **kwargs)
        assert lp.pairs == reference.pairs and lp.objective == pytest.approx(reference.objective)
        if price_k == 0:  # started from P1-A, P2-A, P3-B: P1-B and P3-C had to be priced in
            assert lp.stats["lp_rounds"] > 1 and lp.stats["lp_columns"] > 3
        if price_k == 5:  # everything in the first LP
            assert lp.stats["lp_rounds"] == 1
    assert reference.pairs == [("P1", "B", 0.7), ("P2", "A", 0.8), ("P3", "C", 0.5)]


def test_min_cost_flow_beats_greedy_where_greedy_is_known_to_lose() -> None:
    # A is the best worker for both problems but can take one; B only fits P1.
    scores = {"P1": {"A": 0.9, "B": 0.7}, "P2": {"A": 0.8}}
    kwargs = {"capacity": {"A": 1, "B": 1}, "demand": {"P1": 1, "P2": 1}, "team_of": {"A": "亭湖区", "B": "亭湖区"},
              "district_of_problem": {"P1": "亭湖区", "P2": "亭湖区"}}
    greedy = greedy_assignment(scores, **kwargs)
    flow = plan_assignment(scores, **kwargs)
    assert greedy.pairs == [("P1", "A", 0.9)] and greedy.coverage == 0.5 and greedy.unmet == {"P2": 1}
    assert flow.pairs == [("P1", "B", 0.7), ("P2", "A", 0.8)]
    assert flow.total == pytest.approx(1.5) and flow.coverage == 1.0 and flow.unmet == {}
    assert flow.total > greedy.total


def test_district_team_first_then_the_city_team() -> None:
    scores = {"P1": {"local": 0.6, "city": 0.7, "other": 0.95}}
    kwargs = {"capacity": {"local": 1, "city": 1, "other": 1}, "demand": {"P1": 1},
              "team_of": {"local": "盐都区", "city": "city", "other": "东台市"},
              "district_of_problem": {"P1": "盐都区"}}
    # the city worker's 0.7 is worth 0.56 after the penalty: the district team goes first
    assert plan_assignment(scores, **kwargs).pairs == [("P1", "local", 0.6)]
    # when the district team has nobody, the city team steps in
    busy = {**kwargs, "capacity": {"local": 0, "city": 1, "other": 1}}
    assert plan_assignment(scores, **busy).pairs == [("P1", "city", 0.7)]
    # other districts' teams only when allowed
    nobody = {**kwargs, "capacity": {"local": 0, "city": 0, "other": 1}}
    assert plan_assignment(scores, **nobody).pairs == []
    assert plan_assignment(scores, allow_cross_district=True, **nobody).pairs == [("P1", "other", 0.95)]
    # a district delegate to the city team (city_team=...) serves other districts at the city penalty
    assert plan_assignment(scores, city_team={"other"}, **nobody).pairs == [("P1", "other", 0.95)]


def test_conflicts_demand_and_bad_inputs() -> None:
    scores = {"P1": {"A": 0.9, "B": 0.5, "C": 0.4}}
    kwargs = {"capacity": {"A": 3, "B": 3, "C": 3}, "demand": {"P1": 2}, "team_of": dict.fromkeys("ABC", "D"),
              "district_of_problem": {"P1": "D"}}
    plan = plan_assignment(scores, conflicts={("P1", "A")}, **kwargs)
    assert plan.pairs == [("P1", "B", 0.5), ("P1", "C", 0.4)] and plan.coverage == 1.0
    assert plan_assignment({}, **kwargs).coverage == 1.0
    with pytest.raises(AssignmentError):
        plan_assignment(scores, **{**kwargs, "capacity": {"A": -1}})
    with pytest.raises(AssignmentError):
        plan_assignment(scores, city_team_penalty=1.5, **kwargs)


# -- from the store ------------------------------------------------------------------------------------
@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    s.create_node("Enterprise", "E1", {"name": "精工", "district": "亭湖区"})
    s.create_node("Enterprise", "E2", {"name": "风电", "district": "大丰区"})
    for wid, team, cap, employer in (("W1", "亭湖区", 2, "E2"), ("W2", "亭湖区", 1, "E1"), ("W3", "city", 1, None),
                                     ("W4", "大丰区", 1, None)):
        s.create_node("Worker", wid, {"name": wid, "team": team, "capacity": cap, "employer_id": employer,
                                      "active": True})
    s.create_node("Worker", "W5", {"name": "W5", "team": "亭湖区", "capacity": 3, "active": False})
    for pid, ent, district, demand, status in (("P1", "E1", "亭湖区", 1, "open"), ("P2", "E1", "亭湖区", 2, "open"),
                                               ("P3", "E2", "大丰区", None, "open"),
                                               ("P4", "E2", "大丰区", None, "solved")):
        s.create_node("Problem", pid, {"title": pid, "enterprise_id": ent, "district": district, "demand": demand,
                                       "status": status})
    return s


def test_inputs_from_the_store_and_applying_a_plan(store: MemoryStore) -> None:
    sel = Selection(store, clock=lambda: datetime(2026, 12, 1, 10, tzinfo=TIMEZONE))
    live = sel.invite("P2", "W1", actor="c")["id"]
    sel.accept(live, actor="W1")
    declined = sel.invite("P1", "W3", actor="c")["id"]
    sel.decline(declined, reason="忙", actor="W3")
    inputs = assignment_inputs(store, selection=sel)
    assert inputs.capacity == {"W1": 1, "W2": 1, "W3": 1, "W4": 1, "W5": 0}
    assert inputs.demand == {"P1": 1, "P2": 1, "P3": 1, "P4": 0}
    assert {("P2", "W1"), ("P1", "W3"), ("P1", "W2"), ("P2", "W2"), ("P3", "W1")} <= inputs.conflicts
    assert open_problem_ids(store, selection=sel) == ["P1", "P2", "P3"]
    scores = {p: {w: 0.5 + 0.1 * i for i, w in enumerate(["W1", "W2", "W3", "W4", "W5"])}
              for p in ["P1", "P2", "P3"]}
    plan = plan_assignment(scores, **inputs.kwargs())
    # P1: W1 (district); P2: W3 via the city team (W1 already on it, W2 conflicted); P3: W4 (district)
    assert plan.pairs == [("P1", "W1", 0.5), ("P2", "W3", pytest.approx(0.7)), ("P3", "W4", pytest.approx(0.8))]
    # someone invites W4 elsewhere meanwhile: the plan's P3 invitation is skipped, the rest made
    sel.invite("P3", "W4", actor="other")
    applied = apply_plan(sel, plan, "coordinator", model_version="fused@test")
    assert [(m["problem_id"], m["worker_id"]) for m in applied.created] == [("P1", "W1"), ("P2", "W3")]
    assert [(p, w) for p, w, _ in applied.skipped] == [("P3", "W4")]
    assert all(m["state"] == "invited" and m["model_version"] == "fused@test" for m in applied.created)
    assert applied.created[0]["score"] == pytest.approx(0.5)


def test_greedy_and_flow_agree_when_nothing_competes() -> None:
    scores = {f"P{i}": {f"W{i}": 0.5 + i / 10} for i in range(4)}
    kwargs = {"capacity": {f"W{i}": 1 for i in range(4)}, "demand": {}, "team_of": {f"W{i}": "D" for i in range(4)},
              "district_of_problem": {f"P{i}": "D" for i in range(4)}}
    a, b = plan_assignment(scores, **kwargs), greedy_assignment(scores, **kwargs)
    assert a.pairs == b.pairs and a.coverage == b.coverage == 1.0


def test_brute_force_checker_is_not_vacuous() -> None:
    inst = Instance(scores={"P1": {"A": 0.9}}, capacity={"A": 1}, demand={"P1": 1}, team_of={"A": "x"},
                    district_of_problem={"P1": "y"})
    bad = Plan(pairs=[("P1", "A", 0.9)], total=0.9, coverage=1.0, unmet={}, objective=0.9)
    assert violations(bad, inst)  # A's team is not the problem's district and not the city team
    over = Instance(scores={"P1": {"A": 0.9, "B": 0.8}}, capacity={"A": 1, "B": 1}, demand={"P1": 1},
                    team_of={"A": "y", "B": "y"}, district_of_problem={"P1": "y"})
    both = Plan(pairs=[("P1", "A", 0.9), ("P1", "B", 0.8)], total=1.7, coverage=2.0, unmet={}, objective=1.7)
    assert "P1 over demand" in violations(both, over)
    assert brute_force(over)[0] == pytest.approx(0.9)


# -- the command line ---------------------------------------------------------------------------------
def _cli_dataset(directory: Path) -> Path:
    directory.mkdir()
    rows = {
        "enterprises.jsonl": [{"id": "E1", "name": "精工机械", "district": "亭湖区"},
                              {"id": "E2", "name": "风电装备", "district": "大丰区"}],
        "workers.jsonl": [
            {"id": "W1", "name": "王建国", "skills": ["数控"], "district": "亭湖区", "team": "亭湖区", "capacity": 1},
            {"id": "W2", "name": "李芳", "skills": ["数控"], "district": "亭湖区", "team": "亭湖区", "capacity": 1},
            {"id": "W3", "name": "赵强", "skills": ["焊接"], "district": "大丰区", "team": "city", "capacity": 1},
        ],
        "problems.jsonl": [
            {"id": "P1", "title": "主轴异响", "skills": ["数控"], "enterprise_id": "E1", "district": "亭湖区",
             "status": "open"},
            {"id": "P2", "title": "刀具磨损快", "skills": ["数控"], "enterprise_id": "E1", "district": "亭湖区",
             "status": "open"},
            {"id": "P3", "title": "焊缝开裂", "skills": ["焊接"], "enterprise_id": "E2", "district": "大丰区",
             "status": "open"},
        ],
    }
    for name, items in rows.items():
        (directory / name).write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in items),
                                      encoding="utf-8")
    return directory


# greedy gives W1 to P1 (0.9) and leaves P2 to nobody; the flow gives P2 to W1 and P1 to W2
FAKE_SCORES = {"P1": {"W1": 0.9, "W2": 0.7, "W3": 0.2}, "P2": {"W1": 0.8, "W3": 0.1}, "P3": {"W3": 0.6}}


def test_assign_command_prints_the_plan_then_invites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import cli.workflow
    from cli.main import main

    seen: list[list[str]] = []

    def fake_scores(store: object, problem_ids: list[str]) -> tuple[dict, str]:
        seen.append(list(problem_ids))
        return {p: FAKE_SCORES[p] for p in problem_ids}, "fake@1"

    monkeypatch.setattr(cli.workflow, "_score_pairs", fake_scores)
    env = {"JIANGLIAN_DATA_DIR": str(tmp_path / "data"), "JIANGLIAN_STORE": "memory"}
    runner = CliRunner()
    assert runner.invoke(main, ["load", str(_cli_dataset(tmp_path / "ds"))], env=env).exit_code == 0
    dry = runner.invoke(main, ["assign", "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    lines = dry.output.splitlines()
    assert lines[0].split() == ["problem", "title", "worker", "name", "score", "team"]
    assert [ln.split()[:3] for ln in lines[2:5]] == [["P1", "主轴异响", "W2"], ["P2", "刀具磨损快", "W1"],
                                                     ["P3", "焊缝开裂", "W3"]]
    flow_line = next(ln for ln in lines if ln.startswith("min-cost flow"))
    greedy_line = next(ln for ln in lines if ln.startswith("greedy"))
    assert "total     2.1000" in flow_line and "(3/3)" in flow_line
    assert "objective     1.9800" in flow_line  # 0.7 + 0.8 + 0.6 * 0.8 (W3 is on the city team)
    assert "total     1.5000" in greedy_line and "(2/3)" in greedy_line
    listed = runner.invoke(main, ["match", "list"], env=env)
    assert listed.exit_code == 0 and listed.output == ""  # a dry run invites nobody
    applied = runner.invoke(main, ["assign", "--actor", "张主任"], env=env)
    assert applied.exit_code == 0, applied.output
    assert "created 3 invitation(s); skipped 0" in applied.output
    listed = runner.invoke(main, ["match", "list", "--state", "invited"], env=env)
    assert len(listed.output.splitlines()) == 3
    audit = [json.loads(ln) for ln in runner.invoke(main, ["match", "audit", "--kind", "invite"], env=env)
             .output.splitlines()]
    assert {(e["actor"], e["model_version"]) for e in audit} == {("张主任", "fake@1")}
    again = runner.invoke(main, ["assign", "--dry-run"], env=env)
    assert again.output.strip() == "no open problem needs a worker"
    assert seen == [["P1", "P2", "P3"], ["P1", "P2", "P3"]]


def test_assign_command_with_the_real_recommender(tmp_path: Path) -> None:
    from cli.main import main

    env = {"JIANGLIAN_DATA_DIR": str(tmp_path / "data"), "JIANGLIAN_STORE": "memory"}
    runner = CliRunner()
    directory = _cli_dataset(tmp_path / "ds")
    history = {"id": "P0", "title": "数控车床主轴异响", "skills": ["数控"], "enterprise_id": "E2", "district": "亭湖区",
               "status": "solved", "posted_at": "2025-01-01", "solved_at": "2025-01-10", "solved_by": ["W1"]}
    with open(directory / "problems.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(history, ensure_ascii=False) + "\n")
    assert runner.invoke(main, ["load", str(directory)], env=env).exit_code == 0
    dry = runner.invoke(main, ["assign", "--dry-run", "--json"], env=env)
    assert dry.exit_code == 0, dry.output
    report = json.loads(dry.output)
    assert report["model_version"].startswith(("fused-default@", "learned@")) and report["demand"] == 3
    pairs = [(p["problem_id"], p["worker_id"]) for p in report["plan"]["pairs"]]
    # W1, W2 (亭湖区) serve P1/P2 in their district; P3 (大丰区) can only get the city-team W3
    assert {w for p, w in pairs if p in ("P1", "P2")} <= {"W1", "W2", "W3"} and ("P3", "W3") in pairs
    assert report["plan"]["objective"] >= report["greedy"]["objective"] - 1e-9
    table = runner.invoke(main, ["assign", "--dry-run", "--solver", "lp"], env=env)
    assert table.exit_code == 0 and "LP " in table.output and "greedy" in table.output
    applied = runner.invoke(main, ["assign", "--actor", "张主任"], env=env)
    assert applied.exit_code == 0, applied.output
    assert f"created {len(pairs)} invitation(s)" in applied.output
    invited = runner.invoke(main, ["match", "list", "--state", "invited"], env=env).output.splitlines()
    assert sorted((ln.split()[1].removeprefix("problem_id="), ln.split()[2].removeprefix("worker_id="))
                  for ln in invited) == sorted(pairs)
