"""The two-way selection state machine, its audit trail and the completion feedback loop."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from graph.dataset import export_dataset, load_dataset
from graph.errors import ConstraintViolation
from graph.memory import MemoryStore
from graph.rules import TIMEZONE, new_id
from graph.store import GraphStore
from recommender.errors import UnknownProblem, UnknownWorker
from tests.stores import fresh_store
from workflow.errors import (
    CapacityExceeded,
    ConflictOfInterest,
    DuplicateInvitation,
    IllegalTransition,
    InvalidSelection,
    MatchNotFound,
    WorkerUnavailable,
)
from workflow.selection import TRANSITIONS, Selection, problem_outcomes


class Clock:
    """A settable clock in China Standard Time."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


DATASET = {
    "enterprises.jsonl": [
        {"id": "E1", "name": "盐城精工机械", "district": "亭湖区", "industry_chain": "新能源汽车及核心零部件"},
        {"id": "E2", "name": "大丰风电装备", "district": "大丰区", "industry_chain": "新能源"},
    ],
    "workers.jsonl": [
        {"id": "W1", "name": "王建国", "skills": ["数控", "机械维修"], "district": "亭湖区", "team": "亭湖区",
         "capacity": 2, "active": True, "employer_id": "E2"},
        {"id": "W2", "name": "李芳", "skills": ["电气"], "district": "亭湖区", "team": "亭湖区", "capacity": 1,
         "active": True, "employer_id": "E1"},
        {"id": "W3", "name": "赵强", "skills": ["焊接"], "district": "大丰区", "team": "大丰区", "capacity": 2,
         "active": False},
    ],
    "problems.jsonl": [
        {"id": "P1", "title": "主轴异响", "description": "数控车床主轴高速异响", "skills": ["数控"],
         "enterprise_id": "E1", "district": "亭湖区", "service_type": "技术帮扶", "status": "open",
         "posted_at": "2026-11-01"},
        {"id": "P2", "title": "电机过热", "skills": ["电气"], "enterprise_id": "E1", "district": "亭湖区",
         "status": "open", "posted_at": "2026-11-02", "demand": 2},
        {"id": "P3", "title": "焊缝开裂", "skills": ["焊接"], "enterprise_id": "E2", "district": "大丰区",
         "status": "open", "posted_at": "2026-11-03"},
        {"id": "P0", "title": "旧问题", "skills": ["数控"], "enterprise_id": "E2", "district": "大丰区",
         "status": "solved", "posted_at": "2025-03-01", "solved_at": "2025-03-20", "solved_by": ["W1"],
         "outcomes": [{"worker_id": "W1", "rating": 4, "hours": 6, "trainees": 3}]},
    ],
}


def make_dataset(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in DATASET.items():
        _write_jsonl(directory / name, rows)
    return directory


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """The small dataset in each kind of store (the Neo4j one is the session's test server)."""
    s = fresh_store(request)
    load_dataset(s, make_dataset(tmp_path / "ds"))
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 20, 9, 30, tzinfo=TIMEZONE))


@pytest.fixture
def sel(store: GraphStore, clock: Clock) -> Selection:
    return Selection(store, clock=clock)


def _in_state(sel: Selection, state: str, problem: str = "P1", worker: str = "W1") -> str:
    """A match of ``problem`` x ``worker`` brought to ``state`` by legal moves."""
    if state == "suggested":
        return sel.suggest(problem, worker, actor="c")["id"]
    mid = sel.invite(problem, worker, actor="c")["id"]
    if state == "accepted" or state == "completed":
        sel.accept(mid, actor=worker)
    if state == "completed":
        sel.complete(mid, solved=True, hours=3, trainees=4, satisfaction=5, actor="c")
    if state == "declined":
        sel.decline(mid, reason="时间冲突", actor=worker)
    if state == "withdrawn":
        sel.withdraw(mid, actor="c")
    return mid


# -- the happy path and the feedback loop ----------------------------------------------------------
def test_invite_accept_complete_writes_solved_and_the_outcome(store: GraphStore, clock: Clock) -> None:
    calls: list[int] = []
    sel = Selection(store, on_change=lambda: calls.append(store.revision), clock=clock)
    match = sel.invite("P1", "W1", actor="coord", note="请尽快联系")
    assert match["state"] == "invited" and match["problem_id"] == "P1" and match["worker_id"] == "W1"
    assert match["created_by"] == "coord" and match["created_at"] == "2026-11-20T09:30:00+08:00"
    clock.advance(hours=2)
    assert sel.accept(match["id"], actor="W1")["state"] == "accepted"
    assert store.get_node("Problem", "P1")["status"] == "matched"
    clock.advance(days=3)
    done = sel.complete(match["id"], solved=True, hours=4.5, trainees=12, satisfaction=5, actor="coord",
                        note="更换轴承后正常")
    assert done["state"] == "completed" and done["solved"] is True and done["trainees"] == 12
    assert [(h["from"], h["to"], h["actor"]) for h in done["history"]] == [
        (None, "invited", "coord"), ("invited", "accepted", "W1"), ("accepted", "completed", "coord")]
    problem = store.get_node("Problem", "P1")
    assert problem["status"] == "solved" and problem["solved_by"] == ["W1"]
    assert problem["solved_at"] == "2026-11-23T11:30:00+08:00"
    [outcome] = problem_outcomes(problem)
    assert outcome["worker_id"] == "W1" and outcome["rating"] == 5 and outcome["trainees"] == 12
    [rel] = store.relationships("SOLVED", end=("Problem", "P1"))
    assert (rel.start_id, dict(rel.props)) == ("W1", {"rating": 5, "hours": 4.5, "trainees": 12,
                                                        "at": "2026-11-23T11:30:00+08:00"})
    assert len(calls) == 3 and calls[-1] == store.revision
    kinds = [e["kind"] for e in sel.audit(problem_id="P1")]
    assert kinds == ["complete", "accept", "invite"]  # newest first


def test_completion_round_trips_through_export_and_load(sel: Selection, store: GraphStore, tmp_path: Path) -> None:
    m1 = _in_state(sel, "accepted", "P2", "W1")
    m2 = sel.invite("P2", "W2", actor="c", allow_conflict=True)["id"]
    sel.accept(m2, actor="W2")
    sel.complete(m1, solved=True, hours=2, trainees=5, satisfaction=4, actor="c")
    sel.complete(m2, solved=True, hours=1.5, trainees=0, satisfaction=3, actor="c")
    out = tmp_path / "export"
    export_dataset(store, out)
    fresh = MemoryStore()
    load_dataset(fresh, out)
    for pid in ("P0", "P1", "P2"):
        original, reloaded = store.get_node("Problem", pid), fresh.get_node("Problem", pid)
        assert reloaded == original
    assert fresh.relationships("SOLVED") == store.relationships("SOLVED")
    # re-loading the export into the live store changes no relationship either
    load_dataset(store, out)
    assert fresh.relationships("SOLVED") == store.relationships("SOLVED")


def test_an_unsolved_completion_records_the_visit_but_no_solved(sel: Selection, store: GraphStore) -> None:
    mid = _in_state(sel, "accepted", "P1", "W1")
    done = sel.complete(mid, solved=False, hours=2, trainees=3, satisfaction=2, actor="c")
    assert done["state"] == "completed" and done["solved"] is False
    assert store.relationships("SOLVED", end=("Problem", "P1")) == []
    problem = store.get_node("Problem", "P1")
    assert problem["status"] == "open" and "solved_by" not in problem
    assert problem_outcomes(problem)[0]["solved"] is False
    # the problem is open again, so another worker can be invited
    assert sel.invite("P1", "W2", actor="c", allow_conflict=True)["state"] == "invited"


def test_completion_is_atomic(sel: Selection, store: GraphStore) -> None:
    mid = _in_state(sel, "accepted", "P1", "W1")
    before = store.get_node("Problem", "P1")
    events = len(sel.audit())
    store.delete_node("Worker", "W1")  # the SOLVED relationship now has no start: the batch must fail whole
    with pytest.raises(ConstraintViolation):
        sel.complete(mid, solved=True, hours=1, trainees=1, satisfaction=4, actor="c")
    assert sel.get(mid)["state"] == "accepted"
    assert store.get_node("Problem", "P1") == before
    assert len(sel.audit()) == events


# -- the state machine -----------------------------------------------------------------------------
ACTIONS = {
    "invited": lambda sel, mid: sel.invite("P1", "W1", actor="c"),
    "accepted": lambda sel, mid: sel.accept(mid, actor="W1"),
    "declined": lambda sel, mid: sel.decline(mid, reason="忙", actor="W1"),
    "completed": lambda sel, mid: sel.complete(mid, solved=True, hours=1, trainees=1, satisfaction=4, actor="c"),
    "withdrawn": lambda sel, mid: sel.withdraw(mid, actor="c"),
}


@pytest.mark.parametrize("start", ["suggested", "invited", "accepted", "declined", "completed", "withdrawn"])
@pytest.mark.parametrize("target", list(ACTIONS))
def test_every_transition_outside_the_table_raises(sel: Selection, start: str, target: str) -> None:
    mid = _in_state(sel, start)
    if target == "invited":
        # inviting acts on the pair: it moves a suggestion on, and is refused while a match is live
        if start == "suggested":
            assert sel.invite("P1", "W1", actor="c")["id"] == mid
        elif start in ("invited", "accepted"):
            with pytest.raises(DuplicateInvitation):
                ACTIONS[target](sel, mid)
        elif start == "completed":
            with pytest.raises(IllegalTransition, match="solved"):  # the problem is solved now
                ACTIONS[target](sel, mid)
        else:
            assert ACTIONS[target](sel, mid)["id"] != mid  # a fresh invitation after a decline/withdrawal
        return
    if target in TRANSITIONS[start]:
        assert ACTIONS[target](sel, mid)["state"] == target
    else:
        with pytest.raises(IllegalTransition) as info:
            ACTIONS[target](sel, mid)
        assert (info.value.current, info.value.requested) == (start, target)
        assert sel.get(mid)["state"] == start


def test_a_declined_invitation_cannot_complete_and_nothing_completes_twice(sel: Selection) -> None:
    declined = _in_state(sel, "declined", "P1", "W1")
    with pytest.raises(IllegalTransition):
        sel.complete(declined, solved=True, hours=1, trainees=0, satisfaction=3, actor="c")
    done = _in_state(sel, "completed", "P2", "W1")
    with pytest.raises(IllegalTransition):
        sel.complete(done, solved=True, hours=1, trainees=0, satisfaction=3, actor="c")


def test_decline_needs_a_reason_and_keeps_it(sel: Selection) -> None:
    mid = sel.invite("P1", "W1", actor="c")["id"]
    for reason in ("", "   "):
        with pytest.raises(InvalidSelection):
            sel.decline(mid, reason=reason, actor="W1")
    declined = sel.decline(mid, reason=" 本月在外地 ", actor="W1")
    assert declined["reason"] == "本月在外地" and declined["history"][-1]["reason"] == "本月在外地"
    assert sel.audit(kind="decline")[0]["detail"]["reason"] == "本月在外地"


@pytest.mark.parametrize("kwargs", [
    {"satisfaction": 0}, {"satisfaction": 6}, {"satisfaction": 4.5}, {"hours": -1}, {"hours": float("nan")},
    {"trainees": -2}, {"trainees": True}, {"solved": "yes"},
])
def test_complete_validates_the_outcome(sel: Selection, kwargs: dict) -> None:
    mid = _in_state(sel, "accepted")
    args = {"solved": True, "hours": 1.0, "trainees": 1, "satisfaction": 4} | kwargs
    with pytest.raises(InvalidSelection):
        sel.complete(mid, actor="c", **args)
    assert sel.get(mid)["state"] == "accepted"


def test_suggest_then_invite_moves_the_same_match(sel: Selection) -> None:
    suggested = sel.suggest("P1", "W1", actor="engine", model_version="fused@1", score=0.8)
    assert sel.suggest("P1", "W1", actor="engine")["id"] == suggested["id"]  # idempotent
    invited = sel.invite("P1", "W1", actor="c")
    assert invited["id"] == suggested["id"] and invited["state"] == "invited"
    assert invited["model_version"] == "fused@1"
    assert [h["to"] for h in invited["history"]] == ["suggested", "invited"]


# -- invitation rules ---------------------------------------------------------------------------------
def test_inviting_twice_while_a_match_is_live_raises(sel: Selection) -> None:
    mid = sel.invite("P1", "W1", actor="c")["id"]
    with pytest.raises(DuplicateInvitation):
        sel.invite("P1", "W1", actor="c2")
    sel.accept(mid, actor="W1")
    with pytest.raises(DuplicateInvitation):
        sel.invite("P1", "W1", actor="c2")
    sel.withdraw(mid, actor="c", reason="企业推迟")
    assert sel.invite("P1", "W1", actor="c")["id"] != mid


def test_a_worker_is_not_invited_to_their_own_employer_unless_allowed(sel: Selection) -> None:
    with pytest.raises(ConflictOfInterest, match="E1"):
        sel.invite("P1", "W2", actor="c")  # W2 works for E1, which posted P1
    match = sel.invite("P1", "W2", actor="c", allow_conflict=True)
    assert match["state"] == "invited"
    assert sel.audit(kind="invite")[0]["detail"]["allow_conflict"] is True


def test_capacity_counts_open_and_this_months_engagements(sel: Selection, store: GraphStore,
                                                          clock: Clock) -> None:
    # W2 has capacity 1
    first = sel.invite("P3", "W2", actor="c")["id"]
    assert sel.worker_load("W2") == 1
    with pytest.raises(CapacityExceeded, match="capacity 1"):
        sel.invite("P1", "W2", actor="c", allow_conflict=True)
    sel.decline(first, reason="忙", actor="W2")  # a declined invitation frees the slot
    assert sel.worker_load("W2") == 0
    second = sel.invite("P3", "W2", actor="c")["id"]
    sel.accept(second, actor="W2")
    sel.complete(second, solved=True, hours=1, trainees=1, satisfaction=5, actor="c")
    assert sel.worker_load("W2") == 1  # completed this month still counts
    with pytest.raises(CapacityExceeded):
        sel.invite("P1", "W2", actor="c", allow_conflict=True)
    assert sel.invite("P1", "W2", actor="c", allow_conflict=True, override_capacity=True)["state"] == "invited"
    clock.advance(days=15)  # December: the completed engagement no longer counts, the open one does
    assert sel.worker_load("W2") == 1
    assert sel.loads() == {"W2": 1}


def test_inactive_workers_unknown_ids_and_closed_problems(sel: Selection) -> None:
    with pytest.raises(WorkerUnavailable):
        sel.invite("P3", "W3", actor="c")
    with pytest.raises(UnknownProblem):
        sel.invite("P404", "W1", actor="c")
    with pytest.raises(UnknownWorker):
        sel.invite("P1", "W404", actor="c")
    with pytest.raises(IllegalTransition, match="solved"):
        sel.invite("P0", "W2", actor="c")
    with pytest.raises(MatchNotFound):
        sel.accept("M-404", actor="c")
    with pytest.raises(MatchNotFound):
        sel.get("M-404")


def test_problem_status_follows_the_accepted_matches(sel: Selection, store: GraphStore) -> None:
    a = sel.invite("P2", "W1", actor="c")["id"]
    b = sel.invite("P2", "W2", actor="c", allow_conflict=True)["id"]
    sel.accept(a, actor="W1")
    assert store.get_node("Problem", "P2")["status"] == "matched"
    sel.decline(b, reason="不方便", actor="W2")
    assert store.get_node("Problem", "P2")["status"] == "matched"  # W1 is still on it
    sel.withdraw(a, actor="W1", reason="生病")
    assert store.get_node("Problem", "P2")["status"] == "open"


# -- audit ---------------------------------------------------------------------------------------------
def test_recommendations_shown_are_audited_and_feed_the_invitation(sel: Selection, clock: Clock) -> None:
    recs = [{"worker_id": "W1", "score": 0.91}, ("W2", 0.5)]
    event_id = sel.record_recommendations("P1", recs, actor="coord", model_version="fused-weights@abc",
                                          query={"problem": "P1", "n": 2})
    clock.advance(minutes=5)
    match = sel.invite("P1", "W1", actor="coord")
    assert match["model_version"] == "fused-weights@abc" and match["score"] == pytest.approx(0.91)
    shown = sel.audit(kind="recommendations_shown")
    assert [e["id"] for e in shown] == [event_id]
    assert shown[0]["detail"] == {"ranked": [["W1", 0.91], ["W2", 0.5]], "query": {"problem": "P1", "n": 2}}
    assert shown[0]["actor"] == "coord" and shown[0]["at"] == "2026-11-20T09:30:00+08:00"
    invite = sel.audit(kind="invite")[0]
    assert invite["match_id"] == match["id"] and invite["model_version"] == "fused-weights@abc"
    assert [e["kind"] for e in sel.audit(actor="coord")] == ["invite", "recommendations_shown"]
    assert sel.audit(limit=1, offset=1)[0]["id"] == event_id


def test_record_recommendations_takes_recommendation_objects(sel: Selection) -> None:
    class Rec:
        def __init__(self, worker_id: str, score: float) -> None:
            self.worker_id, self.score = worker_id, score

    event_id = sel.record_recommendations(None, [Rec("W2", 0.3)], actor="api", model_version="m")
    [event] = sel.audit()
    assert event["id"] == event_id and "problem_id" not in event and event["detail"]["ranked"] == [["W2", 0.3]]


def test_ids_are_unique_and_sort_by_time() -> None:
    ids = [new_id("M") for _ in range(2000)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)


# -- concurrency ----------------------------------------------------------------------------------------
def _race(action: str, selection: Selection, match_id: str, barrier: threading.Barrier, results: list[str]) -> None:
    barrier.wait()
    try:
        if action == "accept":
            selection.accept(match_id, actor="W1")
        else:
            selection.decline(match_id, reason="忙", actor="W1")
        results.append(action)
    except IllegalTransition:
        results.append("lost")


@pytest.mark.parametrize("shared", [True, False], ids=["one-selection", "two-selections"])
def test_concurrent_accept_and_decline_exactly_one_wins(store: GraphStore, clock: Clock, shared: bool) -> None:
    first = Selection(store, clock=clock)
    second = first if shared else Selection(store, clock=clock)
    for round_ in range(30):
        mid = first.invite("P1", "W1", actor="c", override_capacity=True)["id"]
        barrier = threading.Barrier(2)
        results: list[str] = []
        threads = [threading.Thread(target=_race, args=("accept", first, mid, barrier, results)),
                   threading.Thread(target=_race, args=("decline", second, mid, barrier, results))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results).count("lost") == 1, (round_, results)
        final = first.get(mid)
        winner = next(r for r in results if r != "lost")
        assert final["state"] == {"accept": "accepted", "decline": "declined"}[winner]
        assert len(final["history"]) == 2  # the loser wrote nothing
        if final["state"] == "accepted":
            first.withdraw(mid, actor="c")


# -- the command line ------------------------------------------------------------------------------------
def test_match_commands_walk_the_state_machine(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cli.main import main

    env = {"JIANGLIAN_DATA_DIR": str(tmp_path / "data"), "JIANGLIAN_STORE": "memory"}
    runner = CliRunner()
    assert runner.invoke(main, ["load", str(make_dataset(tmp_path / "ds"))], env=env).exit_code == 0
    invited = runner.invoke(main, ["match", "invite", "P1", "W1", "--actor", "张主任"], env=env)
    assert invited.exit_code == 0 and "state=invited" in invited.output
    mid = invited.output.split()[0].removeprefix("id=")
    conflict = runner.invoke(main, ["match", "invite", "P1", "W2", "--actor", "张主任"], env=env)
    assert conflict.exit_code == 1 and "employed by E1" in conflict.output and "Traceback" not in conflict.output
    assert "state=accepted" in runner.invoke(main, ["match", "accept", mid, "--actor", "W1"], env=env).output
    done = runner.invoke(main, ["match", "complete", mid, "--actor", "张主任", "--solved", "--hours", "3",
                                "--trainees", "8", "--satisfaction", "5"], env=env)
    assert done.exit_code == 0 and "state=completed" in done.output and "trainees=8" in done.output
    twice = runner.invoke(main, ["match", "decline", mid, "--actor", "W1", "--reason", "x"], env=env)
    assert twice.exit_code == 1 and "cannot become declined" in twice.output
    kinds = [json.loads(ln)["kind"] for ln in runner.invoke(main, ["match", "audit"], env=env).output.splitlines()]
    assert kinds == ["complete", "accept", "invite"]


# -- the feedback loop with the real recommender ----------------------------------------------------------
FEEDBACK = {
    "enterprises.jsonl": [{"id": "E1", "name": "甲厂", "district": "亭湖区"},
                          {"id": "E2", "name": "乙厂", "district": "亭湖区"}],
    "workers.jsonl": [{"id": f"W{i}", "name": name, "skills": ["数控"], "district": "亭湖区", "team": "亭湖区",
                       "capacity": 3} for i, name in ((1, "王建国"), (2, "李芳"), (3, "赵强"))],
    "problems.jsonl": [
        {"id": "P0", "title": "数控车床主轴异响", "skills": ["数控"], "enterprise_id": "E2", "district": "亭湖区",
         "status": "solved", "posted_at": "2025-01-01", "solved_at": "2025-01-10", "solved_by": ["W1"]},
        {"id": "P1", "title": "数控车床主轴异响 噪声大", "skills": ["数控"], "enterprise_id": "E1",
         "district": "亭湖区", "status": "open", "posted_at": "2026-11-01"},
        {"id": "P2", "title": "数控车床主轴异响 振动", "skills": ["数控"], "enterprise_id": "E1", "district": "亭湖区",
         "status": "open", "posted_at": "2026-11-02"},
    ],
}


def test_a_completion_changes_the_next_ranking(tmp_path: Path) -> None:
    from recommender.engine import RankConfig, Recommender

    directory = tmp_path / "ds"
    directory.mkdir()
    for name, rows in FEEDBACK.items():
        _write_jsonl(directory / name, rows)
    store = MemoryStore()
    load_dataset(store, directory)
    config = RankConfig(auto_refresh=False, model_dir=tmp_path / "models")  # only on_change refreshes
    rec = Recommender(store, config=config)
    stale = Recommender(store, config=config)  # never told about the change
    before = {r.worker_id: r.score for r in rec.recommend("P2", n=3, explain=False)}
    assert before["W2"] == pytest.approx(before["W3"])  # W2 and W3 look the same so far
    assert max(before, key=before.__getitem__) == "W1"  # W1 solved a similar problem
    sel = Selection(store, on_change=rec.refresh)
    match = sel.invite("P1", "W2", actor="c")
    sel.accept(match["id"], actor="W2")
    sel.complete(match["id"], solved=True, hours=3, trainees=2, satisfaction=5, actor="c")
    after = rec.recommend("P2", n=3)
    ranked = [r.worker_id for r in after]
    assert ranked.index("W2") < ranked.index("W3") and after[ranked.index("W2")].score > after[ranked.index("W3")].score
    # the month's completed engagement is recent load (the capacity rule): it costs W2 a little, and without that
    # penalty the fresh, more similar solve outranks W1's older one
    assert after[ranked.index("W2")].components["load_penalty"] < 0
    unloaded = Recommender(store, config=RankConfig(auto_refresh=False, model_dir=tmp_path / "models", load_weight=0.0))
    assert unloaded.recommend("P2", n=3, explain=False)[0].worker_id == "W2"
    explanation = after[ranked.index("W2")].explanation
    assert explanation is not None and "P1" in [p["id"] for p in explanation.similar_problems]
    # the stale index has not seen the solve; only the workflow state (read on every request) moved: W2's load
    stale_scores = {r.worker_id: r.score for r in stale.recommend("P2", n=3, explain=False)}
    assert {w: stale_scores[w] for w in ("W1", "W3")} == {w: before[w] for w in ("W1", "W3")}
    assert stale_scores["W2"] == pytest.approx(before["W2"] - config.load_weight * 1 / 3)
    # the campaign scores see it too
    assert rec.score_pairs(["P2"])["P2"]["W2"] > rec.score_pairs(["P2"])["P2"]["W3"]
