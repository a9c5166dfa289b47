"""Selection steps are conditional writes: a stale read never overwrites another writer's step.

Two kinds of test. Against both stores, a :class:`StaleView` plays another process: it answers reads
from a snapshot taken earlier, writes through to the real store, and reads fresh again after its first
write attempt, so a step decides on what it read before another :class:`Selection` moved on. Against
both stores too, separate OS processes (``spawn``: the real Neo4j test server with a driver per process,
or one embedded data directory opened by every process) race on one invitation and on one worker's last
unit of capacity, round after round: exactly one moves the invitation out of ``invited`` each time (a
withdrawal that reads the acceptance is a legal second step), and the capacity is never exceeded. The
embedded store's compare-and-set is its ``BEGIN IMMEDIATE`` transaction (the database's write lock), Neo4j's
the node locks of the batch.
"""

from __future__ import annotations

import copy
import multiprocessing as mp
import os
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import graph.rules as rules_module
from graph.memory import MemoryStore
from graph.rules import TIMEZONE
from graph.store import GraphStore, NodeRow, WriteBatch
from tests import selection_racer
from tests.stores import fresh_store
from workflow.errors import CapacityExceeded, DuplicateInvitation, IllegalTransition, TransitionConflict
from workflow.selection import Selection, problem_outcomes

NOW = datetime(2026, 11, 20, 9, 30, tzinfo=TIMEZONE)
SEED = [
    NodeRow("Enterprise", "E1", {"name": "盐城精工机械", "district": "亭湖区"}),
    NodeRow("Worker", "W1", {"name": "王建国", "capacity": 100, "active": True}),
    NodeRow("Worker", "W2", {"name": "李芳", "capacity": 1, "active": True}),
    NodeRow("Worker", "W3", {"name": "赵强", "capacity": 100, "active": True}),
    *(NodeRow("Problem", f"P{i}", {"title": f"问题{i}", "status": "open", "enterprise_id": "E1",
                                   "district": "亭湖区"}) for i in range(1, 5)),
]


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest) -> Iterator[GraphStore]:
    s = fresh_store(request)
    s.apply(WriteBatch(nodes=list(SEED)))
    yield s
    s.close()


class StaleView:
    """Another process's view of ``store``: reads come from a snapshot until its first write attempt."""

    def __init__(self, store: GraphStore) -> None:
        self._store = store
        self._snapshot: dict[str, dict[str, dict[str, Any]]] | None = None

    def freeze(self) -> None:
        self._snapshot = {label: {n["id"]: n for n in self._store.list_nodes(label)}
                          for label in ("Match", "Problem", "Worker", "AuditEvent")}

    def get_node(self, label: str, node_id: str) -> dict[str, Any] | None:
        if self._snapshot is None or label not in self._snapshot:
            return self._store.get_node(label, node_id)
        node = self._snapshot[label].get(node_id)
        return None if node is None else copy.deepcopy(node)

    def list_nodes(self, label: str, *, where: Mapping[str, Any] | None = None, offset: int = 0,
                   limit: int | None = None) -> list[dict[str, Any]]:
        if self._snapshot is None or label not in self._snapshot:
            return self._store.list_nodes(label, where=where, offset=offset, limit=limit)
        rows = [copy.deepcopy(n) for _, n in sorted(self._snapshot[label].items())
                if all(n.get(k) == v for k, v in (where or {}).items())]
        return rows[offset:None if limit is None else offset + limit]

    def iter_nodes(self, label: str, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
        return iter(self.list_nodes(label))

    def apply(self, batch: WriteBatch, **kwargs: Any) -> None:
        self._snapshot = None  # what this process reads after writing is fresh
        self._store.apply(batch, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _pair(store: GraphStore) -> tuple[Selection, Selection, StaleView]:
    """A selection on the store and one on a stale view of it (which shares no lock with the first)."""
    view = StaleView(store)
    return Selection(store, clock=lambda: NOW), Selection(view, clock=lambda: NOW), view  # type: ignore[arg-type]


# -- stale reads in one process, both stores --------------------------------------------------------------
@pytest.mark.parametrize("first,second", [("accept", "decline"), ("decline", "accept"), ("accept", "withdraw"),
                                          ("withdraw", "accept")])
def test_a_transition_decided_on_a_stale_read_is_refused(store: GraphStore, first: str, second: str) -> None:
    fresh, stale, view = _pair(store)
    mid = fresh.invite("P1", "W1", actor="c")["id"]
    view.freeze()  # the second process reads the invitation...
    steps = {"accept": lambda s: s.accept(mid, actor="W1"),
             "decline": lambda s: s.decline(mid, reason="本月在外地", actor="W1"),
             "withdraw": lambda s: s.withdraw(mid, actor="c")}
    won = steps[first](fresh)  # ...the first answers...
    with pytest.raises(TransitionConflict) as err:  # ...and the second's write finds the match moved on
        steps[second](stale)
    assert (err.value.expected, err.value.current) == ("invited", won["state"])
    assert err.value.requested == {"accept": "accepted", "decline": "declined", "withdraw": "withdrawn"}[second]
    assert isinstance(err.value, IllegalTransition)  # callers catching the old error still catch it
    match = fresh.get(mid)
    assert match["state"] == won["state"] and len(match["history"]) == 2  # the loser wrote nothing
    assert [e["kind"] for e in fresh.audit(match_id=mid)] == [{"accepted": "accept", "declined": "decline",
                                                               "withdrawn": "withdraw"}[won["state"]], "invite"]
    assert store.get_node("Problem", "P1")["status"] == ("matched" if won["state"] == "accepted" else "open")


def test_a_withdrawal_that_missed_another_acceptance_is_retried_and_keeps_the_problem_matched(
        store: GraphStore) -> None:
    fresh, stale, view = _pair(store)
    first = fresh.invite("P1", "W1", actor="c")["id"]
    fresh.accept(first, actor="W1")
    second = fresh.invite("P1", "W3", actor="c")["id"]
    view.freeze()  # sees W3 invited only
    fresh.accept(second, actor="W3")
    stale.withdraw(first, actor="c")  # decided "nobody else accepted, reopen"; the write's check says otherwise
    assert fresh.get(first)["state"] == "withdrawn"
    assert store.get_node("Problem", "P1")["status"] == "matched"  # W3 is still on it


def test_two_completions_of_one_problem_keep_both_outcomes(store: GraphStore) -> None:
    fresh, stale, view = _pair(store)
    one, two = (fresh.invite("P2", w, actor="c")["id"] for w in ("W1", "W3"))
    fresh.accept(one, actor="W1")
    fresh.accept(two, actor="W3")
    view.freeze()
    fresh.complete(one, solved=True, hours=2, trainees=3, satisfaction=5, actor="c")
    stale.complete(two, solved=True, hours=4, trainees=1, satisfaction=4, actor="c")  # re-read, not overwritten
    problem = store.get_node("Problem", "P2")
    assert sorted(o["match_id"] for o in problem_outcomes(problem)) == sorted([one, two])
    assert sorted(problem["solved_by"]) == ["W1", "W3"] and problem["status"] == "solved"


def test_an_invitation_decided_on_a_stale_load_cannot_exceed_the_capacity(store: GraphStore) -> None:
    fresh, stale, view = _pair(store)
    view.freeze()  # W2 (capacity 1) looks free to the second process
    fresh.invite("P1", "W2", actor="c")
    with pytest.raises(CapacityExceeded):
        stale.invite("P2", "W2", actor="c")
    assert [m["problem_id"] for m in fresh.matches(worker_id="W2")] == ["P1"]
    stale.invite("P2", "W2", actor="c", override_capacity=True)  # the override still works
    assert len(fresh.matches(worker_id="W2", state="invited")) == 2


def test_an_invitation_decided_on_a_stale_read_is_not_duplicated(store: GraphStore) -> None:
    fresh, stale, view = _pair(store)
    view.freeze()
    fresh.invite("P1", "W1", actor="c")
    with pytest.raises(DuplicateInvitation):
        stale.invite("P1", "W1", actor="c")
    view.freeze()
    fresh.suggest("P3", "W3", actor="c")
    assert stale.suggest("P3", "W3", actor="c")["id"] == fresh.matches(problem_id="P3")[0]["id"]
    assert len(fresh.matches(problem_id="P3")) == 1


# -- real processes: the real Neo4j server, or one embedded data directory ----------------------------------
ROUNDS = {"memory": 100, "neo4j": 100}
CAPACITY_ROUNDS = {"memory": 30, "neo4j": 30}
RACERS = ("accept", "decline", "withdraw")


@pytest.mark.parametrize("kind", ["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def test_processes_racing_on_one_invitation_exactly_one_wins(kind: str, tmp_path: Path,
                                                             request: pytest.FixtureRequest) -> None:
    store: GraphStore
    if kind == "memory":
        target, user, password = str(tmp_path / "store"), "", ""
        store = MemoryStore(target)
    else:
        from graph.neo4j_store import Neo4jStore

        target = request.getfixturevalue("neo4j_uri")
        store = Neo4jStore(request.getfixturevalue("neo4j_driver"), "neo4j")
        store.clear()
        external = bool(os.environ.get("NEO4J_URI"))
        user = os.environ.get("NEO4J_USER", "neo4j") if external else "neo4j"
        password = os.environ.get("NEO4J_PASSWORD", "") if external else ""
    store.ensure_schema()
    store.apply(WriteBatch(nodes=list(SEED)))
    # ids sort by creation time and never go backwards within a process: earlier tests in this process ran
    # Selections on fixed clocks in 2027 (test_progress), which left this process's ids ahead of the racers'
    # real clocks and made the audit order depend on the test order; start again from the real clock
    rules_module._last_stamp[0] = 0
    sel = Selection(store)
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(len(RACERS))
    results: Any = ctx.Queue()
    commands = [ctx.Queue() for _ in RACERS]
    procs = [ctx.Process(target=selection_racer.race, args=(target, user, password, f"racer{i}", q, results,
                                                            barrier), daemon=True)
             for i, q in enumerate(commands)]
    started = time.monotonic()
    outcomes: Counter[str] = Counter()
    try:
        for p in procs:
            p.start()
        assert sorted(results.get(timeout=120)[1] for _ in procs) == ["ready"] * len(procs)

        def round_of(step: list[tuple[Any, ...]]) -> list[tuple[str, str, str]]:
            for q, command in zip(commands, step, strict=True):
                q.put(command)
            got = [results.get(timeout=60) for _ in step]
            assert not [r for r in got if r[1] == "error"], got
            return got

        # accept vs decline vs withdraw on one invitation, each racer in its own process and connection
        kind_of = {"accepted": "accept", "declined": "decline", "withdrawn": "withdraw"}
        for round_ in range(ROUNDS[kind]):
            mid = sel.invite("P1", "W1", actor="c")["id"]
            got = round_of([(action, mid) for action in RACERS])
            winners = [r for r in got if r[1] == "won"]
            assert all(r[1] in ("won", "conflict", "illegal") for r in got), (round_, got)
            outcomes.update(r[1] for r in got)
            match = sel.get(mid)
            steps = [(h["from"], h["to"]) for h in match["history"][1:]]
            # exactly one racer moved the match out of "invited"; a withdrawal that read the match after the
            # acceptance committed is a legal second step (accepted -> withdrawn), never a lost update
            assert [t for f, t in steps if f == "invited"] and len([f for f, _ in steps if f == "invited"]) == 1, \
                (round_, steps)
            assert steps in ([("invited", winners[0][2])], [("invited", "accepted"), ("accepted", "withdrawn")]), \
                (round_, steps)
            assert sorted(w[2] for w in winners) == sorted(t for _, t in steps), (round_, got, steps)
            outcomes["second step"] += len(steps) - 1
            kinds = [e["kind"] for e in sel.audit(match_id=mid)]
            assert kinds == [kind_of[t] for _, t in reversed(steps)] + ["invite"], (round_, kinds)
            status = store.get_node("Problem", "P1")["status"]
            assert status == ("matched" if match["state"] == "accepted" else "open"), (round_, status)
            if match["state"] == "accepted":
                sel.withdraw(mid, actor="c")

        # three invitations of W2 (capacity 1) to three problems at once: one lands, two are over capacity
        for round_ in range(CAPACITY_ROUNDS[kind]):
            got = round_of([("invite", f"P{i + 1}", "W2") for i in range(len(RACERS))])
            winners = [r for r in got if r[1] == "won"]
            assert len(winners) == 1 and sorted(r[1] for r in got if r[1] != "won") == ["capacity"] * 2, \
                (round_, got)
            live = sel.matches(worker_id="W2", state=["invited", "accepted"])
            assert [m["id"] for m in live] == [winners[0][2]], (round_, live)
            sel.withdraw(winners[0][2], actor="c")
    finally:
        for q in commands:
            q.put(None)
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
                p.join()
        if kind == "memory":
            store.close()
    elapsed = time.monotonic() - started
    print(f"\n{kind}: {ROUNDS[kind]} accept/decline/withdraw rounds and {CAPACITY_ROUNDS[kind]} capacity rounds "
          f"in {elapsed:.1f} s; outcomes: {dict(outcomes)}")
    # losers that read before the winner's commit are refused by the compare-and-set, not by the re-read
    assert outcomes["conflict"] > 0, outcomes
    assert elapsed < 300
    assert all(p.exitcode == 0 for p in procs), [p.exitcode for p in procs]


def test_stale_view_is_only_stale_until_it_writes(tmp_path: Path) -> None:
    """The test double above: reads stale after freeze, fresh after its first write attempt."""
    store = MemoryStore()
    store.apply(WriteBatch(nodes=list(SEED)))
    view = StaleView(store)
    view.freeze()
    store.update_node("Problem", "P1", {"status": "matched"})
    assert view.get_node("Problem", "P1")["status"] == "open"
    assert view.list_nodes("Problem", where={"status": "matched"}) == []
    view.apply(WriteBatch())
    assert view.get_node("Problem", "P1")["status"] == "matched"
