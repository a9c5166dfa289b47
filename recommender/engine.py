"""The product ranker: :class:`Recommender` (interface in ``docs/interfaces.md``).

A recommendation runs in three steps over a :class:`~recommender.index.RankingIndex` built once
from the store's projection:

1. **candidate generation** (when no candidates are given and there are more workers than
   ``RankConfig.max_candidates``): solvers of the most similar past problems, workers whose
   profile text is closest (cold start), workers declaring or having solved the required skills,
   and workers of the problem's district for on-site help;
2. **hard filters**: inactive workers, workers at capacity (capacity minus this month's invited or
   accepted matches), conflicts of interest (a worker is not suggested to their own employer);
3. **full scoring** of the survivors (every signal of :mod:`recommender.features`), fusion, then
   adjustments for declines of similar requests and current load, and explanations for the top n.
"""

from __future__ import annotations

import os
import threading
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, cast

import numpy as np

from graph.projection import Projection
from graph.store import GraphStore
from recommender.errors import InvalidQuery, ModelNotFound, UnknownProblem, UnknownWorker
from recommender.explain import Explanation
from recommender.explain import explain as build_explanation
from recommender.features import FEATURES, ONSITE_TYPES, Query, compute_features
from recommender.fusion import BoostedFusion, Fusion, WeightedFusion, fingerprint
from recommender.index import Encoder, RankingIndex
from recommender.text import problem_text
from recommender.training import TrainedRanker, make_pseudo_queries, skill_aliases, time_order

__all__ = ["Explanation", "ProblemSuggestion", "RankConfig", "Recommendation", "Recommender"]

_DOMAIN_KEYS = ("Worker", "Problem", "Skill", "Enterprise", "IndustryChain", "District", "SOLVED", "REQUIRES",
                "HAS_SKILL", "POSTED", "IN_CHAIN", "LOCATED_IN", "ADJACENT_TO", "EMPLOYED_BY")


@dataclass
class RankConfig:
    """Ranking settings.

    Attributes
    ----------
    weights
        Feature weights of the configured fusion (``None``: :data:`recommender.fusion.DEFAULT_WEIGHTS`).
    use_learned
        Use a model saved by ``jianglian train-ranker`` when one is present in ``model_dir``.
    model_dir
        Where ``ranker.json`` lives; ``None``: ``<JIANGLIAN_DATA_DIR>/models`` (for the embedded store,
        beside its data directory).
    max_candidates
        Above this many workers, candidates are generated instead of scoring everybody.
    similar_problems
        How many most similar past problems contribute their solvers as candidates.
    allow_conflicts
        Suggest workers to their own employer too.
    decline_weight, load_weight
        Score subtracted per unit of similarity to a declined request, and per unit of load/capacity.
    damping
        Continuation probability of the personalised PageRank.
    auto_refresh
        Pick up store writes automatically before each request (cheap when only workflow nodes changed).
    """

    weights: dict[str, float] | None = None
    use_learned: bool = True
    model_dir: Path | None = None
    max_candidates: int = 400
    similar_problems: int = 100
    allow_conflicts: bool = False
    decline_weight: float = 1.0
    load_weight: float = 0.5
    damping: float = 0.5
    auto_refresh: bool = True


@dataclass
class Recommendation:
    """One ranked worker."""

    worker_id: str
    score: float
    components: dict[str, float]
    explanation: Explanation | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"worker_id": self.worker_id, "score": round(float(self.score), 6),
                "components": {k: round(float(v), 6) for k, v in self.components.items()},
                "explanation": None if self.explanation is None else self.explanation.to_dict()}


@dataclass
class ProblemSuggestion:
    """One open problem suggested to a worker."""

    problem_id: str
    title: str
    score: float
    components: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Workflow:
    """Match state read from the store: current load and declined problems per worker."""

    load: Counter[str] = field(default_factory=Counter)
    declined: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


class Recommender:
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

    def __init__(self, store: GraphStore, *, encoder: Encoder | None = None, config: RankConfig | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.config = config or RankConfig()
        self._lock = threading.RLock()
        self.model_version = ""
        self._build()

    # -- life cycle -------------------------------------------------------------------------
    def _domain_signature(self) -> tuple[int, ...]:
        counts = self.store.counts()
        return tuple(counts.get(k, 0) for k in _DOMAIN_KEYS)

    def _build(self) -> None:
        with self._lock:
            self._revision = self.store.revision
            self._signature = self._domain_signature()
            self.projection = Projection.from_store(self.store)
            vectors = self._cached_vectors()
            self.index = RankingIndex(self.projection, encoder=self.encoder, vectors=vectors)
            self._aliases = skill_aliases(self.projection)
            self._workflow = self._read_workflow()
            self._set_fusion()

    def _cached_vectors(self) -> dict[str, np.ndarray] | None:
        if self.encoder is None:
            return None
        try:
            from embeddings.cache import EmbeddingCache

            cache = EmbeddingCache(self.store, cast(Any, self.encoder), "Problem", "embedding")
            texts = {pid: problem_text(p) for pid, p in zip(self.projection.ids["Problem"],
                                                            self.projection.props["Problem"], strict=True)}
            ids, matrix = cache.vectors(texts)
            return dict(zip(ids, np.asarray(matrix, dtype=np.float32), strict=True))
        except Exception:  # noqa: BLE001 - the cache is an optimisation; encode directly instead
            return None

    def _model_dir(self) -> Path | None:
        if self.config.model_dir is not None:
            return Path(self.config.model_dir)
        data_dir = getattr(self.store, "data_dir", None)
        if data_dir is not None:
            return Path(data_dir).parent / "models"
        env = os.environ.get("JIANGLIAN_DATA_DIR")
        return Path(env) / "models" if env else None

    def _set_fusion(self) -> None:
        """Use the saved learned model when present and compatible, else calibrated weights."""
        self._weighted = self._calibrated_weights()
        fusion: Fusion = self._weighted
        version = f"fused-weights@{fingerprint(self._weighted.to_dict())}"
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
        self._linear = fusion if not isinstance(fusion, BoostedFusion) else self._weighted

    def _calibrated_weights(self, sample: int = 200, seed: int = 0) -> WeightedFusion:
        """The configured weights with a feature scaler fitted on recent solved problems (self excluded)."""
        proj = self.projection
        order = time_order(proj)
        solved = self.index.solved
        recent = order[np.isin(order, self.index.hp)][-sample:]
        rows: list[np.ndarray] = []
        if len(recent) and solved.nnz:
            pseudo = make_pseudo_queries(proj, recent, np.ones(proj.n("Problem"), dtype=bool), n_negatives=19,
                                         seed=seed)
            if len(pseudo):
                rows, _ = compute_features(self.index, pseudo.queries, pseudo.candidates, damping=self.config.damping)
        x = np.vstack(rows) if rows else np.zeros((2, len(FEATURES)))
        return WeightedFusion(weights=self.config.weights).fit(x)

    def _read_workflow(self) -> _Workflow:
        wf = _Workflow()
        month = date.today().strftime("%Y-%m")
        for state in ("invited", "accepted"):
            for m in self.store.list_nodes("Match", where={"state": state}):
                created = str(m.get("created_at") or "")
                if not created or created.startswith(month):
                    wf.load[str(m.get("worker_id"))] += 1
        for m in self.store.list_nodes("Match", where={"state": "declined"}):
            if m.get("problem_id"):
                wf.declined[str(m.get("worker_id"))].append(str(m["problem_id"]))
        return wf

    def refresh(self) -> None:
        """Pick up store writes: workflow state always; the projection and index when the graph changed.

        Only node counts and relationship counts are compared to detect a graph change, plus a
        re-read of worker and problem properties (activity, capacity, status, text); a change
        that keeps every count but rewires relationships needs :meth:`rebuild`.
        """
        with self._lock:
            if self.store.revision == self._revision:
                return
            signature = self._domain_signature()
            if signature != self._signature:
                self._build()
                return
            texts_before = [problem_text(p) for p in self.projection.props["Problem"]]
            profiles_before = list(self.index.profile_texts)
            for label in ("Worker", "Problem"):
                for node in self.store.iter_nodes(label):
                    self.projection.add_node(label, node["id"], node)
            if texts_before != [problem_text(p) for p in self.projection.props["Problem"]]:
                self._build()
                return
            self.index = RankingIndex(self.projection, encoder=self.encoder, vectors=self._cached_vectors()) \
                if profiles_before != self._profile_texts_now() else self._refresh_worker_flags()
            self._workflow = self._read_workflow()
            self._revision = self.store.revision

    def rebuild(self) -> None:
        """Rebuild everything from the store."""
        self._build()

    def _profile_texts_now(self) -> list[str]:
        from recommender.text import profile_text

        aliases: dict[str, list[str]] = {}
        for sid, sprops in zip(self.projection.ids["Skill"], self.projection.props["Skill"], strict=True):
            if sprops.get("aliases"):
                aliases[sid] = list(sprops["aliases"])
        return [profile_text(self.index._worker_row(i), aliases) for i in range(self.projection.n("Worker"))]

    def _refresh_worker_flags(self) -> RankingIndex:
        idx = self.index
        w_props = self.projection.props["Worker"]
        idx.worker_active = np.array([w.get("active") is not False for w in w_props], dtype=bool)
        idx.worker_capacity = np.array([float(w["capacity"]) if isinstance(w.get("capacity"), int | float)
                                        else np.inf for w in w_props])
        idx.worker_employer = [w.get("employer_id") for w in w_props]
        idx.worker_district = [w.get("district") for w in w_props]
        return idx

    # -- queries ----------------------------------------------------------------------------
    def _query(self, problem: Mapping[str, Any] | str) -> Query:
        if isinstance(problem, str):
            at = self.projection.index["Problem"].get(problem)
            if at is None:
                raise UnknownProblem(f"problem {problem!r} not found")
            row = dict(self.projection.props["Problem"][at])
            row["id"] = problem
            return Query.from_row(row, skill_of=self._aliases)
        if not isinstance(problem, Mapping):
            raise InvalidQuery("problem must be a stored problem id or a mapping")
        if not str(problem.get("title") or "").strip() and not str(problem.get("description") or "").strip():
            raise InvalidQuery("a problem needs a title or a description")
        skills = problem.get("skills") or []
        if isinstance(skills, str) or not all(isinstance(s, str) for s in skills):
            raise InvalidQuery("skills must be a list of strings")
        st = problem.get("service_type")
        if st is not None and not isinstance(st, str):
            raise InvalidQuery("service_type must be a string")
        row = dict(problem)
        if row.get("enterprise_id") and not row.get("district"):
            row["district"] = self.projection.prop("Enterprise", str(row["enterprise_id"]), "district")
        return Query.from_row(row, skill_of=self._aliases)

    def _generate(self, query: Query) -> np.ndarray:
        """Candidate workers for a query (indices)."""
        idx = self.index
        n = idx.n_workers
        cfg = self.config
        if n <= cfg.max_candidates:
            return np.arange(n)
        picked: list[np.ndarray] = []
        views = idx.text.transform([query.text])
        sims = (views.word @ idx.docs_word_t).toarray().ravel()
        pid = self.projection.index["Problem"].get(query.problem_id or "")
        if pid is not None and pid in idx.hp_pos:
            sims[idx.hp_pos[pid]] = 0.0
        k = min(cfg.similar_problems, int((sims > 0).sum()))
        if k:
            top = np.argpartition(-sims, k - 1)[:k]
            picked.append(_solvers(idx, top))
        prof = (views.word @ idx.profiles_word_t).toarray().ravel()
        k = min(100, int((prof > 0).sum()))
        if k:
            picked.append(np.argpartition(-prof, k - 1)[:k])
        sk = [self.projection.index["Skill"][s] for s in query.skills if s in self.projection.index["Skill"]]
        if sk:
            declared = idx.declared[:, sk].tocsc()
            who = np.unique(declared.indices)
            if len(who) > 200:
                who = who[np.argsort(-idx.n_solved[who], kind="stable")[:200]]
            picked.append(who)
            counts = np.asarray(idx.skill_counts[:, sk].sum(axis=1)).ravel()
            k = min(100, int((counts > 0).sum()))
            if k:
                picked.append(np.argpartition(-counts, k - 1)[:k])
        if query.service_type in ONSITE_TYPES and query.district:
            local = np.array([i for i, d in enumerate(idx.worker_district) if d == query.district], dtype=np.int64)
            if len(local) > 100:
                local = local[np.argsort(-idx.n_solved[local], kind="stable")[:100]]
            picked.append(local)
        if not picked:
            return np.argsort(-idx.n_solved, kind="stable")[:cfg.max_candidates]
        return np.unique(np.concatenate([p.astype(np.int64) for p in picked]))

    def _eligible(self, query: Query, cand: np.ndarray) -> np.ndarray:
        idx = self.index
        keep = idx.worker_active[cand].copy()
        ids = self.projection.ids["Worker"]
        load = np.array([self._workflow.load.get(ids[w], 0) for w in cand], dtype=np.float64)
        keep &= load < idx.worker_capacity[cand]
        if not self.config.allow_conflicts and query.enterprise_id:
            keep &= np.array([idx.worker_employer[w] != query.enterprise_id for w in cand], dtype=bool)
        return cand[keep]

    def _declined_similarity(self, query: Query, cand: np.ndarray) -> np.ndarray:
        ids = self.projection.ids["Worker"]
        out = np.zeros(len(cand))
        declined = self._workflow.declined
        if not declined:
            return out
        qv = self.index.text.transform([query.text]).word
        for i, w in enumerate(cand):
            problems = declined.get(ids[w])
            if not problems:
                continue
            if query.problem_id in problems:
                out[i] = 1.0
                continue
            texts = [problem_text(self.projection.props["Problem"][self.projection.index["Problem"][p]])
                     for p in problems if p in self.projection.index["Problem"]]
            if texts:
                out[i] = float((self.index.text.transform(texts).word @ qv.T).toarray().max())
        return out

    def _score(self, query: Query, cand: np.ndarray, *, keep_evidence: bool) -> tuple[np.ndarray, np.ndarray, Any]:
        feats, evidence = compute_features(self.index, [query], [cand], keep_evidence=keep_evidence,
                                           damping=self.config.damping)
        f = feats[0]
        fused = self.fusion.decision_function(f, np.zeros(len(f), dtype=np.int64)) if len(f) else np.zeros(0)
        return f, fused, evidence[0]

    def recommend(self, problem: Mapping[str, Any] | str, n: int = 10, *, candidates: Sequence[str] | None = None,
                  exclude: Sequence[str] | None = None, explain: bool = True) -> list[Recommendation]:
        """The ``n`` best eligible workers for a stored problem id or a new problem mapping.

        Raises
        ------
        UnknownProblem
            For an unknown problem id.
        InvalidQuery
            For a malformed problem, ``n < 1``, or a worker both in ``candidates`` and ``exclude``.
        """
        if n < 1:
            raise InvalidQuery("n must be at least 1")
        if candidates is not None and exclude is not None and set(candidates) & set(exclude):
            raise InvalidQuery("a worker cannot be both a candidate and excluded")
        if self.config.auto_refresh:
            self.refresh()
        with self._lock:
            query = self._query(problem)
            wpos = self.projection.index["Worker"]
            if candidates is not None:
                unknown = [c for c in candidates if c not in wpos]
                if unknown:
                    raise UnknownWorker(f"unknown worker(s): {', '.join(unknown[:5])}")
                cand = np.array(sorted({wpos[c] for c in candidates}), dtype=np.int64)
            else:
                cand = self._generate(query)
            if exclude:
                drop = {wpos[e] for e in exclude if e in wpos}
                cand = np.array([c for c in cand if c not in drop], dtype=np.int64)
            cand = self._eligible(query, cand)
            if not len(cand):
                return []
            return self._rank(query, cand, n, explain=explain)

    def _rank(self, query: Query, cand: np.ndarray, n: int, *, explain: bool) -> list[Recommendation]:
        f, fused, ev = self._score(query, cand, keep_evidence=explain)
        ids = self.projection.ids["Worker"]
        cfg = self.config
        declined = self._declined_similarity(query, cand)
        load = np.array([self._workflow.load.get(ids[w], 0) for w in cand], dtype=np.float64)
        cap = self.index.worker_capacity[cand]
        load_share = np.divide(load, cap, out=np.zeros_like(load), where=np.isfinite(cap) & (cap > 0))
        score = fused - cfg.decline_weight * declined - cfg.load_weight * load_share
        order = np.lexsort((cand, -score))[:n]
        contrib = self.fusion.contributions(f[order]) if hasattr(self.fusion, "contributions") else None
        out: list[Recommendation] = []
        for rank, j in enumerate(order):
            comps = {name: float(f[j, k]) for k, name in enumerate(FEATURES) if f[j, k] != 0.0}
            if contrib is not None:
                comps.update({f"{name}@fused": float(contrib[rank, k]) for k, name in enumerate(FEATURES)
                              if contrib[rank, k] != 0.0})
            comps["fused"] = float(fused[j])
            if declined[j]:
                comps["decline_penalty"] = -cfg.decline_weight * float(declined[j])
            if load_share[j]:
                comps["load_penalty"] = -cfg.load_weight * float(load_share[j])
            expl = None
            if explain:
                expl = build_explanation(self.index, query, int(cand[j]), f[j], ev.word_sims,
                                          load=int(load[j]), capacity=float(cap[j]),
                                          declined_similar=float(declined[j]))
            out.append(Recommendation(ids[int(cand[j])], float(score[j]), comps, expl))
        return out

    def recommended_problems(self, worker_id: str, n: int = 10) -> list[ProblemSuggestion]:
        """Open problems ranked for a worker (conflicts of interest left out)."""
        if n < 1:
            raise InvalidQuery("n must be at least 1")
        if self.config.auto_refresh:
            self.refresh()
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
            f = np.vstack(feats)
            scores = self._linear.decision_function(f)
            order = np.lexsort((np.arange(len(scores)), -scores))[:n]
            return [ProblemSuggestion(open_ids[j], str(self.projection.prop("Problem", open_ids[j], "title") or ""),
                                      float(scores[j]), {name: float(f[j, k]) for k, name in enumerate(FEATURES)
                                                         if f[j, k] != 0.0}) for j in order]

    def score_pairs(self, problem_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Fused scores of the eligible workers per problem (campaign assignment input).

        Scores come from the linear fusion, so they are comparable across problems.
        """
        if self.config.auto_refresh:
            self.refresh()
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            for pid in problem_ids:
                query = self._query(pid)
                cand = self._eligible(query, self._generate(query))
                if not len(cand):
                    out[pid] = {}
                    continue
                feats, _ = compute_features(self.index, [query], [cand], damping=self.config.damping)
                scores = self._linear.decision_function(feats[0])
                declined = self._declined_similarity(query, cand)
                scores = scores - self.config.decline_weight * declined
                ids = self.projection.ids["Worker"]
                out[pid] = {ids[int(w)]: float(s) for w, s in zip(cand, scores, strict=True)}
        return out


def _solvers(index: RankingIndex, history_cols: np.ndarray) -> np.ndarray:
    """Workers who solved any of the given history problems."""
    csc = index.solved_csc
    parts = [csc.indices[csc.indptr[c]:csc.indptr[c + 1]] for c in history_cols]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
