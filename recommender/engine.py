"""The product ranker: :class:`Recommender` (interface in ``docs/interfaces.md``).

The :class:`Recommender` is a facade over three rooms:

- :mod:`recommender.lifecycle`: the :class:`~recommender.index.RankingIndex` it reads, built once from the
  store's projection (or mapped from stored files) and kept current from the change feed;
- :mod:`recommender.pipeline`: one recommendation as named stages (the query analysed once, similar
  problems, candidates, filter, score, fuse and adjust, explain);
- the fusion chosen here (a model saved by ``jianglian train-ranker``, else the query-normalised default;
  for campaign assignment the linear fusion whose scores compare across problems).

``from recommender.engine import Recommender, RankConfig, Recommendation, ProblemSuggestion`` is the public API.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from graph.rules import current_month
from graph.store import GraphStore
from recommender.config import RankConfig
from recommender.errors import InvalidQuery, ModelNotFound, UnknownWorker
from recommender.explain import Explanation
from recommender.features import FEATURES, compute_features
from recommender.fusion import Fusion, PairwiseLogisticFusion, QueryNormFusion, WeightedFusion, fingerprint
from recommender.index import Encoder
from recommender.lifecycle import IndexLifecycle
from recommender.open_problems import OpenProblems
from recommender.pipeline import (
    DeclinedRows,
    MatchState,
    ProblemSuggestion,
    Recommendation,
    declined_similarity,
    eligible,
    generate_candidates,
    given_candidates,
    make_query,
    rank,
    read_match_state,
    score,
    similar_problems,
)
from recommender.query import Query, vectorise
from recommender.training import N_NEGATIVES, TrainedRanker, make_pseudo_queries, skill_aliases, time_order

__all__ = ["Explanation", "ProblemSuggestion", "RankConfig", "Recommendation", "Recommender"]

_log = logging.getLogger(__name__)


class Recommender(IndexLifecycle):
    """Rank workers for problems (and open problems for workers) over a graph store.

    Parameters
    ----------
    store
        The graph store (embedded or Neo4j).
    encoder
        Optional dense text encoder; without one the text signals are TF-IDF only.
    config
        Ranking settings.
    """

    #: How many analysed queries (text rows, dense vector, similar problems) are remembered per index: a campaign
    #: plan asks for every open problem (up to 200) on each page view.
    analysed_memo: int = 1024

    def __init__(self, store: GraphStore, *, encoder: Encoder | None = None, config: RankConfig | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.config = config or RankConfig()
        self.model_version = ""
        self._start()

    # -- what follows a new or patched index --------------------------------------------------------
    def _installed(self) -> None:
        self._aliases = skill_aliases(self.projection)
        self._workflow_key: tuple[int | None, str] = (None, "")
        self._declined_cache: DeclinedRows | None = None
        self._open: OpenProblems | None = None  # a new text model: nothing of the old rows is reusable
        self._analysed: OrderedDict[tuple[str, str | None], tuple[Any, Any, tuple[np.ndarray, np.ndarray]]] = (
            OrderedDict())
        self._current_workflow()
        self._set_fusion()

    def _patched(self, *, index: bool, skills: bool) -> None:
        if index:
            self._declined_cache = None
            self._analysed.clear()
        if skills:
            self._aliases = skill_aliases(self.projection)

    # -- the fusion -----------------------------------------------------------------------------------
    def _model_dir(self) -> Path | None:
        if self.config.model_dir is not None:
            return Path(self.config.model_dir)
        data_dir = getattr(self.store, "data_dir", None)
        return Path(data_dir).parent / "models" if data_dir is not None else None

    def _set_fusion(self) -> None:
        """Use the saved model when present and compatible, else the query-normalised default fusion.

        Campaign assignment (:meth:`score_pairs`) needs scores comparable across problems: it uses
        the configured weights over globally calibrated features instead (or a saved pairwise model).
        """
        self._linear_fusion: WeightedFusion | PairwiseLogisticFusion | None = None
        default = QueryNormFusion(weights=self.config.weights).fit()
        fusion: Fusion = default
        version = f"fused-default@{fingerprint(default.to_dict())}"
        model_dir = self._model_dir()
        if self.config.use_learned and model_dir is not None and (model_dir / "ranker.json").is_file():
            try:
                trained = TrainedRanker.load(model_dir)
                same_encoder = trained.meta.get("encoder") == getattr(self.encoder, "identity", None)
                if same_encoder:
                    fusion, version = trained.fusion, trained.version
            except ModelNotFound:
                pass
        self.fusion = fusion
        self.model_version = version
        if isinstance(fusion, WeightedFusion | PairwiseLogisticFusion):
            self._linear_fusion = fusion

    @property
    def _linear(self) -> WeightedFusion | PairwiseLogisticFusion:
        """The fusion whose scores compare across problems (campaign assignment), calibrated on first use."""
        if self._linear_fusion is None:
            self._linear_fusion = self._calibrated_weights()
        return self._linear_fusion

    def _calibrated_weights(self, sample: int = 200, seed: int = 0) -> WeightedFusion:
        """The configured weights with a feature scaler fitted on recent solved problems (self excluded)."""
        proj = self.projection
        order = time_order(proj)
        solved = self.index.solved
        recent = order[np.isin(order, self.index.hp)][-sample:]
        rows: list[np.ndarray] = []
        if len(recent) and solved.nnz:
            pseudo = make_pseudo_queries(proj, recent, np.ones(proj.n("Problem"), dtype=bool), n_negatives=N_NEGATIVES,
                                         seed=seed)
            if len(pseudo):
                rows, _ = compute_features(self.index, pseudo.queries, pseudo.candidates, damping=self.config.damping)
        x = np.vstack(rows) if rows else np.zeros((2, len(FEATURES)))
        return WeightedFusion(weights=self.config.weights).fit(x)

    # -- match state ----------------------------------------------------------------------------------
    def _read_workflow(self) -> MatchState:
        return read_match_state(self.store)

    def _current_workflow(self) -> MatchState:
        """Match state, re-read only when the store says matches were written (or cannot tell) or a month began."""
        key = (self.store.label_revision("Match"), current_month())
        if key[0] is None or key != self._workflow_key:
            self._workflow = self._read_workflow()
            self._workflow_key = key
            self._declined_cache = None
        return self._workflow

    def _declined_rows(self) -> DeclinedRows:
        """The declined problems' word rows (kept until the matches or the index change)."""
        if self._declined_cache is None:
            self._declined_cache = DeclinedRows(self.index, self._workflow)
        return self._declined_cache

    # -- queries --------------------------------------------------------------------------------------
    def _query(self, problem: Mapping[str, Any] | str) -> Query:
        """The query of a stored problem id or a new problem (not yet vectorised)."""
        return make_query(self.projection, problem, self._aliases)

    def _similar(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        return similar_problems(self.index, query, max(self.config.similar_problems, 10))

    def _analyse(self, query: Query) -> tuple[Query, tuple[np.ndarray, np.ndarray]]:
        """The query vectorised (:func:`recommender.query.vectorise`) and its similar problems, remembered for
        the current index by text and problem id (what they depend on; the caller holds the lock)."""
        key = (query.text, query.problem_id)
        hit = self._analysed.get(key)
        if hit is not None:
            self._analysed.move_to_end(key)
            views, dense, similar = hit
            return replace(query, views=views, dense=dense), similar
        query = vectorise(self.index, query)
        similar = self._similar(query)
        self._analysed[key] = (query.views, query.dense, similar)
        while len(self._analysed) > self.analysed_memo:
            self._analysed.popitem(last=False)
        return query, similar

    def _eligible(self, query: Query, cand: np.ndarray) -> np.ndarray:
        return eligible(self.index, query, cand, self._workflow, allow_conflicts=self.config.allow_conflicts)

    def recommend(self, problem: Mapping[str, Any] | str, n: int = 10, *, candidates: Sequence[str] | None = None,
                  exclude: Sequence[str] | None = None, explain: bool = True) -> list[Recommendation]:
        """The ``n`` best eligible workers for a stored problem id or a new problem mapping.

        Raises
        ------
        UnknownProblem
            For an unknown problem id.
        InvalidQuery
            For a malformed problem, ``n < 1``, or a worker both in ``candidates`` and ``exclude``.
        UnknownWorker
            For a candidate that is not a stored worker.
        """
        if n < 1:
            raise InvalidQuery("n must be at least 1")
        if candidates is not None and exclude is not None and set(candidates) & set(exclude):
            raise InvalidQuery("a worker cannot be both a candidate and excluded")
        if self.config.auto_refresh:
            self.refresh()
        with self._lock:
            state = self._current_workflow()  # matches do not move the store's revision
            index = self.index
            query, similar = self._analyse(self._query(problem))
            if candidates is not None:
                cand = given_candidates(index, candidates)
            else:
                cand = generate_candidates(index, query, similar, self.config)
            if exclude:
                wpos = self.projection.index["Worker"]
                drop = {wpos[e] for e in exclude if e in wpos}
                cand = np.array([c for c in cand if c not in drop], dtype=np.int64)
            cand = self._eligible(query, cand)
            if not len(cand):
                return []
            feats, evidence = score(index, [query], [cand], [similar], damping=self.config.damping,
                                    keep_evidence=explain)
            return rank(index, query, cand, feats[0], evidence[0], self.fusion, n, state=state,
                        declined_rows=self._declined_rows(), config=self.config, explain=explain)

    def recommended_problems(self, worker_id: str, n: int = 10) -> list[ProblemSuggestion]:
        """Open problems ranked for a worker (conflicts of interest left out).

        The open problems' query rows are kept between calls (:class:`recommender.open_problems.OpenProblems`,
        rebuilt when the store's revision moves), so a call costs a few products over the worker's own
        rows; :meth:`_recommended_problems_direct` computes the same from scratch.
        """
        if n < 1:
            raise InvalidQuery("n must be at least 1")
        if self.config.auto_refresh:
            self.refresh()
        with self._lock:
            w = self.projection.index["Worker"].get(worker_id)
            if w is None:
                raise UnknownWorker(f"worker {worker_id!r} not found")
            opened = self._open_problems()
            keep = np.ones(len(opened), dtype=bool)
            employer = self.index.worker_employer[w]
            if not self.config.allow_conflicts and employer:
                keep = opened.enterprises != employer
            if not keep.any():
                return []
            f = opened.features(self.index, w)[keep]
            ids = [pid for pid, k in zip(opened.ids, keep, strict=True) if k]
            return self._suggestions(ids, f, n)

    def _open_problems(self) -> OpenProblems:
        """The open problems' query rows for the current index and store revision (rebuilt when stale)."""
        opened = self._open
        if opened is not None and opened.describes(self.index, self._revision):
            return opened
        ids = [pid for pid, p in zip(self.projection.ids["Problem"], self.projection.props["Problem"], strict=True)
               if p.get("status") == "open"]
        queries = [self._query(pid) for pid in ids]
        enterprises = [self.projection.prop("Problem", pid, "enterprise_id") for pid in ids]
        self._open = None  # the rows of an older index are dropped before the new ones are made
        self._open = OpenProblems(self.index, ids, queries, enterprises, revision=self._revision, reuse=opened)
        return self._open

    def _suggestions(self, ids: Sequence[str], f: np.ndarray, n: int) -> list[ProblemSuggestion]:
        scores = self._linear.decision_function(f)
        order = np.lexsort((np.arange(len(scores)), -scores))[:n]
        return [ProblemSuggestion(ids[j], str(self.projection.prop("Problem", ids[j], "title") or ""),
                                  float(scores[j]), {name: float(f[j, k]) for k, name in enumerate(FEATURES)
                                                     if f[j, k] != 0.0}) for j in order]

    def _recommended_problems_direct(self, worker_id: str, n: int = 10) -> list[ProblemSuggestion]:
        """:meth:`recommended_problems` computed from scratch: every open problem's features for the worker
        by :func:`compute_features` (the oracle of the kept rows, in tests and ``benchmarks/``)."""
        with self._lock:
            w = self.projection.index["Worker"].get(worker_id)
            if w is None:
                raise UnknownWorker(f"worker {worker_id!r} not found")
            open_ids = [pid for pid, p in zip(self.projection.ids["Problem"], self.projection.props["Problem"],
                                              strict=True) if p.get("status") == "open"]
            employer = self.index.worker_employer[w]
            if not self.config.allow_conflicts and employer:
                open_ids = [p for p in open_ids if self.projection.prop("Problem", p, "enterprise_id") != employer]
            if not open_ids:
                return []
            queries = [self._query(pid) for pid in open_ids]
            feats, _ = compute_features(self.index, queries, [np.array([w])] * len(queries), ppr=False)
            return self._suggestions(open_ids, np.vstack(feats), n)

    def score_pairs(self, problem_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Fused scores of the eligible workers per problem (campaign assignment input).

        Scores come from the linear fusion, so they are comparable across problems. The problems' features
        are computed as one batch (:func:`recommender.features.compute_features`): a city-wide plan is
        every open problem against the same few hundred workers.
        """
        if self.config.auto_refresh:
            self.refresh()
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            state = self._current_workflow()
            index = self.index
            queries: list[Query] = []
            similar: list[tuple[np.ndarray, np.ndarray]] = []
            cands: list[np.ndarray] = []
            for pid in problem_ids:
                query, near = self._analyse(self._query(pid))
                cand = self._eligible(query, generate_candidates(index, query, near, self.config))
                out[pid] = {}
                if len(cand):
                    queries.append(query)
                    similar.append(near)
                    cands.append(cand)
            feats, _ = score(index, queries, cands, similar, damping=self.config.damping)
            linear = self._linear
            rows = self._declined_rows()
            ids = self.projection.ids["Worker"]
            for query, cand, f in zip(queries, cands, feats, strict=True):
                scores = linear.decision_function(f)
                declined = declined_similarity(index, query, cand, state, rows)
                scores = scores - self.config.decline_weight * declined
                out[str(query.problem_id)] = {ids[int(w)]: float(s) for w, s in zip(cand, scores, strict=True)}
        return out
