"""The index's compact matrices (recommender/sparse_rows.py): the same rows and products as the matrices they
replace, bit for bit, or (half precision) rounded as said and no more."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from recommender.sparse_rows import BM25Rows, HalfRows, SolvedCounts, TermPostings, rows_on, take_rows
from recommender.text import TextModel, TextViews


def _docs(seed: int, n_docs: int = 400, n_terms: int = 900) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(n_docs, n_terms, density=0.03, format="csr", random_state=rng, dtype=np.float64)
    m.data = rng.random(m.nnz).astype(np.float32) * 3.0  # values whose float32 sums round differently by order
    m = sp.csr_matrix(m, dtype=np.float32)
    m.data[m.indptr[5]:m.indptr[6]] = 0.0  # an empty document
    m.eliminate_zeros()
    m.sort_indices()
    return m


def test_term_postings_give_the_csr_rows_and_products_bit_for_bit() -> None:
    docs = _docs(1)
    postings = sp.csr_matrix(docs.T)
    stored = TermPostings.from_csr(postings, 0.02)
    # the values are kept in half precision: the rows and products are those of the rounded matrix
    postings.data = postings.data.astype(np.float16).astype(np.float32)
    df = np.diff(postings.indptr)
    rare = df <= 0.02 * docs.shape[0]
    assert rare.any() and (~rare).any()  # both kinds of term exist in this matrix
    # every rarer term's postings lie before every common term's
    assert stored.row_of[rare].max() < stored.row_of[~rare].min()
    assert stored.stored.indptr[stored.row_of[rare].max() + 1] < stored.stored.indptr[stored.row_of[~rare].min() + 1]
    assert np.array_equal(stored.df_of(np.arange(len(df))), df) and stored.shape == postings.shape
    rng = np.random.default_rng(2)
    terms = rng.integers(0, docs.shape[1], 200)  # any order, repeats allowed: as postings[terms]
    got, want = stored[terms], postings[terms]
    assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data, want.data)
    # the queries' products with every document: the same float32 sums as the (rounded) full matrix's
    queries = sp.csr_matrix(sp.random(9, docs.shape[1], density=0.05, format="csr", random_state=rng,
                                      dtype=np.float32))
    assert np.array_equal(stored.times(queries).toarray(), (queries @ postings).toarray())
    q = queries[0]
    assert np.array_equal(stored[q.indices].T @ q.data, postings[q.indices].T @ q.data)
    assert stored.times(sp.csr_matrix((2, docs.shape[1]), dtype=np.float32)).nnz == 0


def test_take_rows_of_a_csr_matrix_are_its_rows() -> None:
    docs = _docs(3)
    rows = np.array([4, 0, 4])
    assert (take_rows(docs, rows, np.array([1])) != docs[rows]).nnz == 0


def test_half_rows_are_the_rows_rounded_to_half_precision_sharing_the_indices() -> None:
    docs = _docs(6)
    half = HalfRows.from_csr(docs)
    assert half.data.dtype == np.float16 and half.data.nbytes * 2 == docs.data.nbytes
    assert np.shares_memory(half.indices, docs.indices)  # the index files keep one copy of the indices
    rows = np.array([3, 5, 3, 0, docs.shape[0] - 1])
    got = half.take(rows)
    want = sp.csr_matrix(docs[rows])
    want.data = want.data.astype(np.float16).astype(np.float32)
    assert got.dtype == np.float32 and got.shape == want.shape
    assert np.array_equal(got.indptr, want.indptr) and np.array_equal(got.indices, want.indices)
    assert np.array_equal(got.data, want.data)
    assert np.abs(got.toarray() - docs[rows].toarray()).max() <= 2.0 ** -11 * 3.0  # values up to 3 here
    with pytest.raises(IndexError):
        half.take(np.array([docs.shape[0]]))
    # some rows on some columns: the same values, the columns numbered within those asked
    columns = np.unique(np.random.default_rng(7).integers(0, docs.shape[1], 120))
    on = rows_on(half, rows, columns)
    assert on.shape == (len(rows), len(columns)) and on.dtype == np.float32
    assert np.array_equal(on.toarray(), got[:, columns].toarray())
    assert np.array_equal(rows_on(docs, rows, columns).toarray(), docs[rows][:, columns].toarray())
    with pytest.raises(ValueError):
        HalfRows.from_csr(sp.csr_matrix(np.array([[1e6]], dtype=np.float32)))


def _corpus(seed: int, n: int) -> list[str]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(120)] + ["pump", "valve", "seal", "weld", "crack"]
    # repeated words (counts up to ~12) and bigrams, so the counts and the sublinear tf are not all ones
    return [" ".join(rng.choice(words, int(rng.integers(1, 40)), p=None)) + " pump pump" * int(rng.integers(0, 6))
            for _ in range(n)]


def _solved(seed: int, n_workers: int, n_docs: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    m = sp.random(n_workers, n_docs, density=0.04, format="csr", random_state=rng, dtype=np.float32)
    m.data[:] = 1.0
    m.data[m.indptr[3]:m.indptr[4]] = 0.0  # a worker who solved nothing
    m.eliminate_zeros()
    return sp.csr_matrix(m)


@pytest.mark.parametrize("fast", [False, True])
def test_solved_counts_give_the_stored_bm25_weights_bit_for_bit(fast: bool) -> None:
    texts = _corpus(7, 300)
    model = TextModel().fit(texts[:250])
    # the fitted corpus's rows (scikit-learn's path) or rows made one text at a time (the fast path)
    if fast:
        loaded = TextModel.from_tables(*model.tables())
        parts = [loaded.transform([t]) for t in texts]
        docs = TextViews(*(sp.csr_matrix(sp.vstack([getattr(v, k) for v in parts]))
                           for k in ("word", "char", "counts")))
    else:
        docs = model.transform(texts)
    solved = _solved(8, 60, len(texts))
    counts = sp.csr_matrix(solved @ docs.counts)
    assert counts.data.max() > 10  # counts beyond one byte's sublinear steps
    recovered = SolvedCounts.recover(solved, docs.word, docs.counts, model.word_idf, chunk=997)
    assert recovered is not None
    assert recovered.scale.dtype == np.float32 and len(recovered.scale) == len(texts)
    assert np.shares_memory(recovered.tfidf.data, docs.word.data)  # nothing copied: the index keeps one matrix
    with_counts, without = BM25Rows.fit(counts), BM25Rows.fit(counts, recovered=recovered)
    assert isinstance(without.counts, SolvedCounts) and not isinstance(with_counts.counts, SolvedCounts)
    rng = np.random.default_rng(9)
    rows = rng.integers(0, 60, 80)
    for terms in (None, np.unique(rng.integers(0, counts.shape[1], 40))):
        a, b = with_counts.take(rows, terms), without.take(rows, terms)
        assert np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
        assert np.array_equal(a.data.view(np.int32), b.data.view(np.int32))
    q = np.zeros(counts.shape[1], dtype=np.float32)
    q[terms] = 1.0
    assert np.array_equal((a @ q).view(np.int32), (b @ q).view(np.int32))  # the feature's sums, to the bit


def test_solved_counts_are_refused_when_one_count_would_not_come_back() -> None:
    texts = _corpus(10, 120)
    model = TextModel().fit(texts)
    docs = model.transform(texts)
    solved = _solved(11, 30, len(texts))
    assert SolvedCounts.recover(solved, docs.word, docs.counts, model.word_idf) is not None
    wrong = docs.counts.copy()
    wrong.data[17] += 1.0  # a count the TF-IDF row does not say
    assert SolvedCounts.recover(solved, docs.word, wrong, model.word_idf) is None
    weighted = solved.copy()
    weighted.data[0] = 0.5  # a weight that is not a whole number
    assert SolvedCounts.recover(weighted, docs.word, docs.counts, model.word_idf) is None


def test_recovered_counts_are_the_formula_everywhere_its_shortcut_for_ones_applies() -> None:
    rng = np.random.default_rng(12)
    # 1 + ln(count) for counts 0.4 .. 40, densest around the edges of the shortcut's interval (1 + ln 0.5, 1 + ln 1.5)
    x = np.concatenate([1.0 + np.log(rng.uniform(0.4, 40.0, 20_000)),
                        1.0 + np.log(0.5) + rng.normal(0.0, 1e-6, 2_000),
                        1.0 + np.log(1.5) + rng.normal(0.0, 1e-6, 2_000),
                        [1.0 + np.log(0.5), 1.0 + np.log(1.5)]])
    solved = SolvedCounts(sp.csr_matrix((1, len(x))), sp.csr_matrix((len(x), 1)), np.ones(len(x), dtype=np.float32),
                          np.ones(1))
    got = solved._counts(x, np.arange(len(x)), np.zeros(len(x), dtype=np.int64))
    assert np.array_equal(got, np.rint(np.exp(x - 1.0)))
    assert (got == 1).sum() > 1000 and (got == 0).any() and (got == 2).any()
