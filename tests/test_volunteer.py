"""The worker's side of two-way selection: volunteering (「我想接」), confirmed or declined by a coordinator,
and the notifications every step writes in its own batch (both stores; real processes on Neo4j)."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import graph.rules as rules_module
from graph.dataset import load_dataset
from graph.rules import TIMEZONE
from graph.store import GraphStore, NodeRow, WriteBatch
from tests import selection_racer
from tests.stores import fresh_store
from tests.test_selection import Clock, make_dataset
from tests.test_selection_concurrency import StaleView
from workflow.errors import (
    CapacityExceeded,
    ConflictOfInterest,
    DuplicateInvitation,
    IllegalTransition,
    InvalidSelection,
    TransitionConflict,
    WorkerUnavailable,
)
from workflow.notifications import mark_read, notifications_for, unread_count
from workflow.selection import Selection

USERS = [
    NodeRow("Enterprise", "E3", {"name": "东台海工", "district": "大丰区"}),
    NodeRow("Problem", "P4", {"title": "液压站泄漏", "status": "open", "district": "大丰区", "enterprise_id": "E3"}),
    NodeRow("User", "tinghu", {"role": "district", "district": "亭湖区", "display_name": "亭湖协调员",
                               "email": "tinghu@union.example", "active": True}),
    NodeRow("User", "dafeng", {"role": "district", "district": "大丰区", "active": True}),
    NodeRow("User", "city", {"role": "city", "active": True}),
    NodeRow("User", "wang", {"role": "worker", "worker_id": "W1", "email": "wang@example.cn", "active": True}),
    NodeRow("User", "li", {"role": "worker", "worker_id": "W2", "active": True}),
]


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    s = fresh_store(request)
    load_dataset(s, make_dataset(tmp_path / "ds"))
    s.apply(WriteBatch(nodes=list(USERS)))
    yield s
    s.close()


@pytest.fixture
def clock() -> Clock:
    return Clock(datetime(2026, 11, 20, 9, 30, tzinfo=TIMEZONE))


@pytest.fixture
def sel(store: GraphStore, clock: Clock) -> Selection:
    return Selection(store, clock=clock)


def test_a_volunteer_confirmed_by_the_district_becomes_an_accepted_match(sel: Selection, store: GraphStore) -> None:
    m = sel.volunteer("P1", "W1", actor="wang", note="我做过同型号主轴")
    assert (m["state"], m["volunteered_by"], m["note"], m["district"]) == ("volunteered", "wang", "我做过同型号主轴",
                                                                           "亭湖区")
    assert sel.worker_load("W1") == 0  # a volunteer does not occupy the worker until confirmed
    assert store.get_node("Problem", "P1")["status"] == "open"
    done = sel.confirm(m["id"], actor="tinghu")
    assert (done["state"], done["confirmed_by"]) == ("accepted", "tinghu")
    assert done["confirmed_at"] == done["accepted_at"] == "2026-11-20T09:30:00+08:00"
    assert [h["to"] for h in done["history"]] == ["volunteered", "accepted"]
    assert store.get_node("Problem", "P1")["status"] == "matched"
    assert sel.worker_load("W1") == 1
    events = sel.audit(match_id=m["id"])
    assert [e["kind"] for e in events] == ["confirm", "volunteer"]
    assert events[0]["detail"]["from"] == "volunteered" and events[0]["detail"]["capacity"] == 2
    # completing it counts against this month's capacity like an invited one
    sel.complete(m["id"], solved=True, hours=3, trainees=2, satisfaction=5, actor="tinghu")
    assert sel.worker_load("W1") == 1


def test_a_declined_volunteer_keeps_the_reason_and_the_worker_is_told(sel: Selection, store: GraphStore) -> None:
    m = sel.volunteer("P1", "W1", actor="wang")
    with pytest.raises(InvalidSelection):
        sel.decline_volunteer(m["id"], reason="  ", actor="tinghu")
    done = sel.decline_volunteer(m["id"], reason="已安排本厂工程师", actor="tinghu")
    assert (done["state"], done["reason"]) == ("declined", "已安排本厂工程师")
    assert [e["kind"] for e in sel.audit(match_id=m["id"])] == ["decline", "volunteer"]
    notes = notifications_for(store, "wang")
    assert [(n["kind"], n["reason"], n["problem_title"]) for n in notes] == [
        ("volunteer_declined", "已安排本厂工程师", "主轴异响")]
    # a new volunteer after the decline is allowed (the pair is free again)
    assert sel.volunteer("P1", "W1", actor="wang")["id"] != m["id"]


def test_the_worker_cannot_accept_their_own_volunteer_and_invitations_are_not_confirmed(sel: Selection) -> None:
    volunteered = sel.volunteer("P1", "W1", actor="wang")["id"]
    with pytest.raises(IllegalTransition):
        sel.accept(volunteered, actor="wang")
    with pytest.raises(IllegalTransition):
        sel.decline(volunteered, reason="x", actor="wang")  # the worker's decline is for invitations
    invited = sel.invite("P4", "W1", actor="dafeng")["id"]
    with pytest.raises(IllegalTransition):
        sel.confirm(invited, actor="dafeng")
    with pytest.raises(IllegalTransition):
        sel.decline_volunteer(invited, reason="x", actor="dafeng")
    assert sel.get(volunteered)["state"] == "volunteered" and sel.get(invited)["state"] == "invited"
    assert sel.withdraw(volunteered, actor="wang")["state"] == "withdrawn"  # the worker may take it back


def test_one_pending_match_per_pair(sel: Selection) -> None:
    sel.volunteer("P1", "W1", actor="wang")
    with pytest.raises(DuplicateInvitation) as info:
        sel.volunteer("P1", "W1", actor="wang")
    assert info.value.current == "volunteered"
    with pytest.raises(DuplicateInvitation):  # the coordinator confirms instead of inviting
        sel.invite("P1", "W1", actor="tinghu")
    sel.invite("P4", "W1", actor="dafeng")
    with pytest.raises(DuplicateInvitation):
        sel.volunteer("P4", "W1", actor="wang")
    suggested = sel.suggest("P2", "W1", actor="tinghu")["id"]
    assert sel.volunteer("P2", "W1", actor="wang")["id"] == suggested  # a suggestion moves on


def test_volunteering_is_refused_where_an_invitation_would_be(sel: Selection, store: GraphStore) -> None:
    with pytest.raises(ConflictOfInterest):  # W2 works for E1, which posted P1
        sel.volunteer("P1", "W2", actor="li")
    with pytest.raises(WorkerUnavailable):
        sel.volunteer("P3", "W3", actor="zhao")
    with pytest.raises(IllegalTransition, match="solved"):
        sel.volunteer("P0", "W1", actor="wang")
    assert sel.matches() == []


def test_confirmation_checks_capacity_and_the_problem(sel: Selection, store: GraphStore) -> None:
    store.update_node("Worker", "W1", {"capacity": 1})
    first, second = (sel.volunteer(p, "W1", actor="wang")["id"] for p in ("P1", "P4"))
    sel.confirm(first, actor="tinghu")
    with pytest.raises(CapacityExceeded):
        sel.confirm(second, actor="dafeng")
    assert sel.get(second)["state"] == "volunteered"
    assert sel.confirm(second, actor="dafeng", override_capacity=True)["state"] == "accepted"
    third = sel.volunteer("P2", "W1", actor="wang")["id"]
    store.update_node("Problem", "P2", {"status": "closed"})
    with pytest.raises(IllegalTransition):
        sel.confirm(third, actor="tinghu")


def test_every_step_notifies_the_other_side_in_the_same_write(sel: Selection, store: GraphStore) -> None:
    m = sel.volunteer("P1", "W1", actor="wang")["id"]
    assert [(n["kind"], n["worker_name"]) for n in notifications_for(store, "tinghu")] == [("volunteered", "王建国")]
    assert notifications_for(store, "city") == [] and notifications_for(store, "dafeng") == []
    sel.confirm(m, actor="tinghu")
    assert [n["kind"] for n in notifications_for(store, "wang")] == ["confirmed"]
    inv = sel.invite("P4", "W1", actor="dafeng")["id"]
    sel.accept(inv, actor="wang")
    assert [n["kind"] for n in notifications_for(store, "dafeng")] == ["accepted"]  # the inviter
    assert [n["kind"] for n in notifications_for(store, "wang")] == ["invited", "confirmed"]
    # a coordinator answering for the worker: the worker is told too; nobody is told of their own step
    inv2 = sel.invite("P2", "W2", actor="tinghu", allow_conflict=True)["id"]
    sel.decline(inv2, reason="出差", actor="tinghu for W2")
    assert [n["kind"] for n in notifications_for(store, "li")] == ["declined", "invited"]
    assert "declined" not in [n["kind"] for n in notifications_for(store, "tinghu")]
    # a district without coordinators: volunteers reach the city coordinators
    store.update_node("User", "dafeng", {"active": False})
    sel.withdraw(inv, actor="dafeng")
    store.apply(WriteBatch(nodes=[NodeRow("Problem", "P5", {"title": "齿轮磨损", "status": "open",
                                                            "district": "大丰区", "enterprise_id": "E3"})]))
    sel.volunteer("P5", "W1", actor="wang")
    assert [n["kind"] for n in notifications_for(store, "city")] == ["volunteered"]
    # e-mail goes to the users with an address, one outbox row per notification, pending
    outbox = store.list_nodes("OutboxMessage")
    assert {o["to"] for o in outbox} == {"tinghu@union.example", "wang@example.cn"}
    assert all(o["status"] == "pending" and o["attempts"] == 0 and o["path"].startswith("/notifications/N-")
               for o in outbox)
    assert any(o["subject"] == "【匠联】王建国 报名对接「主轴异响」,请确认或婉拒" for o in outbox)
    assert unread_count(store, "wang") == 3
    assert mark_read(store, "wang", [notifications_for(store, "wang")[0]["id"], "N-not-mine"], sel._clock()) == 1
    assert unread_count(store, "wang") == 2 and mark_read(store, "wang", None, sel._clock()) == 2
    assert unread_count(store, "wang") == 0 and mark_read(store, "tinghu", None, sel._clock()) == 1


def test_a_step_that_fails_leaves_no_notification(sel: Selection, store: GraphStore) -> None:
    m = sel.volunteer("P1", "W1", actor="wang")["id"]
    store.update_node("Worker", "W1", {"capacity": 0})
    before = store.count_nodes("Notification")
    with pytest.raises(CapacityExceeded):
        sel.confirm(m, actor="tinghu")
    assert store.count_nodes("Notification") == before


# -- stale reads: another process decided on what it read earlier (both stores) -------------------------------
def _pair(store: GraphStore, clock: Clock) -> tuple[Selection, Selection, StaleView]:
    view = StaleView(store)
    return Selection(store, clock=clock), Selection(view, clock=clock), view  # type: ignore[arg-type]


STEPS = {
    "confirm": lambda s, mid: s.confirm(mid, actor="tinghu"),
    "decline": lambda s, mid: s.decline_volunteer(mid, reason="已有人对接", actor="tinghu"),
    "withdraw": lambda s, mid: s.withdraw(mid, actor="wang"),
}


@pytest.mark.parametrize("first,second", [("confirm", "decline"), ("decline", "confirm"), ("withdraw", "confirm"),
                                          ("confirm", "withdraw")])
def test_a_confirmation_decided_on_a_stale_read_is_refused(store: GraphStore, clock: Clock, first: str,
                                                           second: str) -> None:
    fresh, stale, view = _pair(store, clock)
    mid = fresh.volunteer("P1", "W1", actor="wang")["id"]
    view.freeze()
    won = STEPS[first](fresh, mid)
    with pytest.raises(TransitionConflict) as err:
        STEPS[second](stale, mid)
    assert (err.value.expected, err.value.current) == ("volunteered", won["state"])
    match = fresh.get(mid)
    assert match["state"] == won["state"] and len(match["history"]) == 2
    assert len(fresh.audit(match_id=mid)) == 2  # the loser wrote no audit event...
    kinds = Counter(n["kind"] for n in store.list_nodes("Notification"))
    assert sum(kinds.values()) == 2  # ...and no notification: the volunteer's and the winner's only


def test_confirmations_decided_on_a_stale_load_cannot_exceed_the_capacity(store: GraphStore, clock: Clock) -> None:
    fresh, stale, view = _pair(store, clock)
    store.update_node("Worker", "W1", {"capacity": 1})
    one, two = (fresh.volunteer(p, "W1", actor="wang")["id"] for p in ("P1", "P4"))
    view.freeze()  # W1 looks free to the second process
    fresh.confirm(one, actor="tinghu")
    with pytest.raises(CapacityExceeded):
        stale.confirm(two, actor="dafeng")
    assert fresh.get(two)["state"] == "volunteered"
    fresh.withdraw(one, actor="tinghu")  # capacity freed: the confirmation, read afresh, lands
    assert stale.confirm(two, actor="dafeng")["state"] == "accepted"


# -- real processes against the real Neo4j server ---------------------------------------------------------
ROUNDS = 10


@pytest.mark.neo4j
def test_processes_racing_on_one_volunteer_exactly_one_wins(neo4j_uri: str, neo4j_driver: Any,
                                                            tmp_path: Path) -> None:
    from graph.neo4j_store import Neo4jStore

    store = Neo4jStore(neo4j_driver, "neo4j")
    store.clear()
    store.ensure_schema()
    load_dataset(store, make_dataset(tmp_path / "ds"))
    store.apply(WriteBatch(nodes=list(USERS)))
    rules_module._last_stamp[0] = 0  # see test_selection_concurrency: ids from the real clock again
    sel = Selection(store)
    external = bool(os.environ.get("NEO4J_URI"))
    user = os.environ.get("NEO4J_USER", "neo4j") if external else "neo4j"
    password = os.environ.get("NEO4J_PASSWORD", "") if external else ""
    racers = ("confirm", "decline_volunteer", "withdraw")
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(racers))
    results: Any = ctx.Queue()
    commands = [ctx.Queue() for _ in racers]
    procs = [ctx.Process(target=selection_racer.race, args=(neo4j_uri, user, password, f"racer{i}", q, results,
                                                            barrier), daemon=True)
             for i, q in enumerate(commands)]
    outcomes: Counter[str] = Counter()
    try:
        for p in procs:
            p.start()
        assert sorted(results.get(timeout=120)[1] for _ in procs) == ["ready"] * len(procs)
        for round_ in range(ROUNDS):
            mid = sel.volunteer("P1", "W1", actor="wang")["id"]
            for q, action in zip(commands, racers, strict=True):
                q.put((action, mid))
            got = [results.get(timeout=60) for _ in racers]
            assert all(r[1] in ("won", "conflict", "illegal") for r in got), (round_, got)
            winners = [r for r in got if r[1] == "won"]
            outcomes.update(r[1] for r in got)
            match = sel.get(mid)
            steps = [(h["from"], h["to"]) for h in match["history"][1:]]
            # exactly one racer moved the match out of "volunteered"; a withdrawal that read the match after the
            # confirmation committed is a legal second step (accepted -> withdrawn), never a lost update
            assert len([f for f, _ in steps if f == "volunteered"]) == 1, (round_, steps)
            assert steps in ([("volunteered", winners[0][2])],
                             [("volunteered", "accepted"), ("accepted", "withdrawn")]), (round_, steps, got)
            assert sorted(w[2] for w in winners) == sorted(t for _, t in steps), (round_, got, steps)
            outcomes["second step"] += len(steps) - 1
            assert len(sel.audit(match_id=mid)) == 1 + len(steps)
            # the volunteer's notification plus one per step that landed, none for a refused one
            assert store.count_nodes("Notification", where={"match_id": mid}) == 1 + len(steps), round_
            if match["state"] == "accepted":
                sel.withdraw(mid, actor="tinghu")
    finally:
        for q in commands:
            q.put(None)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
    print(f"\n{ROUNDS} confirm/decline/withdraw rounds on a volunteer; outcomes: {dict(outcomes)}")
    assert outcomes["won"] - outcomes["second step"] == ROUNDS
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]
