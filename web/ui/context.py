"""Where the pages get their collaborators: the one store, the Recommender and the Selection.

``create_app`` keeps them in ``app.extensions["jianglian"]`` (see :mod:`web.extensions`); the pages
never build their own.
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from graph.store import GraphStore

__all__ = ["recommender", "selection", "services", "store"]


def services() -> Any:
    """The app-lifetime services object of :mod:`web.extensions`."""
    return current_app.extensions["jianglian"]


def store() -> GraphStore:
    """The process's one graph store."""
    return services().store


def recommender() -> Any:
    """The process's :class:`recommender.engine.Recommender`."""
    return services().recommender


def selection() -> Any:
    """The process's :class:`workflow.selection.Selection`."""
    return services().selection
