"""The compiled loops (recommender/kernels.py) against the numpy/scipy ways they replace: the same numbers, bit
for bit, on values chosen so that another order of summation or a wider accumulator would round differently."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import scipy.sparse as sp

from recommender import kernels, threads
from recommender.kernels import compiled_source
from recommender.signals import push_pagerank, push_pagerank_at, transition_matrix
from recommender.sparse_rows import HalfRows, take_rows


def _matrix(seed: int, n_rows: int = 300, n_cols: int = 700) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(n_rows, n_cols, density=0.05, format="csr", random_state=rng, dtype=np.float64)
    m.data = (rng.random(m.nnz) * 10.0 ** rng.uniform(-3, 1, m.nnz)).astype(np.float32)
    m = sp.csr_matrix(m, dtype=np.float32)
    m.data[m.indptr[4]:m.indptr[5]] = 0.0  # an empty row
    m.eliminate_zeros()
    perm = rng.permutation(m.nnz)  # stored order not sorted within rows: the sums follow the stored order
    for i in range(m.shape[0]):
        a, b = m.indptr[i], m.indptr[i + 1]
        order = a + np.argsort(perm[a:b])
        m.indices[a:b], m.data[a:b] = m.indices[order].copy(), m.data[order].copy()
    m.has_sorted_indices = False
    return m


def _queries(seed: int, n: int, n_cols: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    q = sp.random(n, n_cols, density=0.2, format="csr", random_state=rng, dtype=np.float64)
    q.data = rng.random(q.nnz) * 10.0 ** rng.uniform(-2, 1, q.nnz)  # float64, rounded to float32 like scipy's
    return sp.csr_matrix(q)


def _arrays(m: sp.csr_matrix | HalfRows) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray | None, int]:
    arrays = compiled_source(m)
    assert arrays is not None
    return arrays


def _scipy_dots(m: sp.csr_matrix | HalfRows, rows: np.ndarray, owner: np.ndarray, q: sp.csr_matrix) -> np.ndarray:
    """What features._entry_dots computed before the kernels: the rows times the dense queries, by scipy."""
    once, back = np.unique(rows, return_inverse=True)
    product = take_rows(m, once, np.unique(q.indices)) @ np.asarray(q.T.toarray(), dtype=np.float32)
    return np.asarray(product[back.ravel(), owner], dtype=np.float64)


@pytest.mark.parametrize("half", [False, True])
def test_entry_dots_are_scipys_products_bit_for_bit(half: bool) -> None:
    m = _matrix(1)
    source = HalfRows.from_csr(m) if half else m
    q = _queries(2, 4, m.shape[1])
    rng = np.random.default_rng(3)
    owner = np.sort(rng.integers(0, 4, 900))
    owner[owner == 2] = 3  # a query with no entries
    rows = rng.integers(0, m.shape[0], len(owner))
    rows[:5] = 4  # the empty row
    got = kernels.entry_dots(*_arrays(source), rows, owner, q.indptr, q.indices, q.data)
    want = _scipy_dots(source, rows, owner, q)
    assert got.dtype == np.float64 and np.array_equal(got, want)
    wide = np.array([float(np.dot(m[r].toarray()[0].astype(np.float64),
                                  q[o].toarray()[0].astype(np.float32).astype(np.float64)))
                     for r, o in zip(rows, owner, strict=True)])
    if not half:  # the values are such that a float64 accumulator rounds differently somewhere
        assert not np.array_equal(wide, got)
    # and the scratch is put back: the same call again gives the same numbers
    again = kernels.entry_dots(*_arrays(source), rows, owner, q.indptr, q.indices, q.data)
    assert np.array_equal(again, got)


def test_entry_dots_refuse_what_they_cannot_read() -> None:
    m = _matrix(4)
    q = _queries(5, 2, m.shape[1])
    args = (m.indptr, m.indices, m.data, None, m.shape[1])
    with pytest.raises(IndexError):
        kernels.entry_dots(*args, np.array([m.shape[0]]), np.array([0]), q.indptr, q.indices, q.data)
    with pytest.raises(ValueError):
        kernels.entry_dots(*args, np.array([0, 1]), np.array([1, 0]), q.indptr, q.indices, q.data)
    with pytest.raises(IndexError):
        kernels.entry_dots(*args, np.array([0]), np.array([2]), q.indptr, q.indices, q.data)
    wide = sp.csr_matrix((q.data, q.indices + m.shape[1], q.indptr), shape=(2, 2 * m.shape[1]))
    with pytest.raises(IndexError):
        kernels.entry_dots(*args, np.array([0]), np.array([0]), wide.indptr, wide.indices, wide.data)
    assert kernels.entry_dots(*args, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), q.indptr,
                              q.indices, q.data).shape == (0,)


@pytest.mark.parametrize("half", [False, True])
def test_rows_on_columns_are_scipys_column_selection(half: bool) -> None:
    m = _matrix(6)
    source = HalfRows.from_csr(m) if half else m
    rows = np.array([7, 4, 7, 0, m.shape[0] - 1])
    columns = np.unique(np.random.default_rng(8).integers(0, m.shape[1], 150))
    ptr, ind, val = kernels.rows_on_columns(*_arrays(source), rows, columns)
    want = sp.csr_matrix(take_rows(source, rows, columns)[:, columns])  # scipy keeps the stored order too
    assert np.array_equal(ptr, want.indptr) and np.array_equal(ind, want.indices)
    assert val.dtype == np.float32 and np.array_equal(val, want.data)
    with pytest.raises(IndexError):
        kernels.rows_on_columns(*_arrays(source), rows, np.array([m.shape[1]]))
    # the scratch map is restored: other columns next time give their own selection
    other = columns[::2]
    ptr2, ind2, _ = kernels.rows_on_columns(*_arrays(source), rows, other)
    want2 = sp.csr_matrix(take_rows(source, rows, other)[:, other])
    assert np.array_equal(ptr2, want2.indptr) and np.array_equal(ind2, want2.indices)


def _vectorised_push(t: sp.csc_matrix, p: np.ndarray, damping: float, eps: float,
                     frozen: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """push_pagerank's rounds as numpy array operations (the code the compiled loop replaced), the oracle."""
    indptr, indices, data = t.indptr, t.indices, t.data
    seeds = np.flatnonzero(p)
    seed_mass = p[seeds] / p[seeds].sum()
    x, r = np.zeros(t.shape[0]), np.zeros(t.shape[0])
    r[seeds] = seed_mass

    def above(nodes: np.ndarray) -> np.ndarray:
        keep = r[nodes] > eps * np.maximum(indptr[nodes + 1] - indptr[nodes], 1)
        if frozen is not None:
            keep &= ~frozen[nodes]
        return np.unique(nodes[keep])

    frontier = above(seeds)
    while len(frontier):
        nodes = frontier
        starts = indptr[nodes].astype(np.int64)
        degree = indptr[nodes + 1] - starts
        pushed = r[nodes]
        r[nodes] = 0.0
        x[nodes] += (1.0 - damping) * pushed
        offsets = np.zeros(len(nodes) + 1, dtype=np.int64)
        np.cumsum(degree, out=offsets[1:])
        pos = np.arange(offsets[-1], dtype=np.int64) - np.repeat(offsets[:-1] - starts, degree)
        targets = indices[pos]
        np.add.at(r, targets, data[pos] * np.repeat(damping * pushed, degree))
        lost = damping * float(pushed[degree == 0].sum())
        if lost > 0.0:
            r[seeds] += lost * seed_mass
            targets = np.concatenate([targets, seeds])
        frontier = above(targets)
    return x, r


@pytest.mark.parametrize("dangling", [0, 1, 9, 40])
def test_push_is_the_vectorised_rounds_bit_for_bit(dangling: int) -> None:
    g = nx.barabasi_albert_graph(400, 3, seed=11)
    g.add_nodes_from(range(400, 400 + dangling))  # isolated nodes: their residual returns to the seeds
    n = g.number_of_nodes()
    t = sp.csc_matrix(transition_matrix(nx.to_scipy_sparse_array(g, nodelist=range(n), format="csr")))
    rng = np.random.default_rng(dangling)
    p = np.zeros(n)
    p[rng.choice(400, 12, replace=False)] = rng.random(12)
    p[400:400 + dangling] = rng.random(dangling)  # seeds among them: many dangling pushes, summed pairwise
    frozen = np.zeros(n, dtype=bool)
    frozen[np.argsort(-np.asarray(t.getnnz(axis=0)))[:5]] = True
    for damping, eps, mask in ((0.5, 1e-6, None), (0.85, 1e-8, frozen), (0.3, 1e-4, frozen)):
        got = push_pagerank(t, p, damping=damping, eps=eps, frozen=mask)
        want = _vectorised_push(t, p, damping, eps, mask)
        assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
        # read at some nodes from the thread's scratch vectors: the same numbers, the scratch left all zero
        at_x, at_r = rng.integers(0, n, 50), np.flatnonzero(frozen)
        x, r = push_pagerank_at(t, p, at_x, at_r, damping=damping, eps=eps, frozen=mask)
        assert np.array_equal(x, want[0][at_x]) and np.array_equal(r, want[1][at_r])
        assert x.any() and not kernels._scratch_array("push_x", n, np.float64, 0.0).any()
        assert not kernels._scratch_array("push_r", n, np.float64, 0.0).any()
        assert not kernels._scratch_array("push_mark", n, np.bool_, 0).any()


def test_pairwise_sum_is_numpys_sum() -> None:
    rng = np.random.default_rng(12)
    for n in [*range(0, 140), 255, 256, 257, 1000, 4099]:
        a = rng.random(n) * 10.0 ** rng.uniform(-8, 3, n)
        assert kernels._pairwise_sum(a, 0, n) == a.sum()


def _lexsorted_best(values: np.ndarray, indptr: np.ndarray, k: int) -> np.ndarray:
    """features._best_per_segment before the kernel: a lexsort of every long segment."""
    lengths = np.diff(indptr)
    mask = np.ones(len(values), dtype=bool)
    for s in np.flatnonzero(lengths > k):
        a, b = indptr[s], indptr[s + 1]
        order = np.lexsort((-values[a:b], np.zeros(b - a)))
        mask[a + order[k:]] = False
    return mask


def test_best_per_segment_keeps_the_k_largest_ties_by_position() -> None:
    rng = np.random.default_rng(13)
    lengths = rng.integers(0, 60, 200)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    values = np.round(rng.random(indptr[-1]), 1)  # many ties
    values[:5] = 0.0
    values[5:8] = -0.0
    for k in (0, 1, 3, 25, 100):
        assert np.array_equal(kernels.best_per_segment(values, indptr, k), _lexsorted_best(values, indptr, k))
    assert kernels.best_per_segment(np.zeros(0), np.array([0]), 3).shape == (0,)


def _split_everything(monkeypatch: pytest.MonkeyPatch, n_threads: int) -> None:
    """Every read split in ``n_threads`` parts, however small."""
    monkeypatch.setattr(threads, "SPLIT_ENTRIES", 1)
    monkeypatch.setenv("JIANGLIAN_QUERY_THREADS", str(n_threads))


@pytest.mark.parametrize("half", [False, True])
def test_reads_split_over_threads_give_the_same_numbers(half: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    m = _matrix(11)
    source = HalfRows.from_csr(m) if half else m
    q = _queries(12, 3, m.shape[1])
    rng = np.random.default_rng(13)
    owner = np.sort(rng.integers(0, 3, 700))
    rows = rng.integers(0, m.shape[0], len(owner))
    columns = np.unique(rng.integers(0, m.shape[1], 200))
    monkeypatch.setenv("JIANGLIAN_QUERY_THREADS", "1")
    dots = kernels.entry_dots(*_arrays(source), rows, owner, q.indptr, q.indices, q.data)
    selected = kernels.rows_on_columns(*_arrays(source), rows, columns)
    for n_threads in (2, 3):
        _split_everything(monkeypatch, n_threads)
        assert np.array_equal(kernels.entry_dots(*_arrays(source), rows, owner, q.indptr, q.indices, q.data), dots)
        for got, want in zip(kernels.rows_on_columns(*_arrays(source), rows, columns), selected, strict=True):
            assert got.dtype == want.dtype and np.array_equal(got, want)
