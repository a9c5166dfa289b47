"""The embedding cache on the real Neo4j server: vector round trip, vector index query, model change."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest
from neo4j import Driver

from embeddings.cache import EmbeddingCache, meta_key
from embeddings.index import VectorIndex
from graph.neo4j_store import Neo4jStore
from graph.store import NodeRow, WriteBatch
from tests.test_embeddings import FakeEncoder

pytestmark = pytest.mark.neo4j


@pytest.fixture()
def store(neo4j_driver: Driver) -> Iterator[Neo4jStore]:
    s = Neo4jStore(neo4j_driver, "neo4j")
    s.ensure_schema()
    s.clear()
    s.apply(WriteBatch(nodes=[NodeRow("Problem", f"p{i:02d}", {"title": f"问题{i}"}) for i in range(40)]))
    try:
        yield s
    finally:
        s.clear()


def test_vectors_round_trip_and_vector_index_query(store: Neo4jStore) -> None:
    texts = {f"p{i:02d}": f"问题{i}" for i in range(40)}
    encoder = FakeEncoder("model-a", dim=16)
    cache = EmbeddingCache(store, encoder)
    ids, matrix = cache.vectors(texts)
    assert cache.last_report.embedded == 40

    stored_ids, stored = store.read_vectors("Problem", "embedding")
    by_id = dict(zip(stored_ids, stored, strict=True))
    assert sorted(stored_ids) == sorted(ids)
    assert np.array_equal(np.stack([by_id[i] for i in ids]), matrix)  # float32 survives LIST<FLOAT>

    # a fresh cache (another process) reuses what Neo4j holds
    again = EmbeddingCache(store, FakeEncoder("model-a", dim=16))
    again.vectors(texts)
    assert again.last_report.embedded == 0 and again.last_report.reused == 40

    # the Neo4j vector index agrees with exact search
    exact = VectorIndex(matrix, ids, backend="exact")
    query = matrix[7] + 0.3 * matrix[3]
    query /= np.linalg.norm(query)
    want_ids, want_scores = exact.search(query, 5)
    hits = store.vector_query("Problem", "embedding", query, k=5)
    assert [h[0] for h in hits] == want_ids[0]
    assert np.allclose([h[1] for h in hits], want_scores[0], atol=1e-4)

    # an edited problem is embedded once and found under its new text
    new_vec = cache.update({"p05": "问题5：液压站油温过高"})[0]
    assert store.vector_query("Problem", "embedding", new_vec, k=1)[0][0] == "p05"


def test_model_change_rebuilds_vectors_and_index_dimension(store: Neo4jStore) -> None:
    texts = {f"p{i:02d}": f"问题{i}" for i in range(40)}
    EmbeddingCache(store, FakeEncoder("model-a", dim=16)).vectors(texts)
    wider = FakeEncoder("model-b", dim=24)
    cache = EmbeddingCache(store, wider)
    ids, matrix = cache.vectors(texts)
    assert "model-a" in (cache.last_report.reset or "") and cache.last_report.embedded == 40
    assert json.loads(store.get_meta(meta_key("Problem", "embedding")) or "{}") == {
        "identity": wider.identity, "dim": 24}
    _, stored = store.read_vectors("Problem", "embedding")
    assert stored.shape == (40, 24)
    hits = store.vector_query("Problem", "embedding", matrix[11], k=1)
    assert hits[0][0] == ids[11] and hits[0][1] == pytest.approx(1.0, abs=1e-4)
