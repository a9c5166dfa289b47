"""Ending a match: its outcome (the feedback loop into the ranking) or a withdrawal.

A solved outcome writes ``(Worker)-[:SOLVED {rating, hours, trainees, at}]->(Problem)``, marks the problem
solved and appends the worker to its ``solved_by`` row and the outcome to its ``outcomes`` (kept JSON-encoded
in ``extra_json``, the dataset rule: :func:`workflow.selection.rows.completion_props`), so
:func:`graph.dataset.export_dataset` writes the new history and a re-load derives the same relationships.
"""

from __future__ import annotations

import math
from typing import Any

from workflow.errors import InvalidSelection
from workflow.selection.steps import SelectionSteps

__all__ = ["OutcomeSteps"]


class OutcomeSteps(SelectionSteps):
    """:meth:`complete` an accepted match, or :meth:`withdraw` from an invited or accepted one."""

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
