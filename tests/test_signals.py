"""Each ranking signal on tiny inputs with hand-computed expected values."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from graph.memory import MemoryStore
from graph.projection import Projection
from graph.store import NodeRow, RelRow, WriteBatch
from recommender.errors import ConvergenceError
from recommender.features import FEATURES, Query, compute_features, gather_segments
from recommender.index import RankingIndex
from recommender.signals import (
    bm25_weights,
    declared_skill_overlap,
    district_proximity,
    local_pagerank,
    personalized_pagerank,
    push_pagerank,
    rating_weight,
    recency_weight,
    segment_max,
    segment_topk,
    skill_count_score,
    skill_profile_cosine,
    transition_matrix,
)
from recommender.sparse_rows import BM25Rows
from recommender.walk import build_walk, seed_vector, walk_scores


def test_segment_topk_hand_computed() -> None:
    values = np.array([0.2, 0.9, 0.5, 0.7, 0.1, 0.4])
    indptr = np.array([0, 5, 5, 6])  # worker 0 has five similarities, worker 1 none, worker 2 one
    sums, maxes, means = segment_topk(values, indptr, 3)
    assert sums.tolist() == pytest.approx([0.9 + 0.7 + 0.5, 0.0, 0.4])
    assert maxes.tolist() == pytest.approx([0.9, 0.0, 0.4])
    assert means.tolist() == pytest.approx([(0.9 + 0.7 + 0.5) / 3, 0.0, 0.4])


def test_gather_segments_matches_python_slices() -> None:
    m = sp.csr_matrix(np.array([[1, 0, 2], [0, 0, 0], [3, 4, 5]]))
    pos, ptr = gather_segments(m.indptr, np.array([2, 1, 0]))
    got = [m.indices[pos[a:b]].tolist() for a, b in zip(ptr[:-1], ptr[1:], strict=True)]
    assert got == [[0, 1, 2], [], [0, 2]]


def test_ppr_two_nodes_closed_form() -> None:
    # x0 = (1-d) + d*x1, x1 = d*x0  =>  x0 = (1-d)/(1-d^2) = 1/(1+d)
    t = transition_matrix(sp.csr_matrix(np.array([[0, 1], [1, 0]])))
    for d in (0.3, 0.5, 0.85):
        x = personalized_pagerank(t, np.array([1.0, 0.0]), damping=d, tol=1e-12, max_iter=1000)
        assert x[0] == pytest.approx(1 / (1 + d), abs=1e-9)
        assert x[1] == pytest.approx(d / (1 + d), abs=1e-9)


def test_ppr_four_nodes_matches_networkx() -> None:
    g = nx.Graph([(0, 1), (1, 2), (2, 3), (1, 3)])
    g.add_node(4)  # isolated: a dangling node
    adj = nx.to_scipy_sparse_array(g, nodelist=range(5), format="csr")
    seeds = {0: 0.75, 3: 0.25}
    expected = nx.pagerank(g, alpha=0.85, personalization=seeds, tol=1e-12, max_iter=1000)
    p = np.array([seeds.get(i, 0.0) for i in range(5)])
    got = personalized_pagerank(transition_matrix(adj), p, damping=0.85, tol=1e-12, max_iter=1000)
    assert got.tolist() == pytest.approx([expected[i] for i in range(5)], abs=1e-8)
    assert got.sum() == pytest.approx(1.0)


def test_ppr_batched_columns_equal_single_runs() -> None:
    adj = sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]]))
    t = transition_matrix(adj)
    batch = personalized_pagerank(t, np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]]), damping=0.5)
    for j, p in enumerate(([1.0, 0.0, 0.0], [0.0, 0.5, 0.5])):
        assert batch[:, j] == pytest.approx(personalized_pagerank(t, np.array(p), damping=0.5), abs=1e-6)


def test_ppr_raises_when_it_cannot_converge() -> None:
    t = transition_matrix(sp.csr_matrix(np.array([[0, 1], [1, 0]])))
    with pytest.raises(ConvergenceError):
        personalized_pagerank(t, np.array([1.0, 0.0]), damping=0.85, tol=1e-12, max_iter=3)
    with pytest.raises(ValueError):
        personalized_pagerank(t, np.array([1.0, 0.0]), damping=1.0)


def _star_and_path() -> nx.Graph:
    """A hub (0) joined to six leaves, a path hanging off one leaf, and an isolated (dangling) node."""
    g = nx.Graph([(0, i) for i in range(1, 7)] + [(6, 7), (7, 8), (8, 9), (1, 2)])
    g.add_node(10)
    return g


@pytest.mark.parametrize("seeds", [{8: 1.0}, {1: 0.5, 9: 0.3, 0: 0.2}, {10: 0.5, 3: 0.5}])
def test_push_and_hub_pagerank_match_networkx(seeds: dict[int, float]) -> None:
    g = _star_and_path()
    adj = nx.to_scipy_sparse_array(g, nodelist=range(11), format="csr")
    t = transition_matrix(adj)
    p = np.array([seeds.get(i, 0.0) for i in range(11)])
    for d in (0.5, 0.85):
        expected = nx.pagerank(g, alpha=d, personalization=seeds, tol=1e-13, max_iter=10_000)
        exact = [expected[i] for i in range(11)]
        scores, residual = push_pagerank(t, p, damping=d, eps=1e-12)
        assert scores.tolist() == pytest.approx(exact, abs=1e-9)
        assert residual.max() <= 1e-12 * 7
        hub = personalized_pagerank(t, np.eye(11)[:, [0]], damping=d, tol=1e-13, max_iter=10_000)[:, 0]
        via_hub = local_pagerank(t, p, damping=d, eps=1e-12, hubs=np.array([0]), hub_scores=hub[None, :])
        assert via_hub.tolist() == pytest.approx(exact, abs=1e-9)
        assert local_pagerank(t, sp.csr_matrix(p[None, :]), damping=d, eps=1e-12).tolist() == \
            pytest.approx(exact, abs=1e-9)


def test_push_pagerank_error_is_one_sided_and_bounded_by_eps_times_degree() -> None:
    g = _star_and_path()
    adj = nx.to_scipy_sparse_array(g, nodelist=range(11), format="csr")
    t = transition_matrix(adj)
    degree = np.asarray(adj.sum(axis=0)).ravel()
    p = np.zeros(11)
    p[9] = 1.0
    exact = personalized_pagerank(t, p, damping=0.5, tol=1e-14, max_iter=10_000)
    for eps in (1e-2, 1e-3, 1e-4):
        scores, residual = push_pagerank(t, p, damping=0.5, eps=eps)
        gap = exact - scores
        assert (gap >= -1e-12).all()  # never above the exact value
        assert (gap <= eps * np.maximum(degree, 1) + 1e-12).all()
        assert (residual <= eps * np.maximum(degree, 1)).all()
        assert scores.sum() + residual.sum() == pytest.approx(1.0, abs=1e-9)  # each unit of residual is worth 1
    assert push_pagerank(t, np.zeros(11), damping=0.5)[0].tolist() == [0.0] * 11


def test_push_pagerank_raises_when_the_rounds_run_out() -> None:
    t = transition_matrix(nx.to_scipy_sparse_array(_star_and_path(), nodelist=range(11), format="csr"))
    with pytest.raises(ConvergenceError):
        push_pagerank(t, np.eye(11)[8], damping=0.85, eps=1e-12, max_rounds=3)
    with pytest.raises(ValueError):
        push_pagerank(t, np.eye(11)[8], damping=0.5, eps=0.0)
    with pytest.raises(ValueError):
        local_pagerank(t, np.eye(11)[8], hubs=np.array([0]))


def test_walk_scores_agree_with_the_exact_walk() -> None:
    index = RankingIndex().fit(Projection.from_store(_tiny_store()))
    index.hub_degree = 3  # make the skill node 焊接 (and prolific w1) hubs on this tiny graph
    build_walk(index)
    assert len(index.walk_hubs) >= 1
    sims = index.docs_word_t.times(index.text.transform(["welding crack"]).word).toarray().ravel()
    seed = seed_vector(index, Query(text="welding crack", skills=("焊接",)), (np.arange(len(sims)), sims),
                        [index.projection.index["Skill"]["焊接"]])
    exact = personalized_pagerank(index.walk.astype(np.float64), seed.toarray().ravel(), damping=0.5, tol=1e-12,
                                  max_iter=1000)
    w0 = index.walk_offset["Worker"]
    got = walk_scores(index, seed, np.arange(index.n_workers), damping=0.5, tol=1e-9)
    assert got.tolist() == pytest.approx(exact[w0:w0 + index.n_workers].tolist(), abs=2e-6)


def test_segment_max_equals_the_top_one() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        lengths = rng.integers(0, 4, size=rng.integers(1, 12))
        indptr = np.concatenate([[0], np.cumsum(lengths)])
        values = rng.normal(size=indptr[-1])
        assert segment_max(values, indptr).tolist() == segment_topk(values, indptr, 1)[1].tolist()


def test_bm25_matches_the_formula() -> None:
    counts = sp.csr_matrix(np.array([[2.0, 0.0, 1.0], [0.0, 1.0, 1.0]]))
    k1, b = 1.2, 0.75
    w = bm25_weights(counts, k1=k1, b=b).toarray()
    lengths = np.array([3.0, 2.0])
    avg = lengths.mean()
    df = np.array([1, 1, 2])
    idf = np.log(1 + (2 - df + 0.5) / (df + 0.5))
    tf = 2.0
    expect = idf[0] * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[0] / avg))
    assert w[0, 0] == pytest.approx(expect, rel=1e-6)
    assert w[1, 0] == 0.0


def _bm25_all_at_once(counts: sp.csr_matrix, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """The weights as the index computed them before it kept counts: every entry in one float64 expression."""
    counts = sp.csr_matrix(counts, dtype=np.float64)
    df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
    idf = np.log1p((counts.shape[0] - df + 0.5) / (df + 0.5))
    lengths = np.asarray(counts.sum(axis=1)).ravel()
    norm = k1 * (1.0 - b + b * lengths / lengths.mean())
    rows = np.repeat(np.arange(counts.shape[0]), np.diff(counts.indptr))
    data = idf[counts.indices] * counts.data * (k1 + 1.0) / (counts.data + norm[rows])
    return sp.csr_matrix((data.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape)


@pytest.mark.parametrize(("top", "kind"), [(9, np.uint8), (3000, np.uint16), (70_000, np.float32), (None, np.float32)])
def test_bm25_rows_keep_counts_and_give_the_same_weights_bit_for_bit(top: int | None, kind: type) -> None:
    rng = np.random.default_rng(11)
    counts = sp.random(60, 300, density=0.05, format="csr", random_state=rng, dtype=np.float64)
    counts.data = rng.random(counts.nnz) * 2.5 + 0.1 if top is None else rng.integers(1, top + 1, counts.nnz) * 1.0
    counts.data = counts.data.astype(np.float32).astype(np.float64)  # what solved @ docs.counts gives: float32
    rows_of = BM25Rows.fit(counts)
    assert rows_of.counts.dtype == kind
    want = _bm25_all_at_once(counts)
    rows = rng.integers(0, 60, 40)
    terms = np.unique(rng.integers(0, 300, 50))
    got = rows_of.take(rows, terms)
    assert got.dtype == np.float32
    assert np.array_equal(got[:, terms].toarray(), want[rows][:, terms].toarray())
    assert got[:, np.setdiff1d(np.arange(300), terms)].nnz == 0
    assert np.array_equal(rows_of.take(rows, None).toarray(), want[rows].toarray())
    q = np.zeros(300, dtype=np.float32)
    q[terms] = 1.0
    assert np.array_equal(got @ q, want[rows] @ q)  # the feature: a row's weights summed over the query's terms


def test_skill_signals_hand_computed() -> None:
    counts = sp.csr_matrix(np.array([[3.0, 0.0, 1.0], [0.0, 2.0, 0.0]]))
    idf = np.array([1.0, 2.0, 0.5])
    got = skill_count_score([0, 2], counts, idf)
    assert got.tolist() == pytest.approx([math.log(4) * 1.0 + math.log(2) * 0.5, 0.0])
    prof = sp.csr_matrix(np.array([[0.6, 0.8, 0.0], [0.0, 0.0, 1.0]]))
    assert skill_profile_cosine(np.array([3.0, 4.0, 0.0]), prof).tolist() == pytest.approx([1.0, 0.0])
    assert skill_profile_cosine(np.zeros(3), prof).tolist() == [0.0, 0.0]
    assert declared_skill_overlap({"a", "b", "c", "d"}, [{"a"}, {"a", "b", "x"}]).tolist() == [0.25, 0.5]


def test_weights_and_district() -> None:
    assert rating_weight(np.array([5.0, 3.0, np.nan])).tolist() == pytest.approx([1.0, 0.8, 1.0])
    assert recency_weight(np.array([0.0, 1460.0, np.nan]), half_life_days=730, floor=0.0).tolist() == \
        pytest.approx([1.0, 0.25, 1.0])
    assert recency_weight(np.array([10_000.0]), floor=0.5).tolist() == [0.5]
    assert district_proximity(["A", "B", "C"], "A", {"B"}).tolist() == [1.0, 0.5, 0.0]
    assert district_proximity(["A"], None, set()).tolist() == [0.0]


def _tiny_store() -> MemoryStore:
    store = MemoryStore(None)
    nodes = [NodeRow("Worker", "w1", {"name": "甲"}), NodeRow("Worker", "w2", {"name": "乙"}),
             NodeRow("Skill", "焊接", {"name": "焊接"}), NodeRow("Skill", "PLC", {"name": "PLC"})]
    titles = {"p1": "welding crack repair", "p2": "welding porosity", "p3": "welding robot",
              "p4": "welding distortion", "p5": "plc program crash"}
    nodes += [NodeRow("Problem", pid, {"title": t, "status": "solved"}) for pid, t in titles.items()]
    rels = [RelRow("SOLVED", "Worker", "w1", "Problem", p, {}) for p in ("p1", "p2", "p3", "p4")]
    rels += [RelRow("SOLVED", "Worker", "w2", "Problem", "p5", {}),
             RelRow("REQUIRES", "Problem", "p1", "Skill", "焊接", {}),
             RelRow("REQUIRES", "Problem", "p5", "Skill", "PLC", {}),
             RelRow("HAS_SKILL", "Worker", "w2", "Skill", "焊接", {})]
    store.apply(WriteBatch(nodes=nodes, rels=rels))
    return store


def test_text_top3_is_the_sum_of_the_three_best_cosines() -> None:
    index = RankingIndex().fit(Projection.from_store(_tiny_store()))
    query = Query(text="welding crack", skills=("焊接",))
    feats, _ = compute_features(index, [query], [np.array([0, 1])])
    f = feats[0]
    q = index.text.transform([query.text]).word
    cos = index.docs_word_t.times(q).toarray().ravel()
    w1_cols = index.worker_history(0)
    expected = sorted(cos[w1_cols], reverse=True)[:3]
    assert f[0, FEATURES.index("text_top3")] == pytest.approx(sum(expected), rel=1e-5)
    assert f[0, FEATURES.index("text_max")] == pytest.approx(max(expected), rel=1e-5)
    assert f[1, FEATURES.index("text_top3")] == pytest.approx(0.0, abs=1e-6)  # plc problem shares no word
    # skill overlap: w2 declares 焊接, w1 solved a problem requiring it
    assert f[1, FEATURES.index("skill_declared")] == 1.0
    assert f[0, FEATURES.index("skill_declared")] == 0.0
    assert f[0, FEATURES.index("skill_count")] == pytest.approx(index.skill_idf[index.projection.index["Skill"]["焊接"]]
                                                                 * math.log(2))
    assert f[:, FEATURES.index("popularity")].tolist() == pytest.approx([math.log(5), math.log(2)])


def test_a_stored_problem_is_not_its_own_evidence() -> None:
    index = RankingIndex().fit(Projection.from_store(_tiny_store()))
    query = Query(text="plc program crash", problem_id="p5")
    feats, _ = compute_features(index, [query], [np.array([1])])
    assert feats[0][0, FEATURES.index("text_max")] == pytest.approx(0.0, abs=1e-6)


def test_projection_incremental_updates_equal_a_rebuild() -> None:
    store = _tiny_store()
    proj = Projection.from_store(store)
    proj.add_problem("p6", {"title": "new plc fault", "skills": ["PLC"]})
    proj.add_solved("w1", "p6", {"rating": 4})
    store.apply(WriteBatch(nodes=[NodeRow("Problem", "p6", {"title": "new plc fault"})],
                           rels=[RelRow("REQUIRES", "Problem", "p6", "Skill", "PLC", {}),
                                 RelRow("SOLVED", "Worker", "w1", "Problem", "p6", {"rating": 4})]))
    rebuilt = Projection.from_store(store)
    for key in (("SOLVED", "Worker", "Problem"), ("REQUIRES", "Problem", "Skill")):
        a = proj.matrix(*key)
        b = rebuilt.matrix(*key)
        # compare as sets of id pairs (indices may differ in order)
        pairs_a = {(proj.ids[key[1]][i], proj.ids[key[2]][j]) for i, j in zip(*a.nonzero(), strict=True)}
        pairs_b = {(rebuilt.ids[key[1]][i], rebuilt.ids[key[2]][j]) for i, j in zip(*b.nonzero(), strict=True)}
        assert pairs_a == pairs_b
    assert proj.adjacency().shape[0] == sum(proj.n(label) for label in proj.ids)
    assert (proj.adjacency() != proj.adjacency().T).nnz == 0


def _text_projection(texts: list[str]) -> Projection:
    proj = Projection()
    proj.add_node("Worker", "w", {"name": "w"})
    for i, text in enumerate(texts):
        proj.add_problem(f"p{i}", {"title": text, "status": "solved"})
        proj.add_solved("w", f"p{i}")
    return proj


def test_similar_problems_first_pass_reads_the_rarest_postings_within_the_budget() -> None:
    # 40 problems share "pump"; "seal" is in 4 of them, "gasket" in 1; "alpha".."theta" are in one each
    texts = [f"pump {'seal ' if i % 10 == 0 else ''}{'gasket' if i == 20 else ''} filler{i}" for i in range(40)]
    texts += [f"{word} other" for word in ("alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta")]
    index = RankingIndex().fit(_text_projection(texts))
    index.common_term_share = 1.0  # every query term counts as rare: only the budget limits the first pass
    query = index.text.transform(["pump seal gasket alpha beta gamma delta epsilon zeta eta theta"]).word
    exact = np.asarray(index.docs_word_t.times(query).todense()).ravel()
    unlimited, sims = index.similar_problems(query, 5)
    # with no binding budget the result is the exact top 5 (the fifth place is a tie of the singletons)
    assert {0, 10, 20, 30} <= set(unlimited.tolist())
    assert sims == pytest.approx(np.sort(exact)[::-1][:5], rel=1e-5)
    # a budget of 12 postings: the rarest terms first (the eight singletons, gasket's 1, seal's 4 would
    # exceed it), never pump's 40; the rare matches are still found and scored with every term
    index.postings_budget = 12
    hits, hit_sims = index.similar_problems(query, 50)
    found = set(hits.tolist())
    assert found == {20, *range(40, 48)}  # gasket's problem and the eight singletons, nothing reached via pump
    assert hit_sims == pytest.approx(exact[hits], rel=1e-5)  # exact rescoring with every term


def test_walk_scores_precision_is_capped_in_absolute_terms() -> None:
    index = RankingIndex().fit(Projection.from_store(_tiny_store()))
    sims = index.docs_word_t.times(index.text.transform(["welding crack"]).word).toarray().ravel()
    seed = seed_vector(index, Query(text="welding crack", skills=("焊接",)), (np.arange(len(sims)), sims),
                        [index.projection.index["Skill"]["焊接"]])
    workers = np.arange(index.n_workers)
    exact = walk_scores(index, seed, workers, damping=0.5, tol=1e-9)
    # below the cap nothing changes: the threshold is tol / walk size
    assert walk_scores(index, seed, workers, damping=0.5, tol=0.002).tolist() == walk_scores(
        index, seed, workers, damping=0.5, tol=0.002, precision_nodes=10**9).tolist()
    # a cap of 2 nodes: the threshold is tol / 2 per unit of degree, and the push invariant bounds the error
    capped = walk_scores(index, seed, workers, damping=0.5, tol=0.002, precision_nodes=2)
    degree = np.diff(index.walk.indptr)[index.walk_offset["Worker"] + workers]
    assert not np.allclose(capped, exact, rtol=0, atol=1e-6)  # the cap took effect: fewer pushes
    assert np.all(capped <= exact + 1e-12)
    assert np.all(exact - capped <= 0.002 / 2 * np.maximum(degree, 1) + 1e-9)
