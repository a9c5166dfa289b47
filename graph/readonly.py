"""A read-only view of a :class:`~graph.store.GraphStore`: every read goes through, every write raises.

Researchers' notebooks open the served store (the embedded data directory, or Neo4j) while the site runs; the
view makes sure a notebook cannot change the coordinators' data by accident (``demo.research``). A write raises
:class:`~graph.errors.StoreReadOnly` naming the method, before anything reaches the store.

Examples
--------
>>> from graph.memory import MemoryStore
>>> view = ReadOnlyStore(MemoryStore())
>>> view.count_nodes("Worker")
0
>>> try:
...     view.create_node("Worker", "w1", {"name": "王师傅"})
... except StoreReadOnly as err:
...     print(str(err).split(" (")[0])
the research store is read-only: create_node is refused
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from graph.errors import StoreReadOnly
from graph.store import Change, GraphStore, NodeRow, Progress, RelRow, WriteBatch

__all__ = ["ReadOnlyStore", "StoreReadOnly"]

_HINT = "set JIANGLIAN_NOTEBOOK_DATA=demo for a private, writable demo store"


class ReadOnlyStore(GraphStore):
    """Wrap ``store``: reads are delegated, writes raise :class:`~graph.errors.StoreReadOnly`.

    Attributes the interface does not name (``data_dir``, ``database``, ``store_id``...) are read from the
    wrapped store. :meth:`close` closes it.

    Parameters
    ----------
    store
        The store to read.
    hint
        Appended to the error message (what to do instead).
    """

    def __init__(self, store: GraphStore, *, hint: str = _HINT) -> None:
        self._inner = store
        self._hint = hint
        self.kind = store.kind

    @property
    def inner(self) -> GraphStore:
        """The wrapped store."""
        return self._inner

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__") or name in ("_inner", "_hint"):
            raise AttributeError(name)
        return getattr(self._inner, name)

    def _refuse(self, what: str) -> NoReturn:
        raise StoreReadOnly(f"the research store is read-only: {what} is refused ({self._hint})")

    # -- life cycle ---------------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Nothing to do: a read-only view never creates schema (the store it wraps was set up by its owner)."""

    def ping(self) -> None:
        self._inner.ping()

    def close(self) -> None:
        self._inner.close()

    @property
    def revision(self) -> int:
        return self._inner.revision

    @property
    def store_id(self) -> str:
        return str(self._inner.store_id)

    def label_revision(self, label: str) -> int | None:
        return self._inner.label_revision(label)

    def changes_since(self, revision: int) -> list[Change] | None:
        return self._inner.changes_since(revision)

    # -- writes: refused ----------------------------------------------------------------------------
    def apply(self, batch: WriteBatch, *, progress: Progress | None = None) -> None:
        self._refuse("apply")

    def create_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        self._refuse("create_node")

    def update_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        self._refuse("update_node")

    def delete_node(self, label: str, node_id: str) -> None:
        self._refuse("delete_node")

    def clear(self) -> None:
        self._refuse("clear")

    def announce_rebuild(self) -> None:
        self._refuse("announce_rebuild")

    def write_vectors(self, label: str, key: str, ids: Sequence[str], vectors: np.ndarray) -> None:
        self._refuse("write_vectors")

    def delete_vectors(self, label: str, key: str) -> None:
        self._refuse("delete_vectors")

    def set_meta(self, key: str, value: str | None) -> None:
        self._refuse("set_meta")

    # -- reads --------------------------------------------------------------------------------------
    def get_node(self, label: str, node_id: str) -> dict[str, Any] | None:
        return self._inner.get_node(label, node_id)

    def list_nodes(self, label: str, *, where: Mapping[str, Any] | None = None, offset: int = 0,
                   limit: int | None = None) -> list[dict[str, Any]]:
        return self._inner.list_nodes(label, where=where, offset=offset, limit=limit)

    def iter_nodes(self, label: str, *, batch: int = 5000) -> Iterable[dict[str, Any]]:
        return self._inner.iter_nodes(label, batch=batch)

    def count_nodes(self, label: str, *, where: Mapping[str, Any] | None = None) -> int:
        return self._inner.count_nodes(label, where=where)

    def relationships(self, rel_type: str, *, start: tuple[str, str] | None = None,
                      end: tuple[str, str] | None = None) -> list[RelRow]:
        return self._inner.relationships(rel_type, start=start, end=end)

    def neighbours(self, label: str, node_id: str, *, limit: int = 200) -> list[tuple[RelRow, NodeRow]]:
        return self._inner.neighbours(label, node_id, limit=limit)

    def fulltext(self, query: str, *, labels: Sequence[str] | None = None,
                 limit: int = 20) -> list[tuple[str, str, float]]:
        return self._inner.fulltext(query, labels=labels, limit=limit)

    def counts(self) -> dict[str, int]:
        return self._inner.counts()

    def read_vectors(self, label: str, key: str) -> tuple[list[str], np.ndarray]:
        return self._inner.read_vectors(label, key)

    def vector_query(self, label: str, key: str, vector: Sequence[float] | np.ndarray,
                     k: int = 10) -> list[tuple[str, float]]:
        return self._inner.vector_query(label, key, vector, k)

    def get_meta(self, key: str) -> str | None:
        return self._inner.get_meta(key)
