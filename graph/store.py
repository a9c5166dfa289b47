"""The :class:`GraphStore` interface shared by the embedded and the Neo4j store.

Both implementations pass one contract suite (``tests/test_store_contract.py``). The interface is
deliberately small and generic: nodes are ``(label, id, properties)``, relationships are
``(type, start, end, properties)``; domain rules (what a worker row means) live in
:mod:`graph.dataset` and :mod:`graph.repository`, above the store.

Property values are restricted to what Neo4j can hold: ``str``, ``int``, ``float``, ``bool``,
``None`` and homogeneous lists of those. Nested structures must be JSON-encoded by the caller.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from graph.errors import ConstraintViolation, WriteConflict

__all__ = [
    "FEED_WINDOW",
    "MAX_CHANGES",
    "Change",
    "Expect",
    "GraphReader",
    "GraphStore",
    "NodeRow",
    "Progress",
    "RelRow",
    "WriteBatch",
    "check_expect",
    "check_props",
    "decode_change",
    "encode_change",
]

Progress = Callable[[int], object]
"""Called with the number of rows just written, for progress bars on long writes."""


@dataclass(frozen=True)
class NodeRow:
    """A node to merge: properties given are set, others are kept."""

    label: str
    id: str
    props: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RelRow:
    """A relationship, unique per ``(type, start, end)``."""

    type: str
    start_label: str
    start_id: str
    end_label: str
    end_id: str
    props: Mapping[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """The identity of the relationship."""
        return (self.type, self.start_label, self.start_id, self.end_label, self.end_id)


@dataclass(frozen=True)
class Expect:
    """A precondition of a :class:`WriteBatch`: the node exists and each of ``props`` has the given value.

    ``None`` expects the property to be absent; empty ``props`` only require the node to exist (and lock it).
    """

    label: str
    id: str
    props: Mapping[str, Any] = field(default_factory=dict)


class GraphReader(Protocol):
    """The reads :attr:`WriteBatch.check` may make, inside the write's transaction."""

    def get_node(self, label: str, node_id: str) -> dict[str, Any] | None: ...

    def list_nodes(
        self,
        label: str,
        *,
        where: Mapping[str, Any] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]: ...


def check_expect(expect: Expect, node: Mapping[str, Any] | None) -> None:
    """Raise :class:`~graph.errors.WriteConflict` unless ``node`` (its properties, or ``None``) meets ``expect``.

    Examples
    --------
    >>> check_expect(Expect("Match", "m1", {"state": "invited", "reason": None}), {"id": "m1", "state": "invited"})
    >>> try:
    ...     check_expect(Expect("Match", "m1", {"state": "invited"}), {"id": "m1", "state": "accepted"})
    ... except WriteConflict as err:
    ...     print(err.actual)
    {'state': 'accepted'}
    """
    if node is None:
        raise WriteConflict(expect.label, expect.id, expect.props, None)
    actual = {key: node.get(key) for key in expect.props}
    if actual != dict(expect.props):
        raise WriteConflict(expect.label, expect.id, expect.props, actual)


@dataclass(frozen=True)
class Change:
    """A domain node ``(label, id)`` or a relationship (:attr:`RelRow.key`) touched by a write.

    Exactly one of ``node`` and ``rel`` is set; ``vectors`` marks a vector write on the node.
    """

    node: tuple[str, str] | None = None
    rel: tuple[str, str, str, str, str] | None = None
    vectors: bool = False


#: How many entries each store's change feed keeps (older revisions answer ``changes_since`` with ``None``).
FEED_WINDOW = 1024
#: A write touching more keys than this is recorded in the feed as unlistable.
MAX_CHANGES = 10_000


def encode_change(change: Change) -> list[str]:
    """A :class:`Change` as the JSON list the change feeds store.

    Examples
    --------
    >>> encode_change(Change(node=("Problem", "P1")))
    ['n', 'Problem', 'P1']
    >>> decode_change(encode_change(Change(rel=("SOLVED", "Worker", "W1", "Problem", "P1"))))
    Change(node=None, rel=('SOLVED', 'Worker', 'W1', 'Problem', 'P1'), vectors=False)
    """
    if change.rel is not None:
        return ["r", *change.rel]
    assert change.node is not None
    return ["v" if change.vectors else "n", *change.node]


def decode_change(item: Sequence[str]) -> Change:
    """The :class:`Change` of :func:`encode_change`'s list."""
    if item[0] == "r":
        return Change(rel=(item[1], item[2], item[3], item[4], item[5]))
    return Change(node=(item[1], item[2]), vectors=item[0] == "v")


@dataclass
class WriteBatch:
    """Writes applied atomically by :meth:`GraphStore.apply`: all of them or none.

    Nodes are merged first, then relationships (whose endpoints must exist in the store or in
    the batch), then relationship deletions.

    A batch can be conditional (compare-and-set). In the write's own transaction, before anything is
    written, the store locks every node named in :attr:`expect` (in ``(label, id)`` order, so two batches
    never wait on each other in a cycle) and holds the locks until it commits or rolls back; it then
    compares each node with its expectation, raising :class:`~graph.errors.WriteConflict` on the first
    that fails, and calls :attr:`check` with a reader of the store as it is under those locks. Anything
    ``check`` raises propagates unchanged, and nothing of the batch is written. Writers of a locked node
    wait, so of two batches expecting the same state of one node and changing it, exactly one commits.
    Reads in ``check`` of nodes that are not locked see the latest committed state, which another
    writer may change before this batch commits: lock what the decision depends on.
    """

    nodes: list[NodeRow] = field(default_factory=list)
    rels: list[RelRow] = field(default_factory=list)
    delete_rels: list[RelRow] = field(default_factory=list)
    expect: list[Expect] = field(default_factory=list)
    check: Callable[[GraphReader], None] | None = None

    def __len__(self) -> int:
        return len(self.nodes) + len(self.rels) + len(self.delete_rels)


_SCALARS = (str, int, float, bool)


def check_props(props: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
    """Validate property values against what both stores can hold and return a plain dict.

    Raises
    ------
    ConstraintViolation
        If a value is nested or a list mixes types.

    Examples
    --------
    >>> check_props({"name": "张三", "skills": ["焊接", "PLC"]})
    {'name': '张三', 'skills': ['焊接', 'PLC']}
    """
    out: dict[str, Any] = {}
    for key, value in props.items():
        if not isinstance(key, str) or not key:
            raise ConstraintViolation(f"{where}property names must be non-empty strings")
        if isinstance(value, float) and not math.isfinite(value):
            raise ConstraintViolation(f"{where}property {key!r} must be a finite number, not {value}")
        if value is None or isinstance(value, _SCALARS):
            out[key] = value
        elif isinstance(value, list | tuple):
            kinds = {type(v) for v in value}
            if any(not isinstance(v, _SCALARS) for v in value) or len(kinds - {int, float}) > 1 or (
                len(kinds) > 1 and not kinds <= {int, float}
            ):
                raise ConstraintViolation(f"{where}property {key!r} must be a list of one scalar type")
            if any(isinstance(v, float) and not math.isfinite(v) for v in value):
                raise ConstraintViolation(f"{where}property {key!r} must hold finite numbers only")
            out[key] = list(value)
        else:
            raise ConstraintViolation(f"{where}property {key!r} has unsupported type {type(value).__name__}")
    return out


class GraphStore(ABC):
    """A property graph holding the Jianglian model.

    Implementations must be safe to call from several threads at once (one instance per
    process, shared by request handlers).
    """

    #: ``"memory"`` or ``"neo4j"``.
    kind: str = ""

    # -- life cycle -----------------------------------------------------------------------
    @abstractmethod
    def ensure_schema(self) -> None:
        """Create uniqueness constraints and indexes idempotently."""

    @abstractmethod
    def ping(self) -> None:
        """Raise :class:`~graph.errors.StoreUnavailable` unless the store answers."""

    @abstractmethod
    def close(self) -> None:
        """Release resources (driver, database connections). Idempotent."""

    @property
    @abstractmethod
    def revision(self) -> int:
        """The position of the store's change feed: it moves after every write to the matching graph, by any process.

        The matching graph is the nodes of :data:`graph.model.DOMAIN_LABELS` (workers, skills,
        enterprises, chains, districts, problems), every relationship (all relationship types join
        domain nodes), and vectors stored on domain nodes. Writes that touch only workflow labels
        (``Match``, ``AuditEvent``, ``User``, ``ApiKey``, ``Target``) or store metadata
        (:meth:`set_meta`) leave it unchanged, so caches of the graph (the ranking projection and
        index, embeddings) survive the selection workflow and the audit trail, which write on
        every request; read workflow nodes directly when they must be current (or follow
        :meth:`label_revision`). :meth:`clear` always moves it.

        The feed lives in the database and is written in each write's own transaction: every process
        (web workers, the CLI, a notebook) sees every other's writes here, and the sequence never
        restarts (not after :meth:`clear`, not after a restart), so a cache keyed on
        ``(store_id, revision)`` stays valid across processes. The embedded store reads it from SQLite on
        every call; the Neo4j store answers from what it last read for up to ``REVISION_TTL`` (0.5 s),
        its own writes included at once. :meth:`changes_since` lists what the recent changes touched.
        """

    @property
    @abstractmethod
    def store_id(self) -> str:
        """A random id made once with the database's schema: tells one database from another (a cache saved
        for one database is not used for another)."""

    def label_revision(self, label: str) -> int | None:
        """A durable counter of the writes of nodes of ``label`` (e.g. ``"Match"``), by every process.

        For caches of workflow nodes, which :attr:`revision` ignores: the engine's cache of match
        states re-reads the matches when it moves. ``None`` means the store cannot tell (read the
        nodes each time); both stores answer, from the database (Neo4j within ``REVISION_TTL``).
        The default implementation answers ``None``.
        """
        return None

    def changes_since(self, revision: int) -> list[Change] | None:
        """What the writes after ``revision`` (up to the current :attr:`revision`) touched, oldest first.

        Each :class:`Change` names a domain node or a relationship that was created, updated or
        deleted; read the store for its current state. Read from the durable feed, so it lists other
        processes' writes too. Returns ``[]`` when nothing changed and ``None`` when the store cannot
        tell: a revision it does not know, writes older than the feed keeps (:data:`FEED_WINDOW`
        entries), or a large or unlistable write (a bulk load of more than :data:`MAX_CHANGES` keys,
        :meth:`clear`, deleting a domain node with its relationships in Neo4j), after which a cache
        must be rebuilt from scratch. The default implementation keeps no feed.
        """
        return [] if revision == self.revision else None

    # -- writes ---------------------------------------------------------------------------
    @abstractmethod
    def apply(self, batch: WriteBatch, *, progress: Progress | None = None) -> None:
        """Apply a batch atomically. Raises :class:`ConstraintViolation` and writes nothing on
        a dangling relationship endpoint or an invalid property, :class:`~graph.errors.WriteConflict`
        (or whatever :attr:`WriteBatch.check` raises) and writes nothing when a precondition fails."""

    @abstractmethod
    def create_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        """Create a node; raise :class:`~graph.errors.DuplicateNode` if the id is taken."""

    @abstractmethod
    def update_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        """Set properties (``None`` removes one); raise :class:`~graph.errors.NodeNotFound`."""

    @abstractmethod
    def delete_node(self, label: str, node_id: str) -> None:
        """Delete a node and its relationships; raise :class:`~graph.errors.NodeNotFound`."""

    @abstractmethod
    def clear(self) -> None:
        """Delete everything (tests and fresh evaluation stores only)."""

    @abstractmethod
    def announce_rebuild(self) -> None:
        """Append an unlistable change-feed entry counting every label, and write nothing else.

        Every process's caches of the graph then rebuild: :meth:`changes_since` of any earlier revision answers
        ``None`` and every :meth:`label_revision` moves. For writes made around the store's own methods, such as
        the staged Neo4j bulk load (:mod:`graph.neo4j_load`); :meth:`clear` and the stores' bulk loads do it in
        their own transaction.
        """

    # -- reads ----------------------------------------------------------------------------
    @abstractmethod
    def get_node(self, label: str, node_id: str) -> dict[str, Any] | None:
        """Return the node's properties including ``id``, or ``None``."""

    @abstractmethod
    def list_nodes(
        self,
        label: str,
        *,
        where: Mapping[str, Any] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Nodes of a label ordered by id, filtered by property equality."""

    @abstractmethod
    def count_nodes(self, label: str, *, where: Mapping[str, Any] | None = None) -> int:
        """Number of nodes of a label matching ``where``."""

    @abstractmethod
    def relationships(
        self,
        rel_type: str,
        *,
        start: tuple[str, str] | None = None,
        end: tuple[str, str] | None = None,
    ) -> list[RelRow]:
        """Relationships of a type, optionally restricted to a start and/or end node."""

    @abstractmethod
    def neighbours(self, label: str, node_id: str, *, limit: int = 200) -> list[tuple[RelRow, NodeRow]]:
        """Relationships touching a node (either direction) with the node at the other end."""

    @abstractmethod
    def fulltext(
        self, query: str, *, labels: Sequence[str] | None = None, limit: int = 20
    ) -> list[tuple[str, str, float]]:
        """Full-text search over names, titles and descriptions: ``(label, id, score)``."""

    @abstractmethod
    def counts(self) -> dict[str, int]:
        """Node counts per label and relationship counts per type (zero counts omitted)."""

    # -- vectors and metadata ------------------------------------------------------------
    @abstractmethod
    def write_vectors(self, label: str, key: str, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Store one float32 vector per node under ``key`` (e.g. ``"embedding"``)."""

    @abstractmethod
    def read_vectors(self, label: str, key: str) -> tuple[list[str], np.ndarray]:
        """All stored vectors of a label under ``key``: ids and a ``(n, dim)`` float32 array."""

    @abstractmethod
    def delete_vectors(self, label: str, key: str) -> None:
        """Forget every vector stored under ``key`` (e.g. after a model change)."""

    @abstractmethod
    def vector_query(
        self, label: str, key: str, vector: Sequence[float] | np.ndarray, k: int = 10
    ) -> list[tuple[str, float]]:
        """The ``k`` stored vectors under ``key`` nearest to ``vector``: ``(id, cosine similarity)``, best first.

        Returns ``[]`` when nothing is stored under ``key``; raises ``ValueError`` on a query of the
        wrong dimension. The Neo4j store answers from its (approximate) vector index.
        """

    @abstractmethod
    def get_meta(self, key: str) -> str | None:
        """A small string of store-level metadata (model identity, schema version)."""

    @abstractmethod
    def set_meta(self, key: str, value: str | None) -> None:
        """Set (or remove with ``None``) a metadata value."""

    # -- conveniences built on the primitives --------------------------------------------
    def iter_nodes(self, label: str, *, batch: int = 5000) -> Iterable[dict[str, Any]]:
        """Every node of a label, fetched in pages."""
        offset = 0
        while True:
            page = self.list_nodes(label, offset=offset, limit=batch)
            yield from page
            if len(page) < batch:
                return
            offset += batch

    def __enter__(self) -> GraphStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
