"""Where the pages get their collaborators: the one store, the Recommender and the Selection.

``create_app`` keeps them in ``app.extensions["jianglian"]`` (see :mod:`web.extensions`); the pages
never build their own.
"""

from __future__ import annotations

from typing import Any

from graph.store import GraphStore
from web.extensions import get_state

__all__ = ["recommender", "selection", "store"]


def store() -> GraphStore:
    """The process's one graph store."""
    return get_state().store


def recommender() -> Any:
    """The process's :class:`recommender.engine.Recommender`."""
    return get_state().recommender


def selection() -> Any:
    """The process's :class:`workflow.selection.Selection`."""
    return get_state().selection
