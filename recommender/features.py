"""Features of (problem, candidate worker) pairs, computed in batches from a :class:`RankingIndex`.

One row per candidate, one column per name in :data:`FEATURES`. The same code serves the
evaluation (thousands of queries with 20 candidates each), the learned fusion's training
pseudo-queries, the product (one query, a few hundred generated candidates) and campaign
assignment (two hundred problems against the same few hundred workers, one batch).

A :class:`Query` is analysed once (:func:`vectorise`: its TF-IDF rows and dense vector) and
every stage of a recommendation reads those vectors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from recommender.index import RankingIndex, day_number
from recommender.kernels import best_per_segment, compiled_source, entry_dots
from recommender.query import Query, vectorise
from recommender.signals import recency_weight, segment_max, segment_topk
from recommender.sparse_rows import RowSource, gather_segments, local_columns, take_rows
from recommender.text import TextViews
from recommender.threads import in_background
from recommender.walk import PUSH_PRECISION_NODES, seed_vector, walk_scores
from recommender.word_rows import WordRows

__all__ = [
    "BATCH_PRODUCT_RATIO",
    "FEATURES",
    "ONSITE_TYPES",
    "RD_TYPES",
    "TRAINING_TYPES",
    "Query",
    "QueryEvidence",
    "CHAR_DEPTH",
    "PUSH_PRECISION_NODES",
    "compute_features",
    "gather_segments",
    "seed_vector",
    "vectorise",
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
class QueryEvidence:
    """Per-query intermediate results kept for explanations."""

    word_sims: np.ndarray            # cosine to each history problem
    ppr: np.ndarray | None = None    # walk scores of the candidates
    skill_idx: list[int] = field(default_factory=list)


def _column(csc: sp.csc_matrix, cols: Sequence[int] | np.ndarray, rows: np.ndarray,
            weights: np.ndarray | None = None) -> np.ndarray:
    """The sum of some columns of a CSC matrix at some rows (unique), the columns added in order (each times its
    weight when ``weights`` are given: ``(csc[:, cols] @ weights)[rows]`` to the bit).

    Each column's values at the rows are found by a binary search in its sorted row indices: a district's
    column holds tens of thousands of workers at a million problems, where the candidates are a few hundred.
    A row a column lacks adds an exact zero, so the sums are those of adding whole columns.

    Examples
    --------
    >>> m = sp.csc_matrix(np.array([[1.0, 0.0], [0.0, 2.0], [3.0, 4.0]]))
    >>> _column(m, [0, 1], np.array([2, 0, 1])).tolist()
    [7.0, 1.0, 2.0]
    """
    rows = np.asarray(rows, dtype=np.int64)
    out = np.zeros(len(rows))
    if not csc.has_canonical_format:  # (unsorted or repeated rows in a column) sum the whole columns
        dense = np.zeros(csc.shape[0])
        for j, c in enumerate(cols):
            a, b = csc.indptr[c], csc.indptr[c + 1]
            values = np.asarray(csc.data[a:b], dtype=np.float64)
            np.add.at(dense, csc.indices[a:b], values if weights is None else values * weights[j])
        return dense[rows]
    for j, c in enumerate(cols):
        a, b = int(csc.indptr[c]), int(csc.indptr[c + 1])
        if a == b:
            continue
        col = csc.indices[a:b]
        at = np.minimum(np.searchsorted(col, rows), b - a - 1)
        hit = col[at] == rows
        values = np.asarray(csc.data[a:b][at[hit]], dtype=np.float64)
        out[hit] += values if weights is None else values * weights[j]
    return out


def _rows_dot(m: sp.csr_matrix | RowSource, rows: np.ndarray, q: sp.csr_matrix) -> np.ndarray:
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
    return np.asarray(take_rows(m, once, np.unique(q.indices)) @ dense, dtype=np.float64)[back]


def _skill_rows(index: RankingIndex, queries: Sequence[Query]) -> sp.csr_matrix:
    """``(len(queries), n skills)`` indicators of the queries' known skills."""
    ids = index.projection.index["Skill"]
    rows = [i for i, q in enumerate(queries) for s in q.skills if s in ids]
    cols = [ids[s] for q in queries for s in q.skills if s in ids]
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(len(queries), index.n_skills))


#: The character n-gram signals look at this many of a candidate's solved problems: the ones closest
#: by word cosine (the character view's best three are virtually always among them).
CHAR_DEPTH = 25


#: :func:`_entry_dots` multiplies the queries with every row any of them needs (one sparse product for the
#: batch) while that computes at most this many times more dot products than the entries asked for; beyond
#: it (a few rows per query, e.g. 20 candidates per evaluation query) it reads each query's own rows.
BATCH_PRODUCT_RATIO = 8
#: Up to this many cells (terms x queries) :func:`_entry_dots` makes the queries dense over every term (16 MB of
#: float32); a larger batch (evaluation) multiplies only the queries' terms.
DENSE_QUERY_CELLS = 1 << 22


def _entry_dots(m: sp.csr_matrix | RowSource, rows: np.ndarray, owner: np.ndarray,
                queries: sp.csr_matrix) -> np.ndarray:
    """Per entry ``e``, the dot product of row ``rows[e]`` of ``m`` with query row ``owner[e]`` of ``queries``.

    Entries are grouped by query (``owner`` non-decreasing). The numbers are exactly :func:`_rows_dot`'s
    per query whichever way they are computed: each output is the same sum in the same order (scipy's
    sparse row times dense vector, one row or many columns at once; terms outside the queries only
    add zeros), so batching changes the cost, never a score.

    Examples
    --------
    >>> m = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 3.0, 0.0]], dtype=np.float32))
    >>> q = sp.csr_matrix(np.array([[0.5, 1.0, 1.0], [1.0, 0.0, 0.0]], dtype=np.float32))
    >>> _entry_dots(m, np.array([0, 1, 0]), np.array([0, 0, 1]), q).tolist()
    [2.5, 3.0, 1.0]
    """
    rows = np.asarray(rows, dtype=np.int64)
    owner = np.asarray(owner, dtype=np.int64)
    n_queries = queries.shape[0]
    if not len(rows):
        return np.zeros(0)
    stored = compiled_source(m)
    if stored is not None and queries.has_canonical_format:  # one compiled pass, the same sums
        return entry_dots(*stored, rows, owner, queries.indptr, queries.indices, queries.data)
    once, back = np.unique(rows, return_inverse=True)
    if len(once) * n_queries > BATCH_PRODUCT_RATIO * len(rows):
        out = np.zeros(len(rows))
        bounds = np.searchsorted(owner, np.arange(n_queries + 1))
        for i in range(n_queries):
            a, b = bounds[i], bounds[i + 1]
            if a < b:
                out[a:b] = _rows_dot(m, rows[a:b], queries[i])
        return out
    if not queries.nnz:
        return np.zeros(len(rows))
    if m.shape[1] * n_queries <= DENSE_QUERY_CELLS:
        # the queries as dense columns over every term: the rows needed times them sums each row's stored
        # entries in stored order, the terms outside the queries adding exact zeros, without first copying
        # the queries' columns out of the rows (that copy was a fifth of a query at 99k problems)
        product = take_rows(m, once, np.unique(queries.indices)) @ np.asarray(queries.T.toarray(), dtype=m.dtype)
        return np.asarray(product[back.ravel(), owner], dtype=np.float64)
    terms = np.unique(queries.indices)
    dense = local_columns(queries, terms, m.dtype)
    product = take_rows(m, once, terms)[:, terms] @ dense  # (rows needed, queries), in m's type like _rows_dot's
    return np.asarray(product[back.ravel(), owner], dtype=np.float64)


def _query_views(index: RankingIndex, chunk: Sequence[Query], *, one_by_one: bool) -> TextViews:
    """The chunk's text rows: the queries' own (:func:`vectorise`), else analysed one by one (as
    :func:`vectorise` would) or as one batch (the evaluation's way; a batch of more than a few texts goes
    through the vectorisers, whose float rounding differs slightly from the few-text path)."""
    if all(q.views is not None for q in chunk) or one_by_one:
        parts = [q.views if q.views is not None else index.text.transform([q.text]) for q in chunk]
        if len(parts) == 1:
            return parts[0]
        return TextViews(*(sp.csr_matrix(sp.vstack([getattr(v, name) for v in parts], format="csr"))
                           for name in ("word", "char", "counts")))
    return index.text.transform([q.text for q in chunk])


def _query_dense(index: RankingIndex, chunk: Sequence[Query], *, one_by_one: bool) -> np.ndarray | None:
    """The chunk's dense vectors (``None`` without an encoder), from the queries or encoded like the views."""
    if index.encoder is None or index.dense_docs is None:
        return None
    if all(q.dense is not None for q in chunk) or one_by_one:
        rows = [q.dense if q.dense is not None else np.asarray(index.encoder.encode([q.text]), dtype=np.float32)[0]
                for q in chunk]
        return np.vstack(rows).astype(np.float32, copy=False) if rows else np.zeros((0, index.encoder.dim),
                                                                                     dtype=np.float32)
    return np.asarray(index.encoder.encode([q.text for q in chunk]), dtype=np.float32)


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

    A batch of queries is computed together: the (query, candidate, solved problem) entries of all its
    queries are laid end to end, so the aggregations are one call each and the text products one sparse
    product when the queries share their candidates (campaign assignment: every problem against the same
    workers). Only the walk, the skills and the enterprise/district lookups run query by query. The
    numbers do not depend on how queries are batched.

    Parameters
    ----------
    queries
        The queries; vectorised ones (:func:`vectorise`) bring their text rows and dense vectors.
    candidates
        Worker indices of the projection per query.
    batch
        Queries computed together.
    ppr
        Run the personalised PageRank.
    keep_evidence
        Also return the per-query similarities and walk scores (for explanations).
    damping
        Walk continuation probability (restart probability ``1 - damping``).
    similar
        Per query, history positions and exact word cosines of its best-matching problems
        (:meth:`RankingIndex.similar_problems`), the query's own problem left out. Queries without
        vectors are then analysed one by one (as :func:`vectorise` does), else as one batch.
    """
    out: list[np.ndarray] = []
    evidence: list[QueryEvidence] = []
    n_hist = len(index.hp)
    if similar is None:
        batch = max(1, min(batch, (1 << 26) // max(n_hist, 1)))  # dense cosines < 256 MB
    for lo in range(0, len(queries), max(1, batch)):
        hi = min(lo + max(1, batch), len(queries))
        feats, ev = _batch_features(index, list(queries[lo:hi]), [np.asarray(c, dtype=np.int64)
                                                                  for c in candidates[lo:hi]],
                                    None if similar is None else list(similar[lo:hi]), ppr=ppr,
                                    keep_evidence=keep_evidence, damping=damping)
        out += feats
        evidence += ev
    return out, evidence


def _own_position(index: RankingIndex, query: Query) -> int:
    """History position of the query's own problem (never its own evidence), ``-1`` when it has none."""
    pid = index.projection.index["Problem"].get(query.problem_id or "")
    return index.hp_pos.get(pid, -1) if pid is not None else -1


def _by_candidates(candidates: Sequence[np.ndarray]) -> dict[bytes, list[int]]:
    """Queries grouped by identical candidate arrays (their dense rows are copied once per group)."""
    groups: dict[bytes, list[int]] = {}
    for i, cand in enumerate(candidates):
        groups.setdefault(cand.tobytes(), []).append(i)
    return groups


def _batch_features(index: RankingIndex, chunk: list[Query], cands: list[np.ndarray],
                    similar: list[tuple[np.ndarray, np.ndarray]] | None, *, ppr: bool, keep_evidence: bool,
                    damping: float) -> tuple[list[np.ndarray], list[QueryEvidence]]:
    """:func:`compute_features` for one batch of queries."""
    n_hist = len(index.hp)
    n_q = len(chunk)
    views = _query_views(index, chunk, one_by_one=similar is not None)
    qd = _query_dense(index, chunk, one_by_one=similar is not None)
    dense_word = None
    if similar is None:
        dense_word = np.asarray(index.docs_word_t.times(views.word).todense(), dtype=np.float32)
    expert_z = index.expertise.embed(views.word, _skill_rows(index, chunk)) if index.expertise is not None else None
    q_bin = views.counts.copy()
    q_bin.data[:] = 1.0
    own = np.array([_own_position(index, q) for q in chunk], dtype=np.int64)

    # the batch's (query, candidate) pairs, and their (pair, solved history problem) entries, end to end
    sizes = np.array([len(c) for c in cands], dtype=np.int64)
    pair_at = np.zeros(n_q + 1, dtype=np.int64)
    np.cumsum(sizes, out=pair_at[1:])
    pair_q = np.repeat(np.arange(n_q), sizes)
    pair_w = np.concatenate(cands) if n_q else np.zeros(0, dtype=np.int64)
    pos, ptr = gather_segments(index.solved.indptr, pair_w)
    cols = index.solved.indices[pos]
    seg = np.repeat(np.arange(len(pair_w)), np.diff(ptr))  # entry -> pair
    entry_q = pair_q[seg]  # entry -> query
    entry_at = ptr[pair_at]  # each query's first entry
    f = np.zeros((len(pair_w), len(FEATURES)), dtype=np.float64)

    # word cosines of each entry's solved problem (the query's own problem counts 0)
    rows: list[np.ndarray] = []
    word_rows: WordRows | None = None
    if dense_word is not None:
        best_of: list[tuple[np.ndarray, np.ndarray]] = []
        k = min(10, n_hist)
        for i in range(n_q):
            row = dense_word[i]
            if own[i] >= 0:
                row[own[i]] = 0.0
            best = np.argpartition(-row, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
            best_of.append((best, row[best]))
            rows.append(row)
    else:
        assert similar is not None
        best_of = [(np.asarray(a), np.asarray(b)) for a, b in similar]
    # the walks need none of what follows: they run on a helper thread meanwhile (recommender.threads), their
    # seeds made here first (the helper then spends nearly all its time in the compiled push, without the GIL)
    skills = [_skill_indices(index, q) for q in chunk]
    seeds = [seed_vector(index, q, best_of[i], skills[i]) if ppr and len(cands[i]) and index.walk_size else None
             for i, q in enumerate(chunk)]
    walked = in_background(lambda: [None if seed is None else walk_scores(index, seed, cands[i], damping=damping)
                                    for i, seed in enumerate(seeds)])
    if dense_word is not None:
        sw = dense_word[entry_q, cols].astype(np.float64)
    else:
        word_rows = WordRows.of(index, cols, views.word, q_bin)
        sw = word_rows.dots(entry_q, views.word)
        for i in range(n_q):
            row = np.zeros(n_hist, dtype=np.float32)
            best, best_sims = best_of[i]
            row[best] = best_sims
            row[cols[entry_at[i]:entry_at[i + 1]]] = sw[entry_at[i]:entry_at[i + 1]]
            if own[i] >= 0:
                row[own[i]] = 0.0
            rows.append(row)
        sw = np.asarray(sw.astype(np.float32), dtype=np.float64)
        sw[cols == own[entry_q]] = 0.0

    # weights of the solved problems: outcome rating, and age at the query's date
    weight = np.empty(len(pos))
    for i, q in enumerate(chunk):
        a, b = entry_at[i], entry_at[i + 1]
        w = index.edge_rating_weight[pos[a:b]]
        q_day = day_number(q.posted_at)
        if not np.isnan(q_day):
            w = w * recency_weight(q_day - index.edges.day[pos[a:b]])
        weight[a:b] = w

    if n_hist and len(pos):
        f[:, _F["text_top3"]] = segment_topk(sw * weight, ptr, 3)[0]
        f[:, _F["text_max"]] = segment_max(sw, ptr)
        hits = np.bincount(seg[sw >= 0.15], minlength=len(pair_w))
        f[:, _F["text_hits"]] = np.log1p(hits)
        near = best_per_segment(sw, ptr, CHAR_DEPTH)
        near_ptr = np.zeros(len(pair_w) + 1, dtype=np.int64)
        np.cumsum(np.bincount(seg[near], minlength=len(pair_w)), out=near_ptr[1:])
        sc = _entry_dots(index.char_rows, cols[near], entry_q[near], views.char)
        sc[cols[near] == own[entry_q[near]]] = 0.0
        f[:, _F["char_top3"]] = segment_topk(sc * weight[near], near_ptr, 3)[0]
        f[:, _F["char_max"]] = segment_max(sc, near_ptr)
        if qd is not None and index.dense_docs is not None:
            sd = np.empty(len(pos))
            for members in _by_candidates(cands).values():  # one copy of the candidates' rows per group
                a, b = entry_at[members[0]], entry_at[members[0] + 1]
                solved_rows = index.dense_docs[cols[a:b]]
                for i in members:
                    a, b = entry_at[i], entry_at[i + 1]
                    sd[a:b] = (solved_rows @ qd[i]).astype(np.float64)
            sd[cols == own[entry_q]] = -1.0
            f[:, _F["dense_top3"]] = segment_topk(sd * weight, ptr, 3)[0]
            f[:, _F["dense_max"]] = segment_max(sd, ptr)
    if word_rows is not None and word_rows.give_bm25(index):
        # the counts from the word rows read above for the cosines: the problems' rows are gathered once
        f[:, _F["bm25"]] = word_rows.bm25(index, pos, ptr, pair_w, pair_q, q_bin)
    else:
        f[:, _F["bm25"]] = _entry_dots(index.bm25, pair_w, pair_q, q_bin)
    f[:, _F["profile"]] = 0.5 * (_entry_dots(index.profiles.word, pair_w, pair_q, views.word)
                                 + _entry_dots(index.profiles.char, pair_w, pair_q, views.char))
    if expert_z is not None or (qd is not None and index.dense_profiles is not None):
        for members in _by_candidates(cands).values():
            cand = cands[members[0]]
            experts = index.expertise.workers[cand] if expert_z is not None else None  # type: ignore[union-attr]
            profiles = index.dense_profiles[cand] if qd is not None and index.dense_profiles is not None else None
            for i in members:
                a, b = pair_at[i], pair_at[i + 1]
                if experts is not None and expert_z is not None:
                    f[a:b, _F["expertise"]] = np.asarray(experts @ expert_z[i], dtype=np.float64)
                if profiles is not None and qd is not None:
                    f[a:b, _F["dense_profile"]] = profiles @ qd[i]
    f[:, _F["popularity"]] = np.log1p(index.n_solved[pair_w])
    f[:, _F["activity"]] = index.activity[pair_w]
    f[:, _F["quality"]] = index.quality[pair_w]
    f[:, _F["honours"]] = index.honours[pair_w]

    # query by query: skills, the walk, enterprise and district
    out: list[np.ndarray] = []
    evidence: list[QueryEvidence] = []
    walks = walked()
    for i, q in enumerate(chunk):
        cand = cands[i]
        fi = f[pair_at[i]:pair_at[i + 1]]
        out.append(fi)
        sk = skills[i]
        _query_features(index, q, cand, fi, sk)
        walk = walks[i]
        if walk is not None:
            fi[:, _F["ppr"]] = np.log1p(walk * index.walk_size)
        if not len(cand):
            evidence.append(QueryEvidence(rows[i] if keep_evidence else np.zeros(0)))
        elif keep_evidence:
            evidence.append(QueryEvidence(rows[i].copy() if dense_word is not None else rows[i], walk, sk))
        else:
            evidence.append(QueryEvidence(np.zeros(0)))
    return out, evidence


def _skill_indices(index: RankingIndex, q: Query) -> list[int]:
    """The query's known skills' indices in the projection."""
    skill_ids = index.projection.index["Skill"]
    return [skill_ids[s] for s in q.skills if s in skill_ids]


def _query_features(index: RankingIndex, q: Query, cand: np.ndarray, f: np.ndarray, sk: list[int]) -> None:
    """The features of one query's candidates that are lookups rather than products: skills (``sk``: their
    indices), enterprise, chain, district and the service-type rules (written into ``f``)."""
    proj = index.projection
    if not len(cand):
        return
    if sk:
        qv = np.zeros(index.n_skills)
        qv[sk] = index.skill_idf[sk]
        qv /= np.linalg.norm(qv)
        f[:, _F["skill_hist"]] = index.skill_profiles[cand] @ qv
        f[:, _F["skill_count"]] = _column(index.skill_logcounts_csc, sk, cand, index.skill_idf[sk])
        # the share of the query's skills each candidate declared (skills unknown here count, undeclared)
        declared = index.declared
        pos, ptr = gather_segments(declared.indptr, cand)
        hits = np.zeros(len(pos) + 1, dtype=np.int64)
        np.cumsum(np.isin(declared.indices[pos], np.unique(sk)), out=hits[1:])
        f[:, _F["skill_declared"]] = (hits[ptr[1:]] - hits[ptr[:-1]]) / len(set(q.skills))
    ent = proj.index["Enterprise"].get(q.enterprise_id or "")
    if ent is not None:
        f[:, _F["enterprise"]] = np.log1p(_column(index.worker_enterprise_csc, [ent], cand))
        chains = index.enterprise_chain[ent].indices
        if len(chains):
            f[:, _F["chain"]] = np.log1p(_column(index.worker_chain_csc, chains, cand))
    dist = proj.index["District"].get(q.district or "")
    if dist is not None:
        f[:, _F["district_work"]] = np.log1p(_column(index.worker_district_work, [dist], cand))
        near_d = set(np.asarray(proj.ids["District"])[index.district_adjacency[dist].indices].tolist())
        f[:, _F["district"]] = [1.0 if index.worker_district[w] == q.district
                                else 0.5 if index.worker_district[w] in near_d else 0.0 for w in cand]
    if q.service_type in TRAINING_TYPES:
        f[:, _F["teach_fit"]] = index.teaches[cand].astype(float)
    if q.service_type in ONSITE_TYPES:
        f[:, _F["onsite_fit"]] = f[:, _F["district"]]
    if q.service_type in RD_TYPES:
        f[:, _F["depth_fit"]] = f[:, _F["text_hits"]]


#: Former names, kept for callers of this module.
_seed_vector = seed_vector
