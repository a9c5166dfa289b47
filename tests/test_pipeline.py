"""The ranking as one pipeline: a query analysed once, batched feature computation equal to the per-query one.

The batched paths (campaign assignment scores two hundred problems as one batch) must give the same numbers as
query-by-query computation, bit for bit: each test holds a fast path against its definition.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import scipy.sparse as sp

import recommender.features as features_module
from demo.generator import generate
from graph.dataset import load_dataset
from graph.memory import MemoryStore
from recommender import threads
from recommender.engine import RankConfig, Recommender
from recommender.features import _entry_dots, _rows_dot, compute_features
from recommender.index import RankingIndex
from recommender.kernels import best_per_segment
from recommender.pipeline import generate_candidates, make_query, similar_problems
from recommender.query import Query, vectorise
from recommender.signals import _segment_topk_sorted, segment_topk
from recommender.sparse_rows import BM25Rows, SolvedCounts, gather_segments
from recommender.word_rows import WordRows


@pytest.fixture(scope="module")
def demo_store() -> MemoryStore:
    with tempfile.TemporaryDirectory() as tmp:
        generate(tmp, scale=0.3, seed=3)
        store = MemoryStore()
        load_dataset(store, tmp)
    return store


@pytest.fixture(scope="module")
def rec(demo_store: MemoryStore, tmp_path_factory: pytest.TempPathFactory) -> Recommender:
    return Recommender(demo_store, config=RankConfig(model_dir=tmp_path_factory.mktemp("models")))


def _segments(rng: np.random.Generator, n: int, longest: int) -> np.ndarray:
    lengths = rng.integers(0, longest, size=n)
    ptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    return ptr


def test_segment_topk_equals_sorting_each_segment_bit_for_bit() -> None:
    rng = np.random.default_rng(0)
    for trial in range(200):
        ptr = _segments(rng, int(rng.integers(1, 50)), 12)
        values = rng.choice(np.round(rng.standard_normal(30), 2), size=int(ptr[-1]))  # many ties
        if trial % 2:
            values = values * rng.random(len(values))
        for k in (1, 3, 25):
            got, want = segment_topk(values, ptr, k), _segment_topk_sorted(values, ptr, k)
            assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True)), (trial, k)


def test_best_per_segment_ranks_only_long_segments_like_a_full_sort() -> None:
    rng = np.random.default_rng(1)
    for _ in range(100):
        ptr = _segments(rng, int(rng.integers(1, 40)), 9)
        values = rng.choice(np.arange(5.0), size=int(ptr[-1]))
        lengths = np.diff(ptr)
        groups = np.repeat(np.arange(len(lengths)), lengths)
        order = np.lexsort((-values, groups))
        rank = np.empty(len(values), dtype=np.int64)
        rank[order] = np.arange(len(values)) - np.repeat(ptr[:-1], lengths)
        for k in (1, 3):
            assert np.array_equal(best_per_segment(values, ptr, k), rank < k)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_entry_dots_batched_and_per_query_give_the_same_numbers(dtype: type, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    m = sp.random(400, 3000, density=0.01, format="csr", dtype=dtype, random_state=3)
    m.data = (m.data * 3 - 1).astype(dtype)
    queries = sp.random(30, 3000, density=0.004, format="csr", dtype=np.float32, random_state=4)
    owner = np.sort(rng.integers(0, 30, size=2000))
    rows = rng.integers(0, 400, size=2000)
    want = np.concatenate([_rows_dot(m, rows[owner == i], queries[i]) for i in range(30)])
    for ratio in (0, 10**9):  # never / always one product for the batch
        monkeypatch.setattr(features_module, "BATCH_PRODUCT_RATIO", ratio)
        assert np.array_equal(_entry_dots(m, rows, owner, queries), want)


def test_column_sums_at_some_rows_are_the_whole_columns_sums() -> None:
    rng = np.random.default_rng(5)
    m = sp.random(3000, 40, density=0.05, format="csc", random_state=rng)
    m.data = rng.random(m.nnz) * 3.0
    rows = rng.permutation(3000)[:400]
    for cols in ([3], [0, 7, 7, 39], list(range(40)), []):
        whole = np.zeros(3000)
        for c in cols:
            np.add.at(whole, m.indices[m.indptr[c]:m.indptr[c + 1]], m.data[m.indptr[c]:m.indptr[c + 1]])
        assert np.array_equal(features_module._column(m, cols, rows), whole[rows])
    unsorted = m.copy()
    unsorted.has_sorted_indices = False  # the other way, by the whole columns
    assert np.array_equal(features_module._column(unsorted, [1, 2], rows), features_module._column(m, [1, 2], rows))
    # a column holding a row twice (not canonical): both values count, as whole columns add them
    twice = sp.csc_matrix((np.array([1.0, 2.0, 4.0]), np.array([5, 5, 7]), np.array([0, 3])), shape=(10, 1))
    assert features_module._column(twice, [0], np.array([5, 7, 1])).tolist() == [3.0, 4.0, 0.0]


def _served_queries(rec: Recommender, n: int) -> tuple[list[str], list[Query], list[tuple[np.ndarray, np.ndarray]],
                                                     list[np.ndarray]]:
    """The first ``n`` open problems as the served path sees them: ids, vectorised queries, their similar
    problems and their candidates."""
    index = rec.index
    open_ids = [p for p, row in zip(rec.projection.ids["Problem"], rec.projection.props["Problem"], strict=True)
                if row.get("status") == "open"][:n]
    queries = [vectorise(index, make_query(rec.projection, pid, rec._aliases)) for pid in open_ids]
    similar = [similar_problems(index, q, 100) for q in queries]
    cands = [generate_candidates(index, q, s, rec.config) for q, s in zip(queries, similar, strict=True)]
    return open_ids, queries, similar, cands


def test_features_do_not_depend_on_the_batch(rec: Recommender) -> None:
    index = rec.index
    open_ids, queries, similar, cands = _served_queries(rec, 25)
    cands = [c[(c + i) % 3 != 0] for i, c in enumerate(cands)]  # different candidates per query
    together, _ = compute_features(index, queries, cands, similar=similar)
    alone = [compute_features(index, [q], [c], similar=[s])[0][0]
             for q, c, s in zip(queries, cands, similar, strict=True)]
    assert all(np.array_equal(a, b) for a, b in zip(together, alone, strict=True))
    # the evaluation's way (no vectors, exact cosines to every history problem): batches agree (both of more
    # than 8 texts: TextModel.transform analyses up to 8 texts another way, with other float rounding)
    plain = [make_query(rec.projection, pid, rec._aliases) for pid in open_ids]
    small, _ = compute_features(index, plain, cands, batch=13)
    large, _ = compute_features(index, plain, cands, batch=25)
    assert all(np.array_equal(a, b) for a, b in zip(small, large, strict=True))


def test_features_do_not_depend_on_how_the_reads_are_split(rec: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    index = rec.index
    _, queries, similar, cands = _served_queries(rec, 10)
    monkeypatch.setenv("JIANGLIAN_QUERY_THREADS", "1")
    whole = [compute_features(index, [q], [c], similar=[s])[0][0] for q, c, s in zip(queries, cands, similar,
                                                                                     strict=True)]
    monkeypatch.setattr(threads, "SPLIT_ENTRIES", 1)  # every read (word rows, BM25, character rows) in parts
    for n_threads in ("2", "3"):
        monkeypatch.setenv("JIANGLIAN_QUERY_THREADS", n_threads)
        split = [compute_features(index, [q], [c], similar=[s])[0][0] for q, c, s in zip(queries, cands, similar,
                                                                                         strict=True)]
        assert all(np.array_equal(a, b) for a, b in zip(whole, split, strict=True))


def test_served_bm25_from_the_gathered_word_rows_is_the_stored_counts_bm25(
        rec: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    index = rec.index
    assert isinstance(index.bm25.counts, SolvedCounts)  # the demo's counts are recovered from the word rows
    _, queries, similar, cands = _served_queries(rec, 12)
    served, _ = compute_features(index, queries, cands, similar=similar)
    # the word rows' cosines are the whole rows' (the generic product over the half-precision rows), bit for bit
    pair_w = np.concatenate(cands)
    pos, _ptr = gather_segments(index.solved.indptr, pair_w)
    cols = index.solved.indices[pos]
    owner = np.repeat(np.arange(len(queries)), [int(np.diff(index.solved.indptr)[c].sum()) for c in cands])
    assert all(q.views is not None for q in queries)
    views = sp.csr_matrix(sp.vstack([q.views.word for q in queries if q.views is not None]))
    assert np.array_equal(WordRows.of(index, cols, views).dots(owner, views), _entry_dots(index.word_rows, cols,
                                                                                             owner, views))
    # the same features through the generic path (SolvedCounts.take) and from counts kept as they are
    monkeypatch.setattr(WordRows, "give_bm25", staticmethod(lambda _index: False))
    generic, _ = compute_features(index, queries, cands, similar=similar)
    monkeypatch.setattr(index, "bm25", BM25Rows.fit(sp.csr_matrix(index.solved @ index.docs.counts)))
    assert not isinstance(index.bm25.counts, SolvedCounts)
    stored, _ = compute_features(index, queries, cands, similar=similar)
    bm25 = features_module.FEATURES.index("bm25")
    assert any(f[:, bm25].any() for f in served)
    for a, b, c in zip(served, generic, stored, strict=True):
        assert np.array_equal(a, b) and np.array_equal(a, c)


def test_a_recommendation_analyses_its_query_text_once(rec: Recommender, monkeypatch: pytest.MonkeyPatch) -> None:
    text = "数控机床主轴振动异常 加工中心主轴高速运转时振动大"
    seen: list[list[str]] = []
    real = type(rec.index.text).transform

    def counting(self: object, texts: list[str]) -> object:
        texts = list(texts)
        seen.append(texts)
        return real(self, texts)  # type: ignore[arg-type]

    monkeypatch.setattr(type(rec.index.text), "transform", counting)
    small = Recommender(rec.store, config=RankConfig(model_dir=Path(tempfile.mkdtemp()), max_candidates=20))
    row = {"title": text, "skills": ["焊接"]}
    analysed = small._query(row).text
    seen.clear()
    got = small.recommend(row, n=5)
    assert got and len(small.index.profile_texts) > 20  # candidates are generated (profiles read)
    assert sum(t == [analysed] for t in seen) == 1  # similar problems, candidates, features, declines: one analysis
    again = small.recommend(row, n=5)  # asked again (a plan page asks for every open problem on each view)
    assert sum(t == [analysed] for t in seen) == 1
    assert [(r.worker_id, r.score) for r in again] == [(r.worker_id, r.score) for r in got]
    small.rebuild()  # a new index: its own analysis
    small.recommend(row, n=5)
    assert sum(t == [analysed] for t in seen) == 2


def test_ranking_index_is_fitted_like_an_estimator(demo_store: MemoryStore) -> None:
    from graph.projection import Projection

    proj = Projection.from_store(demo_store)
    index = RankingIndex()
    assert not hasattr(index, "solved")
    assert index.fit(proj) is index
    again = RankingIndex().fit(proj)
    assert (index.solved != again.solved).nnz == 0 and np.array_equal(index.hp, again.hp)
