"""Sparse rows made when a query asks for them, from a more compact form than the rows themselves.

A per-query signal reads a few thousand rows of a large matrix (:func:`take_rows`), and at a million history
problems each float32 matrix of the index is gigabytes of mapped pages that queries touch at random, wherever
the rows fall. So the index keeps the largest ones in a form with fewer bytes a query can touch:

- :class:`TermPostings`: the word postings (term -> history problems), the postings of the terms a first
  retrieval pass reads (the rarer ones) stored together ahead of the others, so those pages are the only ones
  a recommendation touches;
- :class:`BM25Rows`: the BM25 weights, computed for the rows asked from their counts: kept as one- or
  two-byte counts, or (:class:`SolvedCounts`) recovered from the word TF-IDF rows of the documents a row sums;
- :class:`HalfRows`: the character n-gram TF-IDF rows, their values in half precision.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from recommender.kernels import compiled_source, rows_on_columns

__all__ = ["BM25Rows", "HalfRows", "RowSource", "SolvedCounts", "TermPostings",
           "gather_segments", "local_columns", "rare_terms", "rows_on", "take_rows"]

#: Where ``rint(exp(x - 1))`` is surely 1: ``x`` within (1 + ln 0.5, 1 + ln 1.5), a margin away from both ends.
_ONE_ABOVE, _ONE_BELOW = 1.0 + np.log(0.5) + 1e-6, 1.0 + np.log(1.5) - 1e-6

#: Every half float's value in single precision, indexed by its 16 bits.
_HALF_TO_SINGLE = np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def gather_segments(indptr: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the CSR entries of ``rows`` (concatenated) and the segment pointers into them.

    Examples
    --------
    >>> pos, ptr = gather_segments(np.array([0, 2, 2, 5]), np.array([2, 0]))
    >>> pos.tolist(), ptr.tolist()
    ([2, 3, 4, 0, 1], [0, 3, 5])
    """
    rows = np.asarray(rows, dtype=np.int64)
    starts = indptr[rows]
    lengths = indptr[rows + 1] - starts
    ptr = np.zeros(len(rows) + 1, dtype=np.int64)
    np.cumsum(lengths, out=ptr[1:])
    pos = np.arange(ptr[-1], dtype=np.int64) - np.repeat(ptr[:-1], lengths) + np.repeat(starts, lengths)
    return pos, ptr


def local_columns(queries: sp.csr_matrix, terms: np.ndarray, dtype: Any) -> np.ndarray:
    """The queries (rows) as dense columns over ``terms`` (sorted, holding every query term): ``len(terms) x n``.

    Examples
    --------
    >>> q = sp.csr_matrix(np.array([[0.0, 2.0, 0.0, 1.0], [3.0, 0.0, 0.0, 0.0]]))
    >>> local_columns(q, np.array([0, 1, 3]), np.float32).tolist()
    [[0.0, 3.0], [2.0, 0.0], [1.0, 0.0]]
    """
    coo = queries.tocoo()
    dense = np.zeros((len(terms), queries.shape[0]), dtype=dtype)
    dense[np.searchsorted(terms, coo.col), coo.row] = coo.data
    return dense


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


def rows_on(m: sp.csr_matrix | HalfRows, rows: np.ndarray, columns: np.ndarray) -> sp.csr_matrix:
    """``m[rows][:, columns]`` (``columns`` sorted, unique; numbered within them) as CSR, of a CSR matrix or
    :class:`HalfRows` (float32).

    Examples
    --------
    >>> m = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=np.float32))
    >>> rows_on(m, np.array([1, 0]), np.array([0, 1])).toarray().tolist()
    [[0.0, 3.0], [1.0, 0.0]]
    """
    stored = compiled_source(m)
    if stored is not None:  # HalfRows, float32 CSR: one compiled pass, only the kept values converted
        ptr, ind, val = rows_on_columns(*stored, rows, columns)
        return sp.csr_matrix((val, ind, ptr), shape=(len(ptr) - 1, len(columns)))
    assert not isinstance(m, HalfRows)  # (compiled_source reads every HalfRows)
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows):
        return sp.csr_matrix((0, len(columns)), dtype=m.dtype)
    return sp.csr_matrix(m[rows][:, np.asarray(columns, dtype=np.int64)])


@dataclass(eq=False)
class SolvedCounts:
    """Term counts of owners (workers) summed over the documents each owns (the problems they solved), recovered
    from those documents' word TF-IDF rows instead of stored.

    A document's TF-IDF row (sublinear tf, L2-normalised) holds ``v = (1 + ln c) idf / s`` for a term counted
    ``c`` times, ``s`` the norm of the row before normalising: with ``s`` kept per document (four bytes), ``c =
    exp(v s / idf - 1)`` rounded. :meth:`recover` makes one only when that gives back every count of the corpus
    exactly, so the sums, and the BM25 weights made from them, are the stored counts' to the bit.

    Parameters
    ----------
    owned
        Owners x documents, non-negative integer weights (``solved``: all ones).
    tfidf
        Documents x terms, the TF-IDF rows the counts are recovered from (as a query reads them: a CSR matrix
        or :class:`HalfRows`).
    scale
        Per document, ``s`` in single precision.
    idf
        Per term, the TF-IDF idf.

    Examples
    --------
    >>> counts = sp.csr_matrix(np.array([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]]))
    >>> idf = np.array([1.5, 1.0, 2.0])
    >>> g = counts.copy(); g.data = (1.0 + np.log(g.data)) * idf[g.indices]
    >>> tfidf = sp.csr_matrix(g.multiply(1.0 / np.sqrt(g.multiply(g).sum(axis=1))), dtype=np.float32)
    >>> solved = SolvedCounts.recover(sp.csr_matrix(np.array([[1.0, 1.0], [0.0, 1.0]])), tfidf, counts, idf)
    >>> solved.take(np.array([0, 1]), np.array([1, 2])).toarray().tolist()
    [[0.0, 3.0, 1.0], [0.0, 2.0, 1.0]]
    """

    owned: sp.csr_matrix
    tfidf: sp.csr_matrix | HalfRows
    scale: np.ndarray
    idf: np.ndarray

    @classmethod
    def recover(cls, owned: sp.spmatrix, tfidf: sp.spmatrix | HalfRows, counts: sp.spmatrix, idf: np.ndarray, *,
                chunk: int = 1 << 22) -> SolvedCounts | None:
        """The counts of ``owned @ counts`` recovered from ``tfidf``, or ``None`` when one count would not be.

        ``counts`` (documents x terms) must have ``tfidf``'s entries; ``chunk`` bounds the entries handled
        at once (the check reads every entry of the corpus, at a million problems over a hundred million).
        """
        owned, counts = sp.csr_matrix(owned), sp.csr_matrix(counts)
        if not isinstance(tfidf, HalfRows):
            tfidf = sp.csr_matrix(tfidf)
        idf = np.asarray(idf, dtype=np.float64)
        if (tfidf.shape != counts.shape or owned.shape[1] != tfidf.shape[0] or len(idf) != tfidf.shape[1]
                or not np.array_equal(tfidf.indptr, counts.indptr) or not np.array_equal(tfidf.indices, counts.indices)
                or not (np.all(owned.data >= 0) and np.array_equal(owned.data, np.round(owned.data)))
                or not (np.all(idf > 0) and np.all(np.isfinite(idf)))):
            return None
        n_docs = tfidf.shape[0]
        scale = np.zeros(n_docs, dtype=np.float32)
        out = cls(owned, tfidf, scale, idf)
        nnz = int(tfidf.indptr[-1])
        starts = np.searchsorted(tfidf.indptr, np.arange(0, nnz + chunk, chunk)).clip(0, n_docs)
        bounds = np.unique(np.concatenate([[0], starts, [n_docs]]))
        with np.errstate(all="ignore"):
            for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
                a, b = tfidf.indptr[lo], tfidf.indptr[hi]
                c = np.asarray(counts.data[a:b], dtype=np.float64)
                doc = np.repeat(np.arange(hi - lo), np.diff(tfidf.indptr[lo:hi + 1]))
                g = (1.0 + np.log(c)) * idf[tfidf.indices[a:b]]
                scale[lo:hi] = np.sqrt(np.bincount(doc, weights=g * g, minlength=hi - lo))
                got = out._counts(tfidf.data[a:b], doc + lo, tfidf.indices[a:b])
                if not np.array_equal(got, c):
                    return None
        return out

    @property
    def shape(self) -> tuple[int, int]:
        """(owners, terms)."""
        return (int(self.owned.shape[0]), int(self.tfidf.shape[1]))

    def _counts(self, values: np.ndarray, docs: np.ndarray, terms: np.ndarray) -> np.ndarray:
        """The counts behind TF-IDF ``values`` of documents ``docs`` on ``terms`` (float64 integers)."""
        x = np.asarray(values, dtype=np.float64) * self.scale[docs] / self.idf[terms]  # 1 + ln(count)
        # rint(exp(x - 1)) for every entry; most counts are 1, and where x is well inside (1 + ln 0.5,
        # 1 + ln 1.5) that is 1 without computing the exponential
        out = np.ones(len(x))
        other = np.flatnonzero((x < _ONE_ABOVE) | (x > _ONE_BELOW))
        out[other] = np.rint(np.exp(x[other] - 1.0))
        return out

    def pick(self, rows: np.ndarray) -> tuple[sp.csr_matrix, np.ndarray]:
        """The documents owners ``rows`` own: ``(pick, docs)``, ``docs`` sorted and unique and ``pick`` the
        ``len(rows) x len(docs)`` matrix of the owners' weights on them (:meth:`weights_at`)."""
        pos, ptr = gather_segments(self.owned.indptr, np.asarray(rows, dtype=np.int64))
        docs, back = np.unique(self.owned.indices[pos], return_inverse=True)
        return self.weights_at(pos, back.ravel(), ptr, len(docs)), docs

    def weights_at(self, pos: np.ndarray, back: np.ndarray, ptr: np.ndarray, n_docs: int) -> sp.csr_matrix:
        """Owners x ``n_docs`` weights from entries ``pos`` of ``owned`` (:func:`gather_segments`'s positions
        and pointers of some owners' rows), entry ``e`` on document ``back[e]``, in ownership order."""
        return sp.csr_matrix((np.asarray(self.owned.data[pos], dtype=np.float64), back, ptr),
                             shape=(len(ptr) - 1, n_docs))

    def entry_counts(self, docs: np.ndarray, rows_on_terms: sp.csr_matrix, terms: np.ndarray) -> np.ndarray:
        """Per stored entry of ``rows_on_terms`` (documents ``docs``' TF-IDF rows on ``terms``, the columns
        numbered within ``terms``), its count (float64 integers)."""
        doc = np.repeat(np.arange(len(docs)), np.diff(rows_on_terms.indptr))
        return self._counts(rows_on_terms.data, np.asarray(docs)[doc], terms[rows_on_terms.indices])

    def sum_docs(self, pick: sp.csr_matrix, docs: np.ndarray, rows_on_terms: sp.csr_matrix,
                 terms: np.ndarray) -> sp.csr_matrix:
        """Owners' counts on ``terms`` from their documents' TF-IDF rows.

        Parameters
        ----------
        pick
            Owners x ``docs`` weights (:meth:`pick`, or the same for entries gathered another way).
        docs
            The documents, in the order of the rows of ``rows_on_terms``.
        rows_on_terms
            Their TF-IDF rows on ``terms`` only, the columns numbered within ``terms``.
        terms
            Sorted, unique term numbers.

        Returns
        -------
        scipy.sparse.csr_matrix
            Owners x ``len(terms)`` counts (float64 integers), columns numbered within ``terms``, sorted.
        """
        counts = sp.csr_matrix((self.entry_counts(docs, rows_on_terms, terms), rows_on_terms.indices,
                                rows_on_terms.indptr), shape=rows_on_terms.shape)
        # whole numbers, exact in any order; scipy's product leaves each row's terms unsorted, and a round trip
        # through CSC sorts them in two linear passes (sort_indices sorts every row)
        return sp.csr_matrix(sp.csr_matrix(pick @ counts).tocsc().tocsr())

    def take(self, rows: np.ndarray, terms: np.ndarray | None) -> sp.csr_matrix:
        """Owners ``rows``' counts on ``terms`` (sorted, unique; ``None``: every term), float64 CSR, sorted."""
        pick, docs = self.pick(rows)
        if terms is None:
            terms = np.arange(self.shape[1])
            sub = take_rows(self.tfidf, docs, terms)
        else:  # the documents' entries on the terms only, numbered within terms
            terms = np.asarray(terms, dtype=np.int64)
            sub = rows_on(self.tfidf, docs, terms)
        local = self.sum_docs(pick, docs, sub, terms)
        return sp.csr_matrix((local.data, terms[local.indices], local.indptr), shape=(len(pick.indptr) - 1,
                                                                                     self.shape[1]))


@dataclass(eq=False)
class BM25Rows:
    """BM25 term weights (:func:`bm25_weights`) kept as their counts, the weights computed for the rows asked.

    The counts are small integers (a worker's count of a term over the problems they solved): one or two
    bytes each against four for a float32 weight, or none at all where :class:`SolvedCounts` recovers them
    exactly from the problems' word rows. Each weight is computed from them by the same float64 expression
    :func:`bm25_weights` used, rounded to float32 the same way, so the scores are unchanged.

    Parameters
    ----------
    counts
        Documents x terms counts (``uint8``/``uint16`` when they are integers that fit, else ``float32``), or
        the :class:`SolvedCounts` that recovers them.
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

    counts: sp.csr_matrix | SolvedCounts
    idf: np.ndarray
    norm: np.ndarray
    k1: float

    @classmethod
    def fit(cls, counts: sp.spmatrix, *, k1: float = 1.2, b: float = 0.75,
            recovered: SolvedCounts | None = None) -> BM25Rows:
        """The weights of documents x terms ``counts``, kept as ``recovered`` (the same counts) when given.

        A row's weights are kept in term order, whatever order ``counts`` has them in (a sparse product's
        is not): a score sums them in that order, the one :class:`SolvedCounts` makes them in.
        """
        counts = sp.csr_matrix(counts, dtype=np.float64)
        if not counts.has_sorted_indices:
            counts = counts.sorted_indices()
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
        if recovered is not None:
            if recovered.shape != counts.shape:
                raise ValueError(f"recovered counts of shape {recovered.shape} for counts of {counts.shape}")
            return cls(recovered, idf, norm, float(k1))
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

    def weigh(self, counts: sp.csr_matrix, rows: np.ndarray, terms: np.ndarray | None = None) -> sp.csr_matrix:
        """The weights of rows ``rows`` from their ``counts`` (columns numbered within ``terms`` if given), float32
        CSR of the same entries."""
        rows = np.asarray(rows, dtype=np.int64)
        at = np.repeat(np.arange(len(rows)), np.diff(counts.indptr))
        cols = counts.indices if terms is None else np.asarray(terms)[counts.indices]
        tf = np.asarray(counts.data, dtype=np.float64)
        data = self.idf[cols] * tf * (self.k1 + 1.0) / (tf + self.norm[rows[at]])
        out = sp.csr_matrix((data.astype(np.float32), counts.indices, counts.indptr), shape=counts.shape)
        out.has_sorted_indices = counts.has_sorted_indices
        return out

    def take(self, rows: np.ndarray, terms: np.ndarray | None) -> sp.csr_matrix:
        """The weights of rows ``rows`` on ``terms`` (sorted, unique; ``None``: every term), float32 CSR."""
        rows = np.asarray(rows, dtype=np.int64)
        if isinstance(self.counts, SolvedCounts):
            return self.weigh(self.counts.take(rows, terms), rows)  # only the entries on the terms already
        sub = sp.csr_matrix(self.counts[rows])
        if terms is not None:  # the entries on the terms only: fewer weights to compute
            wanted = np.zeros(self.shape[1], dtype=bool)
            wanted[np.asarray(terms, dtype=np.int64)] = True
            keep = np.flatnonzero(wanted[sub.indices])
            at = np.searchsorted(sub.indptr, keep, side="right") - 1
            indptr = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(np.bincount(at, minlength=len(rows)), out=indptr[1:])
            sorted_before = sub.has_sorted_indices
            sub = sp.csr_matrix((sub.data[keep], sub.indices[keep], indptr), shape=sub.shape)
            sub.has_sorted_indices = sorted_before
        return self.weigh(sub, rows)


@dataclass(eq=False)
class HalfRows:
    """A CSR matrix whose values are kept in half precision (two bytes each instead of four).

    For the TF-IDF rows of the history problems a query reads (at 1M problems the character view's are 1 GB of
    float32 values beside 1 GB of column indices, the word view's 0.5 GB and 0.5 GB) and the word postings. The
    values are unit-row cosine weights in (0, 1], where half precision keeps 11 significant bits (a relative
    error under 0.05 %), and a build and a load read the same rounded values.

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

    def _bits_of(self, rows: np.ndarray) -> sp.csr_matrix:
        """Rows ``rows`` with their values as the half floats' bits (int16)."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(rows) and (rows.min() < 0 or rows.max() >= self.shape[0]):
            raise IndexError(f"row out of range for {self.shape[0]} rows")
        return sp.csr_matrix(self._bits[rows])

    @staticmethod
    def _single(bits: sp.csr_matrix) -> sp.csr_matrix:
        """``bits`` (:meth:`_bits_of`) with float32 values, through a table of all 65,536 half floats (faster
        than numpy's conversion)."""
        values = np.take(_HALF_TO_SINGLE, bits.data.view(np.uint16))
        return sp.csr_matrix((values, bits.indices, bits.indptr), shape=bits.shape)

    def take(self, rows: np.ndarray, terms: np.ndarray | None = None) -> sp.csr_matrix:
        """Rows ``rows`` (every entry; ``terms`` is not needed), float32 CSR."""
        return self._single(self._bits_of(rows))

    def arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, int]:
        """``(indptr, indices, bits, table, n_cols)``: the stored arrays as :mod:`recommender.kernels` reads them,
        the values as the half floats' bits and the table of their float32 values."""
        return self.indptr, self.indices, self.data.view(np.uint16), _HALF_TO_SINGLE, self.n_cols


@dataclass(eq=False)
class TermPostings:
    """A term x document CSR matrix (the word postings) with the rarer terms' postings stored first, its values
    in half precision (:class:`HalfRows`).

    ``TermPostings.from_csr(m, share)[terms]`` is ``m[terms]`` entry for entry, each value rounded to half
    precision (the word rows a query reads, :attr:`RankingIndex.word_rows`, are rounded the same way, so both
    give the same cosines): only where the postings lie in the arrays differs. Terms in at most ``share`` of
    the documents (those a first retrieval pass reads: :attr:`RankingIndex.common_term_share`) come first, in
    term order, then the common terms. At 1M history problems the rarer terms' postings are about a quarter of the
    entries: the mapped pages a recommendation reads are those, not all of them interleaved.

    Parameters
    ----------
    stored
        The terms' postings as rows, in storage order.
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

    stored: HalfRows
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
        return cls(HalfRows.from_csr(m[order]), row_of)

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
        return self.stored.take(self.row_of[np.asarray(terms, dtype=np.int64)])

    def times(self, queries: sp.csr_matrix) -> sp.csr_matrix:
        """``queries @ m`` (queries x documents), reading only the queries' terms' postings."""
        queries = sp.csr_matrix(queries)
        terms = np.unique(queries.indices)
        # the queries' columns renumbered in the same (ascending) order: each product sums the same terms in
        # the same order as the full product
        return sp.csr_matrix(queries[:, terms] @ self[terms])
