"""Exceptions raised by the campaign workflow (two-way selection and assignment).

Every error derives from :class:`WorkflowError`, so the web layer can register one handler per kind (a 404
for :class:`MatchNotFound`, a 409 for :class:`IllegalTransition`, ...) and never a blanket handler.
"""

from __future__ import annotations

__all__ = [
    "AssignmentError",
    "CapacityExceeded",
    "ConflictOfInterest",
    "DuplicateInvitation",
    "IllegalTransition",
    "InvalidSelection",
    "MatchNotFound",
    "SelectionError",
    "TransitionConflict",
    "WorkerUnavailable",
    "WorkflowError",
]


class WorkflowError(Exception):
    """Base class of every error raised by :mod:`workflow`."""


# -- two-way selection (workflow.selection) ----------------------------------------------
class SelectionError(WorkflowError):
    """A two-way selection request that cannot be carried out."""


class MatchNotFound(SelectionError, KeyError):
    """No match (or no problem/worker a match refers to) with this id exists."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class IllegalTransition(SelectionError):
    """The requested state change is not allowed from the match's current state.

    Attributes
    ----------
    current, requested
        The state the match is in and the state that was asked for.
    """

    def __init__(self, message: str, *, current: str | None = None, requested: str | None = None) -> None:
        super().__init__(message)
        self.current = current
        self.requested = requested


class TransitionConflict(IllegalTransition):
    """Another request changed the match between this one reading it and writing it; nothing was written.

    The other request (another web process, the CLI) answered first: of two requests moving the same
    match from the same state, exactly one commits and the other gets this.

    Attributes
    ----------
    expected
        The state the match was read in.
    current, requested
        The state it has now (``None`` if unknown) and the state that was asked for.
    """

    def __init__(self, message: str, *, expected: str | None, current: str | None,
                 requested: str | None) -> None:
        super().__init__(message, current=current, requested=requested)
        self.expected = expected


class DuplicateInvitation(IllegalTransition):
    """The worker already has a live (invited or accepted) match for this problem."""


class ConflictOfInterest(SelectionError):
    """The worker is employed by the enterprise that posted the problem."""


class CapacityExceeded(SelectionError):
    """The worker has no capacity left this month (open invitations plus accepted matches)."""


class WorkerUnavailable(SelectionError):
    """The worker is inactive (``active`` is false) and cannot be invited."""


class InvalidSelection(SelectionError, ValueError):
    """A malformed selection request: a decline without a reason, an out-of-range outcome."""


# -- campaign assignment (workflow.assign) -----------------------------------------------
class AssignmentError(WorkflowError, ValueError):
    """Inconsistent assignment inputs (negative capacity, unknown problem district, ...)."""
