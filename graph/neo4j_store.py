"""The Neo4j store: :class:`GraphStore` over the official Python driver (6.x).

Why this module is long: it is one implementation of the whole :class:`~graph.store.GraphStore` contract over
the driver (transactions, preconditions, the change feed, reads, vectors, error translation); the Cypher itself
lives in :mod:`graph.cypher`.

One driver per process, passed in (or created by :meth:`Neo4jStore.connect`, in which case the
store owns and closes it). Every query names the database, runs in a managed transaction
(``execute_read`` / ``execute_write``, retried by the driver on transient failures) and consumes its
result inside the transaction function. The Cypher lives in :mod:`graph.cypher`; labels and
relationship types are checked against :mod:`graph.model` before a statement is looked up.

Vectors are stored on their nodes as ``LIST<FLOAT>`` properties named ``_vec_<key>`` (hidden from
every property read) with a cosine vector index ``<Label>_<key>`` per label and key.

Driver errors are translated here: an unreachable server becomes
:class:`~graph.errors.StoreUnavailable`, a uniqueness failure :class:`~graph.errors.DuplicateNode`
or :class:`~graph.errors.ConstraintViolation`, anything else :class:`~graph.errors.GraphError`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
from neo4j import (
    READ_ACCESS,
    WRITE_ACCESS,
    Driver,
    GraphDatabase,
    ManagedTransaction,
    NotificationDisabledClassification,
    Record,
    Session,
)
from neo4j.exceptions import (
    AuthError,
    ConfigurationError,
    ConstraintError,
    DatabaseUnavailable,
    DriverError,
    Neo4jError,
    ServiceUnavailable,
    SessionExpired,
)

from graph import cypher
from graph.errors import (
    ConstraintViolation,
    DuplicateNode,
    GraphError,
    NodeNotFound,
    StoreUnavailable,
)
from graph.model import DOMAIN_LABELS, LABELS, REL_ENDPOINTS, check_label, check_rel, check_rel_filter
from graph.neo4j_failures import ServerFailures
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
)
from graph.store import decode_change as _decode_change
from graph.store import encode_change as _encode_change

__all__ = ["Neo4jStore", "check_id", "dangling_error", "escape_lucene", "storable"]

_LUCENE_SPECIAL = re.compile(r'([+\-&|!(){}\[\]^"~*?:\\/])')
_MAX_QUERY_CHARS = 256  # Lucene refuses queries of more than 1,024 clauses; the cjk analyser makes one per bigram
_NO_LIMIT = 2**63 - 1
_INDEX_TIMEOUT_S = 300
#: How long :attr:`Neo4jStore.revision` and :meth:`~Neo4jStore.label_revision` answer from what they last read
#: (seconds): one query per request at most every half second, and another client's write is seen within it.
REVISION_TTL = 0.5
_INT64 = 2**63


def escape_lucene(text: str) -> str:
    """Make user text safe for the Lucene query parser behind the full-text index.

    Special characters are backslash-escaped, and the text is lower-cased so that ``AND``/``OR``/
    ``NOT`` are words, not operators (the ``cjk`` analyser lower-cases anyway).

    Examples
    --------
    >>> escape_lucene('主轴 "异响" a:b')
    '主轴 \\\\"异响\\\\" a\\\\:b'
    """
    return _LUCENE_SPECIAL.sub(r"\\\1", text.lower())


def storable(props: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
    """Validate like :func:`check_props`, then adapt values to what Neo4j properties accept.

    Neo4j lists are homogeneous, so a list mixing ints and floats becomes floats, and integers
    must fit in 64 bits.
    """
    out = check_props(props, where=where)
    out.pop("id", None)
    for key, value in out.items():
        if isinstance(value, list) and any(isinstance(v, float) for v in value):
            out[key] = [float(v) for v in value]
        values = value if isinstance(value, list) else [value]
        if any(isinstance(v, int) and not -_INT64 <= v < _INT64 for v in values):
            raise ConstraintViolation(f"{where}property {key!r} holds an integer beyond 64 bits")
    return out


def check_id(label: str, node_id: Any) -> str:
    """``node_id`` if it is a non-empty string; raises :class:`ConstraintViolation` otherwise."""
    if not isinstance(node_id, str) or not node_id:
        raise ConstraintViolation(f"{label} ids must be non-empty strings, got {node_id!r}")
    return node_id


def dangling_error(tx: ManagedTransaction, key: tuple[str, str, str], rows: list[list[Any]]) -> ConstraintViolation:
    """Name one missing endpoint of a relationship chunk (the transaction is rolled back by raising)."""
    rel_type, start_label, end_label = key
    for label, side in ((start_label, 0), (end_label, 1)):
        ids = list(dict.fromkeys(row[side] for row in rows))
        found = set(tx.run(cypher.EXISTING_IDS[label], {"ids": ids}).single(strict=True)["ids"])
        missing = [i for i in ids if i not in found]
        if missing:
            return ConstraintViolation(f"{rel_type}: {label} {missing[0]!r} does not exist")
    return ConstraintViolation(f"{rel_type}: an endpoint does not exist")


def _chunks(rows: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(rows), size):
        yield rows[start : start + size]


def _props(pairs: list[list[Any]]) -> dict[str, Any]:
    return {k: v for k, v in pairs}


def _indexed(label: str, where: Mapping[str, Any]) -> tuple[str, Any] | None:
    """A range-indexed property of ``where`` the planner can seek on."""
    for prop in cypher.RANGE_INDEXED.get(label, ()):
        if where.get(prop) is not None:
            return prop, where[prop]
    return None


def _list_query(label: str, where: Mapping[str, Any] | None, offset: int,
                limit: int | None) -> tuple[str, dict[str, Any]]:
    """The statement and parameters of :meth:`Neo4jStore.list_nodes`."""
    check_label(label)
    if offset < 0 or (limit is not None and limit < 0):
        raise ValueError("offset and limit must be non-negative")
    params: dict[str, Any] = {"where": dict(where or {}), "offset": offset,
                              "limit": _NO_LIMIT - offset if limit is None else limit}
    query = cypher.LIST_NODES[label]
    seek = _indexed(label, params["where"])
    if seek is not None:
        query = cypher.LIST_NODES_BY[(label, seek[0])]
        params["value"] = seek[1]
    return query, params


class _TxReader:
    """The reads of :attr:`WriteBatch.check`, run inside the write transaction (they see the latest commits)."""

    def __init__(self, tx: ManagedTransaction) -> None:
        self._tx = tx

    def get_node(self, label: str, node_id: str) -> dict[str, Any] | None:
        record = self._tx.run(cypher.GET_NODE[check_label(label)], {"id": node_id}).single()
        return None if record is None else _props(record["props"])

    def list_nodes(self, label: str, *, where: Mapping[str, Any] | None = None, offset: int = 0,
                   limit: int | None = None) -> list[dict[str, Any]]:
        query, params = _list_query(label, where, offset, limit)
        return [_props(r["props"]) for r in self._tx.run(query, params)]


class Neo4jStore(GraphStore):
    """The Neo4j implementation of :class:`GraphStore`.

    Parameters
    ----------
    driver
        An open ``neo4j.Driver``; shared, thread-safe. Closed by :meth:`close` only if ``owns_driver``.
    database
        The database every query runs against (``database_`` / session database).
    uri
        Shown in error messages; :meth:`connect` fills it in.
    owns_driver
        Close the driver with the store.
    batch_size
        Rows per ``UNWIND`` statement in :meth:`apply`.
    """

    kind = "neo4j"

    def __init__(
        self,
        driver: Driver,
        database: str = "neo4j",
        *,
        uri: str | None = None,
        owns_driver: bool = False,
        batch_size: int = 5000,
    ) -> None:
        self._driver = driver
        self._database = database
        self._uri = uri or "the Neo4j server"
        self._owns_driver = owns_driver
        self.batch_size = batch_size
        # the feed's position and the label counters as last read or written here, with when (monotonic s)
        self._seen_revision: tuple[int, float] | None = None
        self._seen_labels: dict[str, tuple[int, float]] = {}
        self._store_id = ""
        self._closed = False
        self._lock = threading.Lock()
        self._failures = ServerFailures(self._uri)  # a full disk, a panicked server (issue 16, finding 7)

    @classmethod
    def connect(cls, uri: str, *, user: str = "neo4j", password: str = "", database: str = "neo4j") -> Neo4jStore:
        """Create the process's driver (no authentication when ``password`` is empty) and a store owning it.

        Nothing is sent to the server yet; call :meth:`ping` or :meth:`ensure_schema` to find out
        whether it answers.
        """
        auth = (user, password) if password else None
        try:
            driver = GraphDatabase.driver(
                uri,
                auth=auth,
                # a server that is down should fail a request in seconds, not the driver's default 30 s
                max_transaction_retry_time=5.0,
                connection_timeout=5.0,
                connection_acquisition_timeout=15.0,
            )
        except (ConfigurationError, ValueError) as err:
            raise StoreUnavailable(f"bad Neo4j URI {uri!r}: {err}") from err
        return cls(driver, database, uri=uri, owns_driver=True)

    # -- plumbing ------------------------------------------------------------------------------
    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Turn driver exceptions into :mod:`graph.errors` ones."""
        if self._closed:
            raise StoreUnavailable("the store is closed")
        try:
            yield
            self._failures.succeeded()
        except GraphError:
            raise
        except (ServiceUnavailable, SessionExpired, DatabaseUnavailable) as err:
            raise StoreUnavailable(f"Neo4j at {self._uri} is unavailable: {err}") from err
        except AuthError as err:
            raise StoreUnavailable(f"Neo4j at {self._uri} refused the credentials: {err.message}") from err
        except ConstraintError as err:
            raise ConstraintViolation(err.message or str(err)) from err
        except Neo4jError as err:  # a full disk and a panicked server become StoreFull / StoreNeedsRestart
            raise self._failures.translate(err) from err
        except DriverError as err:
            raise GraphError(f"Neo4j driver error: {err}") from err

    def _session(self, *, write: bool = False) -> Session:
        return self._driver.session(
            database=self._database,
            default_access_mode=WRITE_ACCESS if write else READ_ACCESS,
            # statements name every relationship type of the model, including ones no data uses yet
            notifications_disabled_classifications=[NotificationDisabledClassification.UNRECOGNIZED],
        )

    def _read(self, query: str, params: Mapping[str, Any] | None = None) -> list[Record]:
        def work(tx: ManagedTransaction) -> list[Record]:
            return list(tx.run(query, dict(params or {})))

        with self._translate(), self._session() as s:
            return s.execute_read(work)

    def _read_tx(self, work: Callable[[ManagedTransaction], Any]) -> Any:
        with self._translate(), self._session() as s:
            return s.execute_read(work)

    def _write_tx(self, work: Callable[[ManagedTransaction], Any], changes: list[Change] | None,
                  labels: Iterable[str] = ()) -> Any:
        """Run a write transaction and its change-feed entry in it; ``changes`` are the domain keys it touches
        (``[]``: none, no feed entry; ``None``: unlistable), ``labels`` the labels of the nodes it writes."""
        labels = sorted(set(labels))
        keys = None if changes is None or len(changes) > MAX_CHANGES else json.dumps(
            [_encode_change(c) for c in changes], ensure_ascii=False)

        def with_feed(tx: ManagedTransaction) -> tuple[Any, int | None]:
            result = work(tx)
            return result, self._append_feed(tx, changes, keys, labels)

        with self._translate(), self._session(write=True) as s:
            result, seq = s.execute_write(with_feed)
        self._wrote(seq, labels)
        return result

    @staticmethod
    def _append_feed(tx: ManagedTransaction, changes: list[Change] | None, keys: str | None,
                     labels: list[str]) -> int | None:
        """Write the feed entry of a write in its transaction; return the new revision (``None``: no entry)."""
        seq: int | None = None
        if changes is None or changes:
            seq = int(tx.run(cypher.FEED_APPEND, {"keys": keys}).single(strict=True)["seq"])
            if seq > FEED_WINDOW and seq % 64 == 0:  # prune now and then, in bulk
                tx.run(cypher.FEED_PRUNE, {"below": seq - FEED_WINDOW}).consume()
        if labels:
            tx.run(cypher.FEED_LABELS, {"labels": labels}).consume()
        return seq

    def _wrote(self, seq: int | None, labels: Iterable[str]) -> None:
        """After a commit: this process's view of the revision and of the written labels' counters is stale."""
        with self._lock:
            if seq is not None:
                self._seen_revision = (seq, time.monotonic())
            for label in labels:
                self._seen_labels.pop(label, None)

    def _write(self, query: str, params: Mapping[str, Any] | None, changes: list[Change] | None,
               labels: Iterable[str] = ()) -> list[Record]:
        def work(tx: ManagedTransaction) -> list[Record]:
            return list(tx.run(query, dict(params or {})))

        result: list[Record] = self._write_tx(work, changes, labels)
        return result

    def run_schema(self, query: str, params: Mapping[str, Any] | None = None) -> None:
        """Run one schema statement alone (Neo4j refuses them next to data writes)."""

        def work(tx: ManagedTransaction) -> None:
            tx.run(query, dict(params or {})).consume()

        with self._translate(), self._session(write=True) as s:
            s.execute_write(work)

    def write_unrecorded(self, work: Callable[[ManagedTransaction], Any]) -> Any:
        """Run ``work`` in one write transaction, with the store's error translation and no change-feed entry.

        For writes the feed must not list one by one: the staged bulk load (:mod:`graph.neo4j_load`), whose rows
        stay invisible until its commit, which then calls :meth:`announce_rebuild`.
        """
        with self._translate(), self._session(write=True) as s:
            return s.execute_write(work)

    def announce_rebuild(self) -> None:
        self._write_tx(lambda tx: None, None, LABELS)

    # -- life cycle ----------------------------------------------------------------------------
    def ensure_schema(self) -> None:
        """Uniqueness constraints on ``id`` (every label and ``Meta``), range and full-text indexes."""
        for statement in cypher.CONSTRAINTS.values():
            self.run_schema(statement)
        for statement in cypher.RANGE_INDEXES:
            self.run_schema(statement)
        self.run_schema(cypher.FULLTEXT_INDEX_DDL)
        for statement in cypher.FEED_SCHEMA:
            self.run_schema(statement)
        self.run_schema(cypher.AWAIT_INDEXES, {"timeout": _INDEX_TIMEOUT_S})
        self._read_feed(create=True)

    def ping(self) -> None:
        """Run ``RETURN 1``; a second attempt absorbs a pooled connection that died with a restart."""
        for attempt in range(2):
            try:
                with self._translate(), self._session() as s:
                    s.run(cypher.PING).consume()
                return
            except StoreUnavailable:
                if attempt:
                    raise

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._owns_driver:
            self._driver.close()

    def _read_feed(self, *, create: bool = False) -> int:
        """Read (or create) the feed node: the revision, and the store id."""
        record: Record | None
        if create:
            with self._translate(), self._session(write=True) as s:
                record = s.execute_write(lambda tx: tx.run(cypher.FEED_ENSURE).single(strict=True))
        else:
            records = self._read(cypher.FEED_READ)
            record = records[0] if records else None
        seq = 0 if record is None else int(record["seq"])
        with self._lock:
            if record is not None:
                self._store_id = str(record["store_id"])
            self._seen_revision = (seq, time.monotonic())
        return seq

    @property
    def revision(self) -> int:
        """The change feed's position in the database (every client's writes move it), read at most every
        :data:`REVISION_TTL` seconds (this instance's own writes update it at once)."""
        with self._lock:
            seen = self._seen_revision
        if seen is not None and time.monotonic() - seen[1] < REVISION_TTL:
            return seen[0]
        return self._read_feed()

    def label_revision(self, label: str) -> int | None:
        """The durable counter of writes of ``label`` nodes by every client (cached as :attr:`revision` is)."""
        check_label(label)
        with self._lock:
            seen = self._seen_labels.get(label)
        if seen is not None and time.monotonic() - seen[1] < REVISION_TTL:
            return seen[0]
        records = self._read(cypher.LABEL_REVISION, {"label": label})
        value = int(records[0]["revision"]) if records else 0
        with self._lock:
            self._seen_labels[label] = (value, time.monotonic())
        return value

    def changes_since(self, revision: int) -> list[Change] | None:
        """What the writes after ``revision`` touched, read from the feed's entries (``None``: pruned or unlistable)."""
        records = self._read(cypher.FEED_SINCE, {"since": revision})
        current = int(records[0]["seq"]) if records else 0
        with self._lock:
            self._seen_revision = (current, time.monotonic())
        if revision == current:
            return []
        if revision > current or revision < 0:
            return None
        entries = records[0]["entries"]
        if len(entries) != current - revision or entries[0][0] != revision + 1:
            return None  # pruned
        out: list[Change] = []
        for _, keys in entries:
            if keys is None:
                return None
            out.extend(_decode_change(item) for item in json.loads(keys))
        return out

    @property
    def store_id(self) -> str:
        """The random id of this database's change feed (made with it by :meth:`ensure_schema`)."""
        if not self._store_id:
            self._read_feed(create=True)
        return self._store_id

    @property
    def database(self) -> str:
        """The database this store reads and writes."""
        return self._database

    # -- writes --------------------------------------------------------------------------------
    def apply(self, batch: WriteBatch, *, progress: Progress | None = None) -> None:
        """One write transaction: lock and check the preconditions, merge nodes, then relationships (refusing
        dangling endpoints), then deletions."""
        nodes: dict[str, list[list[Any]]] = defaultdict(list)
        for n in batch.nodes:
            label = check_label(n.label)
            nodes[label].append([check_id(label, n.id), storable(n.props, where=f"{label} {n.id}: ")])
        rels: dict[tuple[str, str, str], list[list[Any]]] = defaultdict(list)
        for r in batch.rels:
            check_rel(r.type, r.start_label, r.end_label)
            props = storable(r.props, where=f"{r.type}: ")
            rels[(r.type, r.start_label, r.end_label)].append(
                [r.start_id, r.end_id, props] if props else [r.start_id, r.end_id])
        deletes: dict[tuple[str, str, str], list[list[Any]]] = defaultdict(list)
        for r in batch.delete_rels:
            check_rel(r.type, r.start_label, r.end_label)
            deletes[(r.type, r.start_label, r.end_label)].append([r.start_id, r.end_id])
        size = self.batch_size
        expects = sorted(batch.expect, key=lambda e: (check_label(e.label), e.id))

        def work(tx: ManagedTransaction) -> None:
            # preconditions first, each after taking the node's lock (see cypher.LOCK_NODE); raising rolls back
            for expect in expects:
                record = tx.run(cypher.LOCK_NODE[expect.label], {"id": expect.id}).single()
                check_expect(expect, None if record is None else _props(record["props"]))
            if batch.check is not None:
                batch.check(_TxReader(tx))
            for label, rows in nodes.items():
                for chunk in _chunks(rows, size):
                    tx.run(cypher.MERGE_NODES[label], {"rows": chunk}).consume()
                    if progress:
                        progress(len(chunk))
            for key, rows in rels.items():
                for chunk in _chunks(rows, size):
                    record = tx.run(cypher.MERGE_RELS[key], {"rows": chunk}).single(strict=True)
                    if record["n"] != len(chunk):
                        raise dangling_error(tx, key, chunk)
                    if progress:
                        progress(len(chunk))
            for key, rows in deletes.items():
                for chunk in _chunks(rows, size):
                    tx.run(cypher.DELETE_RELS[key], {"rows": chunk}).consume()

        changes: list[Change] | None = None
        if len(batch) <= MAX_CHANGES:  # a bulk load is not worth listing
            changes = [Change(node=(n.label, n.id)) for n in batch.nodes if n.label in DOMAIN_LABELS]
            changes += [Change(rel=r.key) for r in batch.rels]
            changes += [Change(rel=r.key) for r in batch.delete_rels]
        elif not batch.rels and not batch.delete_rels and all(n.label not in DOMAIN_LABELS for n in batch.nodes):
            changes = []
        if len(batch) or expects or batch.check is not None:
            self._write_tx(work, changes, [n.label for n in batch.nodes])

    def create_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        check_label(label)
        check_id(label, node_id)
        clean = {k: v for k, v in storable(props).items() if v is not None}
        try:
            records = self._write(cypher.CREATE_NODE[label], {"id": node_id, "props": clean},
                                  [Change(node=(label, node_id))] if label in DOMAIN_LABELS else [], [label])
        except ConstraintViolation as err:
            if isinstance(err.__cause__, ConstraintError):
                raise DuplicateNode(label, node_id) from err.__cause__
            raise
        return _props(records[0]["props"])

    def update_node(self, label: str, node_id: str, props: Mapping[str, Any]) -> dict[str, Any]:
        check_label(label)
        # ``SET n += $props`` removes the properties whose value is null
        records = self._write(cypher.UPDATE_NODE[label], {"id": node_id, "props": storable(props)},
                              [Change(node=(label, node_id))] if label in DOMAIN_LABELS else [], [label])
        if not records:
            raise NodeNotFound(label, node_id)
        return _props(records[0]["props"])

    def delete_node(self, label: str, node_id: str) -> None:
        check_label(label)
        # the relationships detached with a domain node are not listed
        records = self._write(cypher.DELETE_NODE[label], {"id": node_id}, None if label in DOMAIN_LABELS else [],
                              [label])
        if not records or not records[0]["deleted"]:
            raise NodeNotFound(label, node_id)

    def clear(self) -> None:
        """Delete every node in batches (not atomic), then drop this store's vector indexes."""
        with self._translate(), self._session(write=True) as s:
            try:
                s.run(cypher.CLEAR).consume()
            finally:
                self.announce_rebuild()
        for index in self._vector_indexes():
            self.run_schema(cypher.DROP_INDEX, {"name": index["name"]})

    # -- reads ---------------------------------------------------------------------------------
    def get_node(self, label: str, node_id: str) -> dict[str, Any] | None:
        check_label(label)
        records = self._read(cypher.GET_NODE[label], {"id": node_id})
        return _props(records[0]["props"]) if records else None

    @staticmethod
    def _indexed(label: str, where: Mapping[str, Any]) -> tuple[str, Any] | None:
        return _indexed(label, where)

    def list_nodes(
        self,
        label: str,
        *,
        where: Mapping[str, Any] | None = None,
        offset: int = 0,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        query, params = _list_query(label, where, offset, limit)
        return [_props(r["props"]) for r in self._read(query, params)]

    def iter_nodes(self, label: str, *, batch: int = 5000) -> Iterator[dict[str, Any]]:
        """Every node of a label in id order, paged by key (``n.id > last``) rather than by offset."""
        check_label(label)
        if batch <= 0:
            raise ValueError("batch must be positive")

        def pages() -> Iterator[dict[str, Any]]:
            after = ""
            while True:
                records = self._read(cypher.PAGE_NODES[label], {"after": after, "limit": batch})
                for record in records:
                    node = _props(record["props"])
                    after = node["id"]
                    yield node
                if len(records) < batch:
                    return

        return pages()

    def count_nodes(self, label: str, *, where: Mapping[str, Any] | None = None) -> int:
        check_label(label)
        if not where:
            return int(self._read(cypher.COUNT_NODES[label])[0]["n"])
        params: dict[str, Any] = {"where": dict(where)}
        query = cypher.COUNT_NODES_WHERE[label]
        seek = self._indexed(label, where)
        if seek is not None:
            query = cypher.COUNT_NODES_BY[(label, seek[0])]
            params["value"] = seek[1]
        return int(self._read(query, params)[0]["n"])

    def relationships(
        self,
        rel_type: str,
        *,
        start: tuple[str, str] | None = None,
        end: tuple[str, str] | None = None,
    ) -> list[RelRow]:
        check_rel_filter(rel_type, start, end)
        pairs = sorted(
            (a, b) for a, b in REL_ENDPOINTS[rel_type]
            if (start is None or a == start[0]) and (end is None or b == end[0])
        )
        params: dict[str, Any] = {"s": start[1] if start else None, "e": end[1] if end else None}
        family = (cypher.RELS_BETWEEN if start and end else cypher.RELS_FROM if start
                  else cypher.RELS_TO if end else cypher.RELS_ALL)

        def work(tx: ManagedTransaction) -> list[RelRow]:
            rows: list[RelRow] = []
            for a, b in pairs:
                for record in tx.run(family[(rel_type, a, b)], params):
                    rows.append(RelRow(rel_type, a, record["s"], b, record["e"], dict(record["props"])))
            return rows

        rows: list[RelRow] = self._read_tx(work)
        rows.sort(key=lambda r: r.key)
        return rows

    def neighbours(self, label: str, node_id: str, *, limit: int = 200) -> list[tuple[RelRow, NodeRow]]:
        check_label(label)
        records = self._read(cypher.NEIGHBOURS[label],
                             {"id": node_id, "label": label, "labels": list(LABELS), "limit": max(limit, 0)})
        out: list[tuple[RelRow, NodeRow]] = []
        for r in records:
            rel = RelRow(r["type"], r["start_label"], r["start_id"], r["end_label"], r["end_id"], dict(r["rel_props"]))
            other = _props(r["other_props"])
            out.append((rel, NodeRow(r["other_label"], other["id"], other)))
        return out

    def fulltext(
        self, query: str, *, labels: Sequence[str] | None = None, limit: int = 20
    ) -> list[tuple[str, str, float]]:
        """Lucene full-text search (``cjk`` analyser: Chinese is matched by character bigrams)."""
        wanted = [check_label(label) for label in labels] if labels is not None else list(LABELS)
        text = query.strip()[:_MAX_QUERY_CHARS]
        if not text or limit <= 0:
            return []
        params = {"index": cypher.FULLTEXT_INDEX, "query": escape_lucene(text), "limit": limit, "labels": wanted}
        statement = cypher.FULLTEXT_QUERY if labels is None else cypher.FULLTEXT_QUERY_LABELS
        hits = [(r["label"], r["id"], float(r["score"])) for r in self._read(statement, params)]
        hits.sort(key=lambda h: (-h[2], h[0], h[1]))
        return hits

    def counts(self) -> dict[str, int]:
        def work(tx: ManagedTransaction) -> dict[str, int]:
            out: dict[str, int] = {}
            for label, statement in cypher.COUNT_NODES.items():
                out[label] = tx.run(statement).single(strict=True)["n"]
            for rel_type, statement in cypher.COUNT_RELS.items():
                out[rel_type] = tx.run(statement).single(strict=True)["n"]
            return {k: v for k, v in out.items() if v}

        result: dict[str, int] = self._read_tx(work)
        return result

    # -- vectors -------------------------------------------------------------------------------
    def _vector_indexes(self) -> list[Record]:
        """The vector indexes this store made (over a ``_vec_`` property of a model label)."""
        return [
            r for r in self._read(cypher.SHOW_VECTOR_INDEXES)
            if r["labelsOrTypes"] and r["labelsOrTypes"][0] in LABELS
            and r["properties"] and r["properties"][0].startswith(cypher.VECTOR_PREFIX)
        ]

    def _vector_dimension(self, label: str, key: str) -> tuple[int | None, bool]:
        """The dimension of the stored vectors (from the index, else the data) and whether an index exists."""
        name = cypher.vector_index_name(label, key)
        for index in self._read(cypher.SHOW_VECTOR_INDEXES):
            if index["name"] == name:
                dim = (index["options"] or {}).get("indexConfig", {}).get("vector.dimensions")
                return (int(dim) if dim is not None else None), True
        records = self._read(cypher.VECTOR_DIMENSION[label], {"prop": cypher.vector_property(key)})
        return (int(records[0]["dim"]) if records else None), False

    @staticmethod
    def _check_key(key: str) -> str:
        if not isinstance(key, str) or not key.isidentifier() or not key.isascii():
            raise ValueError(f"bad vector key {key!r}")
        return cypher.vector_property(key)

    def write_vectors(self, label: str, key: str, ids: Sequence[str], vectors: np.ndarray) -> None:
        check_label(label)
        prop = self._check_key(key)
        matrix = np.asarray(vectors, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] != len(ids):
            raise ValueError("vectors must be a (len(ids), dim) array")
        if not np.isfinite(matrix).all():
            raise ValueError("vectors must be finite")
        if not len(ids):
            return
        dim = int(matrix.shape[1])
        existing, indexed = self._vector_dimension(label, key)
        if existing is not None and existing != dim:
            raise ConstraintViolation(f"{label}.{key} holds {existing}-dimensional vectors, got {dim}")
        rows = [{"id": node_id, "vector": vec.tolist()} for node_id, vec in zip(ids, matrix, strict=True)]
        size = self.batch_size

        def work(tx: ManagedTransaction) -> None:
            for chunk in _chunks(rows, size):
                record = tx.run(cypher.WRITE_VECTORS[label], {"rows": chunk, "prop": prop}).single(strict=True)
                if record["n"] != len(chunk):
                    wanted = [row["id"] for row in chunk]
                    found = set(tx.run(cypher.EXISTING_IDS[label], {"ids": wanted}).single(strict=True)["ids"])
                    raise NodeNotFound(label, next(i for i in wanted if i not in found))

        listed = len(ids) <= MAX_CHANGES
        self._write_tx(work, ([Change(node=(label, i), vectors=True) for i in ids] if listed else None)
                       if label in DOMAIN_LABELS else [])
        if not indexed:
            name = cypher.vector_index_name(label, key)
            self.run_schema(cypher.vector_index_ddl(label, key), {"dim": dim})
            self.run_schema(cypher.AWAIT_INDEX, {"name": name, "timeout": _INDEX_TIMEOUT_S})

    def read_vectors(self, label: str, key: str) -> tuple[list[str], np.ndarray]:
        check_label(label)
        records = self._read(cypher.READ_VECTORS[label], {"prop": self._check_key(key)})
        if not records:
            return [], np.zeros((0, 0), dtype=np.float32)
        return [r["id"] for r in records], np.array([r["vector"] for r in records], dtype=np.float32)

    def delete_vectors(self, label: str, key: str) -> None:
        check_label(label)
        self._write(cypher.DELETE_VECTORS[label], {"prop": self._check_key(key)},
                    None if label in DOMAIN_LABELS else [])
        self.run_schema(cypher.DROP_INDEX, {"name": cypher.vector_index_name(label, key)})

    def vector_query(
        self, label: str, key: str, vector: Sequence[float] | np.ndarray, k: int = 10
    ) -> list[tuple[str, float]]:
        """Nearest stored vectors by cosine similarity through the vector index (approximate, HNSW)."""
        check_label(label)
        self._check_key(key)
        query = np.asarray(vector, dtype=np.float32).ravel()
        if k <= 0:
            return []
        dim, indexed = self._vector_dimension(label, key)
        if dim is None or not indexed:
            return []
        if query.shape[0] != dim:
            raise ValueError(f"{label}.{key} holds {dim}-dimensional vectors, the query has {query.shape[0]}")
        records = self._read(cypher.VECTOR_QUERY,
                             {"name": cypher.vector_index_name(label, key), "k": k, "vector": query.tolist()})
        # Neo4j reports cosine similarity rescaled to [0, 1] as (1 + cos) / 2
        hits = [(r["id"], 2.0 * float(r["score"]) - 1.0) for r in records]
        hits.sort(key=lambda h: (-h[1], h[0]))
        return hits

    # -- metadata ------------------------------------------------------------------------------
    def get_meta(self, key: str) -> str | None:
        records = self._read(cypher.GET_META, {"key": key})
        return records[0]["value"] if records else None

    def set_meta(self, key: str, value: str | None) -> None:
        if value is None:
            self._write(cypher.DELETE_META, {"key": key}, [])
        else:
            self._write(cypher.SET_META, {"key": key, "value": value}, [])
