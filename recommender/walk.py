"""The random walk of the ``ppr`` feature: its graph, its hub vectors, and one query's walk scores.

The walk runs over a heterogeneous graph of workers, history problems, skills, enterprises,
industry chains and districts (:func:`build_walk`, part of :meth:`RankingIndex.fit
<recommender.index.RankingIndex.fit>`). A query's walk restarts at its skills, its most similar past
problems, its enterprise, chain and district (:func:`seed_vector`) and is computed by residual push
from there (:func:`walk_scores`), with the walk's few high-degree nodes ("hubs") resolved by
vectors computed once per index (:func:`hub_worker_scores`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from recommender.signals import personalized_pagerank, push_pagerank_at, transition_matrix

if TYPE_CHECKING:
    from recommender.features import Query
    from recommender.index import RankingIndex

__all__ = ["PUSH_PRECISION_NODES", "WALK_BLOCKS", "build_walk", "hub_worker_scores", "seed_vector", "walk_scores"]

#: The walk graph's node blocks, in walk order.
WALK_BLOCKS = ("Worker", "Problem", "Skill", "Enterprise", "IndustryChain", "District")

#: The push threshold stops shrinking with the walk graph beyond this many nodes (see :func:`walk_scores`).
PUSH_PRECISION_NODES = 200_000


def build_walk(index: RankingIndex) -> None:
    """Set the walk graph of a fitted index: ``walk_offset``, ``walk_size``, ``walk`` (column ``u`` holds ``u``'s
    out-transitions), ``walk_hubs``, ``walk_hub_mask``, and an empty hub-vector cache."""
    proj = index.projection
    sizes = {"Worker": index.n_workers, "Problem": len(index.hp), "Skill": index.n_skills,
             "Enterprise": proj.n("Enterprise"), "IndustryChain": proj.n("IndustryChain"),
             "District": proj.n("District")}
    index.walk_offset = {}
    at = 0
    for label in WALK_BLOCKS:
        index.walk_offset[label] = at
        at += sizes[label]
    index.walk_size = at
    pairs = [
        ("Worker", "Problem", index.solved),
        ("Problem", "Skill", index.problem_skills),
        ("Worker", "Skill", index.declared),
        ("Enterprise", "Problem", sp.csr_matrix(index.problem_enterprise.T)),
        ("Enterprise", "IndustryChain", index.enterprise_chain),
        ("Skill", "IndustryChain", proj.matrix("IN_CHAIN", "Skill", "IndustryChain")),
        ("Worker", "District", proj.matrix("LOCATED_IN", "Worker", "District")),
        ("Enterprise", "District", proj.matrix("LOCATED_IN", "Enterprise", "District")),
        ("Problem", "District", index.problem_district),
        ("District", "District", proj.matrix("ADJACENT_TO", "District", "District")),
    ]
    rows: list[np.ndarray] = []
    cols: list[np.ndarray] = []
    for a, b, m in pairs:
        coo = sp.coo_matrix(m)
        if coo.nnz == 0:
            continue
        r = coo.row.astype(np.int64) + index.walk_offset[a]
        c = coo.col.astype(np.int64) + index.walk_offset[b]
        rows += [r, c]
        cols += [c, r]
    if rows:
        r_all, c_all = np.concatenate(rows), np.concatenate(cols)
        adj = sp.csr_matrix((np.ones(len(r_all), dtype=np.float32), (r_all, c_all)),
                            shape=(index.walk_size, index.walk_size))
        adj.data[:] = 1.0
    else:
        adj = sp.csr_matrix((index.walk_size, index.walk_size), dtype=np.float32)
    # column u holds u's out-transitions: what a residual push from u reads
    index.walk = sp.csc_matrix(transition_matrix(adj), dtype=np.float32)
    degree = np.diff(index.walk.indptr)
    hubs = np.flatnonzero(degree >= index.hub_degree)
    if len(hubs) > index.max_hubs:
        hubs = np.sort(hubs[np.argsort(-degree[hubs], kind="stable")[:index.max_hubs]])
    index.walk_hubs = hubs
    index.walk_hub_mask = np.zeros(index.walk_size, dtype=bool)
    index.walk_hub_mask[hubs] = True
    index._hub_vectors = {}


def hub_worker_scores(index: RankingIndex, damping: float) -> np.ndarray:
    """``(n workers, n hubs)``: the personalised PageRank of each hub of the walk, on the worker nodes.

    Hubs are the walk's few high-degree nodes (skills, industry chains, districts in the demo
    data; popular tags in a Q&A set). :func:`recommender.signals.push_pagerank` never pushes
    them: the residual that reaches a hub is spread with this exact vector instead, which keeps
    each query's walk local. Computed once per damping value (by power iteration) and kept on the index.
    """
    key = float(damping)
    cached = index._hub_vectors.get(key)
    if cached is not None:
        return cached
    w0 = index.walk_offset["Worker"]
    hubs = index.walk_hubs
    out = np.zeros((index.n_workers, len(hubs)), dtype=np.float32)
    for lo in range(0, len(hubs), 32):
        part = hubs[lo:lo + 32]
        restart = np.zeros((index.walk_size, len(part)), dtype=np.float32)
        restart[part, np.arange(len(part))] = 1.0
        scores = personalized_pagerank(index.walk, restart, damping=damping, tol=1e-6, max_iter=500)
        out[:, lo:lo + len(part)] = scores[w0:w0 + index.n_workers]
    index._hub_vectors[key] = out
    return out


def seed_vector(index: RankingIndex, query: Query, similar: tuple[np.ndarray, np.ndarray], skill_idx: list[int],
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


def walk_scores(index: RankingIndex, seed: sp.csr_matrix, workers: np.ndarray, *, damping: float,
                tol: float = 0.002, precision_nodes: int = PUSH_PRECISION_NODES) -> np.ndarray:
    """Personalised PageRank of some workers from a restart distribution over the walk graph.

    Residual push (:func:`recommender.signals.push_pagerank`) from the seeds with the walk's
    hubs frozen; the residual left on the hubs is spread with their precomputed vectors
    (:func:`hub_worker_scores`). The push threshold is ``tol / m`` per unit of
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
    hubs = index.walk_hubs
    out, held = push_pagerank_at(index.walk, seed, index.walk_offset["Worker"] + workers, hubs, damping=damping,
                                 eps=eps, frozen=index.walk_hub_mask)
    if len(hubs) and held.any():
        out += hub_worker_scores(index, damping)[workers] @ held
    return out
