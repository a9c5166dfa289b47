"""The conditional writes every selection step shares: locks, retries, lost races and the common checks.

Every write is conditional (:attr:`graph.store.WriteBatch.expect`). A transition commits only if the match is
still in the state it was read in, so of two processes accepting and declining the same invitation exactly
one wins and the other gets :class:`~workflow.errors.TransitionConflict` (:meth:`SelectionSteps._lost_race`).
The write also locks the problem (its status and outcomes are read-modify-write) and an invitation or a
confirmation locks the worker, whose load is recounted against the capacity inside the write's transaction
(:func:`recount_load`), so concurrent steps cannot exceed it. When only the problem or the worker's other
matches changed meanwhile, the step is re-read and retried (up to :data:`ATTEMPTS` times,
:meth:`SelectionSteps._apply`). Within one process a lock shared by every selection on a store instance also
serialises the steps, so threads rarely conflict at all.

:meth:`SelectionSteps._transition` is the one way an existing match moves (accept, decline, withdraw,
complete, confirm); new matches are made by :mod:`workflow.selection.invitations` and
:mod:`workflow.selection.volunteering`.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from graph.errors import WriteConflict
from graph.rules import counts_against_capacity, problem_status
from graph.store import Expect, GraphReader, GraphStore, NodeRow, WriteBatch
from workflow.errors import (
    CapacityExceeded,
    ConflictOfInterest,
    DuplicateInvitation,
    IllegalTransition,
    MatchNotFound,
    TransitionConflict,
    WorkerUnavailable,
)
from workflow.notifications import notification_rows
from workflow.selection.reads import SelectionReads
from workflow.selection.rows import audit_event, completion_props, history_json, iso
from workflow.selection.states import OPEN_PROBLEM_STATUSES, PENDING_STATES, TRANSITIONS

__all__ = ["ATTEMPTS", "SelectionSteps", "Stale", "check_capacity", "guard", "recount_load"]

log = logging.getLogger("workflow.selection")

#: Tries of one step when only what surrounds the match changed meanwhile (the problem, the worker's load).
ATTEMPTS: Final = 5
#: The problem properties a transition reads and rewrites (a compare-and-set guards all of them).
_PROBLEM_GUARD: Final = ("status", "solved_by", "solved_at", "extra_json")


class Stale(Exception):
    """Raised inside a write's transaction when something the step decided on changed: re-read, retry."""


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


def guard(label: str, node_id: str, node: Mapping[str, Any], keys: Iterable[str]) -> Expect:
    """Lock ``node_id`` in the write and require ``keys`` to hold what was read in ``node``."""
    return Expect(label, node_id, {k: node.get(k) for k in keys})


def check_capacity(worker_id: str, load: int, capacity: int, *, override: bool, verb: str) -> None:
    """Raise :class:`CapacityExceeded` when ``load`` has reached ``capacity`` (unless ``override``)."""
    if load >= capacity and not override:
        raise CapacityExceeded(
            f"worker {worker_id} is at capacity: {load} engagement(s) this month, capacity {capacity} "
            f"(pass override_capacity to {verb} anyway)")


def recount_load(matches: Sequence[Mapping[str, Any]], *, worker_id: str, month: str, load: int, capacity: int,
                 override: bool, verb: str) -> None:
    """Inside a write, under the worker's lock: recount the worker's ``matches`` against the capacity.

    Steps committed since the step's read count now; raises :class:`CapacityExceeded`, or :class:`Stale` when
    the load differs from the ``load`` the step recorded (its audit event would be wrong).
    """
    now_load = sum(1 for m in matches if counts_against_capacity(m, month))
    check_capacity(worker_id, now_load, capacity, override=override, verb=verb)
    if now_load != load:
        raise Stale


class SelectionSteps(SelectionReads):
    """Reads plus the conditional-write machinery the steps share (see the module's docstring); the parameters
    are :class:`workflow.selection.Selection`'s."""

    def __init__(
        self,
        store: GraphStore,
        *,
        on_change: Callable[[], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        notify: bool = True,
    ) -> None:
        super().__init__(store, clock=clock)
        self.on_change = on_change
        self._lock = _lock_for(store)
        self._notify = notify

    # -- checks new engagements share ---------------------------------------------------------------
    def _engagement_checks(self, problem_id: str, worker_id: str, *, requested: str, allow_conflict: bool
                           ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
        """What an invitation and a volunteer both require of the problem and the worker, before capacity.

        Returns the problem, the worker and their ``suggested`` match if any; raises when the problem does not
        take new engagements, the worker already has a pending one for it, is inactive, or is employed by the
        enterprise that posted it (unless ``allow_conflict``).
        """
        problem, worker = self._problem(problem_id), self._worker(worker_id)
        status = problem_status(problem)
        if status not in OPEN_PROBLEM_STATUSES:
            what = "invitations" if requested == "invited" else "volunteers"
            raise IllegalTransition(f"problem {problem_id} is {status}; only open or matched problems "
                                    f"take {what}", current=status, requested=requested)
        suggested = None
        for match in self.matches(problem_id=problem_id, worker_id=worker_id):
            if match["state"] in PENDING_STATES:
                raise DuplicateInvitation(
                    f"worker {worker_id} already has a {match['state']} match {match['id']} for {problem_id}",
                    current=match["state"], requested=requested)
            if match["state"] == "suggested":
                suggested = match
        self._worker_checks(problem, worker, allow_conflict=allow_conflict,
                            hint=" (pass allow_conflict to invite anyway)" if requested == "invited" else "")
        return problem, worker, suggested

    @staticmethod
    def _worker_checks(problem: Mapping[str, Any], worker: Mapping[str, Any], *, allow_conflict: bool,
                       hint: str) -> None:
        """The worker must be active and (unless ``allow_conflict``) not employed by the posting enterprise."""
        if worker.get("active") is False:
            raise WorkerUnavailable(f"worker {worker['id']} is inactive")
        employer = worker.get("employer_id")
        if employer and employer == problem.get("enterprise_id") and not allow_conflict:
            raise ConflictOfInterest(f"worker {worker['id']} is employed by {employer}, which posted "
                                     f"{problem['id']}{hint}")

    # -- writing ------------------------------------------------------------------------------------
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

    def _apply(self, batch: WriteBatch, attempt: int, *, match_id: str | None = None) -> bool:
        """Apply a conditional batch: ``True`` when it landed, ``False`` when the caller should re-read and try
        again because something around the step changed; raises once :data:`ATTEMPTS` tries are used up.
        A conflict on the match ``match_id`` itself is not retried: it propagates as :class:`WriteConflict`."""
        try:
            self.store.apply(batch)
        except (WriteConflict, Stale) as err:
            if isinstance(err, WriteConflict) and err.label == "Match" and err.node_id == match_id:
                raise
            if attempt + 1 < ATTEMPTS:
                log.info("selection write retried after a concurrent change: %s", err or "stale read")
                return False
            raise TransitionConflict(f"the selection step kept conflicting with other writers ({ATTEMPTS} tries): "
                                     f"{err or 'stale read'}", expected=None, current=None, requested=None) from err
        return True

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

    def _until_landed(self, attempt_once: Callable[[int], str | None]) -> dict[str, Any]:
        """Run ``attempt_once(attempt)`` under the lock until it returns the id of the match it wrote (``None``:
        something around the step changed, re-read and try again; the last of :data:`ATTEMPTS` lands or raises);
        then call ``on_change`` and return the match as stored."""
        match_id: str | None = None
        with self._lock:
            for attempt in range(ATTEMPTS):
                match_id = attempt_once(attempt)
                if match_id is not None:
                    break
        assert match_id is not None  # the last attempt lands or raises
        self._changed()
        return self.get(match_id)

    # -- moving an existing match -------------------------------------------------------------------
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

    def _others_accepted(self, problem_id: str, match_id: str) -> bool:
        return any(m["id"] != match_id and m.get("state") == "accepted"
                   for m in self.store.list_nodes("Match", where={"problem_id": problem_id}))

    def _transition_batch(self, match: Mapping[str, Any], to: str, *, actor: str, reason: str,
                          outcome: Mapping[str, Any] | None, kind: str | None = None,
                          extra: Mapping[str, Any] | None = None,
                          match_props: Mapping[str, Any] | None = None) -> WriteBatch:
        """The conditional write of one transition of ``match`` (as read) to ``to``."""
        match_id, current = str(match["id"]), str(match.get("state"))
        now = self._clock()
        stamp = iso(now)
        props: dict[str, Any] = {"state": to, "updated_at": stamp, f"{to}_at": stamp,
                                 "history_json": history_json(match, to, now, actor, reason)}
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
                problem_props.update(completion_props(problem, match, outcome, stamp, reason, batch, others))
        if problem is not None:
            # the problem's status and outcomes are read-modify-write: lock it and require what was read
            batch.expect.append(guard("Problem", problem_id, problem, _PROBLEM_GUARD))
            if problem_props:
                batch.nodes.append(NodeRow("Problem", problem_id, problem_props))
        if others is not None:
            def check(reader: GraphReader) -> None:
                accepted = reader.list_nodes("Match", where={"problem_id": problem_id, "state": "accepted"})
                if any(m["id"] != match_id for m in accepted) != others:
                    raise Stale

            batch.check = check
        batch.nodes.insert(0, NodeRow("Match", match_id, props))
        detail.update(extra or {})
        batch.nodes.append(audit_event(to, now, actor, match_id, match, detail, kind=kind))
        batch.nodes.extend(self._notes({**match, **props}, to, actor, now, previous=current))
        return batch
