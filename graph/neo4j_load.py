"""A bulk write into Neo4j in many small transactions with an all-or-nothing outcome (``jianglian load``).

One transaction per dataset needs heap in proportion to the dataset (≈ 5 KiB per node row: the launcher's
1 GiB heap stops at ≈ 100k node rows, ``docs/scaling.md``). :func:`staged_apply` writes a
:class:`~graph.store.WriteBatch` in chunks of ``store.batch_size`` rows instead, each its own transaction, and
keeps the outcome all or nothing with a **load id**:

1. A record ``Meta {id: "jianglian.bulk_load"}`` names the load (id, state ``staging``, pid, host).
2. *Staging*: every node the load writes is tagged ``_load = <id>``; a node it creates also gets ``_load_new``,
   a node it changes keeps the previous values of the properties it sets in ``_load_prev`` (JSON). A
   relationship between two nodes that existed before the load is tagged the same way (created, or changed
   with its previous properties); a relationship that a re-loaded row no longer implies is only marked
   ``_load_del``. Relationships touching a created node need no tag: undoing deletes the node with them.
3. *Commit*: the record's state becomes ``committing``; then, in chunks, marked relationships are deleted and
   every tag is removed; then the record is deleted.

A failure while staging (an exception, ``Ctrl-C``) undoes the load at once: created nodes and relationships are
deleted, changed ones get their previous values back, marks are removed. A process killed while staging leaves
its record and tags; the next load (or ``jianglian load --undo``) finds the record, sees that its process is
gone and undoes it. A load killed while committing cannot be undone (part of it is already final), so it is
rolled forward: the commit is finished. Either way the database ends as it was before the load or with the
whole load in it.

What it does not give: isolation. While a load stages, other processes can read its nodes (tagged, not yet
committed) and a concurrent writer's change to a staged node can be overwritten by an undo. The tags start with
``_``, which the API, the UI and ``export`` never show. Each tag has a range index (created once), so commit
and undo find their rows without scanning a label.

The statements are built from the model's whitelists with :func:`graph.cypher._fill`, like every other
statement (they live here because only this module runs them).
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from neo4j import ManagedTransaction

from graph import cypher
from graph.errors import GraphError
from graph.model import DOMAIN_LABELS, LABELS, REL_TYPES, check_label, check_rel
from graph.store import Progress, WriteBatch

if TYPE_CHECKING:
    from graph.neo4j_store import Neo4jStore

__all__ = [
    "LOAD_META_KEY",
    "LoadInProgress",
    "PendingLoad",
    "pending_load",
    "recover",
    "staged_apply",
]

#: The metadata key of the record of a load that has not finished (absent when none).
LOAD_META_KEY: Final = "jianglian.bulk_load"

Log = Callable[[str], object]


class LoadInProgress(GraphError):
    """Another process is loading into the same database right now."""


@dataclass(frozen=True)
class PendingLoad:
    """The record of a load that has not finished."""

    id: str
    state: str  # "staging" or "committing"
    pid: int
    host: str
    started: float

    @property
    def running(self) -> bool:
        """Whether its process still runs (only knowable on the same host; another host's load counts as running)."""
        if self.host != socket.gethostname():
            return True
        if self.pid == os.getpid():
            return False
        try:
            with open(f"/proc/{self.pid}/stat", encoding="ascii") as fh:
                return fh.read().split(") ", 1)[1][0] != "Z"
        except (FileNotFoundError, IndexError):
            return False
        except OSError:
            return True


# -- statements ------------------------------------------------------------------------------------
def _remove_tags(var: str) -> str:
    return f"REMOVE {var}._load, {var}._load_new, {var}._load_prev"


_NODE_INDEXES: Final = tuple(
    cypher._fill("CREATE INDEX jianglian_load___L__ IF NOT EXISTS FOR (n:__L__) ON (n._load)", L=label)
    for label in LABELS
)
_REL_INDEXES: Final = tuple(
    cypher._fill("CREATE INDEX jianglian_load___T__ IF NOT EXISTS FOR ()-[r:__T__]-() ON (r._load)", T=t)
    for t in REL_TYPES
)
#: Properties of the nodes of a chunk that exist and are not yet part of the load, for ``_load_prev``.
_PREV_NODES: Final = cypher.per_label(
    "UNWIND $ids AS id MATCH (n:__L__ {id: id}) WHERE n._load IS NULL "
    "RETURN n.id AS id, [k IN keys(n) WHERE NOT k STARTS WITH '_' | [k, n[k]]] AS props"
)
#: Rows ``[id, props, prev JSON or null]``.
_STAGE_NODES: Final = cypher.per_label(
    "UNWIND $rows AS row MERGE (n:__L__ {id: row[0]}) ON CREATE SET n._load_new = true "
    "SET n += row[1], n._load = $load, n._load_prev = coalesce(n._load_prev, row[2])"
)
_PREV_RELS: Final = cypher._per_rel(
    "UNWIND $rows AS row MATCH (a:__A__ {id: row[0]})-[r:__T__]->(b:__B__ {id: row[1]}) WHERE r._load IS NULL "
    "RETURN a.id AS s, b.id AS e, [k IN keys(r) WHERE NOT k STARTS WITH '_' | [k, r[k]]] AS props"
)
#: Rows ``[start id, end id, props or null, prev JSON or null]``; tags only relationships between two nodes
#: the load did not create. Returns how many rows found both endpoints.
_STAGE_RELS: Final = cypher._per_rel(
    "UNWIND $rows AS row MATCH (a:__A__ {id: row[0]}) MATCH (b:__B__ {id: row[1]}) "
    "MERGE (a)-[r:__T__]->(b) SET r += coalesce(row[2], {}) "
    "WITH r, row, a._load_new IS NULL AND b._load_new IS NULL AS tracked "
    "SET r._load = CASE WHEN tracked THEN $load ELSE r._load END, "
    "r._load_new = CASE WHEN tracked AND row[3] IS NULL THEN true ELSE r._load_new END, "
    "r._load_prev = CASE WHEN tracked AND r._load_prev IS NULL THEN row[3] ELSE r._load_prev END "
    "RETURN count(*) AS n"
)
_MARK_DELETE: Final = cypher._per_rel(
    "UNWIND $rows AS row MATCH (a:__A__ {id: row[0]})-[r:__T__]->(b:__B__ {id: row[1]}) "
    "SET r._load = $load, r._load_del = true"
)


def _per_type(template: str) -> Mapping[str, str]:
    return MappingProxyType({t: cypher._fill(template, T=t) for t in REL_TYPES})


_COMMIT_DELETES: Final = _per_type(
    "MATCH ()-[r:__T__]->() WHERE r._load = $load AND r._load_del WITH r LIMIT $limit DELETE r RETURN count(*) AS n"
)
_COMMIT_RELS: Final = _per_type(
    "MATCH ()-[r:__T__]->() WHERE r._load = $load WITH r LIMIT $limit " + _remove_tags("r") + " RETURN count(*) AS n"
)
_COMMIT_NODES: Final = cypher.per_label(
    "MATCH (n:__L__) WHERE n._load = $load WITH n LIMIT $limit " + _remove_tags("n") + " RETURN count(*) AS n"
)
_UNDO_NEW_RELS: Final = _per_type(
    "MATCH ()-[r:__T__]->() WHERE r._load = $load AND r._load_new WITH r LIMIT $limit DELETE r "
    "RETURN count(*) AS n"
)
_UNDO_MARKS: Final = _per_type(
    "MATCH ()-[r:__T__]->() WHERE r._load = $load AND r._load_del WITH r LIMIT $limit "
    "REMOVE r._load, r._load_del RETURN count(*) AS n"
)
_UNDO_PREV_RELS: Final = _per_type(
    "MATCH ()-[r:__T__]->() WHERE r._load = $load WITH r LIMIT $limit RETURN elementId(r) AS rid, r._load_prev AS prev"
)
_RESTORE_RELS: Final = _per_type(
    "UNWIND $rows AS row MATCH ()-[r:__T__]->() WHERE elementId(r) = row[0] SET r += row[1] "
    + _remove_tags("r")
)
_UNDO_NEW_NODES: Final = cypher.per_label(
    "MATCH (n:__L__) WHERE n._load = $load AND n._load_new WITH n LIMIT $limit DETACH DELETE n RETURN count(*) AS n"
)
_UNDO_PREV_NODES: Final = cypher.per_label(
    "MATCH (n:__L__) WHERE n._load = $load WITH n LIMIT $limit RETURN n.id AS id, n._load_prev AS prev"
)
_RESTORE_NODES: Final = cypher.per_label(
    "UNWIND $rows AS row MATCH (n:__L__ {id: row[0]}) SET n += row[1] " + _remove_tags("n")
)
_ANY_NODE: Final = cypher.per_label("MATCH (n:__L__) RETURN count(n) > 0 AS any")


# -- plumbing --------------------------------------------------------------------------------------
def _write(store: Neo4jStore, work: Callable[[ManagedTransaction], Any]) -> Any:
    """One write transaction through the store's driver and error translation, not counted as a change."""
    return store.write_unrecorded(work)


def _loop(store: Neo4jStore, statement: str, load: str, limit: int) -> int:
    """Run a ``... LIMIT $limit ... RETURN count(*) AS n`` statement until it touches nothing; the total."""
    total = 0
    while True:
        def work(tx: ManagedTransaction) -> int:
            return int(tx.run(statement, {"load": load, "limit": limit}).single(strict=True)["n"])

        n = _write(store, work)
        total += n
        if n == 0:
            return total


def _announce(store: Neo4jStore) -> None:
    """One unlistable change-feed entry (every label counted), so every process's caches of the graph rebuild."""
    store.announce_rebuild()


def _record(store: Neo4jStore, load: PendingLoad | None) -> None:
    store.set_meta(LOAD_META_KEY, None if load is None else json.dumps(load.__dict__))


def pending_load(store: Neo4jStore) -> PendingLoad | None:
    """The record of a load that has not finished (staging or committing), or ``None``."""
    raw = store.get_meta(LOAD_META_KEY)
    if not raw:
        return None
    data = json.loads(raw)
    return PendingLoad(str(data["id"]), str(data["state"]), int(data["pid"]), str(data["host"]),
                       float(data["started"]))


def _ensure_indexes(store: Neo4jStore) -> None:
    for statement in (*_NODE_INDEXES, *_REL_INDEXES):
        store.run_schema(statement)
    store.run_schema(cypher.AWAIT_INDEXES, {"timeout": 300})


# -- commit and undo -------------------------------------------------------------------------------
def _commit(store: Neo4jStore, load: str, limit: int, log: Log) -> None:
    started = time.monotonic()
    deleted = sum(_loop(store, _COMMIT_DELETES[t], load, limit) for t in REL_TYPES)
    rels = sum(_loop(store, _COMMIT_RELS[t], load, limit) for t in REL_TYPES)
    nodes = sum(_loop(store, _COMMIT_NODES[label], load, limit) for label in LABELS)
    log(f"load {load} committed: {nodes} nodes and {rels} relationships untagged, {deleted} stale relationships "
        f"deleted in {time.monotonic() - started:.1f} s")


def _undo(store: Neo4jStore, load: str, limit: int, log: Log) -> None:
    started = time.monotonic()
    rels = sum(_loop(store, _UNDO_NEW_RELS[t], load, limit) for t in REL_TYPES)
    unmarked = sum(_loop(store, _UNDO_MARKS[t], load, limit) for t in REL_TYPES)
    restored = 0
    for t in REL_TYPES:
        restored += _restore(store, _UNDO_PREV_RELS[t], _RESTORE_RELS[t], "rid", load, limit)
    nodes = sum(_loop(store, _UNDO_NEW_NODES[label], load, limit) for label in LABELS)
    for label in LABELS:
        restored += _restore(store, _UNDO_PREV_NODES[label], _RESTORE_NODES[label], "id", load, limit)
    log(f"load {load} undone: {nodes} created nodes and {rels} created relationships deleted, {restored} changed "
        f"nodes and relationships restored, {unmarked} relationship deletions cancelled "
        f"in {time.monotonic() - started:.1f} s")


def _restore(store: Neo4jStore, read: str, write: str, key: str, load: str, limit: int) -> int:
    total = 0
    while True:
        def work(tx: ManagedTransaction) -> int:
            rows = [[r[key], json.loads(r["prev"]) if r["prev"] else {}]
                    for r in tx.run(read, {"load": load, "limit": limit})]
            if rows:
                tx.run(write, {"rows": rows}).consume()
            return len(rows)

        n = _write(store, work)
        total += n
        if n == 0:
            return total


def recover(store: Neo4jStore, *, log: Log = print, limit: int = 10_000) -> str | None:
    """Finish or undo a load whose process is gone: ``"undone"``, ``"committed"``, or ``None`` if there was none.

    A load that was staging is undone; one that was committing is committed (it cannot be undone any more).

    Raises
    ------
    LoadInProgress
        If the load's process still runs.
    """
    pending = pending_load(store)
    if pending is None:
        return None
    if pending.running:
        raise LoadInProgress(f"load {pending.id} by process {pending.pid} on {pending.host} is still {pending.state} "
                             "(wait for it, or stop that process first)")
    if pending.state == "committing":
        log(f"load {pending.id} (process {pending.pid}) was killed while committing: finishing its commit")
        _commit(store, pending.id, limit, log)
        outcome = "committed"
    else:
        log(f"load {pending.id} (process {pending.pid}) did not finish: undoing it")
        _undo(store, pending.id, limit, log)
        outcome = "undone"
    _record(store, None)
    _announce(store)
    return outcome


# -- the load --------------------------------------------------------------------------------------
def _prev_json(old: Mapping[str, Any], keys: Any) -> str:
    return json.dumps({k: old.get(k) for k in keys}, ensure_ascii=False, sort_keys=True)


def staged_apply(
    store: Neo4jStore,
    batch: WriteBatch,
    *,
    progress: Progress | None = None,
    log: Log = print,
    fail_after: int | None = None,
) -> str:
    """Write ``batch`` (nodes, relationships, relationship deletions; no preconditions) in chunks, all or nothing.

    Parameters
    ----------
    progress
        Called with the number of rows each chunk staged.
    log
        Told about recovery, commit and undo.
    fail_after
        Raise after staging this many rows (tests: a failure halfway).

    Returns
    -------
    str
        The load id.

    Raises
    ------
    LoadInProgress
        If another process is loading into the database.
    ConstraintViolation
        On a relationship whose endpoint does not exist (the load is undone).
    """
    if batch.expect or batch.check is not None:
        raise ValueError("a staged load takes no preconditions")
    recover(store, log=log)
    _ensure_indexes(store)
    fresh = not any(_write(store, _any_node(label)) for label in DOMAIN_LABELS)
    load = PendingLoad(uuid.uuid4().hex[:16], "staging", os.getpid(), socket.gethostname(), time.time())
    _record(store, load)
    size = store.batch_size
    staged = 0

    def staged_rows(n: int) -> None:
        nonlocal staged
        staged += n
        if progress:
            progress(n)
        if fail_after is not None and staged >= fail_after:
            raise GraphError(f"injected failure after {staged} rows")

    try:
        nodes: dict[str, list[Any]] = defaultdict(list)
        for n in batch.nodes:
            nodes[check_label(n.label)].append(n)
        for label, rows in nodes.items():
            for start in range(0, len(rows), size):
                chunk = rows[start:start + size]
                _write(store, _stage_nodes(label, chunk, load.id, fresh))
                staged_rows(len(chunk))
        rels: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
        for r in batch.rels:
            check_rel(r.type, r.start_label, r.end_label)
            rels[(r.type, r.start_label, r.end_label)].append(r)
        for key, rows in rels.items():
            for start in range(0, len(rows), size):
                chunk = rows[start:start + size]
                _write(store, _stage_rels(store, key, chunk, load.id, fresh))
                staged_rows(len(chunk))
        deletes: dict[tuple[str, str, str], list[list[str]]] = defaultdict(list)
        for r in batch.delete_rels:
            check_rel(r.type, r.start_label, r.end_label)
            deletes[(r.type, r.start_label, r.end_label)].append([r.start_id, r.end_id])
        for key, pairs in deletes.items():
            for start in range(0, len(pairs), size):
                chunk = pairs[start:start + size]
                _write(store, _mark_deletes(key, chunk, load.id))
    except BaseException:
        try:
            _undo(store, load.id, size, log)
            _record(store, None)
        except Exception as err:  # the next load (or `jianglian load --undo`) undoes it
            log(f"load {load.id} could not be undone now ({err}); the next load or `jianglian load --undo` will")
        finally:
            _announce(store)
        raise
    _record(store, PendingLoad(load.id, "committing", load.pid, load.host, load.started))
    try:
        _commit(store, load.id, size, log)
        _record(store, None)
    finally:
        _announce(store)
    return load.id


def _any_node(label: str) -> Callable[[ManagedTransaction], bool]:
    def work(tx: ManagedTransaction) -> bool:
        return bool(tx.run(_ANY_NODE[label]).single(strict=True)["any"])

    return work


def _mark_deletes(key: tuple[str, str, str], pairs: list[list[str]],
                  load: str) -> Callable[[ManagedTransaction], None]:
    def work(tx: ManagedTransaction) -> None:
        tx.run(_MARK_DELETE[key], {"rows": pairs, "load": load}).consume()

    return work


def _stage_nodes(label: str, chunk: list[Any], load: str, fresh: bool) -> Callable[[ManagedTransaction], None]:
    from graph.neo4j_store import check_id, storable

    by_id: dict[str, dict[str, Any]] = {
        check_id(label, n.id): storable(n.props, where=f"{label} {n.id}: ") for n in chunk}

    def work(tx: ManagedTransaction) -> None:
        prev: dict[str, str] = {}
        if not fresh:
            for record in tx.run(_PREV_NODES[label], {"ids": list(by_id)}):
                prev[record["id"]] = _prev_json(dict(record["props"]), by_id[record["id"]].keys())
        rows = [[node_id, values, prev.get(node_id)] for node_id, values in by_id.items()]
        tx.run(_STAGE_NODES[label], {"rows": rows, "load": load}).consume()

    return work


def _stage_rels(store: Neo4jStore, key: tuple[str, str, str], chunk: list[Any], load: str,
                fresh: bool) -> Callable[[ManagedTransaction], None]:
    from graph.neo4j_store import dangling_error, storable

    props: dict[tuple[str, str], dict[str, Any]] = {
        (r.start_id, r.end_id): storable(r.props, where=f"{r.type}: ") for r in chunk}
    pairs = [[start, end] for start, end in props]

    def work(tx: ManagedTransaction) -> None:
        prev: dict[tuple[str, str], str] = {}
        if not fresh:
            for record in tx.run(_PREV_RELS[key], {"rows": pairs}):
                pair = (record["s"], record["e"])
                prev[pair] = _prev_json(dict(record["props"]), props[pair].keys())
        rows = [[start, end, values or None, prev.get((start, end))] for (start, end), values in props.items()]
        record = tx.run(_STAGE_RELS[key], {"rows": rows, "load": load}).single(strict=True)
        if record["n"] != len(rows):
            raise dangling_error(tx, key, pairs)

    return work
