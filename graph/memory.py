"""The embedded default store: an in-process graph persisted to a data directory.

Nodes live in per-label dictionaries and relationships in a :class:`networkx.MultiDiGraph`-free
index of our own (two dictionaries keyed by node), which is what the projection and the
neighbour queries need; :meth:`MemoryStore.to_networkx` gives researchers a networkx view.

Durability: every write is followed by an atomic save (write ``graph.json.tmp``, fsync, rename),
so a crash in the middle of a save leaves the previous state intact. A lock file held with
``flock`` refuses a second process on the same data directory.
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any

import networkx as nx
import numpy as np

from graph.errors import (
    ConstraintViolation,
    DuplicateNode,
    NodeNotFound,
    StoreLocked,
    StoreUnavailable,
    UnknownLabel,
)
from graph.model import DOMAIN_LABELS, FULLTEXT_PROPERTIES, LABELS, REL_ENDPOINTS, check_label, check_rel
from graph.store import Change, ChangeJournal, GraphStore, NodeRow, Progress, RelRow, WriteBatch, check_props

__all__ = ["MemoryStore"]

_FORMAT = 1
NodeKey = tuple[str, str]
RelKey = tuple[str, str, str, str, str]


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same directory, fsync it, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


class MemoryStore(GraphStore):
    """The embedded store.

    Parameters
    ----------
    data_dir
        Directory holding ``graph.json``, the vectors and the lock file; ``None`` keeps
        everything in memory only (tests, evaluation).
    """

    kind = "memory"

    def __init__(self, data_dir: str | os.PathLike[str] | None = None) -> None:
        self._lock = threading.RLock()
        self._nodes: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._rels: dict[RelKey, dict[str, Any]] = {}
        self._out: dict[NodeKey, set[RelKey]] = defaultdict(set)
        self._in: dict[NodeKey, set[RelKey]] = defaultdict(set)
        self._vectors: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._meta: dict[str, str] = {}
        self._revision = 0
        self._journal = ChangeJournal()
        self._label_revisions: dict[str, int] = defaultdict(int)
        self._closed = False
        self._lock_file: IO[bytes] | None = None
        self._dir = Path(data_dir) if data_dir is not None else None
        if self._dir is not None:
            self._open_dir(self._dir)

    # -- persistence ----------------------------------------------------------------------
    def _open_dir(self, data_dir: Path) -> None:
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
            lock_file = open(data_dir / "store.lock", "wb")  # noqa: SIM115 - held for the store's life
        except OSError as err:
            raise StoreUnavailable(f"cannot open data directory {data_dir}: {err}") from err
        try:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            lock_file.close()
            raise StoreLocked(
                f"data directory {data_dir} is in use by another Jianglian process; "
                "stop it or set JIANGLIAN_DATA_DIR to another directory"
            ) from err
        self._lock_file = lock_file
        self._load()

    def _load(self) -> None:
        assert self._dir is not None
        path = self._dir / "graph.json"
        if path.exists():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError) as err:
                raise StoreUnavailable(f"cannot read {path}: {err}") from err
            for label, nodes in doc.get("nodes", {}).items():
                self._nodes[label] = nodes
            for item in doc.get("rels", []):
                rel_key: RelKey = tuple(item[:5])  # type: ignore[assignment]
                self._index_rel(rel_key, item[5])
            self._meta = dict(doc.get("meta", {}))
        vec_dir = self._dir / "vectors"
        if vec_dir.is_dir():
            for file in vec_dir.glob("*.npz"):
                vec_label, _, vec_key = file.stem.partition("__")
                with np.load(file, allow_pickle=False) as data:
                    ids = [str(i) for i in data["ids"]]
                    vecs = data["vectors"].astype(np.float32)
                self._vectors[(vec_label, vec_key)] = dict(zip(ids, vecs, strict=True))

    def _save_graph(self) -> None:
        if self._dir is None:
            return
        doc = {
            "format": _FORMAT,
            "nodes": self._nodes,
            "rels": [[*key, props] for key, props in self._rels.items()],
            "meta": self._meta,
        }

        def write(fh: IO[bytes]) -> None:
            fh.write(json.dumps(doc, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))

        try:
            _atomic_write(self._dir / "graph.json", write)
        except OSError as err:
            raise StoreUnavailable(f"cannot save to {self._dir}: {err}") from err

    def _save_vectors(self, label: str, key: str) -> None:
        if self._dir is None:
            return
        vec_dir = self._dir / "vectors"
        vec_dir.mkdir(exist_ok=True)
        path = vec_dir / f"{label}__{key}.npz"
        store = self._vectors.get((label, key))
        if not store:
            path.unlink(missing_ok=True)
            return
        ids = np.array(list(store), dtype=str)
        vecs = np.stack(list(store.values())).astype(np.float32)

        def write(fh: IO[bytes]) -> None:
            np.savez(fh, ids=ids, vectors=vecs)

        _atomic_write(path, write)

    def _committed(self, changes: list[Change] | None, *, graph: bool = True, labels: Iterable[str] = ()) -> None:
        """Persist a write; ``changes`` are the domain keys it touched (``[]``: none, ``None``: unlistable),
        ``labels`` the labels of the nodes it wrote."""
        for label in set(labels):
            self._label_revisions[label] += 1
        if changes is None or changes:
            self._revision += 1
            self._journal.record(self._revision, changes)
        if graph:
            self._save_graph()

    # -- helpers --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")

    def _index_rel(self, key: RelKey, props: dict[str, Any]) -> None:
        self._rels[key] = props
        self._out[(key[1], key[2])].add(key)
        self._in[(key[3], key[4])].add(key)

    def _unindex_rel(self, key: RelKey) -> None:
        self._rels.pop(key, None)
        self._out[(key[1], key[2])].discard(key)
        self._in[(key[3], key[4])].discard(key)

    def _node_out(self, label: str, node_id: str) -> dict[str, Any]:
        props = dict(self._nodes[label][node_id])
        props["id"] = node_id
        return props

    @staticmethod
    def _matches(node_id: str, props: Mapping[str, Any], where: Mapping[str, Any] | None) -> bool:
        return not where or all((node_id if k == "id" else props.get(k)) == v for k, v in where.items())

    # -- life cycle -----------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Nothing to create: uniqueness is enforced by the dictionaries themselves."""
        self._check_open()

    def ping(self) -> None:
        self._check_open()
        if self._dir is not None and not self._dir.is_dir():
            raise StoreUnavailable(f"data directory {self._dir} has gone")

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._lock_file is not None:
                fcntl.flock(self._lock_file.fileno(), fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None

    @property
    def revision(self) -> int:
        return self._revision

    def label_revision(self, label: str) -> int | None:
        check_label(label)
        with self._lock:
            return self._label_revisions[label]

    def changes_since(self, revision: int) -> list[Change] | None:
        with self._lock:
            return self._journal.since(revision, self._revision)

    @property
    def data_dir(self) -> Path | None:
        """The directory this store persists to, if any."""
        return self._dir

    # -- writes ---------------------------------------------------------------------------
    def apply(self, batch: WriteBatch, *, progress: Progress | None = None) -> None:
        with self._lock:
            self._check_open()
            nodes = [(check_label(n.label), n.id, check_props(n.props, where=f"{n.label} {n.id}: "))
                     for n in batch.nodes]
            pending = {(label, node_id) for label, node_id, _ in nodes}
            rels = []
            for r in batch.rels:
                check_rel(r.type, r.start_label, r.end_label)
                for end in ((r.start_label, r.start_id), (r.end_label, r.end_id)):
                    if end not in pending and end[1] not in self._nodes[end[0]]:
                        raise ConstraintViolation(f"{r.type}: {end[0]} {end[1]!r} does not exist")
                rels.append((r.key, check_props(r.props, where=f"{r.type}: ")))
            # validated: from here on nothing can fail half-way
            for i, (label, node_id, props) in enumerate(nodes, 1):
                current = self._nodes[label].setdefault(node_id, {})
                for name, value in props.items():
                    if name == "id":
                        continue
                    if value is None:  # as in update_node (and Neo4j's SET +=): None removes
                        current.pop(name, None)
                    else:
                        current[name] = value
                if progress and i % 1000 == 0:
                    progress(1000)
            if progress and len(nodes) % 1000:
                progress(len(nodes) % 1000)
            for key, props in rels:
                merged = dict(self._rels.get(key, {}))
                merged.update(props)
                self._index_rel(key, {k: v for k, v in merged.items() if v is not None})
            if progress and rels:
                progress(len(rels))
            for r in batch.delete_rels:
                self._unindex_rel(r.key)
            changes: list[Change] | None = None
            if len(batch) <= self._journal.max_changes:  # a bulk load is not worth listing
                changes = [Change(node=(label, node_id)) for label, node_id, _ in nodes if label in DOMAIN_LABELS]
                changes += [Change(rel=key) for key, _ in rels]
                changes += [Change(rel=r.key) for r in batch.delete_rels]
            elif not rels and not batch.delete_rels and all(label not in DOMAIN_LABELS for label, _, _ in nodes):
                changes = []
            self._committed(changes, labels=[label for label, _, _ in nodes])

    def create_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        check_label(label)
        clean = check_props(props)
        clean.pop("id", None)
        with self._lock:
            self._check_open()
            if node_id in self._nodes[label]:
                raise DuplicateNode(label, node_id)
            self._nodes[label][node_id] = {k: v for k, v in clean.items() if v is not None}
            self._committed([Change(node=(label, node_id))] if label in DOMAIN_LABELS else [], labels=[label])
            return self._node_out(label, node_id)

    def update_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        check_label(label)
        clean = check_props(props)
        clean.pop("id", None)
        with self._lock:
            self._check_open()
            current = self._nodes[label].get(node_id)
            if current is None:
                raise NodeNotFound(label, node_id)
            for key, value in clean.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            self._committed([Change(node=(label, node_id))] if label in DOMAIN_LABELS else [], labels=[label])
            return self._node_out(label, node_id)

    def delete_node(self, label: str, node_id: str) -> None:
        check_label(label)
        with self._lock:
            self._check_open()
            if node_id not in self._nodes[label]:
                raise NodeNotFound(label, node_id)
            node = (label, node_id)
            detached = list(self._out.pop(node, set()) | self._in.pop(node, set()))
            for key in detached:
                self._unindex_rel(key)
            del self._nodes[label][node_id]
            for (vec_label, vec_key), vecs in self._vectors.items():
                if vec_label == label and vecs.pop(node_id, None) is not None:
                    self._save_vectors(vec_label, vec_key)
            changes = [Change(rel=key) for key in detached]
            if label in DOMAIN_LABELS:
                changes.append(Change(node=node))
            self._committed(changes, labels=[label])

    def clear(self) -> None:
        with self._lock:
            self._check_open()
            self._nodes.clear()
            self._rels.clear()
            self._out.clear()
            self._in.clear()
            for label, key in list(self._vectors):
                self._vectors[(label, key)] = {}
                self._save_vectors(label, key)
            self._vectors.clear()
            self._meta.clear()
            self._committed(None, labels=LABELS)

    # -- reads ----------------------------------------------------------------------------
    def get_node(self, label: str, node_id: str) -> dict[str, Any] | None:
        check_label(label)
        with self._lock:
            self._check_open()
            if node_id not in self._nodes[label]:
                return None
            return copy.deepcopy(self._node_out(label, node_id))

    def list_nodes(
        self,
        label: str,
        *,
        where: Mapping[str, Any] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        check_label(label)
        if offset < 0 or (limit is not None and limit < 0):
            raise ValueError("offset and limit must be non-negative")
        with self._lock:
            self._check_open()
            ids = sorted(i for i, p in self._nodes[label].items() if self._matches(i, p, where))
            end = None if limit is None else offset + limit
            return [copy.deepcopy(self._node_out(label, i)) for i in ids[offset:end]]

    def iter_nodes(self, label: str, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
        check_label(label)
        with self._lock:
            self._check_open()
            snapshot = [self._node_out(label, i) for i in sorted(self._nodes[label])]
        return iter(snapshot)

    def count_nodes(self, label: str, *, where: Mapping[str, Any] | None = None) -> int:
        check_label(label)
        with self._lock:
            self._check_open()
            if not where:
                return len(self._nodes[label])
            return sum(1 for i, p in self._nodes[label].items() if self._matches(i, p, where))

    def relationships(
        self,
        rel_type: str,
        *,
        start: tuple[str, str] | None = None,
        end: tuple[str, str] | None = None,
    ) -> list[RelRow]:
        if rel_type not in REL_ENDPOINTS:
            raise UnknownLabel(f"unknown relationship type {rel_type!r}")
        for node in (start, end):
            if node is not None:
                check_label(node[0])
        with self._lock:
            self._check_open()
            if start is not None:
                keys: Iterator[RelKey] | set[RelKey] = self._out.get(start, set())
            elif end is not None:
                keys = self._in.get(end, set())
            else:
                keys = iter(list(self._rels))
            rows = [
                RelRow(k[0], k[1], k[2], k[3], k[4], dict(self._rels[k]))
                for k in keys
                if k[0] == rel_type and (end is None or (k[3], k[4]) == end)
            ]
        rows.sort(key=lambda r: r.key)
        return rows

    def neighbours(self, label: str, node_id: str, *, limit: int = 200) -> list[tuple[RelRow, NodeRow]]:
        check_label(label)
        with self._lock:
            self._check_open()
            node = (label, node_id)
            out: list[tuple[RelRow, NodeRow]] = []
            for key in sorted(self._out.get(node, set()) | self._in.get(node, set())):
                if len(out) >= limit:
                    break
                other = (key[3], key[4]) if (key[1], key[2]) == node else (key[1], key[2])
                rel = RelRow(*key, props=dict(self._rels[key]))
                out.append((rel, NodeRow(other[0], other[1], self._node_out(*other))))
            return out

    def fulltext(
        self, query: str, *, labels: Sequence[str] | None = None, limit: int = 20
    ) -> list[tuple[str, str, float]]:
        """Substring and character-bigram search, a stand-in for Lucene's ``cjk`` analyser."""
        query = query.strip().lower()  # Lucene's analysers lower-case too
        wanted = None if labels is None else {check_label(label) for label in labels}
        if not query:
            return []
        grams = {query[i : i + 2] for i in range(max(1, len(query) - 1))}
        hits: list[tuple[str, str, float]] = []
        with self._lock:
            self._check_open()
            for label, props_names in FULLTEXT_PROPERTIES.items():
                if wanted is not None and label not in wanted:
                    continue
                for node_id, props in self._nodes[label].items():
                    text = " ".join(str(props.get(p, "")) for p in props_names).lower()
                    score = sum(1.0 for g in grams if g in text) / len(grams)
                    if query in text:
                        score += 1.0
                    if score > 0:
                        hits.append((label, node_id, score))
        hits.sort(key=lambda h: (-h[2], h[0], h[1]))
        return hits[:limit]

    def counts(self) -> dict[str, int]:
        with self._lock:
            self._check_open()
            out = {label: len(nodes) for label, nodes in self._nodes.items() if nodes}
            for key in self._rels:
                out[key[0]] = out.get(key[0], 0) + 1
            return out

    # -- vectors and metadata ------------------------------------------------------------
    def write_vectors(self, label: str, key: str, ids: Sequence[str], vectors: np.ndarray) -> None:
        check_label(label)
        if not key.isidentifier():
            raise ValueError(f"bad vector key {key!r}")
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(ids):
            raise ValueError("vectors must be a (len(ids), dim) array")
        with self._lock:
            self._check_open()
            store = self._vectors.setdefault((label, key), {})
            if store:
                dim = next(iter(store.values())).shape[0]
                if dim != vectors.shape[1]:
                    raise ConstraintViolation(
                        f"{label}.{key} holds {dim}-dimensional vectors, got {vectors.shape[1]}"
                    )
            for node_id in ids:  # all or nothing
                if node_id not in self._nodes[label]:
                    raise NodeNotFound(label, node_id)
            for node_id, vec in zip(ids, vectors, strict=True):
                store[node_id] = vec.copy()
            self._save_vectors(label, key)
            listed = len(ids) <= self._journal.max_changes
            self._committed(([Change(node=(label, i), vectors=True) for i in ids] if listed else None)
                            if label in DOMAIN_LABELS else [], graph=False)

    def read_vectors(self, label: str, key: str) -> tuple[list[str], np.ndarray]:
        check_label(label)
        with self._lock:
            self._check_open()
            store = self._vectors.get((label, key), {})
            ids = sorted(store)
            if not ids:
                return [], np.zeros((0, 0), dtype=np.float32)
            return ids, np.stack([store[i] for i in ids]).astype(np.float32)

    def delete_vectors(self, label: str, key: str) -> None:
        check_label(label)
        with self._lock:
            self._check_open()
            dropped = self._vectors.pop((label, key), None) or {}
            if self._dir is not None:
                (self._dir / "vectors" / f"{label}__{key}.npz").unlink(missing_ok=True)
            listed = len(dropped) <= self._journal.max_changes
            self._committed(([Change(node=(label, i), vectors=True) for i in dropped] if listed else None)
                            if label in DOMAIN_LABELS else [], graph=False)

    def vector_query(
        self, label: str, key: str, vector: Sequence[float] | np.ndarray, k: int = 10
    ) -> list[tuple[str, float]]:
        """Exact nearest neighbours by cosine similarity (brute force over the stored vectors)."""
        check_label(label)
        query = np.asarray(vector, dtype=np.float32).ravel()
        ids, matrix = self.read_vectors(label, key)
        if not ids or k <= 0:
            return []
        if query.shape[0] != matrix.shape[1]:
            raise ValueError(f"{label}.{key} holds {matrix.shape[1]}-dimensional vectors, "
                             f"the query has {query.shape[0]}")
        norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(query))
        scores = (matrix @ query) / np.where(norms > 0, norms, 1.0)
        hits = sorted(zip(ids, (float(s) for s in scores), strict=True), key=lambda h: (-h[1], h[0]))
        return hits[:k]

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            self._check_open()
            return self._meta.get(key)

    def set_meta(self, key: str, value: str | None) -> None:
        with self._lock:
            self._check_open()
            if value is None:
                self._meta.pop(key, None)
            else:
                self._meta[key] = value
            self._committed([])

    # -- research helpers -----------------------------------------------------------------
    def to_networkx(self) -> nx.MultiDiGraph:
        """A networkx copy of the graph: nodes are ``(label, id)`` tuples."""
        graph = nx.MultiDiGraph()
        with self._lock:
            for label, nodes in self._nodes.items():
                for node_id, props in nodes.items():
                    graph.add_node((label, node_id), label=label, **props)
            for key, props in self._rels.items():
                graph.add_edge((key[1], key[2]), (key[3], key[4]), key=key[0], type=key[0], **props)
        return graph
