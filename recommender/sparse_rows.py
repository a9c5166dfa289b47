"""Sparse rows made when a query asks for them, from a more compact form than the rows themselves.

A per-query signal reads a few thousand rows of a large documents x terms matrix (:func:`take_rows`); at a
million history problems a row-major float32 copy of each matrix is gigabytes of mapped pages that queries
touch at random, so the index keeps some of them in a smaller form and makes the rows asked for:

- :class:`PostingRows`: the word TF-IDF rows, read from their postings;
- :class:`BM25Rows`: the BM25 weights, computed from one- or two-byte counts.

**PostingRows.** A query needs the word TF-IDF rows of a few thousand history problems (the shortlist it
rescores, the candidates' solved problems), and only on the query's own terms. The index keeps the word view once, as
postings (``RankingIndex.docs_word_t``, which the first retrieval pass reads anyway); :class:`PostingRows`
finds the wanted documents in the postings of the wanted terms (a binary search per term) instead of reading
a second, row-major copy of the same matrix. At 1M history problems that copy was 1 GB of mapped pages a
query touched at random.

The rows it returns hold exactly the matrix's entries on the asked terms, in ascending term order, so any
product with a query over those terms adds the same numbers in the same order as the full rows would (the
full rows' other entries meet the query's zeros and add exact zeros): the scores are bit for bit those of
the row-major matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

__all__ = ["BM25Rows", "PostingRows", "RowSource", "take_rows"]

#: Up to this many terms :meth:`PostingRows.take` searches each term's postings in turn (one ``searchsorted``
#: per term); beyond it one vectorised binary search over every (term, row) pair is cheaper.
LOOP_TERMS = 256


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
    >>> take_rows(PostingRows(sp.csr_matrix(m.T)), np.array([1, 0]), np.array([2])).toarray().tolist()
    [[0.0, 0.0, 0.0], [0.0, 0.0, 2.0]]
    """
    if isinstance(m, sp.spmatrix | sp.sparray):
        return sp.csr_matrix(m[rows])
    return m.take(rows, terms)


class PostingRows:
    """The transpose of a term x document CSR matrix (``postings``), read a few rows at a time.

    ``postings`` must have sorted indices (each term's documents ascending); it is not copied.

    Examples
    --------
    >>> docs = sp.csr_matrix(np.array([[0.5, 0.0, 0.5], [0.0, 1.0, 0.0], [0.2, 0.0, 0.0]], dtype=np.float32))
    >>> rows = PostingRows(sp.csr_matrix(docs.T))
    >>> rows.shape, rows.dtype
    ((3, 3), dtype('float32'))
    >>> rows.take(np.array([2, 0, 2]), np.array([0, 2])).toarray().tolist()
    [[0.20000000298023224, 0.0, 0.0], [0.5, 0.0, 0.5], [0.20000000298023224, 0.0, 0.0]]
    """

    def __init__(self, postings: sp.csr_matrix) -> None:
        if not postings.has_sorted_indices:
            raise ValueError("PostingRows needs postings with sorted indices")
        self.postings = postings
        self.shape: tuple[int, int] = (int(postings.shape[1]), int(postings.shape[0]))
        self.dtype = postings.dtype

    def take(self, rows: np.ndarray, terms: np.ndarray) -> sp.csr_matrix:
        """Rows ``rows`` on ``terms`` (sorted, unique): a ``len(rows) x n_terms`` CSR matrix, terms ascending."""
        rows = np.asarray(rows, dtype=np.int64)
        terms = np.asarray(terms, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row out of range for {self.shape[0]} rows")
        if len(terms) and (terms.min() < 0 or terms.max() >= self.shape[1]):
            raise IndexError(f"term out of range for {self.shape[1]} terms")
        found = self._find_loop(rows, terms) if len(terms) <= LOOP_TERMS else self._find_all(rows, terms)
        at, term, where = found  # at: position in rows; term: column; where: index into postings.data
        order = np.argsort(at, kind="stable")  # found term by term ascending: stable keeps terms ascending per row
        at, term, where = at[order], term[order], where[order]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(np.bincount(at, minlength=len(rows)), out=indptr[1:])
        out = sp.csr_matrix((np.asarray(self.postings.data[where]), term, indptr), shape=(len(rows), self.shape[1]))
        out.has_sorted_indices = True
        return out

    def _find_loop(self, rows: np.ndarray, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(position in ``rows``, term, postings position) of every entry, one binary search per term."""
        indptr, indices = self.postings.indptr, self.postings.indices
        ats: list[np.ndarray] = []
        poss: list[np.ndarray] = []
        tids: list[np.ndarray] = []
        for t in terms.tolist():
            a, b = int(indptr[t]), int(indptr[t + 1])
            if a == b or not len(rows):
                continue
            docs = indices[a:b]
            pos = np.searchsorted(docs, rows)
            pos[pos == b - a] = 0
            hit = np.flatnonzero(np.asarray(docs[pos]) == rows)
            if len(hit):
                ats.append(hit)
                poss.append(a + pos[hit])
                tids.append(np.full(len(hit), t, dtype=np.int64))
        if not ats:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty
        return np.concatenate(ats), np.concatenate(tids), np.concatenate(poss)

    def _find_all(self, rows: np.ndarray, terms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`_find_loop`, by one vectorised binary search over every (term, row) pair."""
        indptr, indices = self.postings.indptr, self.postings.indices
        lo0 = np.asarray(indptr[terms], dtype=np.int64)
        hi0 = np.asarray(indptr[terms + 1], dtype=np.int64)
        keep = np.flatnonzero(hi0 > lo0)
        term_of = np.repeat(keep, len(rows))  # (term, row) pairs, term-major: found terms ascending
        at = np.tile(np.arange(len(rows), dtype=np.int64), len(keep))
        lo, hi = lo0[term_of], hi0[term_of]
        want = rows[at]
        while True:
            open_ = lo < hi
            if not open_.any():
                break
            mid = (lo + hi) >> 1
            less = np.zeros(len(lo), dtype=bool)
            less[open_] = np.asarray(indices[mid[open_]]) < want[open_]
            lo = np.where(open_ & less, mid + 1, lo)
            hi = np.where(open_ & ~less, mid, hi)
        hit = lo < hi0[term_of]
        hit[hit] = np.asarray(indices[lo[hit]]) == want[hit]
        return at[hit], terms[term_of[hit]], lo[hit]


@dataclass
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
        indices, indptr = sub.indices, sub.indptr
        at = np.repeat(np.arange(len(rows)), np.diff(indptr))
        tf = sub.data.astype(np.float64)
        if terms is not None:  # the entries on the terms only: fewer weights to compute
            terms = np.asarray(terms, dtype=np.int64)
            pos = np.searchsorted(terms, indices)
            keep = np.flatnonzero(pos < len(terms))
            keep = keep[terms[pos[keep]] == indices[keep]]
            indices, at, tf = indices[keep], at[keep], tf[keep]
            indptr = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(np.bincount(at, minlength=len(rows)), out=indptr[1:])
        data = self.idf[indices] * tf * (self.k1 + 1.0) / (tf + self.norm[rows[at]])
        out = sp.csr_matrix((data.astype(np.float32), indices, indptr), shape=(len(rows), self.shape[1]))
        out.has_sorted_indices = sub.has_sorted_indices
        return out
