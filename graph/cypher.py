"""Every Cypher statement :class:`graph.neo4j_store.Neo4jStore` runs, as constants with ``$parameters``.

Values always travel as parameters. Labels, relationship types and (in schema statements)
property names cannot be parameters in Cypher, so statements that need them are prepared **once,
at import time**, for every entry of a whitelist: :data:`graph.model.LABELS`,
:data:`graph.model.REL_ENDPOINTS`, :data:`RANGE_INDEXED` and the internal :data:`META_LABEL`.
:func:`_fill` is the only place a name enters a statement, and it refuses anything that is not
a plain ASCII identifier; at run time the store looks the finished statement up by label (after
:func:`graph.model.check_label`), so text from a caller never reaches Cypher.

The one exception is :func:`vector_index_ddl`: a vector index's property is named after the
caller's vector key (``"embedding"``), which is validated as an identifier by the store and again
here before it is used, and never comes from end-user text.

Statement families keyed by label (e.g. ``MERGE_NODES["Worker"]``) are read-only mappings.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from graph.model import FULLTEXT_PROPERTIES, LABELS, REL_ENDPOINTS, REL_TYPES

__all__ = [
    "per_label",
    "AWAIT_INDEX",
    "AWAIT_INDEXES",
    "CLEAR",
    "FEED_APPEND",
    "FEED_ENSURE",
    "FEED_LABELS",
    "FEED_PRUNE",
    "FEED_READ",
    "FEED_SCHEMA",
    "FEED_SINCE",
    "LABEL_REVISION",
    "CONSTRAINTS",
    "COUNT_NODES",
    "COUNT_NODES_BY",
    "COUNT_NODES_WHERE",
    "COUNT_RELS",
    "CREATE_NODE",
    "DELETE_META",
    "DELETE_NODE",
    "DELETE_RELS",
    "DELETE_VECTORS",
    "DROP_INDEX",
    "EXISTING_IDS",
    "FULLTEXT_INDEX",
    "FULLTEXT_INDEX_DDL",
    "FULLTEXT_QUERY",
    "FULLTEXT_QUERY_LABELS",
    "GET_META",
    "GET_NODE",
    "LIST_NODES",
    "LIST_NODES_BY",
    "LOCK_NODE",
    "MERGE_NODES",
    "MERGE_RELS",
    "META_LABEL",
    "NEIGHBOURS",
    "PAGE_NODES",
    "PING",
    "RANGE_INDEXED",
    "RANGE_INDEXES",
    "READ_VECTORS",
    "RELS_ALL",
    "RELS_BETWEEN",
    "RELS_FROM",
    "RELS_TO",
    "SCHEMA_LABELS",
    "SET_META",
    "SHOW_VECTOR_INDEXES",
    "UPDATE_NODE",
    "VECTOR_DIMENSION",
    "VECTOR_PREFIX",
    "VECTOR_QUERY",
    "WRITE_VECTORS",
    "vector_index_ddl",
    "vector_index_name",
    "vector_property",
]

#: Internal label of the store-level metadata nodes (``get_meta``/``set_meta``); not a model label.
META_LABEL: Final = "Meta"
#: Labels that get a uniqueness constraint on ``id``.
SCHEMA_LABELS: Final[tuple[str, ...]] = (*LABELS, META_LABEL)
#: Vectors live on the node in a property ``_vec_<key>``; every read of node properties hides them.
VECTOR_PREFIX: Final = "_vec_"
FULLTEXT_INDEX: Final = "jianglian_text"

#: Properties with a range index, per label (the columns ``list_nodes(where=...)`` filters on).
RANGE_INDEXED: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType({
    "Worker": ("district", "team", "active"),
    "Enterprise": ("district", "industry_chain"),
    "Problem": ("status", "district", "enterprise_id", "service_type"),
    "Match": ("problem_id", "worker_id", "state"),
    "AuditEvent": ("actor", "kind"),
    "User": ("worker_id", "role"),
    "Notification": ("user_id",),
    "OutboxMessage": ("status",),
})

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PLACEHOLDER = re.compile(r"__[A-Z]__")


def _fill(template: str, **names: str) -> str:
    """Put whitelisted names into a template's ``__L__``-style placeholders (import time only)."""
    out = template
    for placeholder, name in names.items():
        if not _NAME.match(name) or _PLACEHOLDER.search(name):
            raise ValueError(f"refusing to put {name!r} into Cypher")
        out = out.replace("__" + placeholder + "__", name)
    if _PLACEHOLDER.search(out):
        raise ValueError(f"unfilled placeholder in {out!r}")
    return out


def per_label(template: str, labels: tuple[str, ...] = LABELS) -> Mapping[str, str]:
    return MappingProxyType({label: _fill(template, L=label) for label in labels})


_REL_KEYS: Final = tuple(sorted((t, a, b) for t in REL_TYPES for a, b in REL_ENDPOINTS[t]))


def _per_rel(template: str) -> Mapping[tuple[str, str, str], str]:
    return MappingProxyType({(t, a, b): _fill(template, T=t, A=a, B=b) for t, a, b in _REL_KEYS})


# A node's properties as ``[[key, value], ...]``, vectors left out (they are large and not row data).
_N_PROPS = "[k IN keys(n) WHERE NOT k STARTS WITH '_vec_' | [k, n[k]]] AS props"
_M_PROPS = "[k IN keys(m) WHERE NOT k STARTS WITH '_vec_' | [k, m[k]]] AS other_props"
# Property equality on a map parameter; a null in ``$where`` matches a missing property.
_WHERE = "all(k IN keys($where) WHERE n[k] = $where[k] OR (n[k] IS NULL AND $where[k] IS NULL))"

PING: Final = "RETURN 1 AS ok"

# -- schema ------------------------------------------------------------------------------------
CONSTRAINTS: Final = per_label(
    "CREATE CONSTRAINT jianglian___L___id IF NOT EXISTS FOR (n:__L__) REQUIRE n.id IS UNIQUE", SCHEMA_LABELS
)
RANGE_INDEXES: Final[tuple[str, ...]] = tuple(
    _fill("CREATE INDEX jianglian___L_____P__ IF NOT EXISTS FOR (n:__L__) ON (n.__P__)", L=label, P=prop)
    for label, props in RANGE_INDEXED.items()
    for prop in props
)
FULLTEXT_INDEX_DDL: Final = (
    "CREATE FULLTEXT INDEX jianglian_text IF NOT EXISTS FOR (n:Worker|Enterprise|Skill|Problem) "
    "ON EACH [n.name, n.title, n.description] OPTIONS {indexConfig: {`fulltext.analyzer`: 'cjk'}}"
)
AWAIT_INDEXES: Final = "CALL db.awaitIndexes($timeout)"
AWAIT_INDEX: Final = "CALL db.awaitIndex($name, $timeout)"
DROP_INDEX: Final = "DROP INDEX $name IF EXISTS"
SHOW_VECTOR_INDEXES: Final = (
    "SHOW VECTOR INDEXES YIELD name, labelsOrTypes, properties, options "
    "RETURN name, labelsOrTypes, properties, options"
)

# -- node writes -------------------------------------------------------------------------------
#: Rows are compact ``[id, props]`` lists: packing parameters dominates a bulk load's client time.
MERGE_NODES: Final = per_label("UNWIND $rows AS row MERGE (n:__L__ {id: row[0]}) SET n += row[1]")
CREATE_NODE: Final = per_label("CREATE (n:__L__ {id: $id}) SET n += $props RETURN " + _N_PROPS)
UPDATE_NODE: Final = per_label("MATCH (n:__L__ {id: $id}) SET n += $props RETURN " + _N_PROPS)
#: Takes the node's write lock for the rest of the transaction, then reads it. Under read committed a plain
#: ``MATCH (m:Match {id: $id}) WHERE m.state = $expected SET ...`` reads before it locks, so two transactions can
#: both see the old state and both write (the second waits for the first, then overwrites it): the Neo4j manual's
#: "lost updates in Cypher". Setting and removing a property locks first, so the read sees the last commit and
#: every other writer of the node waits until this transaction ends; the write's preconditions are checked on
#: what this returns (``graph.store.WriteBatch.expect``). The property never outlives the statement.
LOCK_NODE: Final = per_label("MATCH (n:__L__ {id: $id}) SET n._lock = true REMOVE n._lock RETURN " + _N_PROPS)
DELETE_NODE: Final = per_label("MATCH (n:__L__ {id: $id}) DETACH DELETE n RETURN count(*) AS deleted")
#: Deletes everything in batches; an implicit (auto-commit) transaction is required by ``IN TRANSACTIONS``.
#: The change feed's nodes (``Feed``, ``FeedEntry``, ``LabelRevision``) survive: the feed never restarts.
CLEAR: Final = ("MATCH (n) WHERE NOT (n:Feed OR n:FeedEntry OR n:LabelRevision) "
                "CALL (n) { DETACH DELETE n } IN TRANSACTIONS OF 10000 ROWS")

# -- node reads --------------------------------------------------------------------------------
GET_NODE: Final = per_label("MATCH (n:__L__ {id: $id}) RETURN " + _N_PROPS)
EXISTING_IDS: Final = per_label("UNWIND $ids AS id MATCH (n:__L__ {id: id}) RETURN collect(n.id) AS ids")
LIST_NODES: Final = per_label(
    "MATCH (n:__L__) WHERE " + _WHERE + " RETURN " + _N_PROPS + " ORDER BY n.id SKIP $offset LIMIT $limit"
)
#: Keyset pagination for ``iter_nodes``: the uniqueness constraint's index serves ``n.id > $after`` in order.
PAGE_NODES: Final = per_label(
    "MATCH (n:__L__) WHERE n.id > $after RETURN " + _N_PROPS + " ORDER BY n.id LIMIT $limit"
)
COUNT_NODES: Final = per_label("MATCH (n:__L__) RETURN count(n) AS n")
COUNT_NODES_WHERE: Final = per_label("MATCH (n:__L__) WHERE " + _WHERE + " RETURN count(n) AS n")
#: Variants for a ``where`` that includes a range-indexed property, so the planner can seek.
LIST_NODES_BY: Final[Mapping[tuple[str, str], str]] = MappingProxyType({
    (label, prop): _fill(
        "MATCH (n:__L__) WHERE n.__P__ = $value AND " + _WHERE + " RETURN " + _N_PROPS
        + " ORDER BY n.id SKIP $offset LIMIT $limit", L=label, P=prop)
    for label, props in RANGE_INDEXED.items()
    for prop in props
})
COUNT_NODES_BY: Final[Mapping[tuple[str, str], str]] = MappingProxyType({
    (label, prop): _fill("MATCH (n:__L__) WHERE n.__P__ = $value AND " + _WHERE + " RETURN count(n) AS n",
                         L=label, P=prop)
    for label, props in RANGE_INDEXED.items()
    for prop in props
})
NEIGHBOURS: Final = per_label(
    "MATCH (n:__L__ {id: $id})-[r]-(m) "
    "WITH DISTINCT r, m, startNode(r) = n AS outgoing, [l IN labels(m) WHERE l IN $labels][0] AS other_label "
    "WITH r, m, other_label, "
    "CASE WHEN outgoing THEN $label ELSE other_label END AS start_label, "
    "CASE WHEN outgoing THEN $id ELSE m.id END AS start_id, "
    "CASE WHEN outgoing THEN other_label ELSE $label END AS end_label, "
    "CASE WHEN outgoing THEN m.id ELSE $id END AS end_id "
    "RETURN type(r) AS type, start_label, start_id, end_label, end_id, properties(r) AS rel_props, "
    "other_label, " + _M_PROPS + " "
    "ORDER BY type, start_label, start_id, end_label, end_id LIMIT $limit"
)

# -- relationships (keyed by (type, start label, end label)) -----------------------------------
#: Rows are ``[start id, end id]`` or ``[start id, end id, props]`` (a missing list item reads as null).
#: Returns how many rows found both endpoints, so the store can refuse dangling ones.
MERGE_RELS: Final = _per_rel(
    "UNWIND $rows AS row MATCH (a:__A__ {id: row[0]}) MATCH (b:__B__ {id: row[1]}) "
    "MERGE (a)-[r:__T__]->(b) SET r += coalesce(row[2], {}) RETURN count(*) AS n"
)
DELETE_RELS: Final = _per_rel(
    "UNWIND $rows AS row MATCH (a:__A__ {id: row[0]})-[r:__T__]->(b:__B__ {id: row[1]}) DELETE r"
)
_RELS_RETURN = " RETURN a.id AS s, b.id AS e, properties(r) AS props"
RELS_ALL: Final = _per_rel("MATCH (a:__A__)-[r:__T__]->(b:__B__)" + _RELS_RETURN)
RELS_FROM: Final = _per_rel("MATCH (a:__A__ {id: $s})-[r:__T__]->(b:__B__)" + _RELS_RETURN)
RELS_TO: Final = _per_rel("MATCH (a:__A__)-[r:__T__]->(b:__B__ {id: $e})" + _RELS_RETURN)
RELS_BETWEEN: Final = _per_rel("MATCH (a:__A__ {id: $s})-[r:__T__]->(b:__B__ {id: $e})" + _RELS_RETURN)
COUNT_RELS: Final[Mapping[str, str]] = MappingProxyType(
    {t: _fill("MATCH ()-[r:__T__]->() RETURN count(r) AS n", T=t) for t in REL_TYPES}
)

# -- full text ---------------------------------------------------------------------------------
FULLTEXT_QUERY: Final = (
    "CALL db.index.fulltext.queryNodes($index, $query, {limit: $limit}) YIELD node, score "
    "RETURN [l IN labels(node) WHERE l IN $labels][0] AS label, node.id AS id, score"
)
FULLTEXT_QUERY_LABELS: Final = (
    "CALL db.index.fulltext.queryNodes($index, $query) YIELD node, score "
    "WITH node, score, [l IN labels(node) WHERE l IN $labels] AS found WHERE size(found) > 0 "
    "RETURN found[0] AS label, node.id AS id, score ORDER BY score DESC LIMIT $limit"
)

# -- vectors (the property name is a parameter except in the index DDL) ------------------------
WRITE_VECTORS: Final = per_label(
    "UNWIND $rows AS row MATCH (n:__L__ {id: row.id}) SET n[$prop] = row.vector RETURN count(*) AS n"
)
READ_VECTORS: Final = per_label(
    "MATCH (n:__L__) WHERE n[$prop] IS NOT NULL RETURN n.id AS id, n[$prop] AS vector ORDER BY n.id"
)
DELETE_VECTORS: Final = per_label("MATCH (n:__L__) WHERE n[$prop] IS NOT NULL SET n[$prop] = null")
VECTOR_DIMENSION: Final = per_label("MATCH (n:__L__) WHERE n[$prop] IS NOT NULL RETURN size(n[$prop]) AS dim LIMIT 1")
VECTOR_QUERY: Final = (
    "CALL db.index.vector.queryNodes($name, $k, $vector) YIELD node, score RETURN node.id AS id, score"
)
_VECTOR_INDEX_DDL = (
    "CREATE VECTOR INDEX __L_____K__ IF NOT EXISTS FOR (n:__L__) ON n._vec___K__ "
    "OPTIONS {indexConfig: {`vector.dimensions`: $dim, `vector.similarity_function`: 'cosine', "
    "`vector.quantization.enabled`: false}}"
)

# -- metadata ----------------------------------------------------------------------------------
GET_META: Final = "MATCH (m:Meta {id: $key}) RETURN m.value AS value"
SET_META: Final = "MERGE (m:Meta {id: $key}) SET m.value = $value"
DELETE_META: Final = "MATCH (m:Meta {id: $key}) DELETE m"


def _check_vector_name(label: str, key: str) -> None:
    if label not in LABELS or not _NAME.match(key):
        raise ValueError(f"bad vector index name {label!r}/{key!r}")


def vector_property(key: str) -> str:
    """The node property holding the vectors stored under ``key``."""
    if not _NAME.match(key):
        raise ValueError(f"bad vector key {key!r}")
    return VECTOR_PREFIX + key


def vector_index_name(label: str, key: str) -> str:
    """The vector index over ``label``'s vectors under ``key``: ``<Label>_<key>``."""
    _check_vector_name(label, key)
    return label + "_" + key


def vector_index_ddl(label: str, key: str) -> str:
    """``CREATE VECTOR INDEX`` for a label and a validated vector key (dimension is ``$dim``)."""
    _check_vector_name(label, key)
    return _fill(_VECTOR_INDEX_DDL, L=label, K=key)


# The full-text statement is written out above; keep it in step with the model's table.
assert set(FULLTEXT_PROPERTIES) <= {"Worker", "Enterprise", "Skill", "Problem"}
assert all(p in ("name", "title", "description") for props in FULLTEXT_PROPERTIES.values() for p in props)


# -- the change feed ----------------------------------------------------------------------------
# One ``Feed`` node holds the sequence (``seq``, the store's revision) and the database's ``store_id``; each write
# to the matching graph increments it and creates a ``FeedEntry`` (its ``keys``: the touched keys as JSON, absent
# when unlistable) in the write's own transaction; one ``LabelRevision`` node per label counts that label's writes.
# Incrementing locks the counter node first (as LOCK_NODE does), so concurrent writers never lose an increment.
FEED_SCHEMA: Final[tuple[str, ...]] = (
    "CREATE CONSTRAINT jianglian_Feed_id IF NOT EXISTS FOR (n:Feed) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT jianglian_LabelRevision_id IF NOT EXISTS FOR (n:LabelRevision) REQUIRE n.id IS UNIQUE",
    "CREATE CONSTRAINT jianglian_FeedEntry_seq IF NOT EXISTS FOR (n:FeedEntry) REQUIRE n.seq IS UNIQUE",
)
FEED_ENSURE: Final = ("MERGE (f:Feed {id: 'feed'}) ON CREATE SET f.seq = 0, f.store_id = randomUUID() "
                      "RETURN f.seq AS seq, f.store_id AS store_id")
FEED_APPEND: Final = (
    "MERGE (f:Feed {id: 'feed'}) ON CREATE SET f.seq = 0, f.store_id = randomUUID() "
    "SET f._lock = true REMOVE f._lock "
    "WITH f SET f.seq = f.seq + 1 "
    "CREATE (e:FeedEntry {seq: f.seq}) SET e.keys = $keys "
    "RETURN f.seq AS seq"
)
FEED_PRUNE: Final = "MATCH (e:FeedEntry) WHERE e.seq <= $below DELETE e"
FEED_LABELS: Final = (
    "UNWIND $labels AS label MERGE (c:LabelRevision {id: label}) "
    "SET c._lock = true REMOVE c._lock "
    "WITH c SET c.revision = coalesce(c.revision, 0) + 1"
)
FEED_READ: Final = "MATCH (f:Feed {id: 'feed'}) RETURN f.seq AS seq, f.store_id AS store_id"
FEED_SINCE: Final = (
    "MATCH (f:Feed {id: 'feed'}) "
    "OPTIONAL MATCH (e:FeedEntry) WHERE e.seq > $since AND e.seq <= f.seq "
    "WITH f, e ORDER BY e.seq "
    "RETURN f.seq AS seq, collect(CASE WHEN e IS NULL THEN null ELSE [e.seq, e.keys] END) AS entries"
)
LABEL_REVISION: Final = "MATCH (c:LabelRevision {id: $label}) RETURN c.revision AS revision"
