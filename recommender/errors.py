"""Exceptions raised by the recommender package.

Every error derives from :class:`RecommenderError`, so the web layer can register one handler per
kind (a 404 for :class:`MatchNotFound`, a 409 for :class:`IllegalTransition`, ...) and never a
blanket handler.
"""

from __future__ import annotations

__all__ = [
    "AssignmentError",
    "CapacityExceeded",
    "ConflictOfInterest",
    "DuplicateInvitation",
    "IllegalTransition",
    "MatchNotFound",
    "RecommenderError",
    "SelectionError",
]


class RecommenderError(Exception):
    """Base class of every error raised by :mod:`recommender`."""


# -- two-way selection (recommender.selection) ----------------------------------------------
class SelectionError(RecommenderError):
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


class DuplicateInvitation(IllegalTransition):
    """The worker already has a live (invited or accepted) match for this problem."""


class ConflictOfInterest(SelectionError):
    """The worker is employed by the enterprise that posted the problem."""


class CapacityExceeded(SelectionError):
    """The worker has no capacity left this month (open invitations plus accepted matches)."""


# -- campaign assignment (recommender.assign) -----------------------------------------------
class AssignmentError(RecommenderError, ValueError):
    """Inconsistent assignment inputs (negative capacity, unknown problem district, ...)."""
