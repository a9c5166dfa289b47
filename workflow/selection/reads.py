"""Reading the two-way selection: matches, a worker's load and capacity, and the audit trail.

:class:`SelectionReads` is the base of :class:`~workflow.selection.Selection`: everything here reads the
store outside any write, except :meth:`~SelectionReads.record_recommendations`, the audit trail's one
unconditional write (a ranked list was shown).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from graph.rules import capacity_of, counts_against_capacity, current_month, new_id
from graph.rules import now as _now
from graph.store import GraphStore
from recommender.errors import UnknownProblem, UnknownWorker
from workflow.errors import InvalidSelection, MatchNotFound
from workflow.selection.rows import decode_event, decode_match, iso, no_none, rec_pair

__all__ = ["SelectionReads"]


class SelectionReads:
    """Matches, loads and the audit trail of a store.

    Parameters
    ----------
    store
        The graph store holding workers, problems, matches and audit events.
    clock
        Returns the current time (an aware datetime); tests inject a fixed clock.
    """

    def __init__(self, store: GraphStore, *, clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self._clock = clock or _now

    # -- matches ----------------------------------------------------------------------------------
    def get(self, match_id: str) -> dict[str, Any]:
        """A match row (its properties plus ``history`` decoded); raises :class:`MatchNotFound`."""
        node = self.store.get_node("Match", match_id)
        if node is None:
            raise MatchNotFound(f"match {match_id!r} not found")
        return decode_match(node)

    def matches(
        self,
        *,
        problem_id: str | None = None,
        worker_id: str | None = None,
        state: str | Sequence[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Matches filtered by problem, worker and state (one state or several), oldest first."""
        where = no_none({"problem_id": problem_id, "worker_id": worker_id,
                         "state": state if isinstance(state, str) else None})
        rows = self.store.list_nodes("Match", where=where or None)
        if state is not None and not isinstance(state, str):
            wanted = set(state)
            rows = [r for r in rows if r.get("state") in wanted]
        return [decode_match(r) for r in rows]

    # -- capacity ---------------------------------------------------------------------------------
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
        return capacity_of(self._worker(worker_id))

    # -- audit trail ------------------------------------------------------------------------------
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
        ranked = [rec_pair(r) for r in recs]
        event_id = new_id("A", now)
        self.store.create_node("AuditEvent", event_id, no_none({
            "at": iso(now),
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
        where = no_none({"actor": actor, "kind": kind, "problem_id": problem_id, "match_id": match_id})
        events = self.store.list_nodes("AuditEvent", where=where or None)
        events.sort(key=lambda e: str(e.get("id") or ""), reverse=True)  # ids sort by time
        return [decode_event(e) for e in events[offset : offset + limit]]

    def _shown(self, problem_id: str, worker_id: str) -> tuple[str, float | None]:
        """Model version and score of the latest shown ranking of this problem that listed the worker."""
        for event in reversed(self.store.list_nodes(
                "AuditEvent", where={"kind": "recommendations_shown", "problem_id": problem_id})):
            for wid, score in json.loads(event.get("detail_json") or "{}").get("ranked") or []:
                if wid == worker_id:
                    return str(event.get("model_version") or ""), float(score)
        return "", None

    # -- the nodes a step is about ----------------------------------------------------------------
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
