"""Sparse rows made when a query asks for them, from a more compact form than the rows themselves.

A per-query signal reads a few thousand rows of a large matrix (:func:`take_rows`), and at a million history
problems each float32 matrix of the index is gigabytes of mapped pages that queries touch at random, wherever
the rows fall. So the index keeps the largest ones in a form with fewer bytes a query can touch:

- :class:`TermPostings`: the word postings (term -> history problems), the postings of the terms a first
  retrieval pass reads (the rarer ones) stored together ahead of the others, so those pages are the only ones
  a recommendation touches;
- :class:`BM25Rows`: the BM25 weights, kept as one- or two-byte counts and computed for the rows asked;
- :class:`HalfRows`: the character n-gram TF-IDF rows, their values in half precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

__all__ = ["BM25Rows", "HalfRows", "RowSource", "TermPostings", "rare_terms", "take_rows"]

#: Every half float's value in single precision, indexed by its 16 bits.
_HALF_TO_SINGLE = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def rare_terms(df: np.ndarray, n_docs: int, share: float) -> np.ndarray:
    """Which terms are rare: in at most ``share`` of ``n_docs`` documents (at least one document always counts).

    The one rule both the first retrieval pass (which terms' postings it reads) and :class:`TermPostings` (which
    terms' postings it stores first) follow.

    Examples
    --------
    >>> rare_terms(np.array([1, 2, 3]), 100, 0.02).tolist()
    [True, True, False]
    """
    return np.asarray(df) <= max(share * n_docs, 1.0)


class RowSource(Protocol):
    """What a per-query signal needs of a matrix: its shape and type, and some rows on some terms."""

    shape: tuple[int, int]
    dtype: np.dtype[Any]

    def take(self, rows: np.ndarray, terms: np.ndarray) -> sp.csr_matrix:
        """Rows ``rows`` (in that order) holding at least their entries on ``terms`` (sorted, unique)."""
        ...


def take_rows(m: sp.csr_matrix | RowSource, rows: np.ndarray, terms: np.ndarray) -> sp.csr_matrix:
    """Rows ``rows`` of ``m`` with at least their entries on ``terms``: all of them for a CSR matrix.

    Examples
    --------
    >>> m = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=np.float32))
    >>> take_rows(m, np.array([1, 0]), np.array([2])).toarray().tolist()
    [[0.0, 3.0, 0.0], [1.0, 0.0, 2.0]]
    """
    if isinstance(m, sp.spmatrix | sp.sparray):
        return sp.csr_matrix(m[rows])
    return m.take(rows, terms)


@dataclass(eq=False)
class BM25Rows:
    """BM25 term weights (:func:`bm25_weights`) kept as their counts, the weights computed for the rows asked.

    The counts are small integers (a worker's count of a term over the problems they solved): one or two
    bytes each against four for a float32 weight, and each weight is computed from them by the same float64
    expression :func:`bm25_weights` used, rounded to float32 the same way, so the scores are unchanged.

    Parameters
    ----------
    counts
        Documents x terms counts (``uint8``/``uint16`` when they are integers that fit, else ``float32``).
    idf
        Per term, ``log(1 + (N - df + 0.5) / (df + 0.5))``.
    norm
        Per document, ``k1 * (1 - b + b * length / average length)``.
    k1
        The term-frequency saturation.

    Examples
    --------
    >>> rows = BM25Rows.fit(sp.csr_matrix(np.array([[2.0, 0.0], [1.0, 1.0]])), k1=1.2, b=0.0)
    >>> rows.counts.dtype, rows.shape
    (dtype('uint8'), (2, 2))
    >>> rows.take(np.array([1]), np.array([1])).toarray().astype(float).round(3).tolist()
    [[0.0, 0.693]]
    """

    counts: sp.csr_matrix
    idf: np.ndarray
    norm: np.ndarray
    k1: float

    @classmethod
    def fit(cls, counts: sp.spmatrix, *, k1: float = 1.2, b: float = 0.75) -> BM25Rows:
        """The weights of documents x terms ``counts``."""
        counts = sp.csr_matrix(counts, dtype=np.float64)
        n_docs = counts.shape[0]
        df = np.bincount(counts.indices, minlength=counts.shape[1]).astype(np.float64)
        idf = np.log1p((n_docs - df + 0.5) / (df + 0.5))
        lengths = np.asarray(counts.sum(axis=1)).ravel()
        avg = lengths.mean() if n_docs and lengths.mean() > 0 else 1.0
        norm = k1 * (1.0 - b + b * lengths / avg)
        data = counts.data
        kind: type[np.generic] = np.float32
        if not len(data) or (data.min() >= 0 and np.array_equal(data, np.round(data))):
            top = data.max(initial=0.0)
            kind = np.uint8 if top <= np.iinfo(np.uint8).max else np.uint16 if top <= np.iinfo(np.uint16).max \
                else np.float32
        stored = data.astype(kind)
        if not np.array_equal(stored.astype(np.float64), data):  # float32 would round it: keep the weights exact
            stored = data
        return cls(sp.csr_matrix((stored, counts.indices, counts.indptr), shape=counts.shape), idf, norm, float(k1))

    @property
    def shape(self) -> tuple[int, int]:
        """(documents, terms)."""
        return (int(self.counts.shape[0]), int(self.counts.shape[1]))

    @property
    def dtype(self) -> np.dtype[Any]:
        """The weights' type."""
        return np.dtype(np.float32)

    def take(self, rows: np.ndarray, terms: np.ndarray | None) -> sp.csr_matrix:
        """The weights of rows ``rows`` on ``terms`` (sorted, unique; ``None``: every term), float32 CSR."""
        rows = np.asarray(rows, dtype=np.int64)
        sub = sp.csr_matrix(self.counts[rows])
        indices, indptr, tf = sub.indices, sub.indptr, sub.data
        if terms is not None:  # the entries on the terms only: fewer weights to compute
            wanted = np.zeros(self.shape[1], dtype=bool)
            wanted[np.asarray(terms, dtype=np.int64)] = True
            keep = np.flatnonzero(wanted[indices])
            at = np.searchsorted(indptr, keep, side="right") - 1
            indices, tf = indices[keep], tf[keep]
            indptr = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(np.bincount(at, minlength=len(rows)), out=indptr[1:])
        else:
            at = np.repeat(np.arange(len(rows)), np.diff(indptr))
        tf = tf.astype(np.float64)
        data = self.idf[indices] * tf * (self.k1 + 1.0) / (tf + self.norm[rows[at]])
        out = sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=(len(rows), self.shape[1]))
        out.has_sorted_indices = sub.has_sorted_indices
        return out


@dataclass(eq=False)
class HalfRows:
    """A CSR matrix whose values are kept in half precision (two bytes each instead of four).

    For the character n-gram TF-IDF rows of the history problems (the largest matrix of the index: at 1M
    problems 1 GB of float32 values beside 1 GB of column indices). The values are unit-row cosine weights in
    (0, 1], where half precision keeps 11 significant bits (a relative error under 0.05 %): the character
    signals are sums of the best few cosines, and a build and a load read the same rounded values.

    Examples
    --------
    >>> m = sp.csr_matrix(np.array([[0.6, 0.0, 0.8], [0.0, 1.0, 0.0]], dtype=np.float32))
    >>> half = HalfRows.from_csr(m)
    >>> half.data.dtype, half.shape
    (dtype('float16'), (2, 3))
    >>> half.take(np.array([1, 0]), None).toarray().astype(float).round(4).tolist()
    [[0.0, 1.0, 0.0], [0.6001, 0.0, 0.7998]]
    """

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    n_cols: int

    def __post_init__(self) -> None:
        # the half floats' bits as int16, a type scipy's row gather copies (it has no float16); no copy is made
        self._bits = sp.csr_matrix((self.data.view(np.int16), self.indices, self.indptr), shape=self.shape)

    @classmethod
    def from_csr(cls, m: sp.spmatrix) -> HalfRows:
        """The rows of ``m`` with their values rounded to float16 (the index arrays shared, not copied)."""
        m = sp.csr_matrix(m)
        if len(m.data) and not (np.isfinite(m.data).all() and np.abs(m.data).max() <= np.finfo(np.float16).max):
            raise ValueError("HalfRows takes finite values within float16's range")
        return cls(m.data.astype(np.float16), m.indices, m.indptr, int(m.shape[1]))

    @property
    def shape(self) -> tuple[int, int]:
        """(rows, columns)."""
        return (len(self.indptr) - 1, self.n_cols)

    @property
    def dtype(self) -> np.dtype[Any]:
        """The type of the rows :meth:`take` makes."""
        return np.dtype(np.float32)

    def take(self, rows: np.ndarray, terms: np.ndarray | None = None) -> sp.csr_matrix:
        """Rows ``rows`` (every entry; ``terms`` is not needed), float32 CSR."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row out of range for {self.shape[0]} rows")
        sub = self._bits[rows]
        # float16 -> float32 through a table of all 65,536 half floats (faster than numpy's conversion)
        values = np.take(_HALF_TO_SINGLE, sub.data.view(np.uint16))
        return sp.csr_matrix((values, sub.indices, sub.indptr), shape=(len(rows), self.n_cols))


@dataclass(eq=False)
class TermPostings:
    """A term x document CSR matrix (the word postings) with the rarer terms' postings stored first.

    ``TermPostings.from_csr(m, share)[terms]`` is ``m[terms]`` entry for entry (so every product is the same
    sum): only where the postings lie in the arrays differs. Terms in at most ``share`` of the documents
    (those a first retrieval pass reads: :attr:`RankingIndex.common_term_share`) come first, in term order,
    then the common terms. At 1M history problems the rarer terms' postings are about a quarter of the
    entries: the mapped pages a recommendation reads are those, not all of them interleaved.

    Parameters
    ----------
    stored
        The terms' postings as the rows of a CSR matrix, in storage order.
    row_of
        Per term, its row in ``stored``.

    Examples
    --------
    >>> m = sp.csr_matrix(np.array([[1, 1, 1, 0], [0, 2, 0, 0], [3, 3, 0, 3]], dtype=np.float32))
    >>> p = TermPostings.from_csr(m, 0.25)
    >>> p.stored.data.tolist(), p.row_of.tolist(), p.df_of(np.arange(3)).tolist()
    ([2.0, 1.0, 1.0, 1.0, 3.0, 3.0, 3.0], [1, 0, 2], [3, 1, 3])
    >>> (p[np.array([2, 1])] != m[[2, 1]]).nnz, p.shape
    (0, (3, 4))
    """

    stored: sp.csr_matrix
    row_of: np.ndarray

    @classmethod
    def from_csr(cls, m: sp.spmatrix, share: float) -> TermPostings:
        """The rows (terms) of ``m``, those with at most ``share`` of the columns filled stored first."""
        m = sp.csr_matrix(m)
        if not m.has_sorted_indices:
            m = m.sorted_indices()
        lengths = np.diff(m.indptr)
        rare = rare_terms(lengths, m.shape[1], share)
        order = np.concatenate([np.flatnonzero(rare), np.flatnonzero(~rare)])
        row_of = np.empty(len(order), dtype=np.int64)
        row_of[order] = np.arange(len(order))
        stored = sp.csr_matrix(m[order])
        stored.has_sorted_indices = True
        return cls(stored, row_of)

    @property
    def shape(self) -> tuple[int, int]:
        """(terms, documents)."""
        return (len(self.row_of), int(self.stored.shape[1]))

    def df_of(self, terms: np.ndarray) -> np.ndarray:
        """The number of documents each of ``terms`` is in."""
        rows = self.row_of[np.asarray(terms, dtype=np.int64)]
        return np.asarray(self.stored.indptr[rows + 1], dtype=np.int64) - self.stored.indptr[rows]

    def __getitem__(self, terms: np.ndarray) -> sp.csr_matrix:
        """The postings of ``terms``, a ``len(terms) x n_docs`` CSR matrix (one row per term, in that order)."""
        return sp.csr_matrix(self.stored[self.row_of[np.asarray(terms, dtype=np.int64)]])

    def times(self, queries: sp.csr_matrix) -> sp.csr_matrix:
        """``queries @ m`` (queries x documents), reading only the queries' terms' postings."""
        queries = sp.csr_matrix(queries)
        terms = np.unique(queries.indices)
        # the queries' columns renumbered in the same (ascending) order: each product sums the same terms in
        # the same order as the full product
        return sp.csr_matrix(queries[:, terms] @ self[terms])
