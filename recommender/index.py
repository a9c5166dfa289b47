"""The ranking index: everything the signals need, precomputed once from a :class:`~graph.projection.Projection`.

Why this module is long (about 560 lines): :meth:`RankingIndex.fit` computes every matrix the signals read,
each also incrementally (``reuse``: the rows of unchanged texts, the unchanged expertise model, hub vectors),
and the two ways are kept side by side per stage (``_fit_solved``, ``_fit_text``, ``_fit_skills``,
``_fit_context``, ``_fit_priors``, ``_fit_expertise``, ``_fit_dense``) so that a reader sees what an update
reuses next to what a full fit computes. The walk graph lives in :mod:`recommender.walk`, dates in
:mod:`recommender.dates`.

A :class:`RankingIndex` sees the graph through a *history* mask: only solved problems inside it
count as evidence (text similarity, skill profiles, prior work, the random-walk graph). The
evaluation builds one index on the older part of a dataset to train the learned fusion without
leaking the held-out problems, and the product builds one on everything.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from graph.projection import Projection
from graph.rules import capacity_of
from recommender.dates import day_number, natural_key, time_order
from recommender.expertise import ExpertiseModel, fit_expertise, refit_workers
from recommender.lookups import DeclaredSkills, HistoryPositions
from recommender.signals import rating_weight
from recommender.sparse_rows import BM25Rows, HalfRows, SolvedCounts, TermPostings, local_columns, rare_terms, rows_on
from recommender.text import TextModel, TextViews, problem_text, profile_text
from recommender.walk import build_walk, hub_worker_scores

__all__ = [
    "ACTIVITY_HALF_LIFE", "RATING_PRIOR", "RATING_PRIOR_WEIGHT", "Encoder", "RankingIndex", "day_number", "natural_key",
    "time_order",
]

#: Half-life of the ``activity`` prior, as a share of the history's problems (time order).
ACTIVITY_HALF_LIFE = 0.1
#: The outcome rating (1-5) a worker's mean is shrunk towards, and how many ratings that prior weighs.
RATING_PRIOR = 3.5
RATING_PRIOR_WEIGHT = 2

_LEVEL_SCORE = {"国家级": 3.0, "全国": 3.0, "national": 3.0, "省级": 2.0, "provincial": 2.0, "市级": 1.0, "city": 1.0}


class Encoder(Protocol):
    """What the ranker needs of :class:`embeddings.encoder.Encoder`."""

    identity: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ m)


def _binary(m: sp.csr_matrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.data[:] = 1.0
    return out


def _solved_values(props: Mapping[str, Any]) -> tuple[float, float, float]:
    """Rating, day number and trainees of a ``SOLVED`` edge (NaN when absent)."""

    def number(key: str) -> float:
        v = props.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else float("nan")

    return number("rating"), day_number(props.get("at")), number("trainees")


def _stack(parts: Sequence[TextViews]) -> TextViews:
    return TextViews(*(sp.csr_matrix(sp.vstack([getattr(v, name) for v in parts], format="csr"), dtype=np.float32)
                       for name in ("word", "char", "counts")))


def _reuse_rows(model: TextModel, wanted: Sequence[tuple[Any, str]], before: Sequence[tuple[Any, str]],
                rows: TextViews) -> TextViews:
    """Text rows for ``(key, text)`` pairs: taken from ``rows`` (parallel to ``before``) when the same key had
    the same text there, analysed with ``model`` otherwise."""
    where = {key: i for i, key in enumerate(before)}
    take = np.array([where.get(key, -1) for key in wanted], dtype=np.int64)
    fresh = np.flatnonzero(take < 0)
    kept = np.flatnonzero(take >= 0)
    if np.array_equal(take[:len(before)], np.arange(len(before))):  # the earlier rows, in order, then new ones
        if not len(fresh):
            return rows
        return _stack([rows, model.transform([wanted[int(i)][1] for i in fresh])])
    parts = [rows[take[kept]]]
    if len(fresh):
        parts.append(model.transform([wanted[int(i)][1] for i in fresh]))
    order = np.empty(len(wanted), dtype=np.int64)
    order[kept] = np.arange(len(kept))
    order[fresh] = len(kept) + np.arange(len(fresh))
    return _stack(parts)[order]


def _postings_dot(postings: sp.csr_matrix | TermPostings, query: sp.csr_matrix, n: int) -> np.ndarray:
    """``query @ postings`` for a one-row ``query`` over a term x document matrix, as a dense vector."""
    if not query.nnz:
        return np.zeros(n, dtype=np.float32)
    return np.asarray(postings[query.indices].T @ query.data, dtype=np.float32)


@dataclass
class _Edges:
    """The history ``SOLVED`` edges in the CSR order of :attr:`RankingIndex.solved`."""

    rating: np.ndarray
    day: np.ndarray
    trainees: np.ndarray


class RankingIndex:
    """Precomputed matrices over one projection, restricted to a history of solved problems.

    Built the scikit-learn way: ``RankingIndex(encoder=...).fit(projection, ...)`` (hyper-parameters in the
    constructor, the data in :meth:`fit`, which returns the index). The fitted matrices keep their plain
    names (``solved``, ``docs``, ``walk``, ...) rather than a trailing underscore: they are the stored index
    format's field names (:mod:`recommender.index_files`) and every signal reads them.

    Parameters
    ----------
    encoder
        Optional dense text encoder; when given, problem and profile embeddings are computed
        (or taken from ``vectors`` in :meth:`fit`) and the dense signals switch on.
    """

    #: Walk nodes with at least this many edges are hubs (resolved by precomputed vectors).
    hub_degree: int = 256
    #: At most this many hubs (the highest degrees).
    max_hubs: int = 1024
    #: Positions of the history problems (with at least one solver) in the projection.
    hp: np.ndarray
    #: The projection's problems, oldest first (:func:`time_order`; problems added since the last full
    #: build come last).
    problem_order: np.ndarray
    #: Weight of the problem's skills beside its words in the expertise model's input.
    expertise_skill_weight: float = 0.0
    #: The walk graph and its hubs (:func:`recommender.walk.build_walk`), and the hub vectors per damping.
    walk: sp.csc_matrix
    walk_offset: dict[str, int]
    walk_size: int
    walk_hubs: np.ndarray
    walk_hub_mask: np.ndarray
    _hub_vectors: dict[float, np.ndarray]

    def __init__(self, *, encoder: Encoder | None = None) -> None:
        self.encoder = encoder

    def fit(self, projection: Projection, *, history: np.ndarray | None = None,
            vectors: Mapping[str, np.ndarray] | None = None, reuse: RankingIndex | None = None,
            changed: Collection[tuple[str, ...]] | None = None,
            hidden_declared: sp.spmatrix | None = None) -> RankingIndex:
        """Compute every matrix the signals read from ``projection``; returns ``self``.

        Parameters
        ----------
        projection
            The graph.
        history
            Boolean mask over the projection's problems that may serve as evidence; ``None`` means all.
        vectors
            Precomputed dense vectors by problem id (e.g. from the store's embedding cache).
        reuse
            An index over an earlier state of the same graph (the projection patched in place since):
            its fitted text model is kept, with the text rows (and dense vectors) of the problems and
            profiles whose text has not changed, and its hub vectors when the hubs are the same
            nodes. Only new or edited texts are analysed, so an update costs a fraction of a full
            build; vocabulary, idf and hub vectors are those of the earlier fit until the next fit
            without ``reuse``.
        changed
            With ``reuse``: the node keys ``(label, id)`` and relationship keys (:attr:`graph.store.RelRow.key`)
            written since ``reuse`` was built; values derived from anything else are copied from it.
            ``None``: derive everything again (texts are still re-analysed only when they differ).
        hidden_declared
            ``(workers, skills)``: declared skills to leave out (training on pseudo-queries hides the
            skills a worker's profile can only have learned from the held-out problems, see
            :func:`recommender.training.future_only_skills`).
        """
        proj = projection
        self.projection = proj
        n_problems = proj.n("Problem")
        self.history_mask = np.ones(n_problems, dtype=bool) if history is None else np.asarray(history, dtype=bool)
        self.n_workers = proj.n("Worker")
        self.n_skills = proj.n("Skill")
        self._fit_solved(reuse, changed)
        same_skills = changed is not None and not any(key[0] == "Skill" for key in changed if len(key) == 2)
        self._fit_text(reuse, changed, same_skills)
        self._fit_skills(hidden_declared)
        self._fit_context()
        self._fit_priors(reuse)
        self._fit_expertise(reuse, changed)
        build_walk(self)
        self._fit_dense(vectors, reuse)
        if reuse is not None and self.hub_keys() == reuse.hub_keys():
            # the same hubs: their vectors stay (new workers get none until the next full build)
            for damping, old in reuse._hub_vectors.items():
                grown = np.zeros((self.n_workers, old.shape[1]), dtype=np.float32)
                grown[:min(self.n_workers, len(old))] = old[:self.n_workers]
                self._hub_vectors[damping] = grown

        return self

    def _fit_solved(self, reuse: RankingIndex | None, changed: Collection[tuple[str, ...]] | None) -> None:
        """The history ``SOLVED`` edges: which problems are evidence, who solved them, rating, date, trainees."""
        proj = self.projection
        mask = self.history_mask
        n_problems = proj.n("Problem")
        solved_edges = proj.edge_list("SOLVED", "Worker", "Problem")
        starts = np.asarray(solved_edges.start, dtype=np.int64)
        ends = np.asarray(solved_edges.end, dtype=np.int64)
        keep = mask[ends] if len(ends) else np.zeros(0, dtype=bool)
        edge_ids = np.flatnonzero(keep)
        hp = np.unique(ends[keep])  # history problems with at least one solver
        if reuse is not None and len(reuse.hp) and np.isin(reuse.hp, hp).all():
            # the earlier history keeps its positions and newly solved problems come after it, so its
            # text rows are reused as they are
            hp = np.concatenate([reuse.hp, np.setdiff1d(hp, reuse.hp, assume_unique=True)])
        self.hp = hp
        self.hp_pos = HistoryPositions(hp, n_problems)
        col = self.hp_pos.columns(ends[keep])
        solved = sp.csr_matrix((edge_ids.astype(np.float64) + 1.0, (starts[keep], col)),
                               shape=(self.n_workers, len(hp)))
        solved.sort_indices()
        order = solved.data.astype(np.int64) - 1
        # rating, day and trainees of every SOLVED edge of the projection (in its edge order)
        n_known = 0 if reuse is None or changed is None else len(reuse._solved_values)
        fresh = list(range(n_known, len(solved_edges)))
        if n_known:
            w_ids, p_ids = proj.ids["Worker"], proj.ids["Problem"]
            fresh += [e for e in range(n_known) if ("SOLVED", "Worker", w_ids[solved_edges.start[e]], "Problem",
                                                  p_ids[solved_edges.end[e]]) in (changed or ())]
        values = np.full((len(solved_edges), 3), np.nan)
        if n_known and reuse is not None:
            values[:n_known] = reuse._solved_values
        for e in fresh:
            values[e] = _solved_values(solved_edges.props[e])
        self._solved_values: np.ndarray = values
        self.edges = _Edges(rating=values[order, 0], day=values[order, 1], trainees=values[order, 2])
        self.edge_rating_weight = rating_weight(self.edges.rating)
        solved.data = np.ones_like(solved.data)
        self.solved = sp.csr_matrix(solved, dtype=np.float32)  # workers x history problems
        self.solved_csc = sp.csc_matrix(self.solved)
        self.n_solved = np.diff(self.solved.indptr).astype(np.float64)


    def _fit_text(self, reuse: RankingIndex | None, changed: Collection[tuple[str, ...]] | None,
                  same_skills: bool) -> None:
        """The text model (fitted on the history problems), their rows, the profiles' rows, BM25 weights."""
        proj = self.projection
        hp = self.hp
        p_props = proj.props["Problem"]
        self.problem_texts: list[str]
        if reuse is not None and changed is not None:
            old_pos, old_texts = reuse.hp_pos, reuse.problem_texts
            self.problem_texts = [old_texts[old_pos[int(p)]] if int(p) in old_pos and (
                "Problem", proj.ids["Problem"][int(p)]) not in changed else problem_text(p_props[int(p)]) for p in hp]
        else:
            self.problem_texts = [problem_text(p_props[int(p)]) for p in hp]
        problem_ids = [proj.ids["Problem"][int(p)] for p in hp]
        if reuse is None:
            # the vocabulary and idf come from the evidence itself (solved history problems)
            self.text = TextModel()
            self.docs: TextViews = self.text.fit_transform(self.problem_texts)
        else:
            self.text = reuse.text
            before = [reuse.projection.ids["Problem"][int(p)] for p in reuse.hp]
            self.docs = _reuse_rows(self.text, list(zip(problem_ids, self.problem_texts, strict=True)),
                                    list(zip(before, reuse.problem_texts, strict=True)), reuse.docs)
        # term -> history problems (an inverted index): one query's cosines are one sparse product; the
        # postings the first retrieval pass reads (the rarer terms') stored together, ahead of the others
        self.docs_word_t = TermPostings.from_csr(self.docs.word.T, self.common_term_share)
        # what a query reads of the word and character views: their values in half precision (docs is the build's)
        self.word_rows = HalfRows.from_csr(self.docs.word)
        self.char_rows = HalfRows.from_csr(self.docs.char)
        aliases: dict[str, list[str]] = {}
        for sid, sprops in zip(proj.ids["Skill"], proj.props["Skill"], strict=True):
            if sprops.get("aliases"):
                aliases[sid] = list(sprops["aliases"])
        self.profile_texts: list[str]
        if reuse is not None and changed is not None and same_skills:
            w_ids = proj.ids["Worker"]
            self.profile_texts = [reuse.profile_texts[i] if i < reuse.n_workers and ("Worker", w_ids[i]) not in changed
                                  else profile_text(self._worker_row(i), aliases) for i in range(self.n_workers)]
        else:
            self.profile_texts = [profile_text(self._worker_row(i), aliases) for i in range(self.n_workers)]
        if reuse is None:
            self.profiles = self.text.transform(self.profile_texts)
        else:
            self.profiles = _reuse_rows(self.text, list(enumerate(self.profile_texts)),
                                        list(enumerate(reuse.profile_texts)), reuse.profiles)
        self.profiles_word_t = sp.csr_matrix(self.profiles.word.T)
        worker_counts = self.solved @ self.docs.counts
        # workers x terms: the counts recovered from the solved problems' word rows a query reads anyway where
        # that gives every count back exactly, else kept as they are
        self.bm25 = BM25Rows.fit(sp.csr_matrix(worker_counts), recovered=SolvedCounts.recover(
            self.solved, self.word_rows, self.docs.counts, self.text.word_idf))


    def _fit_skills(self, hidden_declared: sp.spmatrix | None) -> None:
        """Required, solved and declared skills: idf, per-worker counts and profiles."""
        proj = self.projection
        hp = self.hp
        requires = proj.matrix("REQUIRES", "Problem", "Skill")
        self.problem_skills = sp.csr_matrix(requires[hp]) if len(hp) else sp.csr_matrix((0, self.n_skills))
        df = np.bincount(self.problem_skills.indices, minlength=self.n_skills).astype(np.float64)
        self.skill_idf = np.log((len(hp) + 1.0) / (df + 1.0)) + 1.0
        self.skill_counts = sp.csr_matrix(self.solved @ self.problem_skills)  # workers x skills
        prof = self.skill_counts.copy().astype(np.float32)
        prof.data = np.log1p(prof.data)
        self.skill_profiles = _row_normalise(sp.csr_matrix(prof @ sp.diags(self.skill_idf.astype(np.float32))))
        logc = self.skill_counts.copy().astype(np.float64)
        logc.data = np.log1p(logc.data)
        self.skill_logcounts_csc = sp.csc_matrix(logc)
        self.skill_counts_csc = sp.csc_matrix(self.skill_counts)
        declared = sp.csr_matrix(proj.matrix("HAS_SKILL", "Worker", "Skill"), dtype=np.float32)
        if hidden_declared is not None:
            declared = sp.csr_matrix(declared - declared.multiply(sp.csr_matrix(hidden_declared) > 0))
            declared.eliminate_zeros()
        self.declared = declared
        self.declared_csc = sp.csc_matrix(self.declared)
        #: per worker, the names of its declared skills (sets made when asked, from ``declared``'s rows)
        self.declared_sets = DeclaredSkills(self.declared, proj.ids["Skill"])

    def _fit_context(self) -> None:
        """Enterprises, industry chains and districts: of the history problems and of the workers' solved work."""
        proj = self.projection
        hp = self.hp
        posted = proj.matrix("POSTED", "Enterprise", "Problem")
        self.problem_enterprise = sp.csr_matrix(posted.T)[hp] if len(hp) else sp.csr_matrix((0, posted.shape[0]))
        self.worker_enterprise = sp.csr_matrix(self.solved @ self.problem_enterprise)
        self.enterprise_chain = proj.matrix("IN_CHAIN", "Enterprise", "IndustryChain")
        self.worker_chain = sp.csr_matrix(self.worker_enterprise @ self.enterprise_chain)
        p_district = proj.matrix("LOCATED_IN", "Problem", "District")
        self.problem_district = sp.csr_matrix(p_district[hp]) if len(hp) else sp.csr_matrix((0, p_district.shape[1]))
        self.worker_district_work = sp.csc_matrix(self.solved @ self.problem_district)
        self.worker_enterprise_csc = sp.csc_matrix(self.worker_enterprise)
        self.worker_chain_csc = sp.csc_matrix(self.worker_chain)
        adj = proj.matrix("ADJACENT_TO", "District", "District")
        self.district_adjacency = sp.csr_matrix(((adj + adj.T) > 0).astype(np.float32))


    def _fit_priors(self, reuse: RankingIndex | None) -> None:
        """Recent activity, shrunk outcome quality, trainees, and the worker flags."""
        proj = self.projection
        hp = self.hp
        n_problems = proj.n("Problem")
        # recent activity: each solved problem counts 0.5 ** (problems posted after it / half-life)
        if reuse is not None and len(reuse.problem_order) <= n_problems:  # problems added since are the newest
            self.problem_order = np.concatenate([reuse.problem_order,
                                                 np.arange(len(reuse.problem_order), n_problems, dtype=np.int64)])
        else:
            self.problem_order = time_order(proj)
        age = np.empty(n_problems, dtype=np.float64)
        age[self.problem_order[::-1]] = np.arange(n_problems, dtype=np.float64)
        age_h = age[hp] - (age[hp].min() if len(hp) else 0.0)  # counted from the newest history problem
        half_life = max(ACTIVITY_HALF_LIFE * len(hp), 1.0)
        decay = np.exp2(-age_h / half_life)
        self.activity = np.log1p(np.asarray(self.solved @ decay, dtype=np.float64).ravel())
        rated = ~np.isnan(self.edges.rating)
        rows = np.repeat(np.arange(self.n_workers), np.diff(self.solved.indptr))
        rating_sum = np.bincount(rows[rated], weights=self.edges.rating[rated], minlength=self.n_workers)
        rating_n = np.bincount(rows[rated], minlength=self.n_workers)
        # shrunk towards a middling rating, as if every worker had RATING_PRIOR_WEIGHT such ratings more
        self.quality = ((rating_sum + RATING_PRIOR * RATING_PRIOR_WEIGHT) / (rating_n + RATING_PRIOR_WEIGHT)
                        - RATING_PRIOR)
        trained = np.nan_to_num(self.edges.trainees)
        self.trainees = np.bincount(rows, weights=trained, minlength=self.n_workers)
        self.read_worker_flags()


    def _fit_expertise(self, reuse: RankingIndex | None, changed: Collection[tuple[str, ...]] | None) -> None:
        """The learned expertise model: fitted, kept, or its worker tower refitted (new evidence)."""
        hp = self.hp
        self.expertise: ExpertiseModel | None = None
        if reuse is None or reuse.expertise is None:
            self.expertise = fit_expertise(self.docs.word, self.solved, skills=self.problem_skills,
                                           skill_idf=self.skill_idf, skill_weight=self.expertise_skill_weight)
        elif (changed is not None and np.array_equal(reuse.hp, hp) and reuse.solved.shape == self.solved.shape
              and (reuse.solved != self.solved).nnz == 0 and not self._history_text_changed(changed)):
            self.expertise = reuse.expertise  # same evidence: nothing to refit
        else:  # new solves, workers or edited history texts: the worker tower again, the problem tower kept
            self.expertise = refit_workers(reuse.expertise, self.docs.word, self.solved, skills=self.problem_skills)


    def _fit_dense(self, vectors: Mapping[str, np.ndarray] | None, reuse: RankingIndex | None) -> None:
        """The encoder's vectors of the history problems and profiles (cached, reused or encoded)."""
        encoder = self.encoder
        hp = self.hp
        problem_ids = [self.projection.ids["Problem"][int(p)] for p in hp]
        self.dense_docs: np.ndarray | None = None
        self.dense_profiles: np.ndarray | None = None
        if encoder is not None:
            known = dict(vectors or {})
            if reuse is not None and reuse.dense_docs is not None:
                now = dict(zip(problem_ids, self.problem_texts, strict=True))
                for h, text in enumerate(reuse.problem_texts):
                    pid = reuse.problem_id(h)
                    if pid not in known and now.get(pid) == text:
                        known[pid] = reuse.dense_docs[h]
            pids = problem_ids
            missing = [i for i, pid in enumerate(pids) if pid not in known]
            docs = np.zeros((len(hp), encoder.dim), dtype=np.float32)
            for i, pid in enumerate(pids):
                if pid in known:
                    docs[i] = known[pid]
            if missing:
                docs[missing] = encoder.encode([self.problem_texts[i] for i in missing])
            self.dense_docs = docs
            self.dense_profiles = None
            if self.profile_texts:
                self.dense_profiles = np.zeros((self.n_workers, encoder.dim), dtype=np.float32)
                redo = list(range(self.n_workers))
                if reuse is not None and reuse.dense_profiles is not None:
                    same = [i for i in range(min(self.n_workers, reuse.n_workers))
                            if reuse.profile_texts[i] == self.profile_texts[i]]
                    self.dense_profiles[same] = reuse.dense_profiles[same]
                    redo = sorted(set(redo) - set(same))
                if redo:
                    self.dense_profiles[redo] = encoder.encode([self.profile_texts[i] for i in redo])

    def _history_text_changed(self, changed: Collection[tuple[str, ...]]) -> bool:
        """Whether ``changed`` names a problem of the history (its text may have been edited)."""
        at = self.projection.index["Problem"]
        return any(len(key) == 2 and key[0] == "Problem" and int(at.get(key[1], -1)) in self.hp_pos
                   for key in changed)

    def _worker_row(self, i: int) -> dict[str, Any]:
        row = dict(self.projection.props["Worker"][i])
        extra = row.get("extra") or {}
        if isinstance(extra, dict):
            for key, value in extra.items():
                row.setdefault(key, value)
        return row

    def hub_worker_scores(self, damping: float) -> np.ndarray:
        """``(n workers, n hubs)``: the walk's hub vectors (:func:`recommender.walk.hub_worker_scores`)."""
        return hub_worker_scores(self, damping)

    def read_worker_flags(self) -> None:
        """(Re)read what comes from worker properties alone: district, employer, activity, capacity,
        teaching record and honours (after a worker is edited; no text or edge depends on them)."""
        # one row at a time: a list of every worker's decoded row (profile texts included) took 283 MB at 136.5k
        # workers, which the allocator kept after the rows were freed
        props = self.projection.props["Worker"]
        n = self.n_workers
        districts: list[Any] = [None] * n
        employers: list[Any] = [None] * n
        self.worker_active = np.ones(n, dtype=bool)
        self.worker_capacity = np.zeros(n)
        teaches = np.zeros(n, dtype=bool)
        self.honours = np.zeros(n)
        known: dict[Any, Any] = {}  # one object per distinct district or employer, not one per worker
        for i in range(n):
            w = props[i]
            district, employer = w.get("district"), w.get("employer_id")
            districts[i] = known.setdefault(district, district) if isinstance(district, str) else district
            employers[i] = known.setdefault(employer, employer) if isinstance(employer, str) else employer
            self.worker_active[i] = w.get("active") is not False
            self.worker_capacity[i] = float(capacity_of(w))
            teaches[i] = bool(w.get("teaches"))
            self.honours[i] = len(w.get("honours") or []) + _LEVEL_SCORE.get(str(w.get("level") or ""), 0.0)
        self.worker_district = districts
        self.worker_employer = employers
        self.teaches = teaches | (self.trainees > 0)
        by_district: dict[Any, list[int]] = {}
        for i, d in enumerate(self.worker_district):
            by_district.setdefault(d, []).append(i)
        #: district -> its workers, most problems solved first
        self.district_workers = {d: np.array(sorted(ws, key=lambda w: -self.n_solved[w]), dtype=np.int64)
                                 for d, ws in by_district.items() if d}

    def hub_keys(self) -> list[tuple[str, str]]:
        """The walk's hubs as ``(label, node id)``, in walk order."""
        out: list[tuple[str, str]] = []
        blocks = sorted(self.walk_offset.items(), key=lambda item: item[1])
        for node in self.walk_hubs:
            label, start = next((lab, at) for lab, at in reversed(blocks) if at <= node)
            local = int(node) - start
            out.append((label, self.problem_id(local) if label == "Problem" else self.projection.ids[label][local]))
        return out

    # -- one query against everything ----------------------------------------------------------
    #: First-pass retrieval ignores query terms found in more than this share of the history problems.
    common_term_share: float = 0.02
    #: First-pass retrieval keeps this many problems for exact rescoring.
    shortlist: int = 2000
    #: First-pass retrieval reads at most about this many postings (the rarest terms first), so a
    #: long query costs the same at a million history problems as at a hundred thousand.
    postings_budget: int = 200_000
    #: ...but always the postings of at least this many of the query's rarest terms.
    first_pass_min_terms: int = 8

    def similar_problems(self, query: sp.csr_matrix, k: int, *, exclude: int = -1) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` history problems with the highest word cosine to one query row, and those cosines.

        Two passes: the postings of the query's rarer terms (those in at most
        :attr:`common_term_share` of the history; the rarest few when all are common) shortlist
        :attr:`shortlist` problems, which are then scored exactly with every term. Common terms
        carry little idf weight but most of the postings (single CJK characters), so the first pass
        reads a few percent of what an exact scan would, and the result differs from the exact top
        ``k`` only when a problem matches on common terms alone. On a large history the rare terms
        alone can still have many postings: the first pass then takes them rarest first up to
        :attr:`postings_budget` postings (always at least the rarest :attr:`first_pass_min_terms`).
        ``exclude`` (a history position, e.g. the query's own problem) is never returned.
        """
        n = len(self.hp)
        if not query.nnz or not n or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        df = self.docs_word_t.df_of(query.indices)
        rare = rare_terms(df, n, self.common_term_share)
        by_df = np.argsort(df, kind="stable")
        if not rare.any():
            rare[by_df[:self.first_pass_min_terms]] = True
        if int(df[rare].sum()) > self.postings_budget:
            order = by_df[rare[by_df]]  # the rare terms, rarest first
            within = np.cumsum(df[order]) <= self.postings_budget
            within[:self.first_pass_min_terms] = True
            rare = np.zeros(len(df), dtype=bool)
            rare[order[within]] = True
        first = _postings_dot(self.docs_word_t, sp.csr_matrix(
            (query.data[rare], query.indices[rare], np.array([0, int(rare.sum())])), shape=query.shape), n)
        if 0 <= exclude < n:
            first[exclude] = 0.0
        hits = np.flatnonzero(first)
        if len(hits) > self.shortlist:
            hits = hits[np.argpartition(-first[hits], self.shortlist - 1)[:self.shortlist]]
        exact = np.zeros(len(hits), dtype=np.float32)
        if len(hits):  # the shortlist's rows on the query's terms (the other terms would add zeros)
            terms = np.unique(query.indices)
            dense = local_columns(query, terms, np.float64)[:, 0]
            exact = np.asarray(rows_on(self.word_rows, hits, terms) @ dense, dtype=np.float32)
        if len(hits) > k:
            top = np.argpartition(-exact, k - 1)[:k]
            hits, exact = hits[top], exact[top]
        order = np.lexsort((hits, -exact))
        return hits[order].astype(np.int64), exact[order]

    def word_similarities(self, query: sp.csr_matrix) -> np.ndarray:
        """Word TF-IDF cosines of one query row (``text.transform(...).word``) to every history problem.

        Reads only the postings of the query's terms (one sparse product over the inverted index).
        """
        return _postings_dot(self.docs_word_t, query, len(self.hp))

    def profile_similarities(self, query: sp.csr_matrix) -> np.ndarray:
        """Word TF-IDF cosines of one query row to every worker's profile text."""
        return _postings_dot(self.profiles_word_t, query, self.n_workers)

    # -- small lookups ---------------------------------------------------------------------------
    def problem_id(self, h: int) -> str:
        """Problem id of a history column."""
        return self.projection.ids["Problem"][int(self.hp[h])]

    def worker_history(self, w: int) -> np.ndarray:
        """History columns of the problems a worker solved."""
        return self.solved.indices[self.solved.indptr[w]:self.solved.indptr[w + 1]]

    def describe(self) -> dict[str, Any]:
        """Sizes, for logs and model metadata."""
        return {"workers": self.n_workers, "history_problems": int(len(self.hp)), "skills": self.n_skills,
                "walk_nodes": self.walk_size, "walk_edges": int(self.walk.nnz),
                "walk_hubs": int(len(self.walk_hubs)),
                "encoder": getattr(self.encoder, "identity", None)}

    def __repr__(self) -> str:
        return f"RankingIndex({json.dumps(self.describe(), ensure_ascii=False)})"
