"""A sparse, integer-indexed projection of the matching graph, built once for ranking.

The store answers questions one node at a time; ranking needs the whole graph as matrices. A
:class:`Projection` reads the domain labels and relationships once, gives every node a dense
index per label, and keeps the relationships as edge lists from which sparse matrices
(:meth:`Projection.matrix`) and the symmetric heterogeneous adjacency used by personalised
PageRank (:meth:`Projection.adjacency`) are derived lazily and cached until the next change.

It is updated in place when a problem is posted (:meth:`Projection.add_problem`) or solved
(:meth:`Projection.add_solved`); anything else (a bulk load, a deleted node) calls for a fresh
:meth:`Projection.from_store`, which the recommender does when the store's ``revision`` moves
for a reason it did not see.

Examples
--------
>>> from graph.memory import MemoryStore
>>> store = MemoryStore(None)
>>> _ = store.create_node("Worker", "w1", {"name": "张工"})
>>> proj = Projection.from_store(store)
>>> proj.add_problem("p1", {"title": "主轴异响", "skills": ["数控"]})
0
>>> proj.add_solved("w1", "p1", {"rating": 5})
>>> proj.matrix("SOLVED", "Worker", "Problem").toarray()
array([[1.]], dtype=float32)
"""

from __future__ import annotations

import array
import json
import threading
from collections.abc import Iterable, Iterator, Mapping, MutableMapping, MutableSequence
from dataclasses import dataclass, field
from typing import Any, overload

import numpy as np
import scipy.sparse as sp

from graph.model import DOMAIN_LABELS, REL_ENDPOINTS
from graph.store import GraphStore

__all__ = ["EdgeList", "IntColumn", "Projection", "WALK_RELS", "pair_codes"]

#: Relationship types the random walk follows (employment and mentoring say nothing about expertise).
WALK_RELS: tuple[str, ...] = ("SOLVED", "REQUIRES", "HAS_SKILL", "POSTED", "IN_CHAIN", "LOCATED_IN", "ADJACENT_TO")

EdgeKey = tuple[str, str, str]  # (type, start label, end label)


#: The properties of every edge that has none (one shared object: most edges have none; never mutated).
_NO_PROPS: dict[str, Any] = {}


def _pair(s: int, e: int) -> int:
    """One int for an ``(start, end)`` index pair (a tuple of two ints costs three objects)."""
    return (s << 32) | e


def pair_codes(start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """:func:`_pair` of parallel index arrays (the keys of :attr:`EdgeList.seen`).

    Examples
    --------
    >>> pair_codes(np.array([0, 1]), np.array([2, 3])).tolist() == [_pair(0, 2), _pair(1, 3)]
    True
    """
    return (np.asarray(start, dtype=np.int64) << 32) | np.asarray(end, dtype=np.int64)


class IntColumn(MutableSequence[int]):
    """A growable column of int64: a read-only base array (mapped from the index files) plus appended values.

    What an :class:`EdgeList` read from files keeps instead of a copy of its mapped endpoints: the base is
    shared by every process mapping the files, only what is appended after the load is the process's own.
    ``np.asarray`` of it is the base itself while nothing was appended.

    Examples
    --------
    >>> col = IntColumn(np.array([3, 1], dtype=np.int64))
    >>> col.append(7)
    >>> len(col), col[0], col[2], col[-1], np.asarray(col).tolist()
    (3, 3, 7, 7, [3, 1, 7])
    """

    def __init__(self, base: np.ndarray) -> None:
        self._base = base
        self._n = len(base)
        self._tail = array.array("q")

    def __len__(self) -> int:
        return self._n + len(self._tail)

    @overload
    def __getitem__(self, i: int) -> int: ...

    @overload
    def __getitem__(self, i: slice) -> list[int]: ...

    def __getitem__(self, i: int | slice) -> int | list[int]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(len(self))[i]  # a negative i from the end; IndexError outside
        return int(self._base[i]) if i < self._n else self._tail[i - self._n]

    def __iter__(self) -> Iterator[int]:
        yield from (int(v) for v in self._base)
        yield from self._tail

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        out = np.asarray(self._base) if not self._tail else np.concatenate(
            [self._base, np.frombuffer(self._tail, dtype=np.int64)])
        return out if dtype is None else out.astype(dtype, copy=False)

    def append(self, value: int) -> None:
        self._tail.append(int(value))

    def insert(self, i: int, value: int) -> None:
        if i != len(self):
            raise NotImplementedError("an IntColumn only grows at its end")
        self.append(value)

    @overload
    def __setitem__(self, i: int, value: int) -> None: ...

    @overload
    def __setitem__(self, i: slice, value: Iterable[int]) -> None: ...

    def __setitem__(self, i: Any, value: Any) -> None:
        raise TypeError("an IntColumn's values are read-only (relationships are never moved)")

    def __delitem__(self, i: Any) -> None:
        raise TypeError("an IntColumn's values are read-only (relationships are never removed in place)")


@dataclass
class EdgeList:
    """The relationships of one ``(type, start label, end label)``: parallel index lists plus props.

    Edges without properties share one empty dictionary: treat ``props`` entries as read-only and
    change them through :meth:`add` or :meth:`set_props`.

    An edge list read from the index files finds an edge by binary search in ``sorted_codes`` (its
    :func:`pair_codes`, sorted, with ``sorted_at`` their positions; mapped arrays shared by every process);
    ``seen`` then holds only the edges added since. Built in memory, ``seen`` holds every edge.
    """

    start: MutableSequence[int] = field(default_factory=list)  # a list, or an IntColumn (read from files)
    end: MutableSequence[int] = field(default_factory=list)
    props: list[dict[str, Any]] = field(default_factory=list)
    #: ``_pair(start, end) -> position`` of the edges ``sorted_codes`` does not cover.
    seen: dict[int, int] = field(default_factory=dict)
    sorted_codes: np.ndarray | None = None
    sorted_at: np.ndarray | None = None

    def add(self, s: int, e: int, props: Mapping[str, Any] | None = None) -> None:
        """Add an edge, or merge the properties of an existing one (relationships are unique)."""
        at = self.position(s, e)
        if at is not None:
            if props:
                self.set_props(at, {**self.props[at], **props})
            return
        self.seen[_pair(s, e)] = len(self.start)
        self.start.append(s)
        self.end.append(e)
        self.props.append(dict(props) if props else _NO_PROPS)

    def position(self, s: int, e: int) -> int | None:
        """Where the edge ``s -> e`` is in the parallel lists (``None``: no such edge)."""
        code = _pair(s, e)
        if self.sorted_codes is not None and self.sorted_at is not None:
            i = int(np.searchsorted(self.sorted_codes, code))
            if i < len(self.sorted_codes) and int(self.sorted_codes[i]) == code:
                return int(self.sorted_at[i])
        return self.seen.get(code)

    def set_props(self, at: int, props: Mapping[str, Any] | None) -> None:
        """Replace the properties of the edge at position ``at``."""
        self.props[at] = dict(props) if props else _NO_PROPS

    def __len__(self) -> int:
        return len(self.start)


class Projection:
    """Integer-indexed nodes and sparse relationships of the domain graph.

    Attributes
    ----------
    ids
        Node ids per label, in index order.
    index
        ``label -> {id: index}``.
    props
        Node properties per label, parallel to ``ids`` (the store's rows, ``extra_json`` decoded
        into ``extra``).
    edges
        ``(type, start label, end label) -> EdgeList``.
    revision
        The store revision the projection reflects (``-1`` when built by hand).
    """

    def __init__(self) -> None:
        self.ids: dict[str, list[str]] = {label: [] for label in DOMAIN_LABELS}
        self.index: dict[str, MutableMapping[str, int]] = {label: {} for label in DOMAIN_LABELS}
        self.props: dict[str, list[dict[str, Any]]] = {label: [] for label in DOMAIN_LABELS}
        self.edges: dict[EdgeKey, EdgeList] = {}
        self.revision = -1
        self.version = 0  # bumped on every change; caches of derived matrices compare it
        self._cache: dict[Any, Any] = {}
        self._cache_version = -1
        self._lock = threading.RLock()

    # -- construction -----------------------------------------------------------------------
    @classmethod
    def from_store(cls, store: GraphStore) -> Projection:
        """Read every domain node and relationship of ``store``."""
        revision = store.revision
        proj = cls()
        for label in DOMAIN_LABELS:
            for node in store.iter_nodes(label):
                proj.add_node(label, node["id"], node)
        for rel_type in REL_ENDPOINTS:
            for rel in store.relationships(rel_type):
                if rel.start_label not in proj.index or rel.end_label not in proj.index:
                    continue
                proj.add_edge(rel.type, rel.start_label, rel.start_id, rel.end_label, rel.end_id, rel.props)
        proj.revision = revision
        return proj

    def add_node(self, label: str, node_id: str, props: Mapping[str, Any] | None = None) -> int:
        """Add a node (or merge its properties) and return its index."""
        with self._lock:
            at = self.index[label].get(node_id)
            clean = {k: v for k, v in (props or {}).items() if k != "id"}
            if "extra_json" in clean:
                try:
                    clean["extra"] = json.loads(clean.pop("extra_json") or "{}")
                except ValueError:
                    clean["extra"] = {}
            if at is None:
                at = len(self.ids[label])
                self.index[label][node_id] = at
                self.ids[label].append(node_id)
                self.props[label].append(clean)
            else:  # a new dictionary, not an update in place: rows may be decoded copies (a mapped table)
                self.props[label][at] = {**self.props[label][at], **clean}
            self.version += 1
            return at

    def set_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> int:
        """Add a node or replace all its properties (a property removed in the store goes here too)."""
        with self._lock:
            at = self.index[label].get(node_id)
            if at is not None:
                self.props[label][at] = {}
            return self.add_node(label, node_id, props)

    def set_edge(self, rel_type: str, start_label: str, start_id: str, end_label: str, end_id: str,
                 props: Mapping[str, Any] | None = None) -> None:
        """Add a relationship or replace all its properties."""
        with self._lock:
            self.add_edge(rel_type, start_label, start_id, end_label, end_id)
            edges = self.edges[(rel_type, start_label, end_label)]
            at = edges.position(self.index[start_label][start_id], self.index[end_label][end_id])
            assert at is not None
            edges.set_props(at, props)

    def add_edge(self, rel_type: str, start_label: str, start_id: str, end_label: str, end_id: str,
                 props: Mapping[str, Any] | None = None) -> None:
        """Add a relationship, creating endpoint nodes that are not known yet."""
        with self._lock:
            s = self.index[start_label].get(start_id)
            if s is None:
                s = self.add_node(start_label, start_id, {"name": start_id})
            e = self.index[end_label].get(end_id)
            if e is None:
                e = self.add_node(end_label, end_id, {"name": end_id})
            self.edges.setdefault((rel_type, start_label, end_label), EdgeList()).add(s, e, props)
            self.version += 1

    def add_problem(self, problem_id: str, props: Mapping[str, Any]) -> int:
        """A problem was posted: add it with its ``REQUIRES``, ``POSTED`` and ``LOCATED_IN`` edges.

        ``props`` is the problem row (``skills`` already canonical skill ids).
        """
        with self._lock:
            at = self.add_node("Problem", problem_id, props)
            for skill in dict.fromkeys(props.get("skills") or []):
                self.add_edge("REQUIRES", "Problem", problem_id, "Skill", skill)
            if props.get("enterprise_id"):
                self.add_edge("POSTED", "Enterprise", props["enterprise_id"], "Problem", problem_id)
            if props.get("district"):
                self.add_edge("LOCATED_IN", "Problem", problem_id, "District", props["district"])
            return at

    def add_solved(self, worker_id: str, problem_id: str, props: Mapping[str, Any] | None = None) -> None:
        """A worker solved a problem: add the ``SOLVED`` edge (outcome ``rating``/``hours``/``trainees``/``at``)."""
        self.add_edge("SOLVED", "Worker", worker_id, "Problem", problem_id, props)

    # -- reads ------------------------------------------------------------------------------
    def n(self, label: str) -> int:
        """Number of nodes of a label."""
        return len(self.ids[label])

    def edge_list(self, rel_type: str, start_label: str, end_label: str) -> EdgeList:
        """The edges of one relationship kind (empty if there are none)."""
        return self.edges.get((rel_type, start_label, end_label), EdgeList())

    def has_edge(self, rel_type: str, start_label: str, start_id: str, end_label: str, end_id: str) -> bool:
        """Whether the relationship exists."""
        s = self.index[start_label].get(start_id)
        e = self.index[end_label].get(end_id)
        if s is None or e is None:
            return False
        return self.edge_list(rel_type, start_label, end_label).position(s, e) is not None

    def _cached(self, key: Any, build: Any) -> Any:
        with self._lock:
            if self._cache_version != self.version:
                self._cache.clear()
                self._cache_version = self.version
            if key not in self._cache:
                self._cache[key] = build()
            return self._cache[key]

    def matrix(self, rel_type: str, start_label: str, end_label: str, *, weight: str | None = None) -> sp.csr_matrix:
        """``(n start, n end)`` CSR matrix of a relationship kind; entries are 1 or the ``weight`` property.

        Examples
        --------
        >>> p = Projection()
        >>> p.add_edge("HAS_SKILL", "Worker", "w1", "Skill", "焊接")
        >>> p.matrix("HAS_SKILL", "Worker", "Skill").shape
        (1, 1)
        """

        def build() -> sp.csr_matrix:
            edges = self.edge_list(rel_type, start_label, end_label)
            if weight is None:
                data = np.ones(len(edges), dtype=np.float32)
            else:
                data = np.array([float(p.get(weight) or 0.0) for p in edges.props], dtype=np.float32)
            shape = (self.n(start_label), self.n(end_label))
            m = sp.csr_matrix((data, (np.array(edges.start, dtype=np.int64), np.array(edges.end, dtype=np.int64))),
                              shape=shape, dtype=np.float32)
            m.sum_duplicates()
            return m

        return self._cached(("matrix", rel_type, start_label, end_label, weight), build)

    def offsets(self) -> dict[str, int]:
        """Where each label's block starts in :meth:`adjacency`."""
        out: dict[str, int] = {}
        at = 0
        for label in DOMAIN_LABELS:
            out[label] = at
            at += self.n(label)
        return out

    def adjacency(self, rels: Iterable[str] = WALK_RELS) -> sp.csr_matrix:
        """Symmetric adjacency over all domain nodes (blocks ordered as :data:`graph.model.DOMAIN_LABELS`)."""
        rels = tuple(rels)

        def build() -> sp.csr_matrix:
            off = self.offsets()
            total = sum(self.n(label) for label in DOMAIN_LABELS)
            rows: list[np.ndarray] = []
            cols: list[np.ndarray] = []
            for (rel_type, s_label, e_label), edges in self.edges.items():
                if rel_type not in rels or not len(edges):
                    continue
                s = np.asarray(edges.start, dtype=np.int64) + off[s_label]
                e = np.asarray(edges.end, dtype=np.int64) + off[e_label]
                rows += [s, e]
                cols += [e, s]
            if not rows:
                return sp.csr_matrix((total, total), dtype=np.float32)
            r = np.concatenate(rows)
            c = np.concatenate(cols)
            m = sp.csr_matrix((np.ones(len(r), dtype=np.float32), (r, c)), shape=(total, total))
            m.sum_duplicates()
            m.data[:] = 1.0
            return m

        return self._cached(("adjacency", rels), build)

    def prop(self, label: str, node_id: str, key: str, default: Any = None) -> Any:
        """One property of a node by id."""
        at = self.index[label].get(node_id)
        if at is None:
            return default
        return self.props[label][at].get(key, default)
