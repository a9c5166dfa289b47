"""Open problems ranked for one worker, over query rows computed once per index state.

:meth:`recommender.engine.Recommender.recommended_problems` scores every open problem for one worker
with the features of :func:`recommender.features.compute_features` (without the walk). Computed from
scratch, that analyses every open problem's text, runs the encoder and the expertise tower on it and
takes its word cosines to every history problem, problem by problem: about 0.2 s of CPU per call at
demo scale on an idle machine, 0.7 s under load (issue 16, finding 8).

:class:`OpenProblems` keeps the query side instead: the open problems' text views, dense and
expertise vectors, and their skill, enterprise, chain and district rows. It is rebuilt when the
store's revision moves (a problem posted, edited, matched, solved or closed, or the index rebuilt),
computing text views and vectors again only for the problems whose query changed (or for all of
them when the text model, encoder or expertise model changed). One worker's ranking is then a few
sparse and dense products restricted to the worker's own solved problems and profile rows.

The features equal those of ``compute_features(index, queries, [[w]] * n, ppr=False)`` up to float
rounding: the word cosines, which decide the thresholded and top-k signals, are computed exactly as
there; other products sum in a different order (``tests/test_open_problems.py`` holds the two together).
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.features import (
    CHAR_DEPTH,
    FEATURES,
    ONSITE_TYPES,
    RD_TYPES,
    TRAINING_TYPES,
    Query,
    _skill_rows,
)
from recommender.index import RankingIndex, day_number
from recommender.signals import recency_weight
from recommender.text import TextModel, TextViews

__all__ = ["OpenProblems"]

_F = {name: i for i, name in enumerate(FEATURES)}

#: ``TextModel.transform`` takes a shortcut for at most this many texts whose float rounding differs
#: slightly from the vectorisers'; the reference computation transforms the open problems in batches
#: larger than this, so the rows kept here are always made the vectorisers' way.
_FEW_TEXTS = 8


def _views(text: TextModel, texts: Sequence[str]) -> TextViews:
    """Text views of ``texts`` through the vectorisers (padded past the shortcut for a few texts)."""
    padded = list(texts) + [""] * max(0, _FEW_TEXTS + 1 - len(texts))
    views = text.transform(padded)
    return views[:len(texts)]


def _top3_sum(values: np.ndarray) -> np.ndarray:
    """Per row, the sum of the three largest values, added largest first (as ``segment_topk`` does).

    Examples
    --------
    >>> _top3_sum(np.array([[0.1, 0.5, 0.4, 0.3], [0.2, 0.0, -1.0, 0.0]])).round(2).tolist()
    [1.2, 0.2]
    """
    if values.shape[1] == 0:
        return np.zeros(values.shape[0])
    k = min(3, values.shape[1])
    top = -np.partition(-values, k - 1, axis=1)[:, :k] if values.shape[1] > k else values  # the k largest
    best = -np.sort(-top, axis=1)  # largest first
    out = np.zeros(values.shape[0])
    for j in range(k):
        out = out + best[:, j]
    return out


def _row(matrix: sp.spmatrix, w: int) -> sp.csr_matrix:
    """Row ``w`` of a sparse matrix as a ``(1, n)`` CSR matrix."""
    return sp.csr_matrix(matrix[w])


class OpenProblems:
    """The query side of the open problems over one :class:`RankingIndex`.

    Parameters
    ----------
    index
        The ranking index (only a weak reference is kept: a replaced index is not held alive).
    ids, queries, enterprises
        The open problems' ids, queries (:meth:`Query.from_row`) and raw ``enterprise_id`` values
        (for the conflict-of-interest filter), in the projection's order.
    revision
        The store revision these rows describe.
    reuse
        The rows of an earlier state: text views, dense and expertise vectors of problems whose
        query is unchanged are copied when the text model, encoder and expertise model are the same.
    """

    def __init__(self, index: RankingIndex, ids: Sequence[str], queries: Sequence[Query],
                 enterprises: Sequence[Any], *, revision: int | None = None, reuse: OpenProblems | None = None) -> None:
        self._index = weakref.ref(index)
        self.revision = revision
        self.ids = list(ids)
        self.queries = list(queries)
        self.enterprises = np.empty(len(self.ids), dtype=object)
        self.enterprises[:] = list(enterprises)
        self.text = index.text
        self.encoder = index.encoder if index.dense_docs is not None else None
        self.expertise_model = index.expertise
        n = len(self.queries)
        proj = index.projection

        # --- text views, dense and expertise vectors (the costly part: reused where possible) ----
        old: dict[str, int] = {}
        if reuse is not None and reuse.text is self.text:
            old = {pid: i for i, pid in enumerate(reuse.ids)}
        kept = [(i, old[pid]) for i, (pid, q) in enumerate(zip(self.ids, self.queries, strict=True))
                if pid in old and reuse is not None and reuse.queries[old[pid]] == q]
        fresh = sorted(set(range(n)) - {i for i, _ in kept})
        src = np.empty(n, dtype=np.int64)
        src[[i for i, _ in kept]] = np.arange(len(kept))
        src[fresh] = len(kept) + np.arange(len(fresh))
        taken = np.array([j for _, j in kept], dtype=np.int64)
        new_views = _views(self.text, [self.queries[i].text for i in fresh])

        def stack(before: sp.csr_matrix | None, after: sp.csr_matrix) -> sp.csr_matrix:
            parts = [after] if before is None else [before[taken], after]
            return sp.csr_matrix(sp.vstack(parts, format="csr")[src])

        before: OpenProblems | None = reuse if kept else None
        self.word: sp.csr_matrix = stack(None if before is None else before.word, new_views.word)
        self.char: sp.csr_matrix = stack(None if before is None else before.char, new_views.char)
        binary = new_views.counts.copy()
        binary.data[:] = 1.0
        self.binary: sp.csr_matrix = stack(None if before is None else before.binary, binary)

        self.dense: np.ndarray | None = None
        if self.encoder is not None:
            dense = np.zeros((n, self.encoder.dim), dtype=np.float32)
            if reuse is not None and reuse.dense is not None and reuse.encoder is self.encoder and kept:
                dense[[i for i, _ in kept]] = reuse.dense[taken]
                todo = fresh
            else:
                todo = list(range(n))
            if todo:
                dense[todo] = np.asarray(self.encoder.encode([self.queries[i].text for i in todo]), dtype=np.float32)
            self.dense = dense

        self.expertise: np.ndarray | None = None
        if self.expertise_model is not None:
            z = np.zeros((n, self.expertise_model.dim), dtype=np.float32)
            if reuse is not None and reuse.expertise is not None and reuse.expertise_model is self.expertise_model \
                    and kept:
                z[[i for i, _ in kept]] = reuse.expertise[taken]
                todo = fresh
            else:
                todo = list(range(n))
            if todo:
                z[todo] = self.expertise_model.embed(self.word[todo],
                                                     _skill_rows(index, [self.queries[i] for i in todo]))
            self.expertise = z

        # --- rows that depend on this index (cheap: rebuilt every time) ----------------------------
        p_index = proj.index["Problem"]
        self.own = np.full(n, -1, dtype=np.int64)
        for i, q in enumerate(self.queries):
            at = p_index.get(q.problem_id or "")
            if at is not None:
                self.own[i] = index.hp_pos.get(at, -1)
        self.day = np.array([day_number(q.posted_at) for q in self.queries], dtype=np.float64)

        skill_ids = proj.index["Skill"]
        norm_rows: list[int] = []
        norm_cols: list[int] = []
        norm_data: list[float] = []
        idf_indptr = [0]
        idf_cols: list[int] = []
        self.skill_sets: list[frozenset[str] | None] = []
        for i, q in enumerate(self.queries):
            sk = [skill_ids[s] for s in q.skills if s in skill_ids]
            self.skill_sets.append(frozenset(q.skills) if sk else None)
            if sk:
                weights = index.skill_idf[sk]
                total = np.linalg.norm(weights)
                norm_rows += [i] * len(sk)
                norm_cols += sk
                norm_data += (weights / total).tolist()
            idf_cols += sk
            idf_indptr.append(len(idf_cols))
        self.skill_norm = sp.csr_matrix((norm_data, (norm_rows, norm_cols)), shape=(n, index.n_skills))
        # kept in the queries' skill order: the counts are summed in that order, as compute_features does
        self.skill_idf = sp.csr_matrix((index.skill_idf[idf_cols] if idf_cols else np.zeros(0),
                                        np.asarray(idf_cols, dtype=np.int64), np.asarray(idf_indptr)),
                                       shape=(n, index.n_skills))

        ent_ids, dist_ids = proj.index["Enterprise"], proj.index["District"]
        self.enterprise = np.full(n, -1, dtype=np.int64)
        chain_indptr = [0]
        chain_cols: list[int] = []
        self.district = np.full(n, -1, dtype=np.int64)
        self.neighbours: list[frozenset[str]] = []
        districts = np.asarray(proj.ids["District"], dtype=object)
        for i, q in enumerate(self.queries):
            ent = ent_ids.get(q.enterprise_id or "")
            if ent is not None:
                self.enterprise[i] = ent
                chain_cols += index.enterprise_chain[ent].indices.tolist()
            chain_indptr.append(len(chain_cols))
            dist = dist_ids.get(q.district or "")
            if dist is not None:
                self.district[i] = dist
                self.neighbours.append(frozenset(districts[index.district_adjacency[dist].indices].tolist()))
            else:
                self.neighbours.append(frozenset())
        self.chains = sp.csr_matrix((np.ones(len(chain_cols)), np.asarray(chain_cols, dtype=np.int64),
                                     np.asarray(chain_indptr)), shape=(n, index.enterprise_chain.shape[1]))
        self.training = np.array([q.service_type in TRAINING_TYPES for q in self.queries], dtype=bool)
        self.onsite = np.array([q.service_type in ONSITE_TYPES for q in self.queries], dtype=bool)
        self.rd = np.array([q.service_type in RD_TYPES for q in self.queries], dtype=bool)
        self.district_work = sp.csr_matrix(index.worker_district_work)
        logc = sp.csr_matrix(index.skill_counts, dtype=np.float64)
        logc.data = np.log1p(logc.data)
        self.skill_logcounts = logc

    def __len__(self) -> int:
        return len(self.ids)

    def describes(self, index: RankingIndex, revision: int | None) -> bool:
        """Whether these rows are those of ``index`` at the store revision ``revision``."""
        return self._index() is index and self.revision == revision

    def features(self, index: RankingIndex, w: int) -> np.ndarray:
        """Feature rows ``(len(self), len(FEATURES))`` of every open problem for worker ``w``."""
        if self._index() is not index:
            raise ValueError("these open-problem rows belong to another index")
        n = len(self.ids)
        f = np.zeros((n, len(FEATURES)), dtype=np.float64)
        if not n:
            return f
        a, b = int(index.solved.indptr[w]), int(index.solved.indptr[w + 1])
        pos = np.arange(a, b, dtype=np.int64)
        cols = index.solved.indices[a:b].astype(np.int64)
        if len(index.hp) and len(cols):
            self._history_signals(index, f, pos, cols)
        if self.expertise is not None and index.expertise is not None:
            f[:, _F["expertise"]] = self.expertise @ index.expertise.workers[w]
        f[:, _F["bm25"]] = (self.binary @ index.bm25.take(np.array([w]), None).T).toarray().ravel()
        word = (self.word @ _row(index.profiles.word, w).T).toarray().ravel().astype(np.float64)
        char = (self.char @ _row(index.profiles.char, w).T).toarray().ravel().astype(np.float64)
        f[:, _F["profile"]] = 0.5 * (word + char)
        if self.dense is not None and index.dense_profiles is not None:
            f[:, _F["dense_profile"]] = self.dense @ index.dense_profiles[w]
        has_skills = np.array([s is not None for s in self.skill_sets], dtype=bool)
        if has_skills.any():
            f[:, _F["skill_hist"]] = (self.skill_norm @ _row(index.skill_profiles, w).T).toarray().ravel()
            f[:, _F["skill_count"]] = (self.skill_idf @ _row(self.skill_logcounts, w).T).toarray().ravel()
            declared = index.declared_sets[w]
            f[:, _F["skill_declared"]] = [len(s & declared) / len(s) if s is not None else 0.0
                                          for s in self.skill_sets]
        has_ent = self.enterprise >= 0
        if has_ent.any():
            solved_for = _row(index.worker_enterprise, w).toarray().ravel().astype(np.float64)
            f[has_ent, _F["enterprise"]] = np.log1p(solved_for[self.enterprise[has_ent]])
            in_chain = (self.chains @ _row(index.worker_chain, w).T.astype(np.float64)).toarray().ravel()
            f[:, _F["chain"]] = np.log1p(in_chain)
        has_dist = self.district >= 0
        if has_dist.any():
            worked = self.district_work[w].toarray().ravel().astype(np.float64)
            f[has_dist, _F["district_work"]] = np.log1p(worked[self.district[has_dist]])
            home = index.worker_district[w]
            f[:, _F["district"]] = [0.0 if d < 0 else 1.0 if home == q.district else 0.5 if home in near else 0.0
                                    for d, q, near in zip(self.district, self.queries, self.neighbours, strict=True)]
        f[:, _F["popularity"]] = np.log1p(index.n_solved[w])
        f[:, _F["activity"]] = index.activity[w]
        f[:, _F["quality"]] = index.quality[w]
        f[:, _F["honours"]] = index.honours[w]
        f[self.training, _F["teach_fit"]] = float(index.teaches[w])
        f[self.onsite, _F["onsite_fit"]] = f[self.onsite, _F["district"]]
        f[self.rd, _F["depth_fit"]] = f[self.rd, _F["text_hits"]]
        return f

    def _history_signals(self, index: RankingIndex, f: np.ndarray, pos: np.ndarray, cols: np.ndarray) -> None:
        """The text, character and dense signals over the worker's solved problems (``cols``)."""
        # the same sparse product, in the same dtype, as compute_features' cosines to every history
        # problem, restricted to the worker's columns: entry for entry the same sums
        sw32 = np.asarray((self.word @ index.word_rows.take(cols).T).todense(), dtype=np.float32)
        own = self.own[:, None] == cols[None, :]  # the query problem itself is never its own evidence
        sw32[own] = 0.0
        sw = sw32.astype(np.float64)
        weight = index.edge_rating_weight[pos][None, :] * recency_weight(self.day[:, None]
                                                                         - index.edges.day[pos][None, :])
        f[:, _F["text_top3"]] = _top3_sum(sw * weight)
        f[:, _F["text_max"]] = sw.max(axis=1)
        f[:, _F["text_hits"]] = np.log1p(np.count_nonzero(sw >= 0.15, axis=1))
        sc = (self.char @ index.char_rows.take(cols).T).toarray().astype(np.float64)
        sc[own] = 0.0
        wc = weight
        if len(cols) > CHAR_DEPTH:  # the closest solved problems by word cosine, ties by position
            near = np.argsort(-sw, axis=1, kind="stable")[:, :CHAR_DEPTH]
            sc = np.take_along_axis(sc, near, axis=1)
            wc = np.take_along_axis(weight, near, axis=1)
        f[:, _F["char_top3"]] = _top3_sum(sc * wc)
        f[:, _F["char_max"]] = sc.max(axis=1)
        if self.dense is not None and index.dense_docs is not None:
            sd = (self.dense @ index.dense_docs[cols].T).astype(np.float64)
            sd[own] = -1.0
            f[:, _F["dense_top3"]] = _top3_sum(sd * weight)
            f[:, _F["dense_max"]] = sd.max(axis=1)
