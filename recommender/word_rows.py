"""The word rows a batch of queries reads: the candidates' solved problems' word TF-IDF rows, on the queries'
terms, gathered once for both the word cosines and the BM25 scores.

The largest gather of a recommendation (at 1M problems about a million entries a query). Read by
:func:`recommender.features.compute_features` on the served path (queries with their similar problems).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from recommender.index import RankingIndex
from recommender.kernels import bm25_scores
from recommender.sparse_rows import SolvedCounts, local_columns, rows_on

__all__ = ["WordRows"]


@dataclass
class WordRows:
    """The word TF-IDF rows of the history problems a batch's entries read, on the batch's query terms only.

    Gathered once per batch (the largest gather of a recommendation), they give the entries' word cosines and,
    where the index recovers the BM25 counts from these rows (:class:`~recommender.sparse_rows.SolvedCounts`),
    the candidates' BM25 scores. Every sum is the one the whole rows would give (the other terms add exact
    zeros), in the same order.
    """

    docs: np.ndarray  # the history problems, sorted, unique
    back: np.ndarray  # per entry, its problem's row
    terms: np.ndarray  # the batch's query terms, sorted, unique
    rows: sp.csr_matrix  # len(docs) x len(terms), the columns numbered within terms

    @classmethod
    def of(cls, index: RankingIndex, cols: np.ndarray, *queries: sp.csr_matrix) -> WordRows:
        docs, back = np.unique(np.asarray(cols, dtype=np.int64), return_inverse=True)
        terms = np.unique(np.concatenate([q.indices for q in queries])).astype(np.int64)
        return cls(docs, back.ravel(), terms, rows_on(index.word_rows, docs, terms))

    def dots(self, owner: np.ndarray, queries: sp.csr_matrix) -> np.ndarray:
        """Per entry, its problem's row times its query (``owner``), like ``features._entry_dots``."""
        if not len(self.back):
            return np.zeros(0)
        product = self.rows @ local_columns(queries, self.terms, self.rows.dtype)
        return np.asarray(product[self.back, owner], dtype=np.float64)

    @staticmethod
    def give_bm25(index: RankingIndex) -> bool:
        """Whether ``index`` recovers its BM25 counts from these rows (of ``index.solved``'s problems)."""
        counts = index.bm25.counts
        return isinstance(counts, SolvedCounts) and np.may_share_memory(counts.owned.indices, index.solved.indices) \
            and np.may_share_memory(counts.tfidf.data, index.word_rows.data)

    def bm25(self, index: RankingIndex, pos: np.ndarray, ptr: np.ndarray, pair_w: np.ndarray, pair_q: np.ndarray,
             queries: sp.csr_matrix) -> np.ndarray:
        """Per pair, its worker's BM25 score for its query (``queries``: term indicators), as
        ``_entry_dots(index.bm25, pair_w, pair_q, queries)`` computes it, bit for bit.

        ``pos``/``ptr``: the pairs' entries in ``index.solved`` (:func:`gather_segments`), the entries whose
        problems :meth:`of` gathered.
        """
        counts = index.bm25.counts
        assert isinstance(counts, SolvedCounts)
        if not len(pair_w):
            return np.zeros(0)
        bm25 = index.bm25
        return bm25_scores(ptr, self.back, counts.owned.data[pos], self.rows.indptr, self.rows.indices,
                           counts.entry_counts(self.docs, self.rows, self.terms), self.terms, bm25.idf, bm25.norm,
                           bm25.k1, pair_w, pair_q, local_columns(queries, self.terms, np.float32))
