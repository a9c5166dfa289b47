"""Two-way selection (双向选择): invitations moving through a state machine, with an audit trail.

A *match* pairs one worker with one problem and moves through these states::

    suggested ──> invited ──> accepted ──> completed (outcome)
        │            │            ^  │
        │            ├──> declined (a reason is required)
        │            └──────────-─┼──┴──> withdrawn
        └──> volunteered ─────────┘ (a coordinator confirms; or declines with a reason; or the worker withdraws)

Both sides choose (双向选择): a coordinator *invites* a worker, who accepts or declines; or a worker
*volunteers* (「我想接」) for an open problem and a coordinator of the problem's district *confirms*
(the same checks as an invitation: problem still open, worker active, no conflict of interest, capacity
recounted under the worker's lock) or declines with a reason. A volunteer does not occupy capacity
until it is confirmed.

Any other move raises :class:`~recommender.errors.IllegalTransition` (a declined invitation cannot
complete, a match cannot complete twice). Matches are ``Match`` nodes and every recommendation shown
and decision taken is an ``AuditEvent`` node (who, when, what was ranked, which model version), so a
result can be audited later. Each transition writes the match, the problem and the audit event in
one :class:`~graph.store.WriteBatch`, so they land together or not at all.

Completion is the feedback loop: a solved outcome writes ``(Worker)-[:SOLVED {rating, hours,
trainees, at}]->(Problem)``, marks the problem solved and appends the worker to its ``solved_by``
row and the outcome to its ``outcomes`` (kept JSON-encoded in ``extra_json``, the dataset rule), so
:func:`graph.dataset.export_dataset` writes the new history and a re-load derives the same
relationships. ``on_change`` is then called so the recommender refreshes its projection.

Concurrency: every write is conditional (:attr:`graph.store.WriteBatch.expect`). A transition commits
only if the match is still in the state it was read in, so of two processes accepting and declining
the same invitation exactly one wins and the other gets :class:`~recommender.errors.TransitionConflict`.
The write also locks the problem (its status and outcomes are read-modify-write) and an invitation
locks the worker, whose load is recounted against the capacity inside the write's transaction, so
concurrent invitations cannot exceed it. When only the problem or the worker's other matches changed
meanwhile, the step is re-read and retried (up to :data:`ATTEMPTS` times). Within one process a lock
shared by every :class:`Selection` on a store instance also serialises the steps, so threads rarely
conflict at all.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

from graph.errors import WriteConflict
from graph.rules import LIVE_STATES, capacity_of, counts_against_capacity, current_month, new_id, problem_status
from graph.rules import now as _now
from graph.store import Expect, GraphReader, GraphStore, NodeRow, RelRow, WriteBatch
from recommender.errors import UnknownProblem, UnknownWorker
from workflow.errors import (
    CapacityExceeded,
    ConflictOfInterest,
    DuplicateInvitation,
    IllegalTransition,
    InvalidSelection,
    MatchNotFound,
    TransitionConflict,
    WorkerUnavailable,
)
from workflow.notifications import notification_rows

__all__ = [
    "ATTEMPTS",
    "AUDIT_KINDS",
    "MATCH_STATES",
    "TRANSITIONS",
    "MatchState",
    "Selection",
    "problem_outcomes",
]

log = logging.getLogger(__name__)

MatchState = Literal["suggested", "invited", "volunteered", "accepted", "declined", "completed", "withdrawn"]
MATCH_STATES: Final[tuple[str, ...]] = ("suggested", "invited", "volunteered", "accepted", "declined", "completed",
                                        "withdrawn")

#: Allowed moves: state -> states it may move to.
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "suggested": frozenset({"invited", "volunteered"}),
    "invited": frozenset({"accepted", "declined", "withdrawn"}),
    "volunteered": frozenset({"accepted", "declined", "withdrawn"}),
    "accepted": frozenset({"completed", "withdrawn"}),
    "declined": frozenset(),
    "completed": frozenset(),
    "withdrawn": frozenset(),
}
AUDIT_KINDS: Final[tuple[str, ...]] = (
    "recommendations_shown",
    "suggest",
    "invite",
    "volunteer",
    "accept",
    "confirm",
    "decline",
    "complete",
    "withdraw",
)
_KIND_OF: Final[dict[str, str]] = {
    "suggested": "suggest",
    "invited": "invite",
    "volunteered": "volunteer",
    "accepted": "accept",
    "declined": "decline",
    "completed": "complete",
    "withdrawn": "withdraw",
}

_OPEN_PROBLEM_STATUSES: Final = frozenset({"open", "matched"})
#: States in which a pair (problem, worker) is taken: no second invitation or volunteer of the pair.
_PENDING_STATES: Final = LIVE_STATES | {"volunteered"}
#: Tries of one step when only what surrounds the match changed meanwhile (the problem, the worker's load).
ATTEMPTS: Final = 5
#: The problem properties a transition reads and rewrites (a compare-and-set guards all of them).
_PROBLEM_GUARD: Final = ("status", "solved_by", "solved_at", "extra_json")


class _Stale(Exception):
    """Raised inside a write's transaction when something the step decided on changed: re-read, retry."""


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


# One lock per store instance, shared by every Selection on it (the web app may make one per request).
_store_locks: weakref.WeakKeyDictionary[GraphStore, threading.RLock] = weakref.WeakKeyDictionary()
_store_locks_guard = threading.Lock()


def _lock_for(store: GraphStore) -> threading.RLock:
    with _store_locks_guard:
        lock = _store_locks.get(store)
        if lock is None:
            lock = threading.RLock()
            _store_locks[store] = lock
        return lock


# -- problem rows -----------------------------------------------------------------------------
def _extra(node: Mapping[str, Any]) -> dict[str, Any]:
    raw = node.get("extra_json")
    if not raw:
        return {}
    extra = json.loads(raw)
    return extra if isinstance(extra, dict) else {}


def problem_outcomes(problem: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``outcomes`` list of a problem node (kept JSON-encoded in ``extra_json``)."""
    outcomes = _extra(problem).get("outcomes")
    return [o for o in outcomes if isinstance(o, dict)] if isinstance(outcomes, list) else []


def _decode_match(node: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(node)
    row["history"] = json.loads(row.get("history_json") or "[]")
    return row


def _decode_event(node: Mapping[str, Any]) -> dict[str, Any]:
    row = dict(node)
    row["detail"] = json.loads(row.get("detail_json") or "{}")
    return row


def _no_none(props: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v is not None}


_INVITED: Final = frozenset({"invited"})
_VOLUNTEERED: Final = frozenset({"volunteered"})


def _reason(reason: object) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidSelection("a decline needs a reason")
    return reason.strip()


def _rec_pair(rec: Any) -> list[Any]:
    """``[worker_id, score]`` from a Recommendation, a mapping or a ``(worker_id, score)`` pair."""
    if isinstance(rec, Mapping):
        return [str(rec["worker_id"]), float(rec["score"])]
    if isinstance(rec, Sequence) and not isinstance(rec, str):
        return [str(rec[0]), float(rec[1])]
    return [str(rec.worker_id), float(rec.score)]


class Selection:
    """The two-way selection workflow over a store.

    Parameters
    ----------
    store
        The graph store holding workers, problems, matches and audit events.
    on_change
        Called after every write that changes matches or problems (e.g. ``Recommender.refresh``),
        so the next ranking sees the new load, declines and solved problems.
    clock
        Returns the current time (an aware datetime); tests inject a fixed clock.
    notify
        Write the step's notifications and outbox messages (:mod:`workflow.notifications`) in the
        step's own batch (default).

    Examples
    --------
    >>> from graph.memory import MemoryStore
    >>> store = MemoryStore()
    >>> _ = store.create_node("Worker", "w1", {"name": "王师傅", "capacity": 2})
    >>> _ = store.create_node("Problem", "p1", {"title": "主轴异响", "status": "open"})
    >>> sel = Selection(store)
    >>> m = sel.invite("p1", "w1", actor="coordinator")
    >>> sel.accept(m["id"], actor="w1")["state"]
    'accepted'
    >>> store.get_node("Problem", "p1")["status"]
    'matched'
    """

    def __init__(
        self,
        store: GraphStore,
        *,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        notify: bool = True,
    ) -> None:
        self.store = store
        self.on_change = on_change
        self._clock = clock or _now
        self._lock = _lock_for(store)
        self._notify = notify

    # -- audit ----------------------------------------------------------------------------------
    def record_recommendations(
        self,
        problem_id: str | None,
        recs: Sequence[Any],
        *,
        actor: str,
        model_version: str,
        query: Mapping[str, Any] | None = None,
    ) -> str:
        """Record that a ranked list was shown; returns the audit event id.

        ``recs`` holds :class:`~recommender.engine.Recommendation` objects (or ``{"worker_id",
        "score"}`` mappings, or ``(worker_id, score)`` pairs); the event keeps them in rank order
        with the query, so the ranking can be reconstructed later.
        """
        now = self._clock()
        ranked = [_rec_pair(r) for r in recs]
        event_id = new_id("A", now)
        self.store.create_node("AuditEvent", event_id, _no_none({
            "at": _iso(now),
            "actor": actor,
            "kind": "recommendations_shown",
            "problem_id": problem_id,
            "model_version": model_version,
            "detail_json": json.dumps({"ranked": ranked, "query": dict(query) if query is not None else None},
                                      ensure_ascii=False, sort_keys=True),
        }))
        return event_id

    def audit(
        self,
        *,
        limit: int = 200,
        offset: int = 0,
        actor: str | None = None,
        kind: str | None = None,
        problem_id: str | None = None,
        match_id: str | None = None,
    ) -> list[dict[str, Any]]:
        """Audit events, newest first, with ``detail`` decoded from ``detail_json``."""
        if limit < 0 or offset < 0:
            raise InvalidSelection("limit and offset must be non-negative")
        where = _no_none({"actor": actor, "kind": kind, "problem_id": problem_id, "match_id": match_id})
        events = self.store.list_nodes("AuditEvent", where=where or None)
        events.sort(key=lambda e: str(e.get("id") or ""), reverse=True)  # ids sort by time
        return [_decode_event(e) for e in events[offset : offset + limit]]

    # -- reads ----------------------------------------------------------------------------------
    def get(self, match_id: str) -> dict[str, Any]:
        """A match row (its properties plus ``history`` decoded); raises :class:`MatchNotFound`."""
        node = self.store.get_node("Match", match_id)
        if node is None:
            raise MatchNotFound(f"match {match_id!r} not found")
        return _decode_match(node)

    def matches(
        self,
        *,
        problem_id: str | None = None,
        worker_id: str | None = None,
        state: str | Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Matches filtered by problem, worker and state (one state or several), oldest first."""
        where = _no_none({"problem_id": problem_id, "worker_id": worker_id,
                          "state": state if isinstance(state, str) else None})
        rows = self.store.list_nodes("Match", where=where or None)
        if state is not None and not isinstance(state, str):
            wanted = set(state)
            rows = [r for r in rows if r.get("state") in wanted]
        return [_decode_match(r) for r in rows]

    def worker_load(self, worker_id: str) -> int:
        """Engagements counted against the worker's monthly capacity.

        Open invitations and accepted matches (whenever they started: they still occupy the
        worker), plus matches invited this month and already completed (so finishing quickly
        does not free the month's budget).
        """
        month = current_month(self._clock())
        matches = self.store.list_nodes("Match", where={"worker_id": worker_id})
        return sum(1 for m in matches if counts_against_capacity(m, month))

    def loads(self) -> dict[str, int]:
        """:meth:`worker_load` of every worker with a non-zero load, in one pass over the matches."""
        month = current_month(self._clock())
        out: dict[str, int] = {}
        for match in self.store.iter_nodes("Match"):
            if counts_against_capacity(match, month):
                worker_id = str(match.get("worker_id"))
                out[worker_id] = out.get(worker_id, 0) + 1
        return out

    def capacity(self, worker_id: str) -> int:
        """The worker's monthly capacity (``capacity`` property, default :data:`DEFAULT_CAPACITY`)."""
        worker = self.store.get_node("Worker", worker_id)
        if worker is None:
            raise UnknownWorker(f"worker {worker_id!r} not found")
        return capacity_of(worker)

    # -- transitions ------------------------------------------------------------------------------
    def suggest(
        self,
        problem_id: str,
        worker_id: str,
        *,
        actor: str,
        model_version: str = "",
        score: float | None = None,
    ) -> dict[str, Any]:
        """Record a shortlisted worker as a ``suggested`` match (idempotent per problem and worker).

        A later :meth:`invite` of the same pair moves this match on instead of creating another.
        """
        with self._lock:
            for attempt in range(ATTEMPTS):
                problem, worker = self._problem(problem_id), self._worker(worker_id)
                for match in self.matches(problem_id=problem_id, worker_id=worker_id):
                    if match["state"] == "suggested":
                        return match
                    if match["state"] in _PENDING_STATES:
                        raise DuplicateInvitation(
                            f"worker {worker_id} already has a {match['state']} match {match['id']} for "
                            f"{problem_id}", current=match["state"], requested="suggested")
                now = self._clock()
                match_id = new_id("M", now)
                props = self._new_match_props(problem, worker, "suggested", now, actor=actor, note="",
                                              model_version=model_version, score=score)

                def check(reader: GraphReader) -> None:
                    # the worker is locked: no other suggestion or invitation of the pair can land meanwhile
                    if any(m.get("state") == "suggested" or m.get("state") in _PENDING_STATES
                           for m in reader.list_nodes("Match", where={"worker_id": worker_id,
                                                                      "problem_id": problem_id})):
                        raise _Stale

                batch = WriteBatch(
                    nodes=[NodeRow("Match", match_id, props),
                           self._event("suggested", now, actor, match_id, props, {"from": None, "to": "suggested"})],
                    expect=[Expect("Worker", worker_id), Expect("Problem", problem_id)], check=check)
                if self._apply(batch, attempt):
                    break
        self._changed()
        return self.get(match_id)

    def invite(
        self,
        problem_id: str,
        worker_id: str,
        *,
        actor: str,
        note: str = "",
        allow_conflict: bool = False,
        override_capacity: bool = False,
        model_version: str | None = None,
        score: float | None = None,
    ) -> dict[str, Any]:
        """Invite a worker to a problem; returns the ``invited`` match row.

        Parameters
        ----------
        allow_conflict
            Invite even if the worker is employed by the enterprise that posted the problem.
        override_capacity
            Invite even if the worker's load has reached their monthly capacity.
        model_version, score
            Which ranking suggested the worker; by default taken from the latest
            ``recommendations_shown`` event of this problem that listed the worker.

        Raises
        ------
        UnknownProblem, UnknownWorker
            If either does not exist.
        IllegalTransition
            If the problem is solved or closed.
        DuplicateInvitation
            If the worker already has an invited or accepted match for this problem.
        ConflictOfInterest, CapacityExceeded, WorkerUnavailable
            Unless overridden (conflict, capacity); inactive workers cannot be invited.
        """
        match_id: str | None = None
        with self._lock:
            for attempt in range(ATTEMPTS):
                match_id = self._try_invite(problem_id, worker_id, actor=actor, note=note,
                                            allow_conflict=allow_conflict, override_capacity=override_capacity,
                                            model_version=model_version, score=score, attempt=attempt)
                if match_id is not None:
                    break
        assert match_id is not None  # the last attempt lands or raises
        self._changed()
        return self.get(match_id)

    def _engagement_checks(self, problem_id: str, worker_id: str, *, requested: str, allow_conflict: bool
                           ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        """What an invitation and a volunteer both require of the problem and the worker, before capacity.

        Returns the problem, the worker and their ``suggested`` match if any; raises when the problem does not
        take new engagements, the worker already has a pending one for it, is inactive, or is employed by the
        enterprise that posted it (unless ``allow_conflict``).
        """
        problem, worker = self._problem(problem_id), self._worker(worker_id)
        status = problem_status(problem)
        if status not in _OPEN_PROBLEM_STATUSES:
            what = "invitations" if requested == "invited" else "volunteers"
            raise IllegalTransition(f"problem {problem_id} is {status}; only open or matched problems "
                                    f"take {what}", current=status, requested=requested)
        suggested = None
        for match in self.matches(problem_id=problem_id, worker_id=worker_id):
            if match["state"] in _PENDING_STATES:
                raise DuplicateInvitation(
                    f"worker {worker_id} already has a {match['state']} match {match['id']} for {problem_id}",
                    current=match["state"], requested=requested)
            if match["state"] == "suggested":
                suggested = match
        if worker.get("active") is False:
            raise WorkerUnavailable(f"worker {worker_id} is inactive")
        employer = worker.get("employer_id")
        if employer and employer == problem.get("enterprise_id") and not allow_conflict:
            hint = " (pass allow_conflict to invite anyway)" if requested == "invited" else ""
            raise ConflictOfInterest(f"worker {worker_id} is employed by {employer}, which posted {problem_id}{hint}")
        return problem, worker, suggested

    def _try_invite(self, problem_id: str, worker_id: str, *, actor: str, note: str, allow_conflict: bool,
                    override_capacity: bool, model_version: str | None, score: float | None,
                    attempt: int) -> str | None:
        """One attempt of :meth:`invite`: the new match's id, or ``None`` to re-read and try again."""
        problem, worker, suggested = self._engagement_checks(problem_id, worker_id, requested="invited",
                                                             allow_conflict=allow_conflict)
        load, capacity = self.worker_load(worker_id), capacity_of(worker)
        if load >= capacity and not override_capacity:
            raise CapacityExceeded(
                f"worker {worker_id} is at capacity: {load} engagement(s) this month, capacity {capacity} "
                "(pass override_capacity to invite anyway)")
        if model_version is None or score is None:
            shown_version, shown_score = self._shown(problem_id, worker_id)
            model_version = shown_version if model_version is None else model_version
            score = shown_score if score is None else score
        now = self._clock()
        month = current_month(now)
        detail = {"from": "suggested" if suggested else None, "to": "invited", "note": note or None,
                  "allow_conflict": allow_conflict or None, "override_capacity": override_capacity or None,
                  "load": load, "capacity": capacity}
        # the worker's row as decided on; the lock on it serialises every invitation of the worker
        expect = [Expect("Worker", worker_id, {k: worker.get(k) for k in ("active", "capacity", "employer_id")}),
                  Expect("Problem", problem_id, {k: problem.get(k) for k in ("status", "enterprise_id")})]
        if suggested is not None:
            match_id = suggested["id"]
            props = {"state": "invited", "updated_at": _iso(now), "invited_at": _iso(now),
                     "invited_by": actor, "note": note,
                     "history_json": self._history(suggested, "invited", now, actor, "")}
            props.update(_no_none({"model_version": model_version or None, "score": score}))
            event_props = {**suggested, **props}
            expect.append(Expect("Match", match_id, {"state": "suggested"}))
        else:
            match_id = new_id("M", now)
            props = self._new_match_props(problem, worker, "invited", now, actor=actor, note=note,
                                          model_version=model_version or "", score=score)
            event_props = props

        def check(reader: GraphReader) -> None:
            # recount under the worker's lock: invitations committed since the read above are visible now
            matches = reader.list_nodes("Match", where={"worker_id": worker_id})
            live = [m for m in matches if m.get("problem_id") == problem_id and m.get("state") in _PENDING_STATES]
            if live:
                raise DuplicateInvitation(
                    f"worker {worker_id} already has a {live[0]['state']} match {live[0]['id']} for {problem_id}",
                    current=str(live[0]["state"]), requested="invited")
            now_load = sum(1 for m in matches if counts_against_capacity(m, month))
            if now_load >= capacity and not override_capacity:
                raise CapacityExceeded(
                    f"worker {worker_id} is at capacity: {now_load} engagement(s) this month, capacity {capacity} "
                    "(pass override_capacity to invite anyway)")
            if now_load != load:
                raise _Stale  # the audit event would record a stale load

        batch = WriteBatch(nodes=[NodeRow("Match", match_id, props),
                                  self._event("invited", now, actor, match_id, event_props, detail)],
                           expect=expect, check=check)
        batch.nodes.extend(self._notes({**event_props, "id": match_id}, "invited", actor, now,
                                       previous="suggested" if suggested else None))
        return match_id if self._apply(batch, attempt) else None

    def accept(self, match_id: str, *, actor: str) -> dict[str, Any]:
        """The worker accepts: ``invited -> accepted``; an open problem becomes ``matched``."""
        return self._transition(match_id, "accepted", actor=actor, from_states=_INVITED)

    def decline(self, match_id: str, *, reason: str, actor: str) -> dict[str, Any]:
        """The worker declines with a reason: ``invited -> declined``."""
        return self._transition(match_id, "declined", actor=actor, reason=_reason(reason), from_states=_INVITED)

    # -- the worker's side: volunteering ----------------------------------------------------------
    def volunteer(self, problem_id: str, worker_id: str, *, actor: str, note: str = "") -> dict[str, Any]:
        r"""The worker volunteers for an open problem (「我想接」): a ``volunteered`` match a coordinator of the
        problem's district then :meth:`confirm`\ s or declines (:meth:`decline_volunteer`).

        A ``suggested`` match of the pair moves on instead of a new one being made. Capacity is not checked
        here (a volunteer does not occupy the worker until confirmed; :meth:`confirm` recounts it).

        Raises
        ------
        UnknownProblem, UnknownWorker
            If either does not exist.
        IllegalTransition
            If the problem is solved or closed.
        DuplicateInvitation
            If the pair already has an invitation, a volunteer or an accepted match.
        WorkerUnavailable, ConflictOfInterest
            An inactive worker, or one employed by the enterprise that posted the problem.
        """
        match_id: str | None = None
        with self._lock:
            for attempt in range(ATTEMPTS):
                match_id = self._try_volunteer(problem_id, worker_id, actor=actor, note=note.strip(), attempt=attempt)
                if match_id is not None:
                    break
        assert match_id is not None  # the last attempt lands or raises
        self._changed()
        return self.get(match_id)

    def _try_volunteer(self, problem_id: str, worker_id: str, *, actor: str, note: str, attempt: int) -> str | None:
        """One attempt of :meth:`volunteer`: the match's id, or ``None`` to re-read and try again."""
        problem, worker, suggested = self._engagement_checks(problem_id, worker_id, requested="volunteered",
                                                             allow_conflict=False)
        now = self._clock()
        expect = [Expect("Worker", worker_id, {k: worker.get(k) for k in ("active", "employer_id")}),
                  Expect("Problem", problem_id, {k: problem.get(k) for k in ("status", "enterprise_id")})]
        if suggested is not None:
            match_id = str(suggested["id"])
            props = {"state": "volunteered", "updated_at": _iso(now), "volunteered_at": _iso(now),
                     "volunteered_by": actor, "note": note,
                     "history_json": self._history(suggested, "volunteered", now, actor, "")}
            event_props = {**suggested, **props}
            expect.append(Expect("Match", match_id, {"state": "suggested"}))
        else:
            match_id = new_id("M", now)
            props = self._new_match_props(problem, worker, "volunteered", now, actor=actor, note=note,
                                          model_version="", score=None)
            props["volunteered_by"] = actor
            event_props = props

        def check(reader: GraphReader) -> None:
            # under the worker's lock: no other invitation or volunteer of the pair landed meanwhile
            if any(m.get("state") in _PENDING_STATES and m["id"] != match_id
                   for m in reader.list_nodes("Match", where={"worker_id": worker_id, "problem_id": problem_id})):
                raise _Stale

        detail = {"from": "suggested" if suggested else None, "to": "volunteered", "note": note or None}
        batch = WriteBatch(nodes=[NodeRow("Match", match_id, props),
                                  self._event("volunteered", now, actor, match_id, event_props, detail)],
                           expect=expect, check=check)
        batch.nodes.extend(self._notes({**event_props, "id": match_id}, "volunteered", actor, now,
                                       previous="suggested" if suggested else None))
        return match_id if self._apply(batch, attempt) else None

    def confirm(self, match_id: str, *, actor: str, allow_conflict: bool = False,
                override_capacity: bool = False) -> dict[str, Any]:
        """A coordinator confirms a volunteer: ``volunteered -> accepted``, with the checks of :meth:`invite`.

        The problem must still be open or matched, the worker active, not employed by the posting enterprise
        (unless ``allow_conflict``) and below capacity (unless ``override_capacity``), the load recounted under
        the worker's lock inside the write, so concurrent confirmations and invitations cannot exceed it.
        Of a confirmation and a decline (or the worker's withdrawal) racing, exactly one commits; the other
        gets :class:`TransitionConflict`.
        """
        with self._lock:
            for attempt in range(ATTEMPTS):
                match = self.get(match_id)
                current = str(match.get("state"))
                if current != "volunteered":
                    raise IllegalTransition(f"match {match_id} is {current}; only a volunteer can be confirmed",
                                            current=current, requested="accepted")
                problem_id, worker_id = str(match["problem_id"]), str(match["worker_id"])
                problem, worker = self._problem(problem_id), self._worker(worker_id)
                status = problem_status(problem)
                if status not in _OPEN_PROBLEM_STATUSES:
                    raise IllegalTransition(f"problem {problem_id} is {status}; it takes no more workers",
                                            current=status, requested="accepted")
                if worker.get("active") is False:
                    raise WorkerUnavailable(f"worker {worker_id} is inactive")
                employer = worker.get("employer_id")
                if employer and employer == problem.get("enterprise_id") and not allow_conflict:
                    raise ConflictOfInterest(f"worker {worker_id} is employed by {employer}, which posted "
                                             f"{problem_id} (pass allow_conflict to confirm anyway)")
                load, capacity = self.worker_load(worker_id), capacity_of(worker)
                if load >= capacity and not override_capacity:
                    raise CapacityExceeded(
                        f"worker {worker_id} is at capacity: {load} engagement(s) this month, capacity {capacity} "
                        "(pass override_capacity to confirm anyway)")
                detail = {"load": load, "capacity": capacity, "allow_conflict": allow_conflict or None,
                          "override_capacity": override_capacity or None}
                batch = self._transition_batch(match, "accepted", actor=actor, reason="", outcome=None,
                                               kind="confirm", extra=detail, match_props={"confirmed_by": actor})
                batch.expect.append(Expect("Worker", worker_id,
                                           {k: worker.get(k) for k in ("active", "capacity", "employer_id")}))
                month = current_month(self._clock())

                def check(reader: GraphReader, worker_id: str = worker_id, load: int = load,
                          capacity: int = capacity, month: str = month) -> None:
                    # recount under the worker's lock: invitations and confirmations committed meanwhile count
                    matches = reader.list_nodes("Match", where={"worker_id": worker_id})
                    now_load = sum(1 for m in matches if counts_against_capacity(m, month))
                    if now_load >= capacity and not override_capacity:
                        raise CapacityExceeded(
                            f"worker {worker_id} is at capacity: {now_load} engagement(s) this month, "
                            f"capacity {capacity} (pass override_capacity to confirm anyway)")
                    if now_load != load:
                        raise _Stale

                batch.check = check
                try:
                    if self._apply(batch, attempt, match_id=match_id):
                        break
                except WriteConflict as err:
                    raise self._lost_race(err, match_id, current, "accepted") from err
        self._changed()
        return self.get(match_id)

    def decline_volunteer(self, match_id: str, *, reason: str, actor: str) -> dict[str, Any]:
        """A coordinator declines a volunteer with a reason the worker sees: ``volunteered -> declined``."""
        return self._transition(match_id, "declined", actor=actor, reason=_reason(reason), from_states=_VOLUNTEERED)

    def withdraw(self, match_id: str, *, actor: str, reason: str = "") -> dict[str, Any]:
        """Either side withdraws an invited or accepted match."""
        return self._transition(match_id, "withdrawn", actor=actor, reason=reason.strip())

    def complete(
        self,
        match_id: str,
        *,
        solved: bool,
        hours: float,
        trainees: int,
        satisfaction: int,
        actor: str,
        note: str = "",
    ) -> dict[str, Any]:
        """Record the outcome of an accepted match: ``accepted -> completed``.

        A solved outcome writes ``SOLVED {rating: satisfaction, hours, trainees, at}``, sets the
        problem ``solved`` (``solved_at`` keeps the first solve), appends the worker to
        ``solved_by``; every outcome (solved or not) is appended to the problem's ``outcomes``.
        An unsolved outcome puts a ``matched`` problem back to ``open`` unless another worker is
        still on it.
        """
        if not isinstance(solved, bool):
            raise InvalidSelection("solved must be true or false")
        if isinstance(hours, bool) or not isinstance(hours, int | float) or not math.isfinite(hours) or hours < 0:
            raise InvalidSelection("hours must be a non-negative number")
        if isinstance(trainees, bool) or not isinstance(trainees, int) or trainees < 0:
            raise InvalidSelection("trainees must be a non-negative integer")
        if isinstance(satisfaction, bool) or not isinstance(satisfaction, int) or not 1 <= satisfaction <= 5:
            raise InvalidSelection("satisfaction must be an integer from 1 to 5")
        outcome = {"solved": solved, "hours": float(hours), "trainees": trainees, "satisfaction": satisfaction}
        return self._transition(match_id, "completed", actor=actor, reason=note.strip(), outcome=outcome)

    # -- internals --------------------------------------------------------------------------------
    def _notes(self, match: Mapping[str, Any], to: str, actor: str, now: datetime, *,
               previous: str | None = None) -> list[NodeRow]:
        """The notifications (and outbox messages) of a step, written in the step's own batch."""
        if not self._notify:
            return []
        return notification_rows(self.store, match, to, actor, now, previous=previous)

    def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change()
        except Exception:  # the write has landed; a failed refresh is retried on the next revision check
            log.exception("on_change callback failed after a selection write")

    def _problem(self, problem_id: str) -> dict[str, Any]:
        problem = self.store.get_node("Problem", problem_id)
        if problem is None:
            raise UnknownProblem(f"problem {problem_id!r} not found")
        return problem

    def _worker(self, worker_id: str) -> dict[str, Any]:
        worker = self.store.get_node("Worker", worker_id)
        if worker is None:
            raise UnknownWorker(f"worker {worker_id!r} not found")
        return worker

    def _shown(self, problem_id: str, worker_id: str) -> tuple[str, float | None]:
        """Model version and score of the latest shown ranking of this problem that listed the worker."""
        for event in reversed(self.store.list_nodes(
                "AuditEvent", where={"kind": "recommendations_shown", "problem_id": problem_id})):
            for wid, score in json.loads(event.get("detail_json") or "{}").get("ranked") or []:
                if wid == worker_id:
                    return str(event.get("model_version") or ""), float(score)
        return "", None

    @staticmethod
    def _history(match: Mapping[str, Any], to: str, now: datetime, actor: str, reason: str) -> str:
        history = json.loads(match.get("history_json") or "[]")
        history.append({"from": match.get("state"), "to": to, "at": _iso(now), "actor": actor,
                        "reason": reason or None})
        return json.dumps(history, ensure_ascii=False)

    def _new_match_props(self, problem: Mapping[str, Any], worker: Mapping[str, Any], state: str,
                         now: datetime, *, actor: str, note: str, model_version: str,
                         score: float | None) -> dict[str, Any]:
        stamp = _iso(now)
        history = [{"from": None, "to": state, "at": stamp, "actor": actor, "reason": None}]
        return _no_none({
            "problem_id": problem["id"],
            "worker_id": worker["id"],
            "state": state,
            "created_at": stamp,
            "updated_at": stamp,
            "created_by": actor,
            f"{state}_at": stamp,
            "invited_by": actor if state == "invited" else None,
            "district": problem.get("district"),
            "note": note,
            "model_version": model_version,
            "score": score,
            "history_json": json.dumps(history, ensure_ascii=False),
        })

    @staticmethod
    def _event(state: str, now: datetime, actor: str, match_id: str, match: Mapping[str, Any],
               detail: Mapping[str, Any], *, kind: str | None = None) -> NodeRow:
        return NodeRow("AuditEvent", new_id("A", now), _no_none({
            "at": _iso(now),
            "actor": actor,
            "kind": kind or _KIND_OF[state],
            "problem_id": match.get("problem_id"),
            "worker_id": match.get("worker_id"),
            "match_id": match_id,
            "model_version": match.get("model_version") or None,
            "detail_json": json.dumps(_no_none(dict(detail)), ensure_ascii=False, sort_keys=True),
        }))

    def _others_accepted(self, problem_id: str, match_id: str) -> bool:
        return any(m["id"] != match_id and m.get("state") == "accepted"
                   for m in self.store.list_nodes("Match", where={"problem_id": problem_id}))

    def _apply(self, batch: WriteBatch, attempt: int, *, match_id: str | None = None) -> bool:
        """Apply a conditional batch: ``True`` when it landed, ``False`` when the caller should re-read and try
        again because something around the step changed; raises once :data:`ATTEMPTS` tries are used up.
        A conflict on the match ``match_id`` itself is not retried: it propagates as :class:`WriteConflict`."""
        try:
            self.store.apply(batch)
        except (WriteConflict, _Stale) as err:
            if isinstance(err, WriteConflict) and err.label == "Match" and err.node_id == match_id:
                raise
            if attempt + 1 < ATTEMPTS:
                log.info("selection write retried after a concurrent change: %s", err or "stale read")
                return False
            raise TransitionConflict(f"the selection step kept conflicting with other writers ({ATTEMPTS} tries): "
                                     f"{err or 'stale read'}", expected=None, current=None, requested=None) from err
        return True

    def _transition(self, match_id: str, to: str, *, actor: str, reason: str = "",
                    outcome: Mapping[str, Any] | None = None,
                    from_states: frozenset[str] | None = None) -> dict[str, Any]:
        with self._lock:
            for attempt in range(ATTEMPTS):
                match = self.get(match_id)  # re-read under the lock: the state may have just changed
                current = str(match.get("state"))
                if to not in TRANSITIONS.get(current, frozenset()) or (
                        from_states is not None and current not in from_states):
                    raise IllegalTransition(f"match {match_id} is {current}; it cannot become {to} this way",
                                            current=current, requested=to)
                batch = self._transition_batch(match, to, actor=actor, reason=reason, outcome=outcome)
                try:
                    if self._apply(batch, attempt, match_id=match_id):
                        break
                except WriteConflict as err:
                    raise self._lost_race(err, match_id, current, to) from err
        self._changed()
        return self.get(match_id)

    @staticmethod
    def _lost_race(err: WriteConflict, match_id: str, current: str, to: str) -> Exception:
        """The error for a conditional write refused because ``match_id`` moved on since it was read."""
        if err.label != "Match" or err.node_id != match_id:
            return err
        if err.actual is None:
            return MatchNotFound(f"match {match_id!r} not found")
        now_state = err.actual.get("state")
        return TransitionConflict(
            f"match {match_id} was {current} when read and is {now_state} now: another request "
            f"changed it first, so it was not made {to}",
            expected=current, current=None if now_state is None else str(now_state), requested=to)

    def _transition_batch(self, match: Mapping[str, Any], to: str, *, actor: str, reason: str,
                          outcome: Mapping[str, Any] | None, kind: str | None = None,
                          extra: Mapping[str, Any] | None = None,
                          match_props: Mapping[str, Any] | None = None) -> WriteBatch:
        """The conditional write of one transition of ``match`` (as read) to ``to``."""
        match_id, current = str(match["id"]), str(match.get("state"))
        now = self._clock()
        stamp = _iso(now)
        props: dict[str, Any] = {"state": to, "updated_at": stamp, f"{to}_at": stamp,
                                 "history_json": self._history(match, to, now, actor, reason)}
        if to in ("declined", "withdrawn") and reason:
            props["reason"] = reason
        if match_props:
            props.update(match_props)
        if kind == "confirm":
            props["confirmed_at"] = stamp
        problem_id = str(match["problem_id"])
        problem = self.store.get_node("Problem", problem_id)
        # the match must still be in the state it was read in; a conflict there is the caller's to see
        batch = WriteBatch(expect=[Expect("Match", match_id, {"state": current})])
        problem_props: dict[str, Any] = {}
        status = problem_status(problem) if problem is not None else None
        others: bool | None = None  # whether another accepted match keeps the problem matched, if that mattered
        if status == "matched" and (to in ("declined", "withdrawn")
                                    or (to == "completed" and outcome is not None and not outcome["solved"])):
            others = self._others_accepted(problem_id, match_id)
        if to == "accepted" and status == "open":
            problem_props["status"] = "matched"
        elif to in ("declined", "withdrawn") and status == "matched" and not others:
            problem_props["status"] = "open"
        detail: dict[str, Any] = {"from": current, "to": to, "reason": reason or None}
        if to == "completed":
            assert outcome is not None
            props.update(outcome)
            if reason:
                props["outcome_note"] = reason
            detail.update(outcome)
            if problem is not None:
                problem_props.update(self._completion(problem, match, outcome, stamp, reason, batch, others))
        if problem is not None:
            # the problem's status and outcomes are read-modify-write: lock it and require what was read
            batch.expect.append(Expect("Problem", problem_id, {k: problem.get(k) for k in _PROBLEM_GUARD}))
            if problem_props:
                batch.nodes.append(NodeRow("Problem", problem_id, problem_props))
        if others is not None:
            def check(reader: GraphReader) -> None:
                accepted = reader.list_nodes("Match", where={"problem_id": problem_id, "state": "accepted"})
                if any(m["id"] != match_id for m in accepted) != others:
                    raise _Stale

            batch.check = check
        batch.nodes.insert(0, NodeRow("Match", match_id, props))
        detail.update(extra or {})
        batch.nodes.append(self._event(to, now, actor, match_id, match, detail, kind=kind))
        batch.nodes.extend(self._notes({**match, **props}, to, actor, now, previous=current))
        return batch

    def _completion(self, problem: Mapping[str, Any], match: Mapping[str, Any], outcome: Mapping[str, Any],
                    stamp: str, note: str, batch: WriteBatch, others: bool | None) -> dict[str, Any]:
        """Problem properties (and the SOLVED relationship, added to ``batch``) for a completion."""
        worker_id = str(match["worker_id"])
        extra = _extra(problem)
        outcomes = problem_outcomes(problem)
        outcomes.append(_no_none({
            "worker_id": worker_id,
            "match_id": match["id"],
            "solved": outcome["solved"],
            "rating": outcome["satisfaction"],
            "hours": outcome["hours"],
            "trainees": outcome["trainees"],
            "at": stamp,
            "note": note or None,
        }))
        extra["outcomes"] = outcomes
        # the same encoding graph.dataset.row_to_props uses, so export and re-load round-trip
        props: dict[str, Any] = {"extra_json": json.dumps(extra, ensure_ascii=False, sort_keys=True)}
        if outcome["solved"]:
            # row_relationships stamps every SOLVED with the row's solved_at: keep the first solve
            solved_at = str(problem.get("solved_at") or stamp)
            solved_by = [str(w) for w in problem.get("solved_by") or []]
            if worker_id not in solved_by:
                solved_by.append(worker_id)
            props.update({"status": "solved", "solved_at": solved_at, "solved_by": solved_by})
            batch.rels.append(RelRow("SOLVED", "Worker", worker_id, "Problem", str(problem["id"]), {
                "rating": outcome["satisfaction"], "hours": outcome["hours"], "trainees": outcome["trainees"],
                "at": solved_at,
            }))
        elif problem_status(problem) == "matched" and not others:
            props["status"] = "open"
        return props
