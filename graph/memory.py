"""The embedded default store: an in-process graph persisted to a data directory.

Nodes live in per-label dictionaries and relationships in a :class:`networkx.MultiDiGraph`-free
index of our own (two dictionaries keyed by node), which is what the projection and the
neighbour queries need; :meth:`MemoryStore.to_networkx` gives researchers a networkx view.

Durability: the data directory holds a snapshot, ``graph.json``, and an append-only journal beside it,
``graph.journal.jsonl``. Every committed write (an :meth:`~MemoryStore.apply` batch, a node created, updated or
deleted, :meth:`~MemoryStore.clear`, a metadata value) is appended to the journal as one line, fsynced before
the call returns, so a write costs the size of the write, not of the graph. Each line is
``<crc32 as 8 hex digits> <JSON>`` where the JSON is ``{"seq": n, "ops": [...]}``: a sequence number one
above the previous write's and the write's effect as idempotent operations (the node's or relationship's
properties after the write, a deletion). Vectors are stored apart, one ``.npz`` per label and key, each
written atomically.

Opening the directory loads the snapshot, then replays the journal entries whose sequence number is above the
snapshot's ``seq``. A damaged *last* line is what a crash in the middle of an append leaves (the write was not
acknowledged): it is ignored and cut off. A damaged line *followed by* valid ones, or a gap in the sequence
numbers, is corruption: the store refuses to open (:class:`~graph.errors.StoreUnavailable`) rather than
silently drop acknowledged writes.

Compaction rewrites the snapshot atomically (write ``graph.json.tmp``, fsync, rename, fsync the directory)
with the sequence number of the last write it contains, then truncates the journal. A crash between the two
steps leaves journal entries the snapshot already holds; their sequence numbers are not above the
snapshot's, so they are skipped, never replayed twice. It runs when a write would grow the journal beyond
its threshold (``compact_ratio`` times the snapshot's size, at least ``compact_min_bytes``; the write is then
persisted by the snapshot itself instead of the journal) and on :meth:`~MemoryStore.close`.

A full disk (``ENOSPC``, or ``EDQUOT`` over quota) is reported as :class:`~graph.errors.StoreFull`, never as
an unreachable store. From the first such failure every write is refused with it, whatever its size, and
:meth:`~MemoryStore.ping` raises it too, until the disk has room for a whole snapshot again (what the next
compaction needs) plus :data:`FULL_MARGIN`: otherwise small writes would still fit in the journal while a
compaction or a larger write failed. Reads keep working; nothing acknowledged is lost.

``journal=False`` restores the old behaviour, an atomic save of the whole snapshot after every write (kept for
benchmarks comparing the two). A lock file held with ``flock`` refuses a second process on the same data
directory.
"""

from __future__ import annotations

import copy
import errno
import fcntl
import json
import logging
import os
import sys
import threading
import zlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, NoReturn

import networkx as nx
import numpy as np
import orjson

from graph.errors import (
    ConstraintViolation,
    DuplicateNode,
    NodeNotFound,
    StoreFull,
    StoreLocked,
    StoreUnavailable,
)
from graph.model import (
    DOMAIN_LABELS,
    FULLTEXT_PROPERTIES,
    LABELS,
    check_label,
    check_rel,
    check_rel_filter,
)
from graph.store import (
    Change,
    ChangeJournal,
    GraphStore,
    NodeRow,
    Progress,
    RelRow,
    WriteBatch,
    check_expect,
    check_props,
)

__all__ = ["MemoryStore"]

_log = logging.getLogger(__name__)

_FORMAT = 1
SNAPSHOT = "graph.json"
#: Free bytes kept in hand beyond a whole snapshot before writes resume after the disk was full.
FULL_MARGIN = 1 << 20
JOURNAL = "graph.journal.jsonl"
NodeKey = tuple[str, str]
RelKey = tuple[str, str, str, str, str]

#: Strings up to this length are interned when stored: ids, labels, skill names and codes repeat across
#: hundreds of thousands of rows, and one shared object instead of one per row is what keeps a
#: province-sized graph in memory (see docs/benchmarks.md, memory).
_SHARE_MAX = 64


def _share(value: Any) -> Any:
    """``value`` with its short strings (and those of a list) interned."""
    if isinstance(value, str):
        return sys.intern(value) if len(value) <= _SHARE_MAX else value
    if isinstance(value, list):
        return [_share(v) for v in value]
    return value


def _shared(props: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``props`` with interned names and short string values (``None`` values dropped)."""
    return {sys.intern(k): _share(v) for k, v in props.items() if v is not None}


def _shared_key(key: Sequence[str]) -> RelKey:
    return tuple(sys.intern(str(part)) for part in key)  # type: ignore[return-value]


#: The properties of every relationship that has none (shared; stored values are never mutated in place).
_NO_PROPS: dict[str, Any] = {}

#: A node's relationships are kept in a list up to this many, in a set beyond (most nodes have a
#: handful, and a list of four costs half of the smallest set; hubs need the set's fast removal).
_LIST_MAX = 16

Links = list[RelKey] | set[RelKey]


def _link(index: dict[NodeKey, Links], node: NodeKey, key: RelKey) -> None:
    links = index.get(node)
    if links is None:
        index[node] = [key]
    elif isinstance(links, set):
        links.add(key)
    elif key not in links:
        links.append(key)
        if len(links) > _LIST_MAX:
            index[node] = set(links)


def _unlink(index: dict[NodeKey, Links], node: NodeKey, key: RelKey) -> None:
    links = index.get(node)
    if isinstance(links, set):
        links.discard(key)
    elif links is not None and key in links:
        links.remove(key)


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary file in the same directory, fsync it, then rename over ``path``."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make a rename or a file creation in ``directory`` durable."""
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def journal_line(seq: int, ops: list[list[Any]]) -> bytes:
    """One journal line: the CRC-32 of the JSON payload (8 hex digits), a space, the payload, a newline.

    Examples
    --------
    >>> journal_line(3, [["M", "k", "v"]])
    b'61f12d78 {"seq":3,"ops":[["M","k","v"]]}\\n'
    """
    payload = orjson.dumps({"seq": seq, "ops": ops})
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def parse_journal_line(line: bytes) -> tuple[int, list[list[Any]]] | None:
    """The ``(seq, ops)`` of a journal line (without its newline), or ``None`` if it is damaged."""
    crc, sep, payload = line.partition(b" ")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(payload):
            return None
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int) or not isinstance(doc.get("ops"), list):
        return None
    return doc["seq"], doc["ops"]


class MemoryStore(GraphStore):
    """The embedded store.

    Parameters
    ----------
    data_dir
        Directory holding ``graph.json``, its journal, the vectors and the lock file; ``None`` keeps
        everything in memory only (tests, evaluation).
    journal
        Persist each write by appending it to the journal (the default). ``False`` saves the whole
        snapshot after every write instead, as the store did before the journal (for benchmarks).
    compact_ratio
        Compact when the journal would grow beyond this many times the snapshot's size...
    compact_min_bytes
        ...or beyond this many bytes, whichever is larger.

    Notes
    -----
    See the module documentation for the journal's format and crash safety.
    """

    kind = "memory"

    def __init__(
        self,
        data_dir: str | os.PathLike[str] | None = None,
        *,
        journal: bool = True,
        compact_ratio: float = 1.0,
        compact_min_bytes: int = 1 << 20,
    ) -> None:
        if compact_ratio < 0 or compact_min_bytes < 0:
            raise ValueError("compact_ratio and compact_min_bytes must be non-negative")
        self._lock = threading.RLock()
        self._nodes: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._rels: dict[RelKey, dict[str, Any]] = {}
        self._out: dict[NodeKey, Links] = {}
        self._in: dict[NodeKey, Links] = {}
        self._vectors: dict[tuple[str, str], dict[str, np.ndarray]] = {}
        self._meta: dict[str, str] = {}
        self._revision = 0
        self._journal = ChangeJournal()
        self._label_revisions: dict[str, int] = defaultdict(int)
        self._closed = False
        self._lock_file: IO[bytes] | None = None
        # persistence: the sequence number of the last write, the snapshot's, the journal file and its size
        self._use_journal = journal
        self._compact_ratio = compact_ratio
        self._compact_min_bytes = compact_min_bytes
        self._seq = 0
        self._snapshot_seq = 0
        self._snapshot_bytes = 0
        self._wal: IO[bytes] | None = None
        self._wal_bytes = 0
        self._wal_entries = 0
        self._wal_broken = False  # a failed append may have left a partial line: compact before appending again
        # set when a write found the disk full: every write is refused, and ping() fails, until there is room
        # for a whole snapshot again (a compaction needs that much), so writes fail consistently, not by size
        self._full: str | None = None
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
        try:
            self._load()
        except BaseException:
            self._release()
            raise

    def _load(self) -> None:
        assert self._dir is not None
        path = self._dir / SNAPSHOT
        if path.exists():
            try:
                raw = path.read_bytes()
                doc = json.loads(raw)
            except (OSError, ValueError) as err:
                raise StoreUnavailable(f"cannot read {path}: {err}") from err
            for label, nodes in doc.get("nodes", {}).items():
                self._nodes[label] = {sys.intern(i): _shared(p) for i, p in nodes.items()}
            del doc["nodes"]
            for item in doc.get("rels", []):
                self._index_rel(_shared_key(item[:5]), _shared(item[5]))
            self._meta = dict(doc.get("meta", {}))
            self._seq = self._snapshot_seq = int(doc.get("seq", 0))
            self._snapshot_bytes = len(raw)
        self._replay_journal()
        vec_dir = self._dir / "vectors"
        if vec_dir.is_dir():
            for file in vec_dir.glob("*.npz"):
                vec_label, _, vec_key = file.stem.partition("__")
                with np.load(file, allow_pickle=False) as data:
                    ids = [str(i) for i in data["ids"]]
                    vecs = data["vectors"].astype(np.float32)
                self._vectors[(vec_label, vec_key)] = dict(zip(ids, vecs, strict=True))

    def _replay_journal(self) -> None:
        """Apply the journal entries newer than the snapshot; cut off a torn last line; open it for appends."""
        assert self._dir is not None
        path = self._dir / JOURNAL
        try:
            raw = path.read_bytes() if path.exists() else b""
        except OSError as err:
            raise StoreUnavailable(f"cannot read {path}: {err}") from err
        good_end = 0  # the offset just after the last valid line
        damaged: int | None = None  # the line number of the first damaged line, if any
        entries = 0
        line_no = 0
        pos = 0
        while pos < len(raw):
            newline = raw.find(b"\n", pos)
            stop = len(raw) if newline < 0 else newline
            line_no += 1
            parsed = parse_journal_line(raw[pos:stop]) if newline >= 0 else None  # no newline: torn
            pos = stop + 1
            if parsed is None:
                damaged = damaged or line_no
                continue
            if damaged is not None:
                raise StoreUnavailable(
                    f"{path} is corrupt: line {damaged} is damaged but line {line_no} after it is valid; "
                    "refusing to open the store (restore the data directory from a backup, or remove the "
                    "damaged line by hand to accept losing that write)")
            seq, ops = parsed
            if seq <= self._snapshot_seq:
                pass  # already in the snapshot: a crash came between a compaction's rename and its truncation
            elif seq == self._seq + 1:
                try:
                    for op in ops:
                        self._replay(op)
                except (KeyError, IndexError, TypeError, ValueError) as err:
                    raise StoreUnavailable(f"{path} is corrupt: line {line_no} cannot be replayed: {err!r}") from err
                self._seq = seq
            else:
                raise StoreUnavailable(
                    f"{path} is corrupt: line {line_no} has sequence number {seq}, expected {self._seq + 1} "
                    f"(the snapshot holds the writes up to {self._snapshot_seq})")
            entries += 1
            good_end = pos
        if damaged is not None:
            _log.warning("%s: ignoring a torn last write (line %d, %d bytes): the process died while "
                         "appending it, before acknowledging it", path, damaged, len(raw) - good_end)
        try:
            wal = open(path, "ab")  # noqa: SIM115 - held for the store's life
            if good_end < len(raw):
                os.ftruncate(wal.fileno(), good_end)
                os.fsync(wal.fileno())
            elif not raw:
                _fsync_dir(self._dir)  # the journal file may just have been created
        except OSError as err:
            raise StoreUnavailable(f"cannot open {path} for appending: {err}") from err
        self._wal = wal
        self._wal_bytes = good_end
        self._wal_entries = entries

    def _replay(self, op: list[Any]) -> None:
        """Apply one journal operation to the in-memory graph (idempotent)."""
        kind = op[0]
        if kind == "N":  # a node's properties after the write
            _, label, node_id, props = op
            self._nodes[check_label(label)][sys.intern(node_id)] = _shared(props)
        elif kind == "R":  # a relationship's properties after the write
            self._index_rel(_shared_key(op[1:6]), _shared(op[6]))
        elif kind == "r":  # a relationship deleted
            self._unindex_rel(tuple(op[1:6]))  # type: ignore[arg-type]
        elif kind == "D":  # a node deleted with its relationships
            self._detach(op[1], op[2])
        elif kind == "C":
            self._nodes.clear()
            self._rels.clear()
            self._out.clear()
            self._in.clear()
            self._meta.clear()
        elif kind == "M":
            if op[2] is None:
                self._meta.pop(op[1], None)
            else:
                self._meta[op[1]] = op[2]
        else:
            raise ValueError(f"unknown journal operation {kind!r}")

    def _save_graph(self) -> None:
        """Write the whole snapshot atomically (it holds every write up to :attr:`_seq`), then empty the journal."""
        if self._dir is None:
            return
        doc = {
            "format": _FORMAT,
            "seq": self._seq,
            "nodes": self._nodes,
            "rels": [[*key, props] for key, props in self._rels.items()],
            "meta": self._meta,
        }
        size = 0

        def write(fh: IO[bytes]) -> None:
            nonlocal size
            data = orjson.dumps(doc)  # the same JSON as json.dumps(compact, ensure_ascii=False), 5-8x faster
            size = len(data)
            fh.write(data)

        try:
            _atomic_write(self._dir / SNAPSHOT, write)
        except OSError as err:
            self._os_error(err, f"cannot save to {self._dir}")
        self._snapshot_seq = self._seq
        self._snapshot_bytes = size
        # the snapshot is durable: the journal's entries are all at or below its seq, so emptying the journal
        # can be interrupted at any point without a write being lost or replayed twice
        if self._wal is not None and (self._wal_bytes or self._wal_broken):
            try:
                os.ftruncate(self._wal.fileno(), 0)
                os.fsync(self._wal.fileno())
            except OSError as err:
                # the write is durable in the snapshot (the journal's entries are all at or below its seq and
                # are skipped on replay): not an error for the caller, but the next write compacts again
                _log.warning("cannot truncate %s: %s", self._dir / JOURNAL, err)
                self._wal_broken = True
                return
            self._wal_bytes = 0
            self._wal_entries = 0
            self._wal_broken = False

    def _compact_threshold(self) -> float:
        return max(float(self._compact_min_bytes), self._compact_ratio * self._snapshot_bytes)

    def _persist(self, ops: list[list[Any]]) -> None:
        """Make one write durable: append it to the journal, or compact if the journal would grow too big."""
        if self._dir is None:
            return
        self._check_space()
        self._seq += 1
        try:
            self._persist_seq(ops)
        except BaseException:
            self._seq -= 1  # the write did not happen: the next one takes its number (a gap reads as corruption)
            raise

    def _persist_seq(self, ops: list[list[Any]]) -> None:
        assert self._dir is not None
        if not self._use_journal or self._wal is None or self._wal_broken:
            self._save_graph()
            return
        if len(ops) >= len(self._rels) + sum(len(nodes) for nodes in self._nodes.values()):
            self._save_graph()  # the write is (nearly) the whole graph, e.g. a bulk load into an empty store
            return
        line = journal_line(self._seq, ops)
        if self._wal_bytes + len(line) > self._compact_threshold():
            self._save_graph()  # the snapshot holds this write too
            return
        fd = self._wal.fileno()
        try:
            written = 0
            while written < len(line):
                written += os.write(fd, line[written:])
            os.fdatasync(fd)
        except OSError as err:
            try:  # take back a partial line so that the next append does not follow garbage
                os.ftruncate(fd, self._wal_bytes)
            except OSError:
                self._wal_broken = True
            self._os_error(err, f"cannot append to {self._dir / JOURNAL}")
        self._wal_bytes += len(line)
        self._wal_entries += 1

    def _os_error(self, err: OSError, what: str) -> NoReturn:
        """Raise the store's error for a failed write: :class:`StoreFull` (and refuse further writes) when the
        disk is full or over quota, else :class:`StoreUnavailable`."""
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            self._full = f"{what}: {err}"
            _log.error("the disk of %s is full: writes are refused until space is freed (%s)", self._dir, err)
            raise StoreFull(f"no space left on the disk of {self._dir}; {what}: {err}") from err
        raise StoreUnavailable(f"{what}: {err}") from err

    def _check_space(self) -> None:
        """After the disk was full: raise :class:`StoreFull` until a whole snapshot (and a margin) fits again."""
        if self._full is None or self._dir is None:
            return
        try:
            stat = os.statvfs(self._dir)
        except OSError as err:
            raise StoreUnavailable(f"cannot check the free space of {self._dir}: {err}") from err
        free = stat.f_bavail * stat.f_frsize
        needed = self._snapshot_bytes + self._wal_bytes + FULL_MARGIN
        if free < needed:
            raise StoreFull(f"no space left on the disk of {self._dir} ({free} bytes free, {needed} needed); "
                            f"the last write failed: {self._full}")
        _log.warning("the disk of %s has room again (%d bytes free): writes resume", self._dir, free)
        self._full = None

    def compact(self) -> None:
        """Rewrite the snapshot with every write so far and empty the journal (done automatically)."""
        with self._lock:
            self._check_open()
            self._save_graph()

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

        try:
            _atomic_write(path, write)
        except OSError as err:
            self._os_error(err, f"cannot save {path}")

    def _committed(
        self, changes: list[Change] | None, *, ops: list[list[Any]] | None = None, labels: Iterable[str] = ()
    ) -> None:
        """Persist a write; ``changes`` are the domain keys it touched (``[]``: none, ``None``: unlistable),
        ``ops`` its journal operations (``None``: nothing in the graph changed, e.g. vectors, saved apart),
        ``labels`` the labels of the nodes it wrote. Persisting comes first: when it fails, nothing is
        recorded and the caller takes the write back."""
        if ops is not None:
            self._persist(ops)
        for label in set(labels):
            self._label_revisions[label] += 1
        if changes is None or changes:
            self._revision += 1
            self._journal.record(self._revision, changes)

    # -- helpers --------------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")

    def _index_rel(self, key: RelKey, props: dict[str, Any]) -> None:
        """Store a relationship (``key`` and ``props`` as :func:`_shared_key` and :func:`_shared` make them)."""
        self._rels[key] = props or _NO_PROPS
        _link(self._out, (key[1], key[2]), key)
        _link(self._in, (key[3], key[4]), key)

    def _detach(self, label: str, node_id: str) -> tuple[dict[str, Any] | None, dict[RelKey, dict[str, Any]]]:
        """Remove a node and its relationships; return what was removed (its props, the relationships' props)."""
        node = (label, node_id)
        rels = {key: self._rels[key] for key in {*self._out.get(node, ()), *self._in.get(node, ())}}
        for key in rels:
            self._unindex_rel(key)
        self._out.pop(node, None)
        self._in.pop(node, None)
        return self._nodes[label].pop(node_id, None), rels

    def _unindex_rel(self, key: RelKey) -> None:
        self._rels.pop(key, None)
        _unlink(self._out, (key[1], key[2]), key)
        _unlink(self._in, (key[3], key[4]), key)

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
        """Raise while the store cannot serve: closed, its directory gone, or its disk full (:class:`StoreFull`)."""
        self._check_open()
        if self._dir is not None and not self._dir.is_dir():
            raise StoreUnavailable(f"data directory {self._dir} has gone")
        with self._lock:
            self._check_space()

    def close(self) -> None:
        """Compact the journal into the snapshot (if it holds anything), then release the directory."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._wal is not None and (self._wal_bytes or self._wal_broken):
                try:
                    self._save_graph()
                except StoreUnavailable as err:  # the journal still holds every write: nothing is lost
                    _log.warning("could not compact on close, the journal is kept: %s", err)
            self._release()

    def __enter__(self) -> MemoryStore:
        return self

    def _release(self) -> None:
        if self._wal is not None:
            self._wal.close()
            self._wal = None
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
            # the store's lock is the lock of every node: the preconditions and the write are one step
            for expect in sorted(batch.expect, key=lambda e: (e.label, e.id)):
                check_label(expect.label)
                check_expect(expect, self._nodes[expect.label].get(expect.id))
            if batch.check is not None:
                batch.check(self)
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
            # validated: from here on nothing can fail half-way but persisting, and that is taken back
            durable = self._dir is not None  # the journal operations (and the undo) are needed only then
            undo_nodes: dict[NodeKey, dict[str, Any] | None] = {}
            undo_rels: dict[RelKey, dict[str, Any] | None] = {}
            if durable:
                for label, node_id, _ in nodes:
                    if (label, node_id) not in undo_nodes:
                        before = self._nodes[label].get(node_id)
                        undo_nodes[(label, node_id)] = None if before is None else dict(before)
                for key in [key for key, _ in rels] + [r.key for r in batch.delete_rels]:
                    undo_rels.setdefault(key, self._rels.get(key))  # stored props are replaced, never mutated
            for i, (label, node_id, props) in enumerate(nodes, 1):
                current = self._nodes[label].setdefault(sys.intern(node_id), {})
                for name, value in props.items():
                    if name == "id":
                        continue
                    if value is None:  # as in update_node (and Neo4j's SET +=): None removes
                        current.pop(name, None)
                    else:
                        current[sys.intern(name)] = _share(value)
                if progress and i % 1000 == 0:
                    progress(1000)
            if progress and len(nodes) % 1000:
                progress(len(nodes) % 1000)
            ops: list[list[Any]] = [["N", label, node_id, self._nodes[label][node_id]]
                                    for label, node_id, _ in nodes] if durable else []
            for key, props in rels:
                final = _shared({**self._rels[key], **props} if key in self._rels else props)
                key = _shared_key(key)
                self._index_rel(key, final)
                if durable:
                    ops.append(["R", *key, final])
            if progress and rels:
                progress(len(rels))
            for r in batch.delete_rels:
                self._unindex_rel(r.key)
                if durable:
                    ops.append(["r", *r.key])
            changes: list[Change] | None = None
            if len(batch) <= self._journal.max_changes:  # a bulk load is not worth listing
                changes = [Change(node=(label, node_id)) for label, node_id, _ in nodes if label in DOMAIN_LABELS]
                changes += [Change(rel=key) for key, _ in rels]
                changes += [Change(rel=r.key) for r in batch.delete_rels]
            elif not rels and not batch.delete_rels and all(label not in DOMAIN_LABELS for label, _, _ in nodes):
                changes = []
            try:
                self._committed(changes, ops=ops, labels=[label for label, _, _ in nodes])
            except Exception:
                self._take_back(undo_nodes, undo_rels)
                raise

    def _take_back(self, nodes: Mapping[NodeKey, dict[str, Any] | None],
                   rels: Mapping[RelKey, dict[str, Any] | None]) -> None:
        """Restore nodes and relationships to what they were (``None``: absent) after a write failed to persist."""
        for key, before in rels.items():
            if before is None:
                self._unindex_rel(key)
            else:
                self._index_rel(_shared_key(key), before)
        for (label, node_id), props in nodes.items():
            current = self._nodes[label].get(node_id)
            if props is None:
                self._nodes[label].pop(node_id, None)
            elif current is None:
                self._nodes[label][node_id] = props
            else:
                current.clear()
                current.update(props)

    def create_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        check_label(label)
        clean = check_props(props)
        clean.pop("id", None)
        with self._lock:
            self._check_open()
            if node_id in self._nodes[label]:
                raise DuplicateNode(label, node_id)
            self._nodes[label][sys.intern(node_id)] = props_now = _shared(clean)
            try:
                self._committed([Change(node=(label, node_id))] if label in DOMAIN_LABELS else [],
                                ops=[["N", label, node_id, props_now]], labels=[label])
            except Exception:
                self._take_back({(label, node_id): None}, {})
                raise
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
            before = dict(current)
            for key, value in clean.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[sys.intern(key)] = _share(value)
            try:
                self._committed([Change(node=(label, node_id))] if label in DOMAIN_LABELS else [],
                                ops=[["N", label, node_id, current]], labels=[label])
            except Exception:
                self._take_back({(label, node_id): before}, {})
                raise
            return self._node_out(label, node_id)

    def delete_node(self, label: str, node_id: str) -> None:
        check_label(label)
        with self._lock:
            self._check_open()
            if node_id not in self._nodes[label]:
                raise NodeNotFound(label, node_id)
            node = (label, node_id)
            props, detached = self._detach(label, node_id)
            changes = [Change(rel=key) for key in detached]
            if label in DOMAIN_LABELS:
                changes.append(Change(node=node))
            try:
                self._committed(changes, ops=[["D", label, node_id]], labels=[label])
            except Exception:
                self._take_back({node: props}, detached)
                raise
            for (vec_label, vec_key), vecs in self._vectors.items():
                if vec_label == label and vecs.pop(node_id, None) is not None:
                    self._save_vectors(vec_label, vec_key)

    def clear(self) -> None:
        with self._lock:
            self._check_open()
            before = self._nodes, self._rels, self._out, self._in, self._meta
            self._nodes, self._rels, self._out, self._in, self._meta = defaultdict(dict), {}, {}, {}, {}
            try:
                self._committed(None, ops=[["C"]], labels=LABELS)
            except Exception:
                self._nodes, self._rels, self._out, self._in, self._meta = before
                raise
            for label, key in list(self._vectors):
                self._vectors[(label, key)] = {}
                self._save_vectors(label, key)
            self._vectors.clear()

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
        check_rel_filter(rel_type, start, end)
        with self._lock:
            self._check_open()
            if start is not None:
                keys: Iterable[RelKey] = self._out.get(start, ())
            elif end is not None:
                keys = self._in.get(end, ())
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
            linked: set[RelKey] = {*self._out.get(node, ()), *self._in.get(node, ())}
            for key in sorted(linked):
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
            self._check_space()
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
                            if label in DOMAIN_LABELS else [])

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
                            if label in DOMAIN_LABELS else [])

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
            before = self._meta.get(key)
            if value is None:
                self._meta.pop(key, None)
            else:
                self._meta[key] = value
            try:
                self._committed([], ops=[["M", key, value]])
            except Exception:
                if before is None:
                    self._meta.pop(key, None)
                else:
                    self._meta[key] = before
                raise

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
