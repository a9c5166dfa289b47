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
from recommender.signals import (
    personalized_pagerank,
    rating_weight,
    recency_weight,
    segment_topk,
)
from recommender.text import problem_text

__all__ = [
    "FEATURES",
    "ONSITE_TYPES",
    "RD_TYPES",
    "TRAINING_TYPES",
    "Query",
    "QueryEvidence",
    "compute_features",
    "gather_segments",
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
    ppr: np.ndarray | None = None    # walk scores of worker nodes
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


def _seed_vector(index: RankingIndex, query: Query, sims: np.ndarray, skill_idx: list[int],
                 *, n_similar: int = 10) -> np.ndarray:
    """Restart distribution of the walk: the problem's skills, its most similar past problems,
    its enterprise, chain and district."""
    proj = index.projection
    off = index.walk_offset
    p = np.zeros(index.walk_size)
    parts: list[tuple[float, np.ndarray, np.ndarray]] = []
    if skill_idx:
        idx = np.asarray(skill_idx) + off["Skill"]
        parts.append((0.4, idx, np.full(len(idx), index.skill_idf[skill_idx])))
    if len(sims):
        k = min(n_similar, len(sims))
        top = np.argpartition(-sims, k - 1)[:k]
        top = top[sims[top] > 0]
        if len(top):
            parts.append((0.4, top + off["Problem"], sims[top]))
    ent = proj.index["Enterprise"].get(query.enterprise_id or "")
    if ent is not None:
        parts.append((0.1, np.array([ent + off["Enterprise"]]), np.ones(1)))
        chains = index.enterprise_chain[ent].indices
        if len(chains):
            parts.append((0.05, chains + off["IndustryChain"], np.ones(len(chains))))
    dist = proj.index["District"].get(query.district or "")
    if dist is not None:
        parts.append((0.05, np.array([dist + off["District"]]), np.ones(1)))
    for weight, idx, values in parts:
        total = values.sum()
        if total > 0:
            np.add.at(p, idx, weight * values / total)
    return p


def compute_features(
    index: RankingIndex,
    queries: Sequence[Query],
    candidates: Sequence[np.ndarray],
    *,
    batch: int = 256,
    ppr: bool = True,
    keep_evidence: bool = False,
    damping: float = 0.5,
) -> tuple[list[np.ndarray], list[QueryEvidence]]:
    """Feature matrices ``(len(candidates[i]), len(FEATURES))`` for each query.

    Parameters
    ----------
    candidates
        Worker indices of the projection per query.
    ppr
        Run the personalised PageRank (the most expensive signal).
    keep_evidence
        Also return the per-query similarities and walk scores (for explanations).
    damping
        Walk continuation probability (restart probability ``1 - damping``).
    """
    proj = index.projection
    out: list[np.ndarray] = []
    evidence: list[QueryEvidence] = []
    skill_ids = proj.index["Skill"]
    district_ids = proj.index["District"]
    n_hist = len(index.hp)
    rating_w = rating_weight(index.edges.rating)
    for lo in range(0, len(queries), batch):
        chunk = list(queries[lo:lo + batch])
        views = index.text.transform([q.text for q in chunk])
        sims_word = np.asarray((views.word @ index.docs_word_t).todense(), dtype=np.float32)
        sims_char = np.asarray((views.char @ index.docs_char_t).todense(), dtype=np.float32)
        q_bin = views.counts.copy()
        q_bin.data[:] = 1.0
        bm25 = np.asarray((q_bin @ index.bm25_t).todense(), dtype=np.float32)
        prof_word = np.asarray((views.word @ index.profiles_word_t).todense(), dtype=np.float32)
        prof_char = np.asarray((views.char @ index.profiles_char_t).todense(), dtype=np.float32)
        dense_sims = dense_prof = None
        if index.encoder is not None and index.dense_docs is not None:
            qd = np.asarray(index.encoder.encode([q.text for q in chunk]), dtype=np.float32)
            dense_sims = qd @ index.dense_docs.T
            dense_prof = qd @ index.dense_profiles.T if index.dense_profiles is not None else None
        # the query problem itself is never its own evidence
        for i, q in enumerate(chunk):
            pid = proj.index["Problem"].get(q.problem_id or "")
            h = index.hp_pos.get(pid) if pid is not None else None
            if h is not None:
                sims_word[i, h] = sims_char[i, h] = 0.0
                if dense_sims is not None:
                    dense_sims[i, h] = -1.0
        skill_lists = [[skill_ids[s] for s in q.skills if s in skill_ids] for q in chunk]
        walk = None
        if ppr and index.walk_size:
            seeds = np.stack([_seed_vector(index, q, sims_word[i], skill_lists[i]) for i, q in enumerate(chunk)],
                             axis=1)
            walk = personalized_pagerank(index.walk, seeds.astype(np.float32), damping=damping, tol=1e-5, max_iter=200)
        w0 = index.walk_offset.get("Worker", 0)
        for i, q in enumerate(chunk):
            cand = np.asarray(candidates[lo + i], dtype=np.int64)
            f = np.zeros((len(cand), len(FEATURES)), dtype=np.float64)
            out.append(f)
            if len(cand) == 0:
                evidence.append(QueryEvidence(sims_word[i] if keep_evidence else np.zeros(0)))
                continue
            pos, ptr = gather_segments(index.solved.indptr, cand)
            cols = index.solved.indices[pos]
            weight = rating_w[pos]
            q_day = day_number(q.posted_at)
            if not np.isnan(q_day):
                weight = weight * recency_weight(q_day - index.edges.day[pos])
            if n_hist:
                sw = sims_word[i, cols].astype(np.float64)
                f[:, _F["text_top3"]] = segment_topk(sw * weight, ptr, 3)[0]
                f[:, _F["text_max"]] = segment_topk(sw, ptr, 1)[1]
                seg = np.repeat(np.arange(len(cand)), np.diff(ptr))
                hits = np.bincount(seg[sw >= 0.15], minlength=len(cand))
                f[:, _F["text_hits"]] = np.log1p(hits)
                sc = sims_char[i, cols].astype(np.float64)
                f[:, _F["char_top3"]] = segment_topk(sc * weight, ptr, 3)[0]
                f[:, _F["char_max"]] = segment_topk(sc, ptr, 1)[1]
                if dense_sims is not None:
                    sd = dense_sims[i, cols].astype(np.float64)
                    f[:, _F["dense_top3"]] = segment_topk(sd * weight, ptr, 3)[0]
                    f[:, _F["dense_max"]] = segment_topk(sd, ptr, 1)[1]
            f[:, _F["bm25"]] = bm25[i, cand]
            f[:, _F["profile"]] = 0.5 * (prof_word[i, cand] + prof_char[i, cand])
            if dense_prof is not None:
                f[:, _F["dense_profile"]] = dense_prof[i, cand]
            sk = skill_lists[i]
            if sk:
                qv = np.zeros(index.n_skills)
                qv[sk] = index.skill_idf[sk]
                qv /= np.linalg.norm(qv)
                f[:, _F["skill_hist"]] = (index.skill_profiles @ qv)[cand]
                f[:, _F["skill_count"]] = (index.skill_logcounts_csc[:, sk] @ index.skill_idf[sk])[cand]
                qset = set(q.skills)
                f[:, _F["skill_declared"]] = [len(qset & index.declared_sets[w]) / len(qset) for w in cand]
            if walk is not None:
                f[:, _F["ppr"]] = np.log1p(walk[w0 + cand, i] * index.walk_size)
            ent = proj.index["Enterprise"].get(q.enterprise_id or "")
            if ent is not None:
                f[:, _F["enterprise"]] = np.log1p(_column(index.worker_enterprise_csc, [ent])[cand])
                chains = index.enterprise_chain[ent].indices
                if len(chains):
                    f[:, _F["chain"]] = np.log1p(_column(index.worker_chain_csc, chains)[cand])
            dist = district_ids.get(q.district or "")
            if dist is not None:
                f[:, _F["district_work"]] = np.log1p(_column(index.worker_district_work, [dist])[cand])
                near = set(np.asarray(proj.ids["District"])[index.district_adjacency[dist].indices].tolist())
                f[:, _F["district"]] = [1.0 if index.worker_district[w] == q.district
                                        else 0.5 if index.worker_district[w] in near else 0.0 for w in cand]
            f[:, _F["popularity"]] = np.log1p(index.n_solved[cand])
            f[:, _F["quality"]] = index.quality[cand]
            f[:, _F["honours"]] = index.honours[cand]
            if q.service_type in TRAINING_TYPES:
                f[:, _F["teach_fit"]] = index.teaches[cand].astype(float)
            if q.service_type in ONSITE_TYPES:
                f[:, _F["onsite_fit"]] = f[:, _F["district"]]
            if q.service_type in RD_TYPES:
                f[:, _F["depth_fit"]] = f[:, _F["text_hits"]]
            if keep_evidence:
                evidence.append(QueryEvidence(sims_word[i].copy(),
                                              None if walk is None else walk[w0:w0 + index.n_workers, i].copy(),
                                              sk))
            else:
                evidence.append(QueryEvidence(np.zeros(0)))
    return out, evidence
