"""Exceptions raised by the graph package.

Driver and file-system errors are translated into these at the package boundary so that callers
(the recommender, the web layer) never see a ``neo4j`` or ``OSError`` exception type.
"""

from __future__ import annotations

__all__ = [
    "ConstraintViolation",
    "DatasetError",
    "DuplicateNode",
    "GraphError",
    "NodeNotFound",
    "RowError",
    "StoreFull",
    "StoreLocked",
    "StoreNeedsRestart",
    "StoreReadOnly",
    "StoreUnavailable",
    "UnknownLabel",
    "WriteConflict",
]

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from graph.schema import Issue


class GraphError(Exception):
    """Base class of every error raised by :mod:`graph`."""


class StoreUnavailable(GraphError):
    """The backing store cannot be reached (Neo4j down, data directory unreadable)."""


class StoreFull(StoreUnavailable):
    """The store's disk is full (or over quota): writes are refused until space is freed.

    Attributes
    ----------
    restart_needed : bool
        ``False`` for the embedded store: reads still work, and writes resume by themselves once there is
        room. ``True`` for Neo4j, which stops serving anything (reads included) when it cannot write to its
        disk, until it is restarted with room on its disk.
    maybe_saved : bool
        The failed write may still be there after a restart (Neo4j had logged it before it failed to apply
        it to its store files; its recovery applies it). ``False``: it was not saved.
    """

    def __init__(self, message: str = "", *, restart_needed: bool = False, maybe_saved: bool = False) -> None:
        super().__init__(message)
        self.restart_needed = restart_needed
        self.maybe_saved = maybe_saved


class StoreNeedsRestart(StoreUnavailable):
    """The database server stopped serving after a critical error of its own and must be restarted."""


class StoreLocked(GraphError):
    """A store refused this process because another one holds it.

    No store raises it now: the embedded store (SQLite) admits any number of processes on one data directory.
    Kept for the callers that catch it (``jianglian serve`` serves such a store with one worker).
    """


class StoreReadOnly(GraphError):
    """A write was attempted through a read-only view of a store (:class:`graph.readonly.ReadOnlyStore`)."""


class UnknownLabel(GraphError, ValueError):
    """A label or relationship type outside the model's whitelist was requested."""


class ConstraintViolation(GraphError):
    """A write broke a model constraint (uniqueness, missing endpoint, wrong property type)."""


class DuplicateNode(ConstraintViolation):
    """A node with the same label and id already exists."""

    def __init__(self, label: str, node_id: str) -> None:
        super().__init__(f"{label} {node_id!r} already exists")
        self.label = label
        self.node_id = node_id


class WriteConflict(GraphError):
    """A conditional write found a node other than it expected (:attr:`graph.store.WriteBatch.expect`).

    Another writer got there first; nothing of the batch was written.

    Attributes
    ----------
    label, node_id
        The node whose expectation failed.
    expected
        The properties the write expected.
    actual
        Those properties as the store holds them now, or ``None`` when the node does not exist.
    """

    def __init__(self, label: str, node_id: str, expected: Mapping[str, Any],
                 actual: Mapping[str, Any] | None) -> None:
        now = "it does not exist" if actual is None else f"it has {dict(actual)!r}"
        super().__init__(f"{label} {node_id!r} changed meanwhile: expected {dict(expected)!r}, {now}")
        self.label = label
        self.node_id = node_id
        self.expected = dict(expected)
        self.actual = None if actual is None else dict(actual)


class NodeNotFound(GraphError, KeyError):
    """No node with this label and id exists."""

    def __init__(self, label: str, node_id: str) -> None:
        super().__init__(f"{label} {node_id!r} not found")
        self.label = label
        self.node_id = node_id

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass(frozen=True)
class RowError:
    """One bad row of a dataset file: ``file:line: reason``.

    ``reason`` is English (the command line's); ``issue`` is the same problem as a code with parameters
    (a :class:`graph.schema.Issue`), which the web renders in the reader's language.
    """

    file: str
    line: int
    reason: str
    issue: Issue | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


class DatasetError(GraphError):
    """A dataset failed validation; ``errors`` lists every bad row."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors
        head = "\n".join(str(e) for e in errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        super().__init__(f"{len(errors)} invalid row(s):\n{head}{more}")
