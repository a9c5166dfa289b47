"""One contract suite for every :class:`~graph.store.GraphStore`: the embedded store and a real Neo4j.

Every test taking the ``store`` fixture runs twice, once per implementation; the Neo4j run uses the
session's real server (``neo4j_driver``) and starts from an empty database. Tests of one store's
own mechanics (the embedded store's shared data directory and durable feed, Neo4j's reconnection) follow at the end.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from neo4j import Driver

from graph import cypher
from graph.dataset import export_dataset, load_dataset
from graph.errors import (
    ConstraintViolation,
    DuplicateNode,
    NodeNotFound,
    StoreUnavailable,
    UnknownLabel,
    WriteConflict,
)
from graph.memory import MemoryStore
from graph.model import LABELS, REL_ENDPOINTS
from graph.neo4j_store import Neo4jStore, escape_lucene
from graph.store import FEED_WINDOW, Change, Expect, GraphReader, GraphStore, NodeRow, RelRow, WriteBatch
from ops.neo4j_server import FAST_START_JVM_OPTIONS, Neo4jServer, find_free_port

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def neo4j_schema(neo4j_driver: Driver) -> Driver:
    """The session's Neo4j with the schema in place (``clear`` keeps constraints and indexes)."""
    Neo4jStore(neo4j_driver, "neo4j").ensure_schema()
    return neo4j_driver


@pytest.fixture(params=["memory", pytest.param("neo4j", marks=pytest.mark.neo4j)])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[GraphStore]:
    """An empty store of each kind."""
    s: GraphStore
    if request.param == "memory":
        s = MemoryStore(tmp_path / "store")
        s.ensure_schema()
    else:
        s = Neo4jStore(request.getfixturevalue("neo4j_schema"), "neo4j")
        s.clear()
    yield s
    s.close()


def _small_graph(store: GraphStore) -> None:
    store.apply(WriteBatch(
        nodes=[
            NodeRow("Worker", "W1", {"name": "张三", "district": "亭湖区"}),
            NodeRow("Worker", "W2", {"name": "李四"}),
            NodeRow("Worker", "W3", {"name": "王五"}),
            NodeRow("Skill", "焊接", {"name": "焊接"}),
            NodeRow("District", "亭湖区", {"name": "亭湖区"}),
        ],
        rels=[
            RelRow("HAS_SKILL", "Worker", "W1", "Skill", "焊接", {"level": "高级"}),
            RelRow("LOCATED_IN", "Worker", "W1", "District", "亭湖区"),
            RelRow("MENTORS", "Worker", "W1", "Worker", "W2"),
            RelRow("MENTORS", "Worker", "W3", "Worker", "W1"),
        ],
    ))


# -- nodes ----------------------------------------------------------------------------------
def test_create_read_update_delete(store: GraphStore) -> None:
    created = store.create_node("Worker", "W1", {"name": "张三", "honours": ["全国劳模"], "capacity": 3,
                                                 "active": True, "rating": 4.5, "note": None})
    assert created == {"id": "W1", "name": "张三", "honours": ["全国劳模"], "capacity": 3, "active": True,
                       "rating": 4.5}
    assert store.get_node("Worker", "W1") == created
    assert store.get_node("Worker", "W404") is None
    assert store.get_node("Enterprise", "W1") is None  # ids are unique per label only

    updated = store.update_node("Worker", "W1", {"capacity": 5, "honours": None, "team": "盐城工匠"})
    assert updated == {"id": "W1", "name": "张三", "capacity": 5, "active": True, "rating": 4.5, "team": "盐城工匠"}
    assert store.get_node("Worker", "W1") == updated

    store.delete_node("Worker", "W1")
    assert store.get_node("Worker", "W1") is None
    assert store.count_nodes("Worker") == 0


def test_returned_nodes_are_copies(store: GraphStore) -> None:
    store.create_node("Worker", "W1", {"honours": ["劳模"]})
    node = store.get_node("Worker", "W1")
    assert node is not None
    node["honours"].append("工匠")
    assert store.get_node("Worker", "W1") == {"id": "W1", "honours": ["劳模"]}


def test_duplicate_node(store: GraphStore) -> None:
    store.create_node("Worker", "W1", {"name": "张三"})
    with pytest.raises(DuplicateNode) as info:
        store.create_node("Worker", "W1", {"name": "别人"})
    assert (info.value.label, info.value.node_id) == ("Worker", "W1")
    assert isinstance(info.value, ConstraintViolation)
    assert store.get_node("Worker", "W1") == {"id": "W1", "name": "张三"}
    store.create_node("Problem", "W1", {"title": "same id, other label"})


def test_missing_nodes(store: GraphStore) -> None:
    with pytest.raises(NodeNotFound, match="W404"):
        store.update_node("Worker", "W404", {"name": "x"})
    with pytest.raises(NodeNotFound):
        store.delete_node("Worker", "W404")
    assert store.get_node("Worker", "W404") is None


@pytest.mark.parametrize("props", [
    {"profile": {"age": 40}},
    {"skills": ["焊接", 3]},
    {"skills": [["nested"]]},
    {"when": object()},
])
def test_bad_property_types(store: GraphStore, props: dict[str, Any]) -> None:
    with pytest.raises(ConstraintViolation):
        store.create_node("Worker", "W1", props)
    store.create_node("Worker", "W2", {"name": "ok"})
    with pytest.raises(ConstraintViolation):
        store.update_node("Worker", "W2", props)
    with pytest.raises(ConstraintViolation):
        store.apply(WriteBatch(nodes=[NodeRow("Worker", "W3", {"name": "fine"}), NodeRow("Worker", "W4", props)]))
    assert store.get_node("Worker", "W1") is None
    assert store.get_node("Worker", "W2") == {"id": "W2", "name": "ok"}
    assert store.count_nodes("Worker") == 1


def test_mixed_numbers_are_stored(store: GraphStore) -> None:
    node = store.create_node("Worker", "W1", {"scores": [1, 2.5]})
    assert node["scores"] == [1, 2.5]
    assert store.get_node("Worker", "W1") == {"id": "W1", "scores": [1, 2.5]}


def test_unknown_labels_and_types(store: GraphStore) -> None:
    with pytest.raises(UnknownLabel):
        store.create_node("Robot", "R1", {})
    with pytest.raises(UnknownLabel):
        store.get_node("worker", "W1")
    with pytest.raises(UnknownLabel):
        store.list_nodes("Robot")
    with pytest.raises(UnknownLabel):
        store.count_nodes("Worker) DETACH DELETE (n")
    with pytest.raises(UnknownLabel):
        store.relationships("LIKES")
    with pytest.raises(UnknownLabel):
        store.apply(WriteBatch(nodes=[NodeRow("Robot", "R1")]))
    store.create_node("Worker", "W1", {})
    store.create_node("Problem", "P1", {})
    with pytest.raises(UnknownLabel):  # the model does not allow this direction
        store.apply(WriteBatch(rels=[RelRow("SOLVED", "Problem", "P1", "Worker", "W1")]))
    with pytest.raises(UnknownLabel):
        store.write_vectors("Robot", "embedding", ["R1"], np.ones((1, 2)))
    assert store.counts() == {"Worker": 1, "Problem": 1}


def test_revision_changes_after_every_write_to_the_matching_graph(store: GraphStore) -> None:
    seen = [store.revision]

    def wrote() -> None:
        assert store.revision != seen[-1]
        seen.append(store.revision)

    store.create_node("Worker", "W1", {})
    wrote()
    store.update_node("Worker", "W1", {"name": "张三"})
    wrote()
    store.apply(WriteBatch(nodes=[NodeRow("Skill", "焊接")]))
    wrote()
    store.write_vectors("Worker", "embedding", ["W1"], np.ones((1, 3)))
    wrote()
    store.delete_node("Worker", "W1")
    wrote()
    store.set_meta("model", "m1")  # metadata is not the matching graph (see the next test)
    store.get_node("Skill", "焊接")
    store.list_nodes("Skill")
    assert store.revision == seen[-1]


def test_revision_ignores_workflow_writes_and_lists_domain_changes(store: GraphStore) -> None:
    before = store.revision
    # the selection workflow, the audit trail, accounts and metadata write on every request
    store.create_node("Match", "M1", {"worker_id": "W1", "problem_id": "P1", "state": "invited"})
    store.update_node("Match", "M1", {"state": "accepted"})
    store.apply(WriteBatch(nodes=[NodeRow("AuditEvent", "A1", {"kind": "recommend"}), NodeRow("User", "U1"),
                                  NodeRow("ApiKey", "K1"), NodeRow("Target", "T1")]))
    store.set_meta("model", "m1")
    store.set_meta("model", None)
    store.delete_node("Match", "M1")
    assert store.revision == before
    assert store.changes_since(before) == []

    store.create_node("Worker", "W1", {"name": "张三"})
    assert store.revision != before
    after_worker = store.revision
    store.create_node("Problem", "P1", {"title": "主轴异响"})
    store.create_node("AuditEvent", "A2", {"kind": "complete"})
    store.apply(WriteBatch(nodes=[NodeRow("Match", "M2", {"state": "completed"})],
                           rels=[RelRow("SOLVED", "Worker", "W1", "Problem", "P1", {"rating": 5})]))
    store.update_node("Problem", "P1", {"status": "solved"})
    changes = store.changes_since(after_worker)
    assert changes is not None
    assert [c.node for c in changes if c.node] == [("Problem", "P1"), ("Problem", "P1")]
    assert [c.rel for c in changes if c.rel] == [("SOLVED", "Worker", "W1", "Problem", "P1")]
    everything = store.changes_since(before)
    assert everything is not None and everything[0].node == ("Worker", "W1") and everything[1:] == changes
    assert store.changes_since(store.revision) == []
    assert store.changes_since(store.revision + 1) is None  # a revision the store never had
    last = store.revision
    store.clear()
    assert store.revision != last and store.changes_since(after_worker) is None


def test_announce_rebuild_makes_every_cache_rebuild_and_writes_nothing_else(store: GraphStore) -> None:
    store.create_node("Worker", "W1", {"name": "张三"})
    before, matches, workers = store.revision, store.label_revision("Match"), store.label_revision("Worker")
    store.announce_rebuild()
    assert store.revision != before and store.changes_since(before) is None
    assert store.label_revision("Match") != matches and store.label_revision("Worker") != workers
    assert store.get_node("Worker", "W1") == {"id": "W1", "name": "张三"}
    assert store.changes_since(store.revision) == []


def test_label_revision_follows_writes_of_one_label_or_says_it_cannot(store: GraphStore) -> None:
    matches, workers = store.label_revision("Match"), store.label_revision("Worker")
    assert matches is not None and workers is not None  # durable counters in both stores
    store.create_node("Match", "M1", {"state": "invited"})
    assert store.label_revision("Match") != matches and store.label_revision("Worker") == workers
    matches = store.label_revision("Match")
    store.apply(WriteBatch(nodes=[NodeRow("Match", "M1", {"state": "declined"})]))
    assert store.label_revision("Match") != matches
    matches = store.label_revision("Match")
    store.delete_node("Match", "M1")
    assert store.label_revision("Match") != matches


def _twin(store: GraphStore) -> GraphStore:
    """Another instance on the same database, as another process would open it."""
    if isinstance(store, MemoryStore):
        return MemoryStore(store.data_dir)
    assert isinstance(store, Neo4jStore)
    return Neo4jStore(store._driver, store.database)


def test_the_feed_is_in_the_database_and_every_instance_follows_it(store: GraphStore) -> None:
    other = _twin(store)
    try:
        assert other.store_id == store.store_id and len(store.store_id) >= 32
        before, matches = other.revision, other.label_revision("Match")
        store.create_node("Worker", "W1", {"name": "张三"})
        store.create_node("Match", "M1", {"state": "invited"})
        assert other.changes_since(before) == [Change(node=("Worker", "W1"))]  # read from the database
        deadline = time.monotonic() + 2
        while (other.revision == before or other.label_revision("Match") == matches) and time.monotonic() < deadline:
            time.sleep(0.05)  # Neo4j answers from what it read up to 0.5 s ago
        assert other.revision == store.revision == before + 1
        assert other.label_revision("Match") == store.label_revision("Match") == matches + 1
        other.apply(WriteBatch(nodes=[NodeRow("Problem", "P1", {"title": "主轴异响"})]))
        assert store.changes_since(before) == [Change(node=("Worker", "W1")), Change(node=("Problem", "P1"))]
    finally:
        other.close()


# -- relationships --------------------------------------------------------------------------
def test_relationships_and_neighbours(store: GraphStore) -> None:
    _small_graph(store)
    assert store.relationships("HAS_SKILL") == [RelRow("HAS_SKILL", "Worker", "W1", "Skill", "焊接", {"level": "高级"})]
    assert [r.key for r in store.relationships("MENTORS")] == [
        ("MENTORS", "Worker", "W1", "Worker", "W2"), ("MENTORS", "Worker", "W3", "Worker", "W1")]
    assert [r.end_id for r in store.relationships("MENTORS", start=("Worker", "W1"))] == ["W2"]
    assert [r.start_id for r in store.relationships("MENTORS", end=("Worker", "W1"))] == ["W3"]
    assert store.relationships("MENTORS", start=("Worker", "W1"), end=("Worker", "W3")) == []
    assert store.relationships("LOCATED_IN", start=("Enterprise", "W1")) == []
    assert store.relationships("SOLVED") == []

    found = store.neighbours("Worker", "W1")
    assert [rel.key for rel, _ in found] == [
        ("HAS_SKILL", "Worker", "W1", "Skill", "焊接"),
        ("LOCATED_IN", "Worker", "W1", "District", "亭湖区"),
        ("MENTORS", "Worker", "W1", "Worker", "W2"),
        ("MENTORS", "Worker", "W3", "Worker", "W1"),
    ]
    assert found[0] == (RelRow("HAS_SKILL", "Worker", "W1", "Skill", "焊接", {"level": "高级"}),
                        NodeRow("Skill", "焊接", {"id": "焊接", "name": "焊接"}))
    assert found[3][1] == NodeRow("Worker", "W3", {"id": "W3", "name": "王五"})
    assert len(store.neighbours("Worker", "W1", limit=2)) == 2
    assert store.neighbours("Worker", "W404") == []
    assert [n.id for _, n in store.neighbours("Skill", "焊接")] == ["W1"]

    store.delete_node("Worker", "W1")
    assert store.relationships("MENTORS") == []
    assert store.neighbours("Skill", "焊接") == []
    assert store.counts() == {"Worker": 2, "Skill": 1, "District": 1}


def test_apply_merges(store: GraphStore) -> None:
    _small_graph(store)
    store.apply(WriteBatch(
        nodes=[NodeRow("Worker", "W1", {"team": "A", "district": None})],
        rels=[RelRow("HAS_SKILL", "Worker", "W1", "Skill", "焊接", {"since": 2020})],
        delete_rels=[RelRow("MENTORS", "Worker", "W3", "Worker", "W1")],
    ))
    assert store.get_node("Worker", "W1") == {"id": "W1", "name": "张三", "team": "A"}
    assert store.relationships("HAS_SKILL") == [
        RelRow("HAS_SKILL", "Worker", "W1", "Skill", "焊接", {"level": "高级", "since": 2020})]
    assert [r.key for r in store.relationships("MENTORS")] == [("MENTORS", "Worker", "W1", "Worker", "W2")]
    assert store.counts() == {"Worker": 3, "Skill": 1, "District": 1, "HAS_SKILL": 1, "LOCATED_IN": 1, "MENTORS": 1}


def test_apply_is_atomic(store: GraphStore) -> None:
    _small_graph(store)
    before = store.counts()
    batch = WriteBatch(
        nodes=[NodeRow("Worker", "W9", {"name": "新人"}), NodeRow("Worker", "W1", {"name": "改名"})],
        rels=[RelRow("HAS_SKILL", "Worker", "W9", "Skill", "焊接"),
              RelRow("HAS_SKILL", "Worker", "W9", "Skill", "不存在的技能")],
        delete_rels=[RelRow("MENTORS", "Worker", "W1", "Worker", "W2")],
    )
    with pytest.raises(ConstraintViolation, match="不存在的技能"):
        store.apply(batch)
    assert store.counts() == before
    assert store.get_node("Worker", "W9") is None
    assert store.get_node("Worker", "W1") == {"id": "W1", "name": "张三", "district": "亭湖区"}
    with pytest.raises(ConstraintViolation, match="W404"):
        store.apply(WriteBatch(rels=[RelRow("MENTORS", "Worker", "W404", "Worker", "W1")]))
    assert store.counts() == before


def test_conditional_apply_commits_only_when_the_expectation_holds(store: GraphStore) -> None:
    store.apply(WriteBatch(nodes=[NodeRow("Match", "M1", {"state": "invited", "problem_id": "P1"})]))
    accept = WriteBatch(nodes=[NodeRow("Match", "M1", {"state": "accepted"}),
                               NodeRow("AuditEvent", "A1", {"kind": "accept"})],
                        expect=[Expect("Match", "M1", {"state": "invited", "reason": None})])
    store.apply(accept)
    assert store.get_node("Match", "M1") == {"id": "M1", "state": "accepted", "problem_id": "P1"}
    decline = WriteBatch(nodes=[NodeRow("Match", "M1", {"state": "declined"}),
                                NodeRow("AuditEvent", "A2", {"kind": "decline"})],
                         rels=[RelRow("MENTORS", "Worker", "W1", "Worker", "W2")],
                         expect=[Expect("Match", "M1", {"state": "invited"})])
    store.apply(WriteBatch(nodes=[NodeRow("Worker", "W1"), NodeRow("Worker", "W2")]))
    before = store.counts()
    with pytest.raises(WriteConflict) as err:  # a stale read: the accept above moved the match on
        store.apply(decline)
    assert (err.value.label, err.value.node_id) == ("Match", "M1")
    assert err.value.expected == {"state": "invited"} and err.value.actual == {"state": "accepted"}
    assert store.get_node("Match", "M1")["state"] == "accepted"
    assert store.get_node("AuditEvent", "A2") is None and store.counts() == before
    with pytest.raises(WriteConflict) as err:
        store.apply(WriteBatch(nodes=[NodeRow("Match", "M2", {"state": "x"})], expect=[Expect("Match", "M404")]))
    assert err.value.actual is None and store.get_node("Match", "M2") is None
    store.apply(WriteBatch(expect=[Expect("Match", "M1", {"state": "accepted"})]))  # preconditions alone
    with pytest.raises(WriteConflict):
        store.apply(WriteBatch(expect=[Expect("Match", "M1", {"state": "invited"})]))


class _Full(Exception):
    pass


def test_conditional_apply_check_reads_inside_the_write(store: GraphStore) -> None:
    store.apply(WriteBatch(nodes=[NodeRow("Worker", "W1", {"capacity": 1}),
                                  NodeRow("Match", "M1", {"worker_id": "W1", "state": "invited"})]))
    seen: list[Any] = []

    def at_most_one(reader: GraphReader) -> None:
        live = reader.list_nodes("Match", where={"worker_id": "W1", "state": "invited"})
        seen.append((reader.get_node("Worker", "W1"), [m["id"] for m in live]))
        if len(live) >= 1:
            raise _Full

    with pytest.raises(_Full):  # what the check raises propagates and nothing is written
        store.apply(WriteBatch(nodes=[NodeRow("Match", "M2", {"worker_id": "W1", "state": "invited"})],
                               expect=[Expect("Worker", "W1")], check=at_most_one))
    assert seen == [({"id": "W1", "capacity": 1}, ["M1"])]
    assert store.get_node("Match", "M2") is None
    store.apply(WriteBatch(nodes=[NodeRow("Match", "M1", {"state": "withdrawn"})]))
    store.apply(WriteBatch(nodes=[NodeRow("Match", "M2", {"worker_id": "W1", "state": "invited"})],
                           expect=[Expect("Worker", "W1")], check=at_most_one))
    assert store.get_node("Match", "M2") == {"id": "M2", "worker_id": "W1", "state": "invited"}


def test_apply_large_batch_with_progress(store: GraphStore) -> None:
    n = 12_000  # more than one UNWIND chunk
    reported: list[int] = []
    store.apply(WriteBatch(
        nodes=[NodeRow("Skill", "S"), *(NodeRow("Worker", f"W{i:05d}", {"i": i}) for i in range(n))],
        rels=[RelRow("HAS_SKILL", "Worker", f"W{i:05d}", "Skill", "S") for i in range(n)],
    ), progress=reported.append)
    assert sum(reported) >= 2 * n
    assert store.counts() == {"Worker": n, "Skill": 1, "HAS_SKILL": n}
    nodes = list(store.iter_nodes("Worker", batch=5000))
    assert [node["id"] for node in nodes] == [f"W{i:05d}" for i in range(n)]
    assert nodes[-1] == {"id": f"W{n - 1:05d}", "i": n - 1}
    assert list(store.iter_nodes("Worker", batch=4000)) == nodes


# -- queries --------------------------------------------------------------------------------
def test_list_and_count_nodes(store: GraphStore) -> None:
    rows = {
        "W2": {"district": "亭湖区", "active": True, "tags": ["a", "b"]},
        "W10": {"district": "亭湖区", "active": False},
        "a": {"district": "盐都区", "active": True},
        "张": {"active": True},
    }
    for node_id, props in rows.items():
        store.create_node("Worker", node_id, props)
    assert [n["id"] for n in store.list_nodes("Worker")] == ["W10", "W2", "a", "张"]
    assert [n["id"] for n in store.list_nodes("Worker", offset=1, limit=2)] == ["W2", "a"]
    assert store.list_nodes("Worker", offset=10) == []
    assert store.list_nodes("Worker", limit=0) == []
    assert store.list_nodes("Worker", where={"district": "亭湖区"}) == [
        {"id": "W10", "district": "亭湖区", "active": False},
        {"id": "W2", "district": "亭湖区", "active": True, "tags": ["a", "b"]},
    ]
    assert [n["id"] for n in store.list_nodes("Worker", where={"district": "亭湖区", "active": True})] == ["W2"]
    assert [n["id"] for n in store.list_nodes("Worker", where={"active": True}, offset=1)] == ["a", "张"]
    assert [n["id"] for n in store.list_nodes("Worker", where={"district": None})] == ["张"]
    assert [n["id"] for n in store.list_nodes("Worker", where={"tags": ["a", "b"]})] == ["W2"]
    assert [n["id"] for n in store.list_nodes("Worker", where={"id": "a"})] == ["a"]
    assert store.list_nodes("Worker", where={"district": "射阳县"}) == []
    assert store.count_nodes("Worker") == 4
    assert store.count_nodes("Worker", where={"active": True}) == 3
    assert store.count_nodes("Worker", where={"district": "亭湖区", "active": False}) == 1
    assert store.count_nodes("Worker", where={"name": "x"}) == 0
    assert store.count_nodes("Problem") == 0
    with pytest.raises(ValueError):
        store.list_nodes("Worker", offset=-1)


def test_fulltext_finds_chinese_by_two_characters(store: GraphStore) -> None:
    store.create_node("Problem", "P1", {"title": "数控机床主轴异响", "description": "加工时噪声大"})
    store.create_node("Problem", "P2", {"title": "焊接变形控制", "description": "薄板焊接后翘曲"})
    store.create_node("Worker", "W1", {"name": "张主任"})
    store.create_node("Skill", "焊接", {"name": "焊接"})
    store.create_node("Problem", "P3", {"title": "Spindle noise on a CNC lathe"})

    hits = store.fulltext("主轴")
    assert hits and hits[0][:2] == ("Problem", "P1")
    assert all(score > 0 for _, _, score in hits)
    assert ("Problem", "P2") not in [h[:2] for h in hits]
    assert {h[:2] for h in store.fulltext("焊接")} == {("Problem", "P2"), ("Skill", "焊接")}
    assert [h[:2] for h in store.fulltext("焊接", labels=["Skill"])] == [("Skill", "焊接")]
    assert store.fulltext("主轴", labels=["Worker"]) == []
    assert store.fulltext("噪声")[0][:2] == ("Problem", "P1")  # descriptions are searched too
    assert ("Problem", "P3") in [h[:2] for h in store.fulltext("spindle")]
    assert len(store.fulltext("焊接", limit=1)) == 1
    assert store.fulltext("   ") == []
    with pytest.raises(UnknownLabel):
        store.fulltext("焊接", labels=["Robot"])


@pytest.mark.parametrize("query", ['主轴 "', "a:b", "(", "AND", "主轴 OR", "*", "\\", "/x/", "~", "[1 TO", "!", "&&"])
def test_fulltext_survives_query_syntax(store: GraphStore, query: str) -> None:
    store.create_node("Problem", "P1", {"title": "数控机床主轴异响"})
    hits = store.fulltext(query)
    assert isinstance(hits, list)
    if query.startswith("主轴"):
        assert hits[0][:2] == ("Problem", "P1")


def test_escape_lucene() -> None:
    assert escape_lucene('a:b "c" (d) AND') == 'a\\:b \\"c\\" \\(d\\) and'
    assert escape_lucene("主轴") == "主轴"


def test_property_names_and_values_are_data_not_cypher(store: GraphStore) -> None:
    hostile = {"x`) DETACH DELETE n //": "1", "name": "'}) MATCH (m) DETACH DELETE m //"}
    store.create_node("Worker", "W0", {"name": "bystander"})
    assert store.create_node("Worker", "W1 `x`", hostile) == {"id": "W1 `x`", **hostile}
    assert store.list_nodes("Worker", where=hostile) == [{"id": "W1 `x`", **hostile}]
    assert store.count_nodes("Worker") == 2


def test_cypher_is_prepared_from_the_whitelists() -> None:
    assert set(cypher.MERGE_NODES) == set(LABELS)
    assert set(cypher.CONSTRAINTS) == {*LABELS, "Meta"}
    assert set(cypher.MERGE_RELS) == {(t, a, b) for t, pairs in REL_ENDPOINTS.items() for a, b in pairs}
    assert "MERGE (n:Worker {id: row[0]})" in cypher.MERGE_NODES["Worker"]
    assert cypher.vector_index_ddl("Worker", "embedding").startswith(
        "CREATE VECTOR INDEX Worker_embedding IF NOT EXISTS FOR (n:Worker) ON n._vec_embedding OPTIONS")
    for label, key in (("Worker", "x} DETACH"), ("Robot", "embedding"), ("Worker", "__L__"), ("Worker", "a`b")):
        with pytest.raises(ValueError):
            cypher.vector_index_ddl(label, key)


def test_counts(store: GraphStore) -> None:
    assert store.counts() == {}
    _small_graph(store)
    assert store.counts() == {"Worker": 3, "Skill": 1, "District": 1, "HAS_SKILL": 1, "LOCATED_IN": 1, "MENTORS": 2}


# -- vectors and metadata -------------------------------------------------------------------
def test_vectors(store: GraphStore) -> None:
    for node_id in ("W1", "W2", "W3", "W4"):
        store.create_node("Worker", node_id, {"name": node_id})
    assert store.read_vectors("Worker", "embedding")[0] == []
    assert store.vector_query("Worker", "embedding", [1.0, 0.0, 0.0]) == []
    vectors = np.array([[0.6, 0.8, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=np.float32)
    store.write_vectors("Worker", "embedding", ["W3", "W1", "W2"], vectors)

    ids, matrix = store.read_vectors("Worker", "embedding")
    assert ids == ["W1", "W2", "W3"]
    assert matrix.dtype == np.float32
    assert np.array_equal(matrix, vectors[[1, 2, 0]])
    assert store.get_node("Worker", "W1") == {"id": "W1", "name": "W1"}  # vectors are not properties
    assert store.list_nodes("Worker", limit=1) == [{"id": "W1", "name": "W1"}]

    hits = store.vector_query("Worker", "embedding", np.array([1.0, 0.0, 0.0]), k=2)
    assert [h[0] for h in hits] == ["W1", "W3"]
    assert [h[1] for h in hits] == pytest.approx([1.0, 0.6], abs=1e-5)
    with pytest.raises(ValueError):
        store.vector_query("Worker", "embedding", [1.0, 0.0])

    with pytest.raises(ConstraintViolation, match="3-dimensional"):
        store.write_vectors("Worker", "embedding", ["W4"], np.ones((1, 4)))
    with pytest.raises(NodeNotFound, match="W404"):
        store.write_vectors("Worker", "embedding", ["W4", "W404"], np.ones((2, 3)))
    assert store.read_vectors("Worker", "embedding")[0] == ["W1", "W2", "W3"]  # nothing written

    store.write_vectors("Worker", "embedding", ["W1"], np.array([[0.0, 0.0, 1.0]]))  # overwrite
    assert store.vector_query("Worker", "embedding", [1.0, 0.0, 0.0], k=1)[0][0] == "W3"
    store.write_vectors("Worker", "other", ["W1"], np.ones((1, 2)))  # keys are independent

    store.delete_node("Worker", "W2")
    assert store.read_vectors("Worker", "embedding")[0] == ["W1", "W3"]
    store.delete_vectors("Worker", "embedding")
    assert store.read_vectors("Worker", "embedding")[0] == []
    assert store.read_vectors("Worker", "other")[0] == ["W1"]
    store.write_vectors("Worker", "embedding", ["W4"], np.ones((1, 4)))  # a new model, a new dimension
    assert store.read_vectors("Worker", "embedding")[1].shape == (1, 4)
    assert store.vector_query("Worker", "embedding", np.ones(4))[0] == ("W4", pytest.approx(1.0, abs=1e-5))
    with pytest.raises(ValueError):
        store.write_vectors("Worker", "bad key", ["W4"], np.ones((1, 4)))
    with pytest.raises(ValueError):
        store.write_vectors("Worker", "embedding", ["W4", "W1"], np.ones((1, 4)))


def test_meta(store: GraphStore) -> None:
    assert store.get_meta("encoder") is None
    store.set_meta("encoder", "jianglian-zh@1")
    store.set_meta("说明", "中文也可以")
    assert store.get_meta("encoder") == "jianglian-zh@1"
    assert store.get_meta("说明") == "中文也可以"
    store.set_meta("encoder", "jianglian-zh@2")
    assert store.get_meta("encoder") == "jianglian-zh@2"
    store.set_meta("encoder", None)
    assert store.get_meta("encoder") is None
    store.set_meta("encoder", None)
    assert store.counts() == {}  # metadata is not a model node


def test_clear(store: GraphStore) -> None:
    _small_graph(store)
    store.write_vectors("Worker", "embedding", ["W1"], np.ones((1, 3)))
    store.set_meta("k", "v")
    store.clear()
    assert store.counts() == {}
    assert store.get_meta("k") is None
    assert store.read_vectors("Worker", "embedding")[0] == []
    store.create_node("Worker", "W1", {})
    store.write_vectors("Worker", "embedding", ["W1"], np.ones((1, 5)))  # the old dimension is forgotten
    assert store.vector_query("Worker", "embedding", np.ones(5))[0][0] == "W1"


def test_concurrent_writes(store: GraphStore) -> None:
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(25):
                store.create_node("Worker", f"T{t}-{i:02d}", {"thread": t, "i": i})
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert store.count_nodes("Worker") == 200
    assert all(store.get_node("Worker", f"T{t}-{i:02d}") == {"id": f"T{t}-{i:02d}", "thread": t, "i": i}
               for t in range(8) for i in range(25))


# -- datasets through the store -------------------------------------------------------------
_DATASET: dict[str, list[dict[str, Any]]] = {
    "districts.jsonl": [
        {"id": "D01", "name": "亭湖区", "neighbours": ["D02"]},
        {"id": "D02", "name": "盐都区", "neighbours": ["D01"]},
    ],
    "chains.jsonl": [{"id": "C01", "name": "汽车及零部件"}],
    "skills.jsonl": [
        {"id": "S01", "name": "数控加工", "category": "机加工", "aliases": ["CNC", "数控"], "chain_ids": ["C01"]},
    ],
    "enterprises.jsonl": [
        {"id": "E1", "name": "盐城精密机械有限公司", "district": "亭湖区", "industry_chain": "汽车及零部件",
         "tags": ["专精特新"], "unionised": True, "address": {"street": "开放大道 1 号", "zip": "224000"}},
    ],
    "workers.jsonl": [
        {"id": "W1", "name": "张三", "skills": ["数控加工", "激光焊接"], "district": "亭湖区", "honours": ["全国劳模"],
         "capacity": 4, "active": True, "employer_id": "E1", "certs": [{"name": "高级技师", "year": 2019}]},
        {"id": "W2", "name": "李四", "skills": ["CNC"], "honours": [], "mentors": ["W1"], "rating": 4.5},
    ],
    "problems.jsonl": [
        {"id": "P1", "title": "数控机床主轴异响", "description": "加工时噪声大", "skills": ["数控"],
         "enterprise_id": "E1", "district": "亭湖区", "status": "solved", "posted_at": "2024-03-01",
         "solved_at": "2024-03-20", "solved_by": ["W1"],
         "outcomes": [{"worker_id": "W1", "rating": 5, "hours": 12.5, "trainees": 3}]},
        {"id": "P2", "title": "焊缝开裂", "skills": ["激光焊接", "无损检测"], "status": "open"},
    ],
}


def _write_dataset(directory: Path, files: dict[str, list[dict[str, Any]]]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, rows in files.items():
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
        (directory / name).write_text(text, encoding="utf-8")
    return directory


def _read_rows(directory: Path, name: str) -> dict[str, dict[str, Any]]:
    lines = (directory / name).read_text(encoding="utf-8").splitlines()
    return {row["id"]: row for row in map(json.loads, lines)}


def test_dataset_load_is_idempotent(store: GraphStore, tmp_path: Path) -> None:
    source = _write_dataset(tmp_path / "in", _DATASET)
    report = load_dataset(store, source)
    assert report.rows == {"District": 2, "IndustryChain": 1, "Skill": 1, "Enterprise": 1, "Worker": 2, "Problem": 2}
    assert report.skipped == []
    counts = store.counts()
    assert counts == {
        "District": 2, "IndustryChain": 1, "Skill": 3, "Enterprise": 1, "Worker": 2, "Problem": 2,
        "ADJACENT_TO": 2, "IN_CHAIN": 2, "LOCATED_IN": 3, "EMPLOYED_BY": 1, "HAS_SKILL": 3, "MENTORS": 1,
        "POSTED": 1, "REQUIRES": 3, "SOLVED": 1,
    }
    rels = {t: store.relationships(t) for t in ("HAS_SKILL", "REQUIRES", "SOLVED", "MENTORS")}
    assert [r.end_id for r in rels["HAS_SKILL"] if r.start_id == "W2"] == ["数控加工"]  # alias resolved
    assert rels["SOLVED"] == [RelRow("SOLVED", "Worker", "W1", "Problem", "P1",
                                     {"rating": 5, "hours": 12.5, "trainees": 3, "at": "2024-03-20"})]
    load_dataset(store, source)
    assert store.counts() == counts
    assert {t: store.relationships(t) for t in rels} == rels

    changed = json.loads(json.dumps(_DATASET))
    changed["workers.jsonl"][0]["skills"] = ["数控加工"]
    load_dataset(store, _write_dataset(tmp_path / "changed", changed))
    assert [r.end_id for r in store.relationships("HAS_SKILL", start=("Worker", "W1"))] == ["数控加工"]
    assert store.count_nodes("Skill") == 3  # the node stays; only the derived relationship went


def test_export_load_round_trip_is_lossless(store: GraphStore, tmp_path: Path) -> None:
    source = _write_dataset(tmp_path / "in", _DATASET)
    load_dataset(store, source)
    counts = export_dataset(store, tmp_path / "out")
    assert counts == {"districts.jsonl": 2, "chains.jsonl": 1, "skills.jsonl": 3, "enterprises.jsonl": 1,
                      "workers.jsonl": 2, "problems.jsonl": 2}
    for name, rows in _DATASET.items():
        exported = _read_rows(tmp_path / "out", name)
        for row in rows:
            assert exported.pop(row["id"]) == row, name
        if name == "skills.jsonl":  # skills rows only referenced are exported as plain skill rows
            assert exported == {"激光焊接": {"id": "激光焊接", "name": "激光焊接"},
                                "无损检测": {"id": "无损检测", "name": "无损检测"}}
        else:
            assert exported == {}, name

    before = store.counts()
    store.clear()
    load_dataset(store, tmp_path / "out")
    assert store.counts() == before
    export_dataset(store, tmp_path / "again")
    for name in _DATASET:
        assert _read_rows(tmp_path / "again", name) == _read_rows(tmp_path / "out", name)


# -- the embedded store's own mechanics -----------------------------------------------------
def test_memory_store_persists_across_restart(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "store") as first:
        _small_graph(first)
        first.write_vectors("Worker", "embedding", ["W1", "W2"], np.array([[1.0, 0.0], [0.5, 0.5]]))
        first.set_meta("encoder", "m1")
        counts = first.counts()
        rels = first.relationships("HAS_SKILL")
    with MemoryStore(tmp_path / "store") as second:
        assert second.counts() == counts
        assert second.relationships("HAS_SKILL") == rels
        assert second.get_node("Worker", "W1") == {"id": "W1", "name": "张三", "district": "亭湖区"}
        ids, matrix = second.read_vectors("Worker", "embedding")
        assert ids == ["W1", "W2"] and np.array_equal(matrix, np.array([[1.0, 0.0], [0.5, 0.5]], dtype=np.float32))
        assert second.get_meta("encoder") == "m1"


def test_memory_store_two_instances_share_one_directory(tmp_path: Path) -> None:
    """No lock: a second instance (here in one process; across processes see tests/test_store_processes.py)
    opens the same data directory and each sees the other's committed writes, feed and counters."""
    with MemoryStore(tmp_path / "store") as first, MemoryStore(tmp_path / "store") as second:
        assert first.store_id == second.store_id and len(first.store_id) == 32
        before, matches = second.revision, second.label_revision("Match")
        first.create_node("Worker", "W1", {"name": "张三"})
        first.create_node("Match", "M1", {"state": "invited"})
        assert second.get_node("Worker", "W1") == {"id": "W1", "name": "张三"}
        assert second.revision == first.revision != before
        assert second.changes_since(before) == [Change(node=("Worker", "W1"))]
        assert second.label_revision("Match") == first.label_revision("Match") != matches
        second.update_node("Match", "M1", {"state": "accepted"})
        assert first.get_node("Match", "M1") == {"id": "M1", "state": "accepted"}
    assert MemoryStore(tmp_path / "other").store_id != first.store_id


def test_memory_store_feed_never_restarts_and_is_pruned(tmp_path: Path) -> None:
    with MemoryStore(tmp_path / "store") as store:
        store.create_node("Worker", "W0", {})
        first = store.revision
        store.clear()
        assert store.revision == first + 1  # clear is an unlistable entry, not a reset
        assert store.changes_since(first) is None
        start = store.revision
        store.apply(WriteBatch(nodes=[NodeRow("Worker", f"W{i}") for i in range(FEED_WINDOW + 5)]))
        for i in range(FEED_WINDOW + 5):
            store.update_node("Worker", f"W{i}", {"i": i})
        assert store.revision == start + 1 + FEED_WINDOW + 5
        assert store.changes_since(start + 1) is None  # pruned
        assert store.changes_since(store.revision - 2) == [Change(node=("Worker", f"W{FEED_WINDOW + 3}")),
                                                           Change(node=("Worker", f"W{FEED_WINDOW + 4}"))]
    with MemoryStore(tmp_path / "store") as again:  # durable
        assert again.revision == start + 1 + FEED_WINDOW + 5
        assert again.changes_since(again.revision - 1) == [Change(node=("Worker", f"W{FEED_WINDOW + 4}"))]


def test_memory_store_closed(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path / "store")
    store.close()
    store.close()
    with pytest.raises(StoreUnavailable):
        store.get_node("Worker", "W1")


# -- the Neo4j store's own mechanics --------------------------------------------------------
@pytest.mark.neo4j
def test_neo4j_unreachable_server_is_store_unavailable() -> None:
    store = Neo4jStore.connect(f"bolt://127.0.0.1:{find_free_port()}", database="neo4j")
    try:
        with pytest.raises(StoreUnavailable, match="127.0.0.1"):
            store.ping()
        with pytest.raises(StoreUnavailable, match="127.0.0.1"):
            store.get_node("Worker", "W1")
    finally:
        store.close()
    store.close()
    with pytest.raises(StoreUnavailable, match="closed"):
        store.ping()


@pytest.mark.neo4j
@pytest.mark.parametrize(("label", "prop"), [(label, prop) for label, props in cypher.RANGE_INDEXED.items()
                                             for prop in props])
def test_neo4j_filters_on_indexed_properties_seek(neo4j_schema: Driver, label: str, prop: str) -> None:
    """Every range-indexed filter (matches by worker, notifications by user, the outbox by status...) is an index
    seek in Neo4j's plan, not a scan of the label: a list page costs the matching rows, not the whole label."""
    from graph.neo4j_store import _list_query

    neo4j_schema.execute_query("CALL db.awaitIndexes(120)", database_="neo4j")
    query, params = _list_query(label, {prop: "x"}, 0, 10)
    _, summary, _ = neo4j_schema.execute_query("EXPLAIN " + query, params, database_="neo4j")
    plan = json.dumps(summary.plan)
    assert "NodeIndexSeek" in plan, plan


def test_the_hot_filters_are_indexed() -> None:
    """The filters the pages run on every request are among the indexed ones (the seek test then covers them)."""
    hot = {("Match", "worker_id"), ("Match", "problem_id"), ("Match", "state"), ("Notification", "user_id"),
           ("User", "worker_id"), ("User", "role"), ("OutboxMessage", "status"), ("Problem", "status")}
    indexed = {(label, prop) for label, props in cypher.RANGE_INDEXED.items() for prop in props}
    assert hot <= indexed


@pytest.mark.neo4j
def test_neo4j_connect_and_schema_are_idempotent(neo4j_uri: str) -> None:
    with Neo4jStore.connect(neo4j_uri, database="neo4j") as store:
        store.ping()
        store.ensure_schema()
        store.ensure_schema()
        assert store.kind == "neo4j"


@pytest.mark.neo4j
@pytest.mark.slow
def test_neo4j_store_recovers_after_a_server_restart(tmp_path: Path) -> None:
    """The same store instance (and driver) works again once Neo4j is back, with the data intact."""
    server = Neo4jServer(port=find_free_port(), data_dir=tmp_path / "neo4j", heap="512m",
                         jvm_options=FAST_START_JVM_OPTIONS)
    server.start()
    try:
        store = Neo4jStore.connect(server.uri, database="neo4j")
        store.ensure_schema()
        store.create_node("Worker", "W1", {"name": "张三"})
        store.ping()

        assert server.stop() == 0
        with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{server._requested_port}"):
            store.ping()
        with pytest.raises(StoreUnavailable):
            store.get_node("Worker", "W1")

        server.start()
        store.ping()
        assert store.get_node("Worker", "W1") == {"id": "W1", "name": "张三"}
        store.create_node("Worker", "W2", {"name": "李四"})
        assert store.count_nodes("Worker") == 2
        with pytest.raises(DuplicateNode):  # the schema survived too
            store.create_node("Worker", "W1", {})
        store.close()
    finally:
        server.stop()
