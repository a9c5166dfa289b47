"""Rows read from postings (recommender/sparse_rows.py): the same entries, and bit for bit the same products, as
the row-major matrix they replace, by both of its search paths."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender import sparse_rows
from recommender.sparse_rows import PostingRows, take_rows


def _docs(seed: int, n_docs: int = 400, n_terms: int = 900) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(n_docs, n_terms, density=0.03, format="csr", random_state=rng, dtype=np.float64)
    m.data = rng.random(m.nnz).astype(np.float32) * 3.0  # values whose float32 sums round differently by order
    m = sp.csr_matrix(m, dtype=np.float32)
    m.data[m.indptr[5]:m.indptr[6]] = 0.0  # an empty document
    m.eliminate_zeros()
    m.sort_indices()
    return m


@pytest.mark.parametrize("loop_terms", [0, 10_000], ids=["vectorised", "per-term"])
def test_take_holds_exactly_the_rows_entries_on_the_terms(monkeypatch: pytest.MonkeyPatch, loop_terms: int) -> None:
    monkeypatch.setattr(sparse_rows, "LOOP_TERMS", loop_terms)
    docs = _docs(1)
    rows_of = PostingRows(sp.csr_matrix(docs.T))
    rng = np.random.default_rng(2)
    rows = np.concatenate([rng.integers(0, docs.shape[0], 300), [5, 5, 0, docs.shape[0] - 1]])
    terms = np.unique(rng.integers(0, docs.shape[1], 120))
    got = rows_of.take(rows, terms)
    want = sp.csr_matrix(docs[rows][:, terms])
    assert got.shape == (len(rows), docs.shape[1])
    assert got.has_sorted_indices and np.all(np.diff(got.indices[got.indptr[1]:got.indptr[2]]) > 0)
    np.testing.assert_array_equal(got[:, terms].toarray(), want.toarray())
    outside = np.setdiff1d(np.arange(docs.shape[1]), terms)
    assert got[:, outside].nnz == 0


@pytest.mark.parametrize("loop_terms", [0, 10_000], ids=["vectorised", "per-term"])
def test_products_with_queries_are_bit_identical(monkeypatch: pytest.MonkeyPatch, loop_terms: int) -> None:
    monkeypatch.setattr(sparse_rows, "LOOP_TERMS", loop_terms)
    docs = _docs(3)
    rows_of = PostingRows(sp.csr_matrix(docs.T))
    rng = np.random.default_rng(4)
    queries = sp.csr_matrix(sp.random(7, docs.shape[1], density=0.08, format="csr", random_state=rng,
                                      dtype=np.float32))
    rows = rng.integers(0, docs.shape[0], 500)
    terms = np.unique(queries.indices)
    sub = take_rows(rows_of, rows, terms)
    # float32 sums (the features' batch product), float64 sums (the shortlist's rescoring), sparse x sparse
    q32 = np.asarray(queries.T.toarray(), dtype=np.float32)
    assert np.array_equal(sub @ q32, docs[rows] @ q32)
    dense = queries[0].toarray().ravel().astype(np.float64)
    assert np.array_equal(sub @ dense, docs[rows] @ dense)
    assert np.array_equal((queries @ sub.T).toarray(), (queries @ docs[rows].T).toarray())


def test_bad_rows_and_unsorted_postings_are_refused() -> None:
    docs = _docs(5)
    rows_of = PostingRows(sp.csr_matrix(docs.T))
    with pytest.raises(IndexError):
        rows_of.take(np.array([docs.shape[0]]), np.array([0]))
    with pytest.raises(IndexError):
        rows_of.take(np.array([0]), np.array([-1]))
    unsorted = sp.csr_matrix((np.ones(2, dtype=np.float32), np.array([3, 1]), np.array([0, 2])), shape=(1, 4))
    unsorted.has_sorted_indices = False
    with pytest.raises(ValueError):
        PostingRows(unsorted)
    assert take_rows(rows_of, np.zeros(0, dtype=np.int64), np.array([1, 2])).shape == (0, docs.shape[1])
