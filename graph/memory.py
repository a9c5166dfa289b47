"""The embedded default store: the graph in one SQLite database, ``jianglian.sqlite`` in the data directory.

Why this module is long: it is one implementation of the whole :class:`~graph.store.GraphStore` contract
(writes with their preconditions and change feed, reads, vectors, metadata, migration entry); the contract suite
tests it as one unit, and its SQL statements are easiest to review side by side.

The class keeps its historical name, :class:`MemoryStore`, and kind ``"memory"`` (``--store memory``,
``JIANGLIAN_STORE=memory``): what changed is where it keeps the graph, not what it is to its callers.

Tables (see :data:`_SCHEMA`): ``nodes`` (label, id, properties as JSON; primary key ``(label, id)``), ``rels``
(type, both endpoints, properties; primary key the relationship's identity, indexes by start and by end node),
``vectors`` (one float32 BLOB per ``(label, key, id)``), ``meta`` (:meth:`MemoryStore.set_meta`), ``store_info``
(schema version and :attr:`MemoryStore.store_id`, a random UUID made with the schema) and the change feed:
``changes`` (an ``AUTOINCREMENT`` sequence: one row per write to the matching graph, with the keys it touched
or ``NULL`` when it is unlistable, pruned to the last :data:`FEED_WINDOW` rows) and ``label_revisions`` (a
counter per label). Every write (an :meth:`~MemoryStore.apply` batch, a node created, updated or deleted,
vectors, :meth:`~MemoryStore.clear`) is one transaction that writes its feed entry too, so the feed never
disagrees with the data; the sequence never restarts (``AUTOINCREMENT`` never reuses a number, and
:meth:`~MemoryStore.clear` is a feed entry, not a reset).

Concurrency: WAL mode, so readers never wait for the writer and see the last committed state; a write
starts with ``BEGIN IMMEDIATE``, which takes the database's write lock, so a :class:`~graph.store.WriteBatch`'s
preconditions (``expect``, ``check``) and its writes are one step across every process and thread
(``busy_timeout`` makes a writer wait for the lock rather than fail). Any number of processes may open one
data directory at once: web workers, the CLI, a notebook. Each thread of a process has its own connection.
Reads go to the database every time (there is no cache in front of it): the caches are above the store
(the ranking projection and index, keyed on :attr:`~MemoryStore.revision`, which follows the feed).

Durability: ``synchronous=FULL``: a write returns once its transaction is in the WAL and fsynced, so a
process killed (or a machine losing power) after the call returned keeps it; a write interrupted before its
commit leaves nothing. Checkpoints (copying the WAL into the database file, and its fsync) run in a background
thread of each process that writes, every :data:`CHECKPOINT_INTERVAL` second, not in the request that happens
to fill the WAL; a writer checkpoints itself only past :data:`AUTOCHECKPOINT_PAGES` (a backstop).

A full disk (SQLite's ``SQLITE_FULL``) raises :class:`~graph.errors.StoreFull`; from
then on every write is refused with it, and :meth:`~MemoryStore.ping` raises it too, until the disk has
:data:`FULL_MARGIN` bytes free again, so writes fail consistently rather than by size. Reads keep working.

``MemoryStore()`` without a data directory keeps a private in-memory SQLite database (tests, evaluation).

A data directory of the old format (``graph.json``, its journal ``graph.journal.jsonl``, ``vectors/*.npz``,
``store.lock``) is migrated on first open: read by :func:`graph.legacy.read_legacy`, written in one
transaction, and the old files moved into ``legacy-<UTC timestamp>/`` beside the database.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import networkx as nx
import numpy as np
import orjson

from graph.errors import (
    ConstraintViolation,
    DuplicateNode,
    GraphError,
    NodeNotFound,
    StoreFull,
    StoreUnavailable,
)
from graph.legacy import LEGACY_FILES, has_legacy, read_legacy
from graph.model import (
    DOMAIN_LABELS,
    FULLTEXT_PROPERTIES,
    LABELS,
    check_label,
    check_rel,
    check_rel_filter,
)
from graph.store import (
    FEED_WINDOW,
    MAX_CHANGES,
    Change,
    GraphStore,
    NodeRow,
    Progress,
    RelRow,
    WriteBatch,
    check_expect,
    check_props,
    decode_change,
    encode_change,
)

__all__ = ["DB_FILE", "FEED_WINDOW", "MemoryStore"]

_log = logging.getLogger(__name__)

#: The database file in the data directory.
DB_FILE: Final = "jianglian.sqlite"
SCHEMA_VERSION: Final = 1
#: Free bytes needed before writes resume after the disk was full.
FULL_MARGIN: Final = 1 << 20
#: How long a writer waits for another process's write transaction before giving up (ms).
BUSY_TIMEOUT_MS: Final = 30_000
#: Seconds between the background checkpoints of a process that writes (a checkpoint copies the WAL into the
#: database file and fsyncs it: off the write path, it cannot stall a request).
CHECKPOINT_INTERVAL: Final = 1.0
#: A writer checkpoints by itself only beyond this many WAL pages (a backstop: the background thread does it).
AUTOCHECKPOINT_PAGES: Final = 20_000
#: Bytes the WAL file is cut back to after a checkpoint.
WAL_SIZE_LIMIT: Final = 64 << 20
#: Rows per ``executemany`` (and per progress report) in a bulk write.
_CHUNK = 1000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS store_info (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (
    label TEXT NOT NULL, id TEXT NOT NULL, props TEXT NOT NULL,
    PRIMARY KEY (label, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rels (
    type TEXT NOT NULL, start_label TEXT NOT NULL, start_id TEXT NOT NULL,
    end_label TEXT NOT NULL, end_id TEXT NOT NULL, props TEXT NOT NULL,
    PRIMARY KEY (type, start_label, start_id, end_label, end_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS rels_by_start ON rels (start_label, start_id);
CREATE INDEX IF NOT EXISTS rels_by_end ON rels (end_label, end_id);
CREATE TABLE IF NOT EXISTS vectors (
    label TEXT NOT NULL, key TEXT NOT NULL, id TEXT NOT NULL, dim INTEGER NOT NULL, vec BLOB NOT NULL,
    PRIMARY KEY (label, key, id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS changes (seq INTEGER PRIMARY KEY AUTOINCREMENT, keys TEXT);
CREATE TABLE IF NOT EXISTS label_revisions (label TEXT PRIMARY KEY, revision INTEGER NOT NULL) WITHOUT ROWID;
"""

# merge semantics (given properties set, None removes, others kept) by JSON merge-patch (RFC 7396):
# patching '{}' drops the null members of a new row
# (plain "?" placeholders, the properties given twice: numbered "?N" ones with a sequence of parameters are
# deprecated from Python 3.12 and an error from 3.14)
_UPSERT_NODE = ("INSERT INTO nodes (label, id, props) VALUES (?, ?, json_patch('{}', ?)) "
                "ON CONFLICT (label, id) DO UPDATE SET props = json_patch(props, ?)")
_UPSERT_REL = ("INSERT INTO rels (type, start_label, start_id, end_label, end_id, props) "
               "VALUES (?, ?, ?, ?, ?, json_patch('{}', ?)) "
               "ON CONFLICT (type, start_label, start_id, end_label, end_id) "
               "DO UPDATE SET props = json_patch(props, ?)")
_DELETE_REL = "DELETE FROM rels WHERE type = ? AND start_label = ? AND start_id = ? AND end_label = ? AND end_id = ?"
_REL_COLUMNS = "type, start_label, start_id, end_label, end_id, props"
_REVISION = "SELECT seq FROM sqlite_sequence WHERE name = 'changes'"


def _dumps(props: Mapping[str, Any]) -> str:
    try:
        return orjson.dumps(props).decode()
    except TypeError as err:  # e.g. an int beyond 64 bits, which Neo4j cannot hold either
        raise ConstraintViolation(f"cannot store properties: {err}") from err


def _loads(text: str) -> dict[str, Any]:
    props: dict[str, Any] = orjson.loads(text)
    return props


def _sql_filterable(key: str, value: Any) -> bool:
    """Whether ``where[key] == value`` can be a SQL condition with Python's equality (else filtered in Python)."""
    return key.isidentifier() and key.isascii() and (value is None or isinstance(value, str | int | float))


def _is_full(err: sqlite3.Error) -> bool:
    return getattr(err, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL or "disk is full" in str(err)


class _Local(threading.local):
    conn: sqlite3.Connection | None = None
    pid: int = 0
    depth: int = 0  # write transactions entered (a WriteBatch.check that writes joins the batch's)


def _journal_mode_wal(conn: sqlite3.Connection) -> str:
    """``PRAGMA journal_mode = WAL`` on a new connection, retried while another process holds the lock.

    Switching a database out of rollback mode needs an exclusive lock, and SQLite can answer "database is
    locked" at once instead of waiting in the busy handler; two processes opening the same new (or migrated)
    directory at the same moment then failed. Retried until :data:`BUSY_TIMEOUT_MS`, like any other wait.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() >= deadline:
                raise
            time.sleep(0.02)


class MemoryStore(GraphStore):
    """The embedded store (SQLite).

    Parameters
    ----------
    data_dir
        Directory holding ``jianglian.sqlite`` (created if needed; an old-format directory is migrated);
        ``None`` keeps everything in a private in-memory database (tests, evaluation).
    synchronous
        SQLite's ``synchronous`` setting for a data directory: ``"FULL"`` (the default) fsyncs every commit;
        ``"NORMAL"`` survives a killed process but may lose the last commits on a power loss (benchmarks).

    Notes
    -----
    See the module documentation for the tables, the change feed and the concurrency.
    """

    kind = "memory"

    def __init__(self, data_dir: str | os.PathLike[str] | None = None, *, synchronous: str = "FULL") -> None:
        if synchronous.upper() not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"bad synchronous setting {synchronous!r}")
        self._synchronous = synchronous.upper()
        self._dir = Path(data_dir) if data_dir is not None else None
        self._closed = False
        self._local = _Local()
        self._conns: list[sqlite3.Connection] = []
        self._conns_lock = threading.Lock()
        # the in-memory database is one connection shared by the process's threads, one at a time
        self._memory_lock: threading.RLock | None = None
        self._memory_conn: sqlite3.Connection | None = None
        self._full: str | None = None
        self._store_id = ""
        self._stop = threading.Event()
        self._checkpointer: tuple[int, threading.Thread] | None = None
        if self._dir is None:
            self._memory_lock = threading.RLock()
            self._memory_conn = self._connect(":memory:")
        else:
            try:
                self._dir.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreUnavailable(f"cannot open data directory {self._dir}: {err}") from err
        try:
            self._init_schema()
            if self._dir is not None and has_legacy(self._dir):
                self._migrate(self._dir)
        except BaseException:
            self.close()
            raise

    # -- connections and transactions -----------------------------------------------------
    @property
    def path(self) -> Path | None:
        """The database file (``None`` for the in-memory store)."""
        return None if self._dir is None else self._dir / DB_FILE

    def _connect(self, target: str) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(target, isolation_level=None, check_same_thread=False,
                                   timeout=BUSY_TIMEOUT_MS / 1000)
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if target == ":memory:":
                conn.execute("PRAGMA synchronous = OFF")
            else:
                if _journal_mode_wal(conn).lower() != "wal":
                    raise StoreUnavailable(f"{target}: cannot switch to WAL mode")
                conn.execute(f"PRAGMA synchronous = {self._synchronous}")
                # after a checkpoint the WAL file is cut back to this size (a bulk load leaves it as big as the load)
                conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
                conn.execute(f"PRAGMA wal_autocheckpoint = {AUTOCHECKPOINT_PAGES}")
        except sqlite3.Error as err:
            raise self._failed(err, f"cannot open {target}") from err
        with self._conns_lock:
            self._conns.append(conn)
        return conn

    def _conn(self) -> sqlite3.Connection:
        if self._memory_conn is not None:
            return self._memory_conn
        local = self._local
        if local.conn is None or local.pid != os.getpid():  # a forked child opens its own
            assert self._dir is not None
            local.conn = self._connect(str(self._dir / DB_FILE))
            local.pid = os.getpid()
            local.depth = 0
        return local.conn

    @contextlib.contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """This thread's connection (holding the in-memory store's lock); SQLite errors become ours."""
        self._check_open()
        lock = self._memory_lock if self._memory_lock is not None else contextlib.nullcontext()
        with lock:
            try:
                yield self._conn()
            except sqlite3.Error as err:
                raise self._failed(err, "the store failed") from err

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: the database's write lock, across processes)."""
        with self._session() as conn:
            local = self._local
            if local.depth:  # nested in this thread's open write: part of it
                local.depth += 1
                try:
                    yield conn
                finally:
                    local.depth -= 1
                return
            self._check_space()
            conn.execute("BEGIN IMMEDIATE")
            local.depth = 1
            try:
                yield conn
                conn.execute("COMMIT")
                self._start_checkpointer()
            except BaseException:
                if conn.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
            finally:
                local.depth = 0

    def _start_checkpointer(self) -> None:
        """Start this process's background checkpoints of the WAL (once per process, after its first write)."""
        if self._dir is None or (self._checkpointer is not None and self._checkpointer[0] == os.getpid()):
            return
        with self._conns_lock:
            if self._checkpointer is not None and self._checkpointer[0] == os.getpid():
                return
            thread = threading.Thread(target=self._checkpoint_loop, name="jianglian-sqlite-checkpoint", daemon=True)
            self._checkpointer = (os.getpid(), thread)
        thread.start()

    def _checkpoint_loop(self) -> None:
        """Every :data:`CHECKPOINT_INTERVAL` s, copy the WAL into the database (``PASSIVE``: writers go on)."""
        assert self._dir is not None
        conn: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(CHECKPOINT_INTERVAL):
                try:
                    if conn is None:
                        conn = sqlite3.connect(self._dir / DB_FILE, isolation_level=None, timeout=0)
                        conn.execute(f"PRAGMA journal_size_limit = {WAL_SIZE_LIMIT}")
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as err:  # another process checkpointing, a full disk: the next round retries
                    _log.debug("checkpoint of %s skipped: %s", self._dir, err)
        finally:
            if conn is not None:
                conn.close()

    def _failed(self, err: sqlite3.Error, what: str) -> GraphError:
        """The store's error for a SQLite error: :class:`StoreFull` (refusing writes from now on) or unavailable."""
        if _is_full(err):
            self._full = f"{what}: {err}"
            _log.error("the disk of %s is full: writes are refused until space is freed (%s)", self._dir, err)
            return StoreFull(f"no space left on the disk of {self._dir}; {what}: {err}")
        where = self.path or "the in-memory store"
        if "locked" in str(err) or "busy" in str(err):
            return StoreUnavailable(f"{where}: another writer held the database for {BUSY_TIMEOUT_MS / 1000:g} s "
                                    f"({what}: {err})")
        return StoreUnavailable(f"{where}: {what}: {err}")

    def _check_space(self) -> None:
        """After the disk was full: raise :class:`StoreFull` until :data:`FULL_MARGIN` bytes are free again."""
        if self._full is None or self._dir is None:
            return
        try:
            stat = os.statvfs(self._dir)
        except OSError as err:
            raise StoreUnavailable(f"cannot check the free space of {self._dir}: {err}") from err
        free = stat.f_bavail * stat.f_frsize
        if free < FULL_MARGIN:
            raise StoreFull(f"no space left on the disk of {self._dir} ({free} bytes free, {FULL_MARGIN} needed); "
                            f"the last write failed: {self._full}")
        _log.warning("the disk of %s has room again (%d bytes free): writes resume", self._dir, free)
        self._full = None

    def _check_open(self) -> None:
        if self._closed:
            raise StoreUnavailable("the store is closed")

    def _init_schema(self) -> None:
        with self._write() as conn:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            info = dict(conn.execute("SELECT key, value FROM store_info").fetchall())
            version = int(info.get("schema", SCHEMA_VERSION))
            if version > SCHEMA_VERSION:
                raise StoreUnavailable(f"{self.path} has schema version {version}; this Jianglian reads up to "
                                       f"{SCHEMA_VERSION}: upgrade Jianglian")
            if "store_id" not in info:
                info["store_id"] = uuid.uuid4().hex
                conn.execute("INSERT INTO store_info VALUES ('store_id', ?), ('schema', ?)",
                             (info["store_id"], str(SCHEMA_VERSION)))
            self._store_id = info["store_id"]

    # -- migration of the old format ------------------------------------------------------
    def _migrate(self, data_dir: Path) -> None:
        """Write an old-format directory's graph into the database (once) and move the old files aside."""
        with self._write() as conn:
            done = conn.execute("SELECT value FROM store_info WHERE key = 'migrated_from'").fetchone()
            if not has_legacy(data_dir):
                return  # another process migrated it while this one waited for the lock
            if done is None:
                started = time.perf_counter()
                legacy = read_legacy(data_dir)
                if conn.execute("SELECT 1 FROM nodes LIMIT 1").fetchone() is not None:
                    raise StoreUnavailable(f"{data_dir} holds both {DB_FILE} with data and an old-format graph; "
                                           "move one of them away")
                for label, nodes in legacy.nodes.items():
                    conn.executemany("INSERT INTO nodes VALUES (?, ?, ?)",
                                     ((label, i, _dumps(p)) for i, p in nodes.items()))
                conn.executemany(f"INSERT INTO rels ({_REL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                                 ((*key, _dumps(p)) for key, p in legacy.rels.items()))
                conn.executemany("INSERT INTO meta VALUES (?, ?)", legacy.meta.items())
                for (label, key), (ids, matrix) in legacy.vectors.items():
                    known = {row[0] for row in conn.execute("SELECT id FROM nodes WHERE label = ?", (label,))}
                    conn.executemany("INSERT INTO vectors VALUES (?, ?, ?, ?, ?)",
                                     ((label, key, i, int(v.shape[0]), v.astype(np.float32).tobytes())
                                      for i, v in zip(ids, matrix, strict=True) if i in known))
                self._record(conn, None, LABELS)
                conn.execute("INSERT INTO store_info VALUES ('migrated_from', ?)",
                             (f"graph.json seq {legacy.seq}",))
                _log.warning("migrated the old-format store in %s to %s: %d nodes and relationships, %d vector "
                             "sets, in %.1f s", data_dir, DB_FILE, legacy.n_rows(), len(legacy.vectors),
                             time.perf_counter() - started)
            # committed here; the old files are moved aside in a second transaction (holding the write lock, so
            # processes opening the directory meanwhile wait, then find 'migrated_from' and only finish the
            # move; a crash before the move: the next open finishes it)
        self._move_legacy(data_dir)

    def _move_legacy(self, data_dir: Path) -> None:
        with self._write():
            aside = data_dir / time.strftime("legacy-%Y%m%dT%H%M%SZ", time.gmtime())
            moved = []
            for name in LEGACY_FILES:
                if (data_dir / name).exists():
                    aside.mkdir(exist_ok=True)
                    shutil.move(str(data_dir / name), str(aside / name))
                    moved.append(name)
            if moved:
                _log.warning("moved the old-format files %s of %s into %s (delete them once the migrated store "
                             "is checked)", ", ".join(moved), data_dir, aside.name)

    # -- the change feed ------------------------------------------------------------------
    def _record(self, conn: sqlite3.Connection, changes: list[Change] | None, labels: Iterable[str]) -> None:
        """Write a feed entry in the write's transaction: ``changes`` are the domain keys it touched
        (``[]``: none, no entry; ``None``: unlistable) and ``labels`` the labels of the nodes it wrote."""
        if changes is None or changes:
            keys = None
            if changes is not None and len(changes) <= MAX_CHANGES:
                keys = orjson.dumps([encode_change(c) for c in changes]).decode()
            seq = conn.execute("INSERT INTO changes (keys) VALUES (?)", (keys,)).lastrowid
            if seq is not None and seq > FEED_WINDOW:
                conn.execute("DELETE FROM changes WHERE seq <= ?", (seq - FEED_WINDOW,))
        for label in set(labels):
            conn.execute("INSERT INTO label_revisions VALUES (?, 1) "
                         "ON CONFLICT (label) DO UPDATE SET revision = revision + 1", (label,))

    @property
    def revision(self) -> int:
        """The position of the change feed in the database (moved by this and every other process's writes)."""
        with self._session() as conn:
            row = conn.execute(_REVISION).fetchone()
        return 0 if row is None else int(row[0])

    def label_revision(self, label: str) -> int | None:
        """The durable counter of writes of nodes of ``label`` (by any process)."""
        check_label(label)
        with self._session() as conn:
            row = conn.execute("SELECT revision FROM label_revisions WHERE label = ?", (label,)).fetchone()
        return 0 if row is None else int(row[0])

    def changes_since(self, revision: int) -> list[Change] | None:
        with self._session() as conn:
            row = conn.execute(_REVISION).fetchone()
            current = 0 if row is None else int(row[0])
            if revision == current:
                return []
            if revision > current or revision < 0:
                return None
            rows = conn.execute("SELECT seq, keys FROM changes WHERE seq > ? AND seq <= ? ORDER BY seq",
                                (revision, current)).fetchall()
        if not rows or rows[0][0] != revision + 1 or len(rows) != current - revision:
            return None  # pruned
        out: list[Change] = []
        for _, keys in rows:
            if keys is None:
                return None
            out.extend(decode_change(item) for item in orjson.loads(keys))
        return out

    @property
    def store_id(self) -> str:
        """A random id made with the database's schema: tells one database from another (and from its copies'
        later lives only as far as a copy keeps its id)."""
        return self._store_id

    @property
    def data_dir(self) -> Path | None:
        """The directory this store persists to, if any."""
        return self._dir

    # -- life cycle -----------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Nothing to create: the tables and keys are made when the store opens."""
        self._check_open()

    def ping(self) -> None:
        """Raise while the store cannot serve: closed, its directory gone, or its disk full (:class:`StoreFull`)."""
        self._check_open()
        if self._dir is not None and not (self._dir / DB_FILE).is_file():
            raise StoreUnavailable(f"data directory {self._dir} (or its {DB_FILE}) has gone")
        with self._session() as conn:
            conn.execute("SELECT 1").fetchone()
        self._check_space()

    def close(self) -> None:
        """Stop the checkpoints and close every connection of this instance. Idempotent."""
        self._closed = True
        self._stop.set()
        checkpointer = self._checkpointer
        if checkpointer is not None and checkpointer[0] == os.getpid() and checkpointer[1].is_alive():
            checkpointer[1].join(timeout=10)
        with self._conns_lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            with contextlib.suppress(sqlite3.Error):
                conn.close()
        self._memory_conn = None

    def __enter__(self) -> MemoryStore:
        return self

    # -- writes ---------------------------------------------------------------------------
    def apply(self, batch: WriteBatch, *, progress: Progress | None = None) -> None:
        expects = sorted(batch.expect, key=lambda e: (check_label(e.label), e.id))
        nodes = []
        for n in batch.nodes:
            props = check_props(n.props, where=f"{n.label} {n.id}: ")
            props.pop("id", None)
            nodes.append((check_label(n.label), n.id, _dumps(props)))
        rels = []
        for r in batch.rels:
            check_rel(r.type, r.start_label, r.end_label)
            rels.append((*r.key, _dumps(check_props(r.props, where=f"{r.type}: "))))
        deletes = [r.key for r in batch.delete_rels]
        if not (nodes or rels or deletes or expects or batch.check is not None):
            return
        with self._write() as conn:
            # the write lock is held: the preconditions and the write are one step for every process
            for expect in expects:
                check_expect(expect, self._get(conn, expect.label, expect.id))
            if batch.check is not None:
                batch.check(self)
            known = {(label, node_id) for label, node_id, _ in nodes}
            for key in [r[:5] for r in rels]:
                for end in ((key[1], key[2]), (key[3], key[4])):
                    if end not in known:
                        if conn.execute("SELECT 1 FROM nodes WHERE label = ? AND id = ?", end).fetchone() is None:
                            raise ConstraintViolation(f"{key[0]}: {end[0]} {end[1]!r} does not exist")
                        known.add(end)
            for rows in (nodes, rels):
                statement = _UPSERT_NODE if rows is nodes else _UPSERT_REL
                for start in range(0, len(rows), _CHUNK):
                    chunk = rows[start:start + _CHUNK]
                    conn.executemany(statement, [(*row, row[-1]) for row in chunk])
                    if progress:
                        progress(len(chunk))
            if deletes:
                conn.executemany(_DELETE_REL, deletes)
            changes: list[Change] | None = None
            if len(batch) <= MAX_CHANGES:  # a bulk load is not worth listing
                changes = [Change(node=(label, node_id)) for label, node_id, _ in nodes if label in DOMAIN_LABELS]
                changes += [Change(rel=r[:5]) for r in rels]
                changes += [Change(rel=key) for key in deletes]
            elif not rels and not deletes and all(label not in DOMAIN_LABELS for label, _, _ in nodes):
                changes = []
            self._record(conn, changes, [label for label, _, _ in nodes])

    @staticmethod
    def _get(conn: sqlite3.Connection, label: str, node_id: str) -> dict[str, Any] | None:
        row = conn.execute("SELECT props FROM nodes WHERE label = ? AND id = ?", (label, node_id)).fetchone()
        if row is None:
            return None
        props = _loads(row[0])
        props["id"] = node_id
        return props

    @staticmethod
    def _domain(label: str, node_id: str) -> list[Change]:
        return [Change(node=(label, node_id))] if label in DOMAIN_LABELS else []

    def create_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        check_label(label)
        clean = {k: v for k, v in check_props(props).items() if v is not None and k != "id"}
        text = _dumps(clean)
        with self._write() as conn:
            try:
                conn.execute("INSERT INTO nodes VALUES (?, ?, ?)", (label, node_id, text))
            except sqlite3.IntegrityError as err:
                raise DuplicateNode(label, node_id) from err
            self._record(conn, self._domain(label, node_id), [label])
        return {**_loads(text), "id": node_id}

    def update_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        check_label(label)
        clean = check_props(props)
        clean.pop("id", None)
        with self._write() as conn:
            current = self._get(conn, label, node_id)
            if current is None:
                raise NodeNotFound(label, node_id)
            del current["id"]
            for key, value in clean.items():
                if value is None:
                    current.pop(key, None)
                else:
                    current[key] = value
            text = _dumps(current)
            conn.execute("UPDATE nodes SET props = ? WHERE label = ? AND id = ?", (text, label, node_id))
            self._record(conn, self._domain(label, node_id), [label])
        return {**_loads(text), "id": node_id}

    def delete_node(self, label: str, node_id: str) -> None:
        check_label(label)
        with self._write() as conn:
            if conn.execute("DELETE FROM nodes WHERE label = ? AND id = ?", (label, node_id)).rowcount == 0:
                raise NodeNotFound(label, node_id)
            node = (label, node_id)
            detached = conn.execute(
                f"SELECT {_REL_COLUMNS} FROM rels WHERE start_label = ? AND start_id = ? "
                f"UNION SELECT {_REL_COLUMNS} FROM rels WHERE end_label = ? AND end_id = ?", (*node, *node)).fetchall()
            conn.executemany(_DELETE_REL, (row[:5] for row in detached))
            conn.execute("DELETE FROM vectors WHERE label = ? AND id = ?", node)
            changes = [Change(rel=tuple(row[:5])) for row in detached]  # type: ignore[arg-type]
            self._record(conn, changes + self._domain(label, node_id), [label])

    def clear(self) -> None:
        with self._write() as conn:
            for table in ("nodes", "rels", "vectors", "meta"):
                conn.execute(f"DELETE FROM {table}")  # noqa: S608 - a fixed table name
            self._record(conn, None, LABELS)

    def announce_rebuild(self) -> None:
        with self._write() as conn:
            self._record(conn, None, LABELS)

    # -- reads ----------------------------------------------------------------------------
    def get_node(self, label: str, node_id: str) -> dict[str, Any] | None:
        check_label(label)
        with self._session() as conn:
            return self._get(conn, label, node_id)

    def _select(self, label: str, where: Mapping[str, Any] | None,
                columns: str) -> tuple[str, list[Any], dict[str, Any]]:
        """A ``SELECT`` of a label's nodes with the SQL-expressible part of ``where``, and the rest of it."""
        sql = [f"SELECT {columns} FROM nodes WHERE label = ?"]
        params: list[Any] = [label]
        rest: dict[str, Any] = {}
        for key, value in (where or {}).items():
            if key == "id":
                sql.append("AND id IS ?")
                params.append(value)
            elif _sql_filterable(key, value):
                sql.append(f"AND json_extract(props, '$.{key}') IS ?")
                params.append(value)
            else:
                rest[key] = value
        return " ".join(sql), params, rest

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
        sql, params, rest = self._select(label, where, "id, props")
        sql += " ORDER BY id"
        if not rest:
            sql += " LIMIT ? OFFSET ?"
            params += [-1 if limit is None else limit, offset]
        with self._session() as conn:
            rows = conn.execute(sql, params).fetchall()
        loads = orjson.loads
        out = []
        for node_id, text in rows:  # the hot loop of whole-label reads (the projection, the match states)
            props = loads(text)
            props["id"] = node_id
            out.append(props)
        if rest:
            out = [p for p in out if all(p.get(k) == v for k, v in rest.items())]
            out = out[offset:None if limit is None else offset + limit]
        return out

    def iter_nodes(self, label: str, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
        return iter(self.list_nodes(label))

    def count_nodes(self, label: str, *, where: Mapping[str, Any] | None = None) -> int:
        check_label(label)
        sql, params, rest = self._select(label, where, "count(*)" if not where else "id, props")
        with self._session() as conn:
            rows = conn.execute(sql, params).fetchall()
        if not where:
            return int(rows[0][0])
        if not rest:
            return len(rows)
        return sum(1 for _, text in rows if all(_loads(text).get(k) == v for k, v in rest.items()))

    def relationships(
        self,
        rel_type: str,
        *,
        start: tuple[str, str] | None = None,
        end: tuple[str, str] | None = None,
    ) -> list[RelRow]:
        check_rel_filter(rel_type, start, end)
        sql = f"SELECT {_REL_COLUMNS} FROM rels WHERE type = ?"
        params: list[Any] = [rel_type]
        if start is not None:
            sql += " AND start_label = ? AND start_id = ?"
            params += list(start)
        if end is not None:
            sql += " AND end_label = ? AND end_id = ?"
            params += list(end)
        sql += " ORDER BY type, start_label, start_id, end_label, end_id"
        with self._session() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [RelRow(t, sl, si, el, ei, _loads(p)) for t, sl, si, el, ei, p in rows]

    def neighbours(self, label: str, node_id: str, *, limit: int = 200) -> list[tuple[RelRow, NodeRow]]:
        check_label(label)
        node = (label, node_id)
        with self._session() as conn:
            rows = conn.execute(
                f"SELECT {_REL_COLUMNS} FROM rels WHERE start_label = ? AND start_id = ? "
                f"UNION SELECT {_REL_COLUMNS} FROM rels WHERE end_label = ? AND end_id = ? "
                "ORDER BY 1, 2, 3, 4, 5 LIMIT ?", (*node, *node, max(limit, 0))).fetchall()
            out: list[tuple[RelRow, NodeRow]] = []
            for t, sl, si, el, ei, p in rows:
                other = (el, ei) if (sl, si) == node else (sl, si)
                props = self._get(conn, *other) or {"id": other[1]}
                out.append((RelRow(t, sl, si, el, ei, _loads(p)), NodeRow(other[0], other[1], props)))
        return out

    def fulltext(
        self, query: str, *, labels: Sequence[str] | None = None, limit: int = 20
    ) -> list[tuple[str, str, float]]:
        """Substring and character-bigram search, a stand-in for Lucene's ``cjk`` analyser.

        A row scores the share of the query's character bigrams found in its text, plus one when the whole
        query is. SQLite's FTS5 has no bigram tokenizer (its trigram one misses two-character Chinese words),
        so the rows are scanned; a SQL pre-filter keeps only rows whose JSON holds one of the bigrams.
        """
        query = query.strip().lower()  # Lucene's analysers lower-case too
        wanted = list(FULLTEXT_PROPERTIES) if labels is None else [check_label(label) for label in labels]
        wanted = [label for label in wanted if label in FULLTEXT_PROPERTIES]
        if not query or not wanted:
            return []
        grams = sorted({query[i : i + 2] for i in range(max(1, len(query) - 1))})
        sql = f"SELECT label, id, props FROM nodes WHERE label IN ({', '.join('?' * len(wanted))})"
        params: list[Any] = list(wanted)
        # the pre-filter is exact only for text whose case SQLite's lower() folds like Python's (ASCII or
        # caseless) and that JSON does not escape
        if all((c.isascii() and c.isprintable() and c not in '"\\') or (c.lower() == c.upper() and c.isprintable())
               for c in query):
            sql += " AND (" + " OR ".join("instr(lower(props), ?) > 0" for _ in grams) + ")"
            params += grams
        hits: list[tuple[str, str, float]] = []
        with self._session() as conn:
            rows = conn.execute(sql, params).fetchall()
        for label, node_id, text in rows:
            props = _loads(text)
            body = " ".join(str(props.get(p, "")) for p in FULLTEXT_PROPERTIES[label]).lower()
            score = sum(1.0 for g in grams if g in body) / len(grams)
            if query in body:
                score += 1.0
            if score > 0:
                hits.append((label, node_id, score))
        hits.sort(key=lambda h: (-h[2], h[0], h[1]))
        return hits[:limit]

    def counts(self) -> dict[str, int]:
        with self._session() as conn:
            out = dict(conn.execute("SELECT label, count(*) FROM nodes GROUP BY label").fetchall())
            out.update(conn.execute("SELECT type, count(*) FROM rels GROUP BY type").fetchall())
        return {k: int(v) for k, v in out.items() if v}

    # -- vectors and metadata ------------------------------------------------------------
    def write_vectors(self, label: str, key: str, ids: Sequence[str], vectors: np.ndarray) -> None:
        check_label(label)
        if not key.isidentifier():
            raise ValueError(f"bad vector key {key!r}")
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise ValueError("vectors must be a (len(ids), dim) array")
        dim = int(matrix.shape[1])
        with self._write() as conn:
            row = conn.execute("SELECT dim FROM vectors WHERE label = ? AND key = ? LIMIT 1", (label, key)).fetchone()
            if row is not None and row[0] != dim:
                raise ConstraintViolation(f"{label}.{key} holds {row[0]}-dimensional vectors, got {dim}")
            for node_id in ids:  # all or nothing
                if conn.execute("SELECT 1 FROM nodes WHERE label = ? AND id = ?", (label, node_id)).fetchone() is None:
                    raise NodeNotFound(label, node_id)
            conn.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?, ?)",
                             ((label, key, i, dim, v.tobytes()) for i, v in zip(ids, matrix, strict=True)))
            listed = len(ids) <= MAX_CHANGES
            self._record(conn, ([Change(node=(label, i), vectors=True) for i in ids] if listed else None)
                         if label in DOMAIN_LABELS else [], ())

    def read_vectors(self, label: str, key: str) -> tuple[list[str], np.ndarray]:
        check_label(label)
        with self._session() as conn:
            rows = conn.execute("SELECT id, vec FROM vectors WHERE label = ? AND key = ? ORDER BY id",
                                (label, key)).fetchall()
        if not rows:
            return [], np.zeros((0, 0), dtype=np.float32)
        matrix = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1).copy()
        return [r[0] for r in rows], matrix

    def delete_vectors(self, label: str, key: str) -> None:
        check_label(label)
        with self._write() as conn:
            dropped = [r[0] for r in conn.execute("DELETE FROM vectors WHERE label = ? AND key = ? RETURNING id",
                                                  (label, key)).fetchall()]
            listed = len(dropped) <= MAX_CHANGES
            self._record(conn, ([Change(node=(label, i), vectors=True) for i in sorted(dropped)] if listed else None)
                         if label in DOMAIN_LABELS and dropped else [], ())

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
        with self._session() as conn:
            row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str | None) -> None:
        with self._write() as conn:
            if value is None:
                conn.execute("DELETE FROM meta WHERE key = ?", (key,))
            else:
                conn.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                             (key, value))

    # -- research helpers -----------------------------------------------------------------
    def to_networkx(self) -> nx.MultiDiGraph:
        """A networkx copy of the graph: nodes are ``(label, id)`` tuples."""
        graph = nx.MultiDiGraph()
        with self._session() as conn:
            for label, node_id, text in conn.execute("SELECT label, id, props FROM nodes"):
                graph.add_node((label, node_id), label=label, **_loads(text))
            for t, sl, si, el, ei, p in conn.execute(f"SELECT {_REL_COLUMNS} FROM rels"):
                graph.add_edge((sl, si), (el, ei), key=t, type=t, **_loads(p))
        return graph
