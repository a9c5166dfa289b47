"""Exceptions raised by the recommender package.

Every error derives from :class:`RecommenderError`, so the web layer can register one handler per
kind (a 404 for :class:`UnknownProblem`, a 422 for :class:`InvalidQuery`, ...) and never a
blanket handler.
"""

from __future__ import annotations

__all__ = [
    "ConvergenceError",
    "InvalidQuery",
    "ModelNotFound",
    "RankingError",
    "RecommenderError",
    "UnknownProblem",
    "UnknownWorker",
]


class RecommenderError(Exception):
    """Base class of every error raised by :mod:`recommender`."""


# -- ranking (recommender.engine, signals, fusion, evaluate) --------------------------------
class RankingError(RecommenderError):
    """A ranking request that cannot be answered."""


class UnknownProblem(RankingError, KeyError):
    """A problem id that is not in the store."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownWorker(RankingError, KeyError):
    """A worker id that is not in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidQuery(RankingError, ValueError):
    """A malformed problem query or contradictory options (e.g. a worker both a candidate and excluded)."""


class ConvergenceError(RankingError, ArithmeticError):
    """An iterative scorer (personalised PageRank) did not converge within its iteration budget."""


class ModelNotFound(RankingError):
    """A saved ranking model is missing or unreadable."""
