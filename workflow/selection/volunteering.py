"""The worker's side: volunteering for an open problem (「我想接」), and the coordinator's answer.

``suggested | (none) -> volunteered -> accepted (confirmed) | declined``. A volunteer does not occupy capacity
until it is confirmed; :meth:`VolunteerSteps.confirm` runs an invitation's checks and recounts the load under
the worker's lock inside the write.
"""

from __future__ import annotations

from typing import Any

from graph.errors import WriteConflict
from graph.rules import capacity_of, current_month, new_id, problem_status
from graph.store import Expect, GraphReader, NodeRow, WriteBatch
from workflow.errors import IllegalTransition
from workflow.selection.rows import audit_event, decline_reason, history_json, iso, new_match_props
from workflow.selection.states import OPEN_PROBLEM_STATUSES, PENDING_STATES, VOLUNTEERED
from workflow.selection.steps import ATTEMPTS, SelectionSteps, Stale, check_capacity, guard, recount_load

__all__ = ["VolunteerSteps"]


class VolunteerSteps(SelectionSteps):
    """:meth:`volunteer`, and the coordinator's :meth:`confirm` or :meth:`decline_volunteer`."""

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
        return self._until_landed(lambda attempt: self._try_volunteer(problem_id, worker_id, actor=actor,
                                                                      note=note.strip(), attempt=attempt))

    def _try_volunteer(self, problem_id: str, worker_id: str, *, actor: str, note: str, attempt: int) -> str | None:
        """One attempt of :meth:`volunteer`: the match's id, or ``None`` to re-read and try again."""
        problem, worker, suggested = self._engagement_checks(problem_id, worker_id, requested="volunteered",
                                                             allow_conflict=False)
        now = self._clock()
        expect = [guard("Worker", worker_id, worker, ("active", "employer_id")),
                  guard("Problem", problem_id, problem, ("status", "enterprise_id"))]
        if suggested is not None:
            match_id = str(suggested["id"])
            props = {"state": "volunteered", "updated_at": iso(now), "volunteered_at": iso(now),
                     "volunteered_by": actor, "note": note,
                     "history_json": history_json(suggested, "volunteered", now, actor, "")}
            event_props = {**suggested, **props}
            expect.append(Expect("Match", match_id, {"state": "suggested"}))
        else:
            match_id = new_id("M", now)
            props = new_match_props(problem, worker, "volunteered", now, actor=actor, note=note,
                                    model_version="", score=None)
            props["volunteered_by"] = actor
            event_props = props

        def check(reader: GraphReader) -> None:
            # under the worker's lock: no other invitation or volunteer of the pair landed meanwhile
            if any(m.get("state") in PENDING_STATES and m["id"] != match_id
                   for m in reader.list_nodes("Match", where={"worker_id": worker_id, "problem_id": problem_id})):
                raise Stale

        detail = {"from": "suggested" if suggested else None, "to": "volunteered", "note": note or None}
        batch = WriteBatch(nodes=[NodeRow("Match", match_id, props),
                                  audit_event("volunteered", now, actor, match_id, event_props, detail)],
                           expect=expect, check=check)
        batch.nodes.extend(self._notes({**event_props, "id": match_id}, "volunteered", actor, now,
                                       previous="suggested" if suggested else None))
        return match_id if self._apply(batch, attempt) else None

    def confirm(self, match_id: str, *, actor: str, allow_conflict: bool = False,
                override_capacity: bool = False, reason: str = "") -> dict[str, Any]:
        """A coordinator confirms a volunteer: ``volunteered -> accepted``, with the checks of an invitation.

        The problem must still be open or matched, the worker active, not employed by the posting enterprise
        (unless ``allow_conflict``) and below capacity (unless ``override_capacity``), the load recounted under
        the worker's lock inside the write, so concurrent confirmations and invitations cannot exceed it.
        Of a confirmation and a decline (or the worker's withdrawal) racing, exactly one commits; the other
        gets :class:`TransitionConflict`. ``reason`` (why an override was needed) goes into the match's
        history and the audit event.
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
                if status not in OPEN_PROBLEM_STATUSES:
                    raise IllegalTransition(f"problem {problem_id} is {status}; it takes no more workers",
                                            current=status, requested="accepted")
                self._worker_checks(problem, worker, allow_conflict=allow_conflict,
                                    hint=" (pass allow_conflict to confirm anyway)")
                load, capacity = self.worker_load(worker_id), capacity_of(worker)
                check_capacity(worker_id, load, capacity, override=override_capacity, verb="confirm")
                detail = {"load": load, "capacity": capacity, "allow_conflict": allow_conflict or None,
                          "override_capacity": override_capacity or None}
                batch = self._transition_batch(match, "accepted", actor=actor, reason=reason.strip(), outcome=None,
                                               kind="confirm", extra=detail, match_props={"confirmed_by": actor})
                batch.expect.append(guard("Worker", worker_id, worker, ("active", "capacity", "employer_id")))
                month = current_month(self._clock())

                def check(reader: GraphReader, worker_id: str = worker_id, load: int = load,
                          capacity: int = capacity, month: str = month) -> None:
                    # recount under the worker's lock: invitations and confirmations committed meanwhile count
                    recount_load(reader.list_nodes("Match", where={"worker_id": worker_id}), worker_id=worker_id,
                                 month=month, load=load, capacity=capacity, override=override_capacity,
                                 verb="confirm")

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
        return self._transition(match_id, "declined", actor=actor, reason=decline_reason(reason),
                                from_states=VOLUNTEERED)
