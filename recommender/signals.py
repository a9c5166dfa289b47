"""Scoring signals: small pure functions over arrays and sparse matrices.

Each function takes plain arrays (built once by :mod:`recommender.index` from the graph
projection) and returns one score per candidate worker. Keeping them pure makes each signal
testable on a tiny hand-made graph and reusable by the evaluation, the product ranking and the
latency benchmark alike.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

from recommender import kernels
from recommender.errors import ConvergenceError
from recommender.sparse_rows import BM25Rows

__all__ = [
    "bm25_weights",
    "declared_skill_overlap",
    "district_proximity",
    "local_pagerank",
    "personalized_pagerank",
    "popularity",
    "push_pagerank",
    "push_pagerank_at",
    "rating_weight",
    "recency_weight",
    "segment_max",
    "segment_topk",
    "skill_count_score",
    "skill_profile_cosine",
    "transition_matrix",
]


def segment_topk(values: np.ndarray, indptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per segment ``values[indptr[i]:indptr[i+1]]``: the sum of the top ``k``, the max, the mean of the top ``k``.

    Empty segments score 0. This is the aggregation of a worker's similarities to the problems
    they solved ("sum of the three best cosines").

    Examples
    --------
    >>> s, m, mean = segment_topk(np.array([0.1, 0.5, 0.4, 0.3, 0.9]), np.array([0, 4, 4, 5]), 3)
    >>> s.round(2).tolist(), m.tolist(), mean.round(2).tolist()
    ([1.2, 0.0, 0.9], [0.5, 0.0, 0.9], [0.4, 0.0, 0.9])
    """
    values = np.asarray(values, dtype=np.float64)
    indptr = np.asarray(indptr, dtype=np.int64)
    n = len(indptr) - 1
    lengths = np.diff(indptr)
    sums = np.zeros(n)
    maxes = np.zeros(n)
    filled = np.flatnonzero(lengths > 0)
    if len(values) == 0 or not len(filled):
        return sums, maxes, np.zeros(n)
    if np.isnan(values).any():
        return _segment_topk_sorted(values, indptr, k)
    # k passes of a segment maximum, each taking out the first entry equal to it: the k largest, largest first
    # (ties by position), added in that order; the same numbers as sorting each segment, in linear time
    rest = values.copy()
    starts = indptr[filled]
    sizes = lengths[filled]
    segment = np.repeat(np.arange(len(filled)), sizes)
    for j in range(min(k, int(sizes.max()))):
        top = np.maximum.reduceat(rest, starts)
        has = sizes > j
        if j == 0:
            maxes[filled] = top
        sums[filled[has]] += top[has]
        hit = np.flatnonzero(rest == top[segment])
        first = hit[np.r_[True, segment[hit[1:]] != segment[hit[:-1]]]] if len(hit) else hit
        rest[first] = -np.inf
    taken = np.minimum(lengths, k)
    means = np.divide(sums, taken, out=np.zeros(n), where=taken > 0)
    return sums, maxes, means


def _segment_topk_sorted(values: np.ndarray, indptr: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`segment_topk` by sorting every segment (its definition; also the way for values with NaN)."""
    n = len(indptr) - 1
    lengths = np.diff(indptr)
    groups = np.repeat(np.arange(n), lengths)
    order = np.lexsort((-values, groups))
    ranked = values[order]
    position = np.arange(len(values)) - np.repeat(indptr[:-1], lengths)
    keep = position < k
    sums = np.bincount(groups[keep], weights=ranked[keep], minlength=n)
    first = indptr[:-1][lengths > 0]
    maxes = np.zeros(n)
    maxes[lengths > 0] = ranked[first]
    taken = np.minimum(lengths, k)
    means = np.divide(sums, taken, out=np.zeros(n), where=taken > 0)
    return sums, maxes, means


def segment_max(values: np.ndarray, indptr: np.ndarray) -> np.ndarray:
    """Per segment ``values[indptr[i]:indptr[i+1]]``: the maximum (0 for an empty segment).

    The same as ``segment_topk(values, indptr, 1)[1]`` without sorting.

    Examples
    --------
    >>> segment_max(np.array([0.1, 0.5, 0.4, 0.3, 0.9]), np.array([0, 4, 4, 5])).tolist()
    [0.5, 0.0, 0.9]
    """
    values = np.asarray(values, dtype=np.float64)
    indptr = np.asarray(indptr, dtype=np.int64)
    out = np.zeros(len(indptr) - 1)
    filled = np.flatnonzero(np.diff(indptr) > 0)
    if len(filled):
        out[filled] = np.maximum.reduceat(values, indptr[filled])
    return out


def bm25_weights(counts: sp.csr_matrix, *, k1: float = 1.2, b: float = 0.75) -> sp.csr_matrix:
    """BM25 term weights of documents (rows) so that ``weights @ query_indicator`` is the BM25 score.

    ``counts`` holds raw term counts per document (for a worker, the concatenation of the
    problems they solved). The idf is the Lucene form ``log(1 + (N - df + 0.5) / (df + 0.5))``.
    Every row of :class:`BM25Rows` (what the index keeps), computed at once.

    Examples
    --------
    >>> w = bm25_weights(sp.csr_matrix(np.array([[2.0, 0.0], [1.0, 1.0]])), k1=1.2, b=0.0)
    >>> w.toarray().astype(float).round(3).tolist()
    [[0.251, 0.0], [0.182, 0.693]]
    """
    rows = BM25Rows.fit(counts, k1=k1, b=b)
    return rows.take(np.arange(rows.shape[0]), None)


def skill_profile_cosine(query_skills: np.ndarray, profiles: sp.csr_matrix) -> np.ndarray:
    """Cosine between an (idf-weighted) query skill vector and each worker's skill profile row.

    ``profiles`` rows must already be L2-normalised (see :func:`recommender.index`), the query
    vector is normalised here.

    Examples
    --------
    >>> prof = sp.csr_matrix(np.array([[0.6, 0.8], [1.0, 0.0]]))
    >>> skill_profile_cosine(np.array([0.0, 2.0]), prof).tolist()
    [0.8, 0.0]
    """
    q = np.asarray(query_skills, dtype=np.float64)
    norm = np.linalg.norm(q)
    if norm == 0:
        return np.zeros(profiles.shape[0])
    return np.asarray(profiles @ (q / norm)).ravel()


def skill_count_score(query_skill_idx: Sequence[int], counts: sp.csr_matrix, idf: np.ndarray) -> np.ndarray:
    """Sum over the query's skills of ``idf(skill) * log(1 + times the worker solved a problem needing it)``.

    Examples
    --------
    >>> c = sp.csr_matrix(np.array([[3.0, 0.0], [0.0, 1.0]]))
    >>> skill_count_score([0, 1], c, np.array([1.0, 2.0])).round(3).tolist()
    [1.386, 1.386]
    """
    idx = np.asarray(list(query_skill_idx), dtype=np.int64)
    if len(idx) == 0:
        return np.zeros(counts.shape[0])
    sub = counts[:, idx].tocsr().astype(np.float64)
    sub.data = np.log1p(sub.data)
    return np.asarray(sub @ idf[idx]).ravel()


def declared_skill_overlap(query_skills: set[str], worker_skills: Sequence[set[str]]) -> np.ndarray:
    """Fraction of the query's skills a worker declares (skills already mapped through aliases).

    Examples
    --------
    >>> declared_skill_overlap({"焊接", "PLC"}, [{"焊接"}, {"PLC", "焊接", "数控"}, set()]).tolist()
    [0.5, 1.0, 0.0]
    """
    if not query_skills:
        return np.zeros(len(worker_skills))
    return np.array([len(query_skills & s) / len(query_skills) for s in worker_skills], dtype=np.float64)


def transition_matrix(adjacency: sp.spmatrix) -> sp.csr_matrix:
    """Column-stochastic transition matrix of an undirected graph (dangling columns stay zero).

    Examples
    --------
    >>> transition_matrix(sp.csr_matrix(np.array([[0, 1], [1, 1]]))).toarray().tolist()
    [[0.0, 0.5], [1.0, 0.5]]
    """
    a = sp.csr_matrix(adjacency, dtype=np.float64)
    degree = np.asarray(a.sum(axis=0)).ravel()
    inv = np.divide(1.0, degree, out=np.zeros_like(degree), where=degree > 0)
    return sp.csr_matrix(a @ sp.diags(inv))


def personalized_pagerank(
    transition: sp.spmatrix,
    personalization: np.ndarray,
    *,
    damping: float = 0.85,
    tol: float = 1e-6,
    max_iter: int = 200,
) -> np.ndarray:
    """Personalised PageRank (random walk with restart) by power iteration.

    ``x = (1 - damping) * p + damping * (T @ x + dangling mass * p)``, where ``T`` is
    column-stochastic (:func:`transition_matrix`) and ``p`` the restart distribution. The mass a
    walker would lose at a dangling node restarts at ``p``, as in networkx. ``personalization`` may
    be a matrix with one restart distribution per column (batched queries); columns are
    normalised to sum to one (an all-zero column gives an all-zero result).

    Raises
    ------
    ConvergenceError
        If the L1 change per column is still above ``tol`` after ``max_iter`` iterations.

    Examples
    --------
    >>> t = transition_matrix(sp.csr_matrix(np.array([[0, 1], [1, 0]])))
    >>> personalized_pagerank(t, np.array([1.0, 0.0]), damping=0.5).round(4).tolist()
    [0.6667, 0.3333]
    """
    if not 0.0 <= damping < 1.0:
        raise ValueError("damping must be in [0, 1)")
    t = sp.csr_matrix(transition)
    dtype = np.float32 if t.dtype == np.float32 else np.float64
    p = np.asarray(personalization, dtype=dtype)
    single = p.ndim == 1
    if single:
        p = p[:, None]
    total = p.sum(axis=0)
    p = np.divide(p, total, out=np.zeros_like(p), where=total > 0)
    dangling = np.flatnonzero(np.asarray(t.sum(axis=0)).ravel() == 0)
    restart = (1.0 - damping) * p
    x = p.copy()
    for _ in range(max_iter):
        nxt = t @ x
        if len(dangling):
            nxt += x[dangling].sum(axis=0) * p
        nxt *= damping
        nxt += restart
        x -= nxt
        err = float(np.abs(x).sum(axis=0).max()) if x.size else 0.0
        x = nxt
        if err < tol:
            return x[:, 0] if single else x
    raise ConvergenceError(f"personalised PageRank did not converge in {max_iter} iterations (tol {tol})")


def push_pagerank(
    transition: sp.spmatrix,
    personalization: np.ndarray | sp.spmatrix,
    *,
    damping: float = 0.85,
    eps: float = 1e-7,
    frozen: np.ndarray | None = None,
    max_rounds: int = 10_000,
) -> tuple[np.ndarray, np.ndarray]:
    """Personalised PageRank approximated locally by residual push (Andersen, Chung & Lang 2006).

    All restart mass starts as *residual* at the seeds. A node whose residual exceeds
    ``eps * degree`` is *pushed*: it keeps ``1 - damping`` of its residual as score and passes
    ``damping`` of it to its out-neighbours along its column of ``transition``. Residual carried
    into a dangling node (an empty column) returns to the restart distribution, as in
    :func:`personalized_pagerank` and networkx. Every node above the threshold is pushed in the
    same round (the rounds run as one compiled loop, :func:`recommender.kernels.push_at`); only nodes
    reached from the seeds are touched, so the cost depends on ``eps`` and the seeds' neighbourhood,
    not on the size of the graph.

    The result satisfies the push invariant ``exact = scores + sum_u residual[u] * PPR(u)``,
    where ``PPR(u)`` is the personalised PageRank restarting at ``u``: scores never exceed the
    exact values, and on an undirected graph (``transition`` from :func:`transition_matrix`) a
    node's score is below its exact value by at most ``eps * degree(node)`` plus the share of
    residual left on ``frozen`` nodes. ``frozen`` nodes (hubs) are never pushed: their residual is
    returned whole, to be resolved with their precomputed vectors (see :func:`local_pagerank`).

    Parameters
    ----------
    transition
        Column-stochastic transition matrix; pass it in CSC form to avoid a conversion per call.
    personalization
        Restart distribution, dense or a sparse vector (normalised here); all zero gives zeros.
    damping
        Continuation probability (restart probability ``1 - damping``).
    eps
        Residual threshold per unit of out-degree.
    frozen
        Boolean mask of nodes never pushed.
    max_rounds
        Push rounds allowed before giving up.

    Returns
    -------
    scores, residual
        Dense vectors over all nodes.

    Raises
    ------
    ConvergenceError
        If residuals above the threshold remain after ``max_rounds`` rounds.

    Examples
    --------
    >>> t = transition_matrix(sp.csr_matrix(np.array([[0, 1], [1, 0]])))
    >>> x, r = push_pagerank(t, np.array([1.0, 0.0]), damping=0.5, eps=1e-9)
    >>> x.round(4).tolist(), bool(r.max() <= 1e-9)
    ([0.6667, 0.3333], True)
    """
    every = np.arange(transition.shape[0])
    return push_pagerank_at(transition, personalization, every, every, damping=damping, eps=eps, frozen=frozen,
                            max_rounds=max_rounds)


def push_pagerank_at(
    transition: sp.spmatrix,
    personalization: np.ndarray | sp.spmatrix,
    scores_at: np.ndarray,
    residual_at: np.ndarray,
    *,
    damping: float = 0.85,
    eps: float = 1e-7,
    frozen: np.ndarray | None = None,
    max_rounds: int = 10_000,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`push_pagerank`'s scores at nodes ``scores_at`` and residual at ``residual_at``, the same numbers,
    without a dense vector over every node per call (:func:`recommender.kernels.push_at`): what a query reads
    of a walk over a large graph.

    Examples
    --------
    >>> t = transition_matrix(sp.csr_matrix(np.array([[0, 1], [1, 0]])))
    >>> x, r = push_pagerank_at(t, np.array([1.0, 0.0]), np.array([1]), np.array([0]), damping=0.5, eps=1e-9)
    >>> x.round(4).tolist(), bool(r.max() <= 1e-9)
    ([0.3333], True)
    """
    if not 0.0 <= damping < 1.0:
        raise ValueError("damping must be in [0, 1)")
    if not eps > 0.0:
        raise ValueError("eps must be positive")
    t = transition if sp.issparse(transition) and transition.format == "csc" else sp.csc_matrix(transition)
    n = t.shape[0]
    if sp.issparse(personalization):
        coo = sp.coo_matrix(personalization)
        where = (coo.row if coo.shape[0] == n else coo.col).astype(np.int64)
        seeds, at = np.unique(where, return_inverse=True)
        summed = np.bincount(at, weights=np.asarray(coo.data, dtype=np.float64), minlength=len(seeds))
        seeds, mass = seeds[summed != 0], summed[summed != 0]
    else:
        dense = np.asarray(personalization, dtype=np.float64).ravel()
        seeds = np.flatnonzero(dense)
        mass = dense[seeds]
    total = mass.sum()
    if total <= 0:
        return np.zeros(len(scores_at)), np.zeros(len(residual_at))
    x, r, done = kernels.push_at(t.indptr, t.indices, t.data, seeds, mass / total, np.asarray(scores_at),
                                 np.asarray(residual_at), damping=damping, eps=eps, frozen=frozen,
                                 max_rounds=max_rounds)
    if done:
        return x, r
    raise ConvergenceError(f"residual push still had residuals above {eps} x degree after {max_rounds} rounds")


def local_pagerank(
    transition: sp.spmatrix,
    personalization: np.ndarray | sp.spmatrix,
    *,
    damping: float = 0.85,
    eps: float = 1e-7,
    hubs: np.ndarray | None = None,
    hub_scores: np.ndarray | None = None,
    max_rounds: int = 10_000,
) -> np.ndarray:
    """Personalised PageRank by residual push, with hub vectors resolving the hubs exactly.

    :func:`push_pagerank` with ``hubs`` frozen, then each hub's residual is distributed by its
    exact vector: ``scores + hub_scores.T @ residual[hubs]`` (the hub decomposition of Jeh &
    Widom, 2003). Heterogeneous graphs have a few nodes (skills, districts) adjacent to a large
    share of the graph; pushing them would touch nearly everything, resolving them with
    precomputed vectors keeps the push local. Residual left on non-hub nodes is the only error:
    at most ``eps * degree(node)`` per node on an undirected graph, and never an overestimate.
    The decomposition is exact when no dangling node can be reached from a hub (always the case
    on an undirected graph, where dangling nodes are isolated).

    Parameters
    ----------
    transition, personalization, damping, eps, max_rounds
        As in :func:`push_pagerank`.
    hubs
        Indices of hub nodes.
    hub_scores
        ``(len(hubs), n)``: row ``i`` is the personalised PageRank restarting at ``hubs[i]``
        (e.g. :func:`personalized_pagerank` with one-hot columns, same ``damping``).

    Raises
    ------
    ConvergenceError
        As :func:`push_pagerank`.

    Examples
    --------
    >>> t = transition_matrix(sp.csr_matrix(np.array([[0, 1, 1], [1, 0, 0], [1, 0, 0]])))
    >>> hub = personalized_pagerank(t, np.array([1.0, 0.0, 0.0]), damping=0.5, tol=1e-12, max_iter=100)
    >>> local_pagerank(t, np.array([0.0, 1.0, 0.0]), damping=0.5, eps=1e-12,
    ...                hubs=np.array([0]), hub_scores=hub[None, :]).round(4).tolist()
    [0.3333, 0.5833, 0.0833]
    """
    if (hubs is None) != (hub_scores is None):
        raise ValueError("hubs and hub_scores go together")
    n = transition.shape[0]
    frozen = None
    if hubs is not None:
        frozen = np.zeros(n, dtype=bool)
        frozen[np.asarray(hubs, dtype=np.int64)] = True
    scores, residual = push_pagerank(transition, personalization, damping=damping, eps=eps, frozen=frozen,
                                     max_rounds=max_rounds)
    if hubs is not None and hub_scores is not None:
        scores = scores + np.asarray(hub_scores, dtype=np.float64).T @ residual[np.asarray(hubs, dtype=np.int64)]
    return scores


def popularity(n_solved: np.ndarray) -> np.ndarray:
    """``log(1 + number of problems solved)``.

    Examples
    --------
    >>> popularity(np.array([0, 1])).round(3).tolist()
    [0.0, 0.693]
    """
    return np.log1p(np.asarray(n_solved, dtype=np.float64))


def rating_weight(rating: np.ndarray) -> np.ndarray:
    """Weight of a past solution by its outcome rating (1-5): ``0.5 + rating / 10``; 1 when unrated (NaN).

    Examples
    --------
    >>> rating_weight(np.array([5.0, 1.0, np.nan])).tolist()
    [1.0, 0.6, 1.0]
    """
    r = np.asarray(rating, dtype=np.float64)
    return np.where(np.isnan(r), 1.0, 0.5 + np.clip(r, 0, 5) / 10.0)


def recency_weight(age_days: np.ndarray, *, half_life_days: float = 730.0, floor: float = 0.5) -> np.ndarray:
    """Weight of a past solution by its age: halves every ``half_life_days``, never below ``floor``; 1 when undated.

    Examples
    --------
    >>> recency_weight(np.array([0.0, 730.0, np.nan]), floor=0.0).tolist()
    [1.0, 0.5, 1.0]
    """
    age = np.asarray(age_days, dtype=np.float64)
    w = np.power(0.5, np.clip(age, 0, None) / half_life_days)
    return np.where(np.isnan(age), 1.0, np.maximum(w, floor))


def district_proximity(worker_district: Sequence[str | None], district: str | None,
                       neighbours: set[str]) -> np.ndarray:
    """1 for the problem's own district, 0.5 for a neighbouring one (``ADJACENT_TO``), else 0.

    Examples
    --------
    >>> district_proximity(["亭湖区", "盐都区", None], "亭湖区", {"盐都区"}).tolist()
    [1.0, 0.5, 0.0]
    """
    if not district:
        return np.zeros(len(worker_district))
    return np.array([1.0 if d == district else 0.5 if d in neighbours else 0.0 for d in worker_district])
