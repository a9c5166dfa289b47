"""The coordinator's side: suggesting and inviting a worker, and the worker's answer to an invitation.

``suggested -> invited -> accepted | declined``; an invitation moves a ``suggested`` match of the pair on
instead of making a second one. Capacity is recounted under the worker's lock inside the write
(:func:`workflow.selection.steps.recount_load`).
"""

from __future__ import annotations

from typing import Any

from graph.rules import capacity_of, current_month, new_id
from graph.store import Expect, GraphReader, NodeRow, WriteBatch
from workflow.errors import DuplicateInvitation
from workflow.selection.rows import audit_event, decline_reason, history_json, iso, new_match_props, no_none
from workflow.selection.states import INVITED, PENDING_STATES
from workflow.selection.steps import ATTEMPTS, SelectionSteps, Stale, check_capacity, guard, recount_load

__all__ = ["InvitationSteps"]


class InvitationSteps(SelectionSteps):
    """:meth:`suggest`, :meth:`invite`, and the worker's :meth:`accept` or :meth:`decline`."""

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
                    if match["state"] in PENDING_STATES:
                        raise DuplicateInvitation(
                            f"worker {worker_id} already has a {match['state']} match {match['id']} for "
                            f"{problem_id}", current=match["state"], requested="suggested")
                now = self._clock()
                match_id = new_id("M", now)
                props = new_match_props(problem, worker, "suggested", now, actor=actor, note="",
                                        model_version=model_version, score=score)

                def check(reader: GraphReader) -> None:
                    # the worker is locked: no other suggestion or invitation of the pair can land meanwhile
                    if any(m.get("state") == "suggested" or m.get("state") in PENDING_STATES
                           for m in reader.list_nodes("Match", where={"worker_id": worker_id,
                                                                      "problem_id": problem_id})):
                        raise Stale

                batch = WriteBatch(
                    nodes=[NodeRow("Match", match_id, props),
                           audit_event("suggested", now, actor, match_id, props, {"from": None, "to": "suggested"})],
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
        return self._until_landed(lambda attempt: self._try_invite(
            problem_id, worker_id, actor=actor, note=note, allow_conflict=allow_conflict,
            override_capacity=override_capacity, model_version=model_version, score=score, attempt=attempt))

    def _try_invite(self, problem_id: str, worker_id: str, *, actor: str, note: str, allow_conflict: bool,
                    override_capacity: bool, model_version: str | None, score: float | None,
                    attempt: int) -> str | None:
        """One attempt of :meth:`invite`: the new match's id, or ``None`` to re-read and try again."""
        problem, worker, suggested = self._engagement_checks(problem_id, worker_id, requested="invited",
                                                             allow_conflict=allow_conflict)
        load, capacity = self.worker_load(worker_id), capacity_of(worker)
        check_capacity(worker_id, load, capacity, override=override_capacity, verb="invite")
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
        expect = [guard("Worker", worker_id, worker, ("active", "capacity", "employer_id")),
                  guard("Problem", problem_id, problem, ("status", "enterprise_id"))]
        if suggested is not None:
            match_id = suggested["id"]
            props = {"state": "invited", "updated_at": iso(now), "invited_at": iso(now),
                     "invited_by": actor, "note": note,
                     "history_json": history_json(suggested, "invited", now, actor, "")}
            props.update(no_none({"model_version": model_version or None, "score": score}))
            event_props = {**suggested, **props}
            expect.append(Expect("Match", match_id, {"state": "suggested"}))
        else:
            match_id = new_id("M", now)
            props = new_match_props(problem, worker, "invited", now, actor=actor, note=note,
                                    model_version=model_version or "", score=score)
            event_props = props

        def check(reader: GraphReader) -> None:
            # recount under the worker's lock: invitations committed since the read above are visible now
            matches = reader.list_nodes("Match", where={"worker_id": worker_id})
            live = [m for m in matches if m.get("problem_id") == problem_id and m.get("state") in PENDING_STATES]
            if live:
                raise DuplicateInvitation(
                    f"worker {worker_id} already has a {live[0]['state']} match {live[0]['id']} for {problem_id}",
                    current=str(live[0]["state"]), requested="invited")
            # a changed load would make the audit event record a stale one: re-read
            recount_load(matches, worker_id=worker_id, month=month, load=load, capacity=capacity,
                         override=override_capacity, verb="invite")

        batch = WriteBatch(nodes=[NodeRow("Match", match_id, props),
                                  audit_event("invited", now, actor, match_id, event_props, detail)],
                           expect=expect, check=check)
        batch.nodes.extend(self._notes({**event_props, "id": match_id}, "invited", actor, now,
                                       previous="suggested" if suggested else None))
        return match_id if self._apply(batch, attempt) else None

    def accept(self, match_id: str, *, actor: str) -> dict[str, Any]:
        """The worker accepts: ``invited -> accepted``; an open problem becomes ``matched``."""
        return self._transition(match_id, "accepted", actor=actor, from_states=INVITED)

    def decline(self, match_id: str, *, reason: str, actor: str) -> dict[str, Any]:
        """The worker declines with a reason: ``invited -> declined``."""
        return self._transition(match_id, "declined", actor=actor, reason=decline_reason(reason),
                                from_states=INVITED)
