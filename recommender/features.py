"""Features of (problem, candidate worker) pairs, computed in batches from a :class:`RankingIndex`.

One row per candidate, one column per name in :data:`FEATURES`. The same code serves the
evaluation (thousands of queries with 20 candidates each), the learned fusion's training
pseudo-queries and the product (one query, a few hundred generated candidates).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from recommender.index import RankingIndex, day_number
from recommender.signals import push_pagerank, recency_weight, segment_max, segment_topk
from recommender.text import problem_text

__all__ = [
    "FEATURES",
    "ONSITE_TYPES",
    "RD_TYPES",
    "TRAINING_TYPES",
    "Query",
    "QueryEvidence",
    "CHAR_DEPTH",
    "compute_features",
    "gather_segments",
    "walk_scores",
]

TRAINING_TYPES = frozenset({"技能培训", "名师带徒"})
ONSITE_TYPES = frozenset({"技术帮扶"})
RD_TYPES = frozenset({"研发攻关", "工艺改进", "成果转化"})

#: Feature columns. ``text_*`` word TF-IDF, ``char_*`` character n-gram TF-IDF, ``dense_*`` the encoder.
FEATURES: tuple[str, ...] = (
    "text_top3",        # sum of the 3 best word cosines to the worker's solved problems (rating/recency weighted)
    "text_max",         # best word cosine
    "text_hits",        # log(1 + solved problems with word cosine >= 0.15): depth of similar work
    "char_top3",
    "char_max",
    "bm25",             # BM25 of the problem against the worker's concatenated history
    "profile",          # cosine to the worker's profile text (skills + aliases, service menu, honours)
    "skill_hist",       # cosine of idf-weighted skill profiles (the worker's solved problems' skills)
    "skill_count",      # sum over the problem's skills of idf * log(1 + times the worker solved one)
    "skill_declared",   # fraction of the problem's skills the worker declares
    "ppr",              # log(1 + N * personalised PageRank) from the problem's seeds
    "enterprise",       # log(1 + problems solved for the same enterprise)
    "chain",            # log(1 + problems solved in the same industry chain)
    "district_work",    # log(1 + problems solved in the same district)
    "district",         # 1 same district, 0.5 neighbouring
    "popularity",       # log(1 + problems solved)
    "quality",          # shrunk mean outcome rating minus 3.5
    "honours",          # honours count + level
    "teach_fit",        # teaching record, when the service type is training or mentoring
    "onsite_fit",       # district proximity, when the service type is on-site help
    "depth_fit",        # depth of similar work, when the service type is R&D / process / transfer
    "dense_top3",       # encoder cosines (0 without an encoder)
    "dense_max",
    "dense_profile",
    "expertise",        # the learned expertise model's score (recommender.expertise)
    "activity",         # log(1 + recency-weighted problems solved): is the worker active now
)
_F = {name: i for i, name in enumerate(FEATURES)}


@dataclass
class Query:
    """A problem to rank workers for (stored or new).

    ``skills`` are canonical skill ids (aliases already resolved).
    """

    text: str
    skills: tuple[str, ...] = ()
    enterprise_id: str | None = None
    district: str | None = None
    service_type: str | None = None
    posted_at: str | None = None
    problem_id: str | None = None
    title: str = ""

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, skill_of: Mapping[str, str] | None = None) -> Query:
        """Build a query from a problem row (title, description, skills, enterprise_id, district, ...)."""
        aliases = skill_of or {}
        skills = tuple(dict.fromkeys(aliases.get(s, s) for s in row.get("skills") or [] if isinstance(s, str)))
        return cls(text=problem_text(row), skills=skills, enterprise_id=row.get("enterprise_id") or None,
                   district=row.get("district") or None, service_type=row.get("service_type") or None,
                   posted_at=row.get("posted_at") or None, problem_id=row.get("id") or None,
                   title=str(row.get("title") or row.get("description") or "")[:80])


@dataclass
class QueryEvidence:
    """Per-query intermediate results kept for explanations."""

    word_sims: np.ndarray            # cosine to each history problem
    ppr: np.ndarray | None = None    # walk scores of the candidates
    skill_idx: list[int] = field(default_factory=list)


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


def _column(csc: sp.csc_matrix, cols: Sequence[int] | np.ndarray) -> np.ndarray:
    """Dense sum of some columns of a CSC matrix (one value per row)."""
    out = np.zeros(csc.shape[0])
    for c in cols:
        a, b = csc.indptr[c], csc.indptr[c + 1]
        np.add.at(out, csc.indices[a:b], csc.data[a:b])
    return out


def _rows_dot(m: sp.csr_matrix, rows: np.ndarray, q: sp.csr_matrix) -> np.ndarray:
    """Dot products of some rows of ``m`` with the one-row sparse matrix ``q``.

    Reads only those rows: a query's similarity to a few thousand solved problems costs the
    same at 10k or 1M rows.

    Examples
    --------
    >>> m = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]]))
    >>> _rows_dot(m, np.array([1, 0, 0]), sp.csr_matrix(np.array([[0.5, 1.0, 1.0]]))).tolist()
    [3.0, 2.5, 2.5]
    """
    rows = np.asarray(rows, dtype=np.int64)
    if not len(rows) or not q.nnz:
        return np.zeros(len(rows))
    dense = np.zeros(m.shape[1], dtype=m.dtype)  # same type as the matrix: no converted copy of it
    dense[q.indices] = q.data
    once, back = np.unique(rows, return_inverse=True)  # in storage order, each row read once
    return np.asarray(m[once] @ dense, dtype=np.float64)[back]


def _seed_vector(index: RankingIndex, query: Query, similar: tuple[np.ndarray, np.ndarray], skill_idx: list[int],
                 *, n_similar: int = 10) -> sp.csr_matrix:
    """Restart distribution of the walk (a sparse row): the problem's skills, its most similar
    past problems (``similar``: history positions and cosines, any order), its enterprise, chain
    and district."""
    proj = index.projection
    off = index.walk_offset
    parts: list[tuple[float, np.ndarray, np.ndarray]] = []
    if skill_idx:
        idx = np.asarray(skill_idx) + off["Skill"]
        parts.append((0.4, idx, np.full(len(idx), index.skill_idf[skill_idx])))
    top, sims = np.asarray(similar[0], dtype=np.int64), np.asarray(similar[1], dtype=np.float64)
    if len(top) > n_similar:
        best = np.argpartition(-sims, n_similar - 1)[:n_similar]
        top, sims = top[best], sims[best]
    top, sims = top[sims > 0], sims[sims > 0]
    if len(top):
        parts.append((0.4, top + off["Problem"], sims))
    ent = proj.index["Enterprise"].get(query.enterprise_id or "")
    if ent is not None:
        parts.append((0.1, np.array([ent + off["Enterprise"]]), np.ones(1)))
        chains = index.enterprise_chain[ent].indices
        if len(chains):
            parts.append((0.05, chains + off["IndustryChain"], np.ones(len(chains))))
    dist = proj.index["District"].get(query.district or "")
    if dist is not None:
        parts.append((0.05, np.array([dist + off["District"]]), np.ones(1)))
    cols: list[np.ndarray] = []
    data: list[np.ndarray] = []
    for weight, idx, values in parts:
        total = values.sum()
        if total > 0:
            cols.append(np.asarray(idx, dtype=np.int64))
            data.append(weight * np.asarray(values, dtype=np.float64) / total)
    if not cols:
        return sp.csr_matrix((1, index.walk_size))
    c = np.concatenate(cols)
    return sp.csr_matrix((np.concatenate(data), (np.zeros(len(c), dtype=np.int64), c)), shape=(1, index.walk_size))


#: The push threshold stops shrinking with the walk graph beyond this many nodes (see :func:`walk_scores`).
PUSH_PRECISION_NODES = 200_000


def walk_scores(index: RankingIndex, seed: sp.csr_matrix, workers: np.ndarray, *, damping: float,
                tol: float = 0.002, precision_nodes: int = PUSH_PRECISION_NODES) -> np.ndarray:
    """Personalised PageRank of some workers from a restart distribution over the walk graph.

    Residual push (:func:`recommender.signals.push_pagerank`) from the seeds with the walk's
    hubs frozen; the residual left on the hubs is spread with their precomputed vectors
    (:meth:`RankingIndex.hub_worker_scores`). The push threshold is ``tol / m`` per unit of
    degree with ``m = min(walk size, precision_nodes)``, so ``m * score`` is off by at most
    ``tol * degree`` and never overestimated. Up to ``precision_nodes`` that is the ``ppr``
    feature's own scale (``walk size * score``); beyond it the error stays the same in absolute
    terms instead of shrinking with the graph, which keeps the push's work (about ``1 / threshold``
    pushes) from growing with it: the workers that matter sit near the seeds, with scores far above
    the average ``1 / walk size``.
    """
    workers = np.asarray(workers, dtype=np.int64)
    if not index.walk_size or not seed.nnz:
        return np.zeros(len(workers))
    eps = tol / max(min(index.walk_size, precision_nodes), 1)
    scores, residual = push_pagerank(index.walk, seed, damping=damping, eps=eps, frozen=index.walk_hub_mask)
    out = scores[index.walk_offset["Worker"] + workers]
    hubs = index.walk_hubs
    if len(hubs):
        held = residual[hubs]
        if held.any():
            out += index.hub_worker_scores(damping)[workers] @ held
    return out


def _best_per_segment(values: np.ndarray, indptr: np.ndarray, k: int) -> np.ndarray:
    """Mask of the ``k`` largest values of each segment (ties by position)."""
    lengths = np.diff(indptr)
    if not len(values) or lengths.max(initial=0) <= k:
        return np.ones(len(values), dtype=bool)
    groups = np.repeat(np.arange(len(lengths)), lengths)
    order = np.lexsort((-values, groups))
    rank = np.empty(len(values), dtype=np.int64)
    rank[order] = np.arange(len(values)) - np.repeat(indptr[:-1], lengths)
    return rank < k


def _skill_rows(index: RankingIndex, queries: Sequence[Query]) -> sp.csr_matrix:
    """``(len(queries), n skills)`` indicators of the queries' known skills."""
    ids = index.projection.index["Skill"]
    rows = [i for i, q in enumerate(queries) for s in q.skills if s in ids]
    cols = [ids[s] for q in queries for s in q.skills if s in ids]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(queries), index.n_skills))


#: The character n-gram signals look at this many of a candidate's solved problems: the ones closest
#: by word cosine (the character view's best three are virtually always among them).
CHAR_DEPTH = 25


def compute_features(
    index: RankingIndex,
    queries: Sequence[Query],
    candidates: Sequence[np.ndarray],
    *,
    batch: int = 256,
    ppr: bool = True,
    keep_evidence: bool = False,
    damping: float = 0.5,
    similar: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
) -> tuple[list[np.ndarray], list[QueryEvidence]]:
    """Feature matrices ``(len(candidates[i]), len(FEATURES))`` for each query.

    Word cosines to the history problems come from one sparse product per batch of queries
    (every history problem: the walk is seeded by the best ones), or, when ``similar`` gives
    each query's best-matching history problems already (the product's candidate generation
    retrieves them), only for those and for the problems the candidates solved. Everything else
    is computed for the candidates and their solved problems only; the character n-gram signals
    for each candidate's :data:`CHAR_DEPTH` solved problems closest by word cosine.

    Parameters
    ----------
    candidates
        Worker indices of the projection per query.
    ppr
        Run the personalised PageRank.
    keep_evidence
        Also return the per-query similarities and walk scores (for explanations).
    damping
        Walk continuation probability (restart probability ``1 - damping``).
    similar
        Per query, history positions and exact word cosines of its best-matching problems
        (:meth:`RankingIndex.similar_problems`), the query's own problem left out.
    """
    proj = index.projection
    out: list[np.ndarray] = []
    evidence: list[QueryEvidence] = []
    skill_ids = proj.index["Skill"]
    district_ids = proj.index["District"]
    n_hist = len(index.hp)
    rating_w = index.edge_rating_weight
    batch = 1 if similar is not None else max(1, min(batch, (1 << 26) // max(n_hist, 1)))  # dense cosines < 256 MB
    for lo in range(0, len(queries), batch):
        chunk = list(queries[lo:lo + batch])
        views = index.text.transform([q.text for q in chunk])
        dense_word = None
        if similar is None:
            dense_word = np.asarray((views.word @ index.docs_word_t).todense(), dtype=np.float32)
        expert_z = None
        if index.expertise is not None:
            expert_z = index.expertise.embed(views.word, _skill_rows(index, chunk))
        q_bin = views.counts.copy()
        q_bin.data[:] = 1.0
        qd = None
        if index.encoder is not None and index.dense_docs is not None:
            qd = np.asarray(index.encoder.encode([q.text for q in chunk]), dtype=np.float32)
        for i, q in enumerate(chunk):
            # the query problem itself is never its own evidence
            pid = proj.index["Problem"].get(q.problem_id or "")
            own = index.hp_pos.get(pid, -1) if pid is not None else -1
            cand = np.asarray(candidates[lo + i], dtype=np.int64)
            pos, ptr = gather_segments(index.solved.indptr, cand)
            cols = index.solved.indices[pos]
            if dense_word is not None:
                row = dense_word[i]
                if own >= 0:
                    row[own] = 0.0
                k = min(10, n_hist)
                best = np.argpartition(-row, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
                best_sims = row[best]
            else:
                assert similar is not None
                best, best_sims = (np.asarray(a) for a in similar[lo + i])
                row = np.zeros(n_hist, dtype=np.float32)
                row[best] = best_sims
                if len(cols):
                    row[cols] = _rows_dot(index.docs.word, cols, views.word[i])
                if own >= 0:
                    row[own] = 0.0
            sk = [skill_ids[s] for s in q.skills if s in skill_ids]
            f = np.zeros((len(cand), len(FEATURES)), dtype=np.float64)
            out.append(f)
            if len(cand) == 0:
                evidence.append(QueryEvidence(row if keep_evidence else np.zeros(0)))
                continue
            weight = rating_w[pos]
            q_day = day_number(q.posted_at)
            if not np.isnan(q_day):
                weight = weight * recency_weight(q_day - index.edges.day[pos])
            if n_hist:
                sw = row[cols].astype(np.float64)
                f[:, _F["text_top3"]] = segment_topk(sw * weight, ptr, 3)[0]
                f[:, _F["text_max"]] = segment_max(sw, ptr)
                seg = np.repeat(np.arange(len(cand)), np.diff(ptr))
                hits = np.bincount(seg[sw >= 0.15], minlength=len(cand))
                f[:, _F["text_hits"]] = np.log1p(hits)
                near = _best_per_segment(sw, ptr, CHAR_DEPTH)
                near_ptr = np.zeros(len(cand) + 1, dtype=np.int64)
                np.cumsum(np.bincount(seg[near], minlength=len(cand)), out=near_ptr[1:])
                sc = _rows_dot(index.docs.char, cols[near], views.char[i])
                sc[cols[near] == own] = 0.0
                f[:, _F["char_top3"]] = segment_topk(sc * weight[near], near_ptr, 3)[0]
                f[:, _F["char_max"]] = segment_max(sc, near_ptr)
                if qd is not None and index.dense_docs is not None:
                    sd = (index.dense_docs[cols] @ qd[i]).astype(np.float64)
                    sd[cols == own] = -1.0
                    f[:, _F["dense_top3"]] = segment_topk(sd * weight, ptr, 3)[0]
                    f[:, _F["dense_max"]] = segment_max(sd, ptr)
            if expert_z is not None:
                f[:, _F["expertise"]] = index.expertise.scores(expert_z[i], cand)  # type: ignore[union-attr]
            f[:, _F["bm25"]] = _rows_dot(index.bm25, cand, q_bin[i])
            f[:, _F["profile"]] = 0.5 * (_rows_dot(index.profiles.word, cand, views.word[i])
                                         + _rows_dot(index.profiles.char, cand, views.char[i]))
            if qd is not None and index.dense_profiles is not None:
                f[:, _F["dense_profile"]] = index.dense_profiles[cand] @ qd[i]
            if sk:
                qv = np.zeros(index.n_skills)
                qv[sk] = index.skill_idf[sk]
                qv /= np.linalg.norm(qv)
                f[:, _F["skill_hist"]] = index.skill_profiles[cand] @ qv
                f[:, _F["skill_count"]] = (index.skill_logcounts_csc[:, sk] @ index.skill_idf[sk])[cand]
                qset = set(q.skills)
                f[:, _F["skill_declared"]] = [len(qset & index.declared_sets[w]) / len(qset) for w in cand]
            walk = None
            if ppr and index.walk_size:
                seed = _seed_vector(index, q, (best, best_sims), sk)
                walk = walk_scores(index, seed, cand, damping=damping)
                f[:, _F["ppr"]] = np.log1p(walk * index.walk_size)
            ent = proj.index["Enterprise"].get(q.enterprise_id or "")
            if ent is not None:
                f[:, _F["enterprise"]] = np.log1p(_column(index.worker_enterprise_csc, [ent])[cand])
                chains = index.enterprise_chain[ent].indices
                if len(chains):
                    f[:, _F["chain"]] = np.log1p(_column(index.worker_chain_csc, chains)[cand])
            dist = district_ids.get(q.district or "")
            if dist is not None:
                f[:, _F["district_work"]] = np.log1p(_column(index.worker_district_work, [dist])[cand])
                near_d = set(np.asarray(proj.ids["District"])[index.district_adjacency[dist].indices].tolist())
                f[:, _F["district"]] = [1.0 if index.worker_district[w] == q.district
                                        else 0.5 if index.worker_district[w] in near_d else 0.0 for w in cand]
            f[:, _F["popularity"]] = np.log1p(index.n_solved[cand])
            f[:, _F["activity"]] = index.activity[cand]
            f[:, _F["quality"]] = index.quality[cand]
            f[:, _F["honours"]] = index.honours[cand]
            if q.service_type in TRAINING_TYPES:
                f[:, _F["teach_fit"]] = index.teaches[cand].astype(float)
            if q.service_type in ONSITE_TYPES:
                f[:, _F["onsite_fit"]] = f[:, _F["district"]]
            if q.service_type in RD_TYPES:
                f[:, _F["depth_fit"]] = f[:, _F["text_hits"]]
            if keep_evidence:
                evidence.append(QueryEvidence(row.copy() if dense_word is not None else row, walk, sk))
            else:
                evidence.append(QueryEvidence(np.zeros(0)))
    return out, evidence
