"""One recommendation as a pipeline of named stages over a :class:`~recommender.index.RankingIndex`.

1. **query** (:func:`make_query`, then :func:`recommender.features.vectorise`): a stored problem or a new
   one becomes a :class:`~recommender.features.Query`, and its text is analysed once (TF-IDF rows and the
   dense vector) for every stage below;
2. **similar problems** (:func:`similar_problems`): the history problems closest in wording (they seed
   candidate generation and the walk);
3. **candidates** (:func:`generate_candidates`, when no candidates are given and there are more workers than
   ``RankConfig.max_candidates``): solvers of the most similar past problems, workers whose profile text is
   closest (cold start), workers declaring or having solved the required skills, and workers of the
   problem's district for on-site help;
4. **filter** (:func:`eligible`): inactive workers, workers at capacity (the rule of
   :func:`graph.rules.counts_against_capacity`, shared with invitations and assignment), conflicts of
   interest (a worker is not suggested to their own employer);
5. **score** (:func:`score`): every signal of :mod:`recommender.features` for the survivors, in one batch
   for many queries (campaign assignment);
6. **fuse and adjust** (:func:`adjust`): the fusion's score minus the penalties for declines of similar
   requests (:func:`declined_similarity`) and for current load;
7. **explain** (:func:`rank`): the top ``n`` in order, with their components and explanations.

:class:`recommender.engine.Recommender` runs these stages under its lock against the index it keeps current.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import scipy.sparse as sp

from graph.projection import Projection
from graph.rules import counts_against_capacity, current_month
from graph.store import GraphStore
from recommender.config import RankConfig
from recommender.errors import InvalidQuery, UnknownProblem, UnknownWorker
from recommender.explain import Explanation
from recommender.explain import explain as build_explanation
from recommender.features import FEATURES, ONSITE_TYPES, QueryEvidence, compute_features
from recommender.index import RankingIndex
from recommender.query import Query, vectorise
from recommender.text import problem_text

__all__ = [
    "DeclinedRows", "MatchState", "ProblemSuggestion", "Recommendation", "adjust", "declined_similarity", "eligible",
    "generate_candidates", "given_candidates", "make_query", "rank", "read_match_state", "score", "similar_problems",
    "vectorise",
]


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
class MatchState:
    """Match state read from the store: current load and declined problems per worker."""

    load: Counter[str] = field(default_factory=Counter)
    declined: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


def read_match_state(store: GraphStore) -> MatchState:
    """Every worker's load this month and the problems they declined."""
    state = MatchState()
    month = current_month()
    for m in store.iter_nodes("Match"):
        if counts_against_capacity(m, month):
            state.load[str(m.get("worker_id"))] += 1
        elif m.get("state") == "declined" and m.get("problem_id"):
            state.declined[str(m.get("worker_id"))].append(str(m["problem_id"]))
    return state


# -- 1. the query --------------------------------------------------------------------------------
def make_query(projection: Projection, problem: Mapping[str, Any] | str, aliases: Mapping[str, str]) -> Query:
    """A stored problem's id or a new problem's row as a :class:`Query` (skill aliases resolved).

    Raises
    ------
    UnknownProblem
        For an unknown problem id.
    InvalidQuery
        For a malformed new problem.
    """
    if isinstance(problem, str):
        at = projection.index["Problem"].get(problem)
        if at is None:
            raise UnknownProblem(f"problem {problem!r} not found")
        row = dict(projection.props["Problem"][at])
        row["id"] = problem
        return Query.from_row(row, skill_of=aliases)
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
        row["district"] = projection.prop("Enterprise", str(row["enterprise_id"]), "district")
    return Query.from_row(row, skill_of=aliases)


def _word(index: RankingIndex, query: Query) -> sp.csr_matrix:
    """The query's word TF-IDF row (from its vectors when it has them)."""
    return (query.views if query.views is not None else vectorise(index, query).views).word  # type: ignore[union-attr]


# -- 2. similar problems ---------------------------------------------------------------------------
def similar_problems(index: RankingIndex, query: Query, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The query's ``k`` best-matching history problems (positions, word cosines), its own problem left out."""
    pid = index.projection.index["Problem"].get(query.problem_id or "")
    own = index.hp_pos.get(pid, -1) if pid is not None else -1
    return index.similar_problems(_word(index, query), k, exclude=own)


# -- 3. candidates ---------------------------------------------------------------------------------
def given_candidates(index: RankingIndex, candidates: Sequence[str]) -> np.ndarray:
    """Worker positions of the caller's candidates (sorted, each once).

    Raises
    ------
    UnknownWorker
        When a candidate is not a stored worker.
    """
    wpos = index.projection.index["Worker"]
    unknown = [c for c in candidates if c not in wpos]
    if unknown:
        raise UnknownWorker(f"unknown worker(s): {', '.join(unknown[:5])}")
    return np.array(sorted({wpos[c] for c in candidates}), dtype=np.int64)


def generate_candidates(index: RankingIndex, query: Query, similar: tuple[np.ndarray, np.ndarray],
                        config: RankConfig) -> np.ndarray:
    """Candidate workers for a query (positions): everybody while there are at most ``max_candidates``."""
    n = index.n_workers
    cfg = config
    if n <= cfg.max_candidates:
        return np.arange(n)
    proj = index.projection
    picked: list[np.ndarray] = []
    top, sims = similar
    top = top[sims > 0][:cfg.similar_problems]
    if len(top):
        picked.append(_solvers(index, top))
    prof = index.profile_similarities(_word(index, query))
    k = min(cfg.profile_candidates, int(np.count_nonzero(prof > 0)))
    if k:
        picked.append(np.argpartition(-prof, k - 1)[:k])
    sk = [proj.index["Skill"][s] for s in query.skills if s in proj.index["Skill"]]
    if sk:
        declared = index.declared_csc
        who = np.unique(np.concatenate([declared.indices[declared.indptr[s]:declared.indptr[s + 1]] for s in sk]))
        if len(who) > cfg.declared_candidates:
            who = who[np.argsort(-index.n_solved[who], kind="stable")[:cfg.declared_candidates]]
        picked.append(who)
        counts = np.asarray(index.skill_counts_csc[:, sk].sum(axis=1)).ravel()
        k = min(cfg.skill_candidates, int(np.count_nonzero(counts > 0)))
        if k:
            picked.append(np.argpartition(-counts, k - 1)[:k])
    if query.service_type in ONSITE_TYPES and query.district:
        local = index.district_workers.get(query.district, np.zeros(0, dtype=np.int64))
        picked.append(local[:cfg.district_candidates])
    if not picked:
        return np.argsort(-index.n_solved, kind="stable")[:cfg.max_candidates]
    return np.unique(np.concatenate([p.astype(np.int64) for p in picked]))


def _solvers(index: RankingIndex, history_cols: np.ndarray) -> np.ndarray:
    """Workers who solved any of the given history problems."""
    csc = index.solved_csc
    parts = [csc.indices[csc.indptr[c]:csc.indptr[c + 1]] for c in history_cols]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)


# -- 4. filter ---------------------------------------------------------------------------------------
def _loads(index: RankingIndex, cand: np.ndarray, state: MatchState) -> np.ndarray:
    ids = index.projection.ids["Worker"]
    return np.array([state.load.get(ids[w], 0) for w in cand], dtype=np.float64)


def eligible(index: RankingIndex, query: Query, cand: np.ndarray, state: MatchState, *,
             allow_conflicts: bool = False) -> np.ndarray:
    """The candidates that are active, below capacity and (unless allowed) not employed by the problem's enterprise."""
    keep = index.worker_active[cand].copy()
    keep &= _loads(index, cand, state) < index.worker_capacity[cand]
    if not allow_conflicts and query.enterprise_id:
        keep &= np.array([index.worker_employer[w] != query.enterprise_id for w in cand], dtype=bool)
    return cand[keep]


# -- 5. score ----------------------------------------------------------------------------------------
def score(index: RankingIndex, queries: Sequence[Query], candidates: Sequence[np.ndarray],
          similar: Sequence[tuple[np.ndarray, np.ndarray]], *, damping: float,
          keep_evidence: bool = False) -> tuple[list[np.ndarray], list[QueryEvidence]]:
    """Every feature of each query's candidates (:func:`recommender.features.compute_features`, one batch)."""
    return compute_features(index, queries, candidates, keep_evidence=keep_evidence, damping=damping,
                            similar=similar)


# -- 6. fuse and adjust --------------------------------------------------------------------------------
class DeclinedRows:
    """Word TF-IDF rows of every declined problem, made once per index and match state."""

    def __init__(self, index: RankingIndex, state: MatchState) -> None:
        proj = index.projection
        pids = sorted({p for ps in state.declined.values() for p in ps if p in proj.index["Problem"]})
        texts = [problem_text(proj.props["Problem"][proj.index["Problem"][p]]) for p in pids]
        self.rows: sp.csr_matrix | None = index.text.transform(texts).word if texts else None
        self.position = {p: i for i, p in enumerate(pids)}


def declined_similarity(index: RankingIndex, query: Query, cand: np.ndarray, state: MatchState,
                        rows: DeclinedRows) -> np.ndarray:
    """Per candidate, the highest word cosine of the query to a problem the worker declined (1 for this one)."""
    ids = index.projection.ids["Worker"]
    out = np.zeros(len(cand))
    declined = state.declined
    if not declined or not rows.position or rows.rows is None:
        return out
    sims = np.asarray(rows.rows @ _word(index, query).T.toarray()).ravel()
    for i, w in enumerate(cand):
        mine = declined.get(ids[w])
        if not mine:
            continue
        if query.problem_id in mine:
            out[i] = 1.0
            continue
        at = [rows.position[p] for p in mine if p in rows.position]
        if at:
            out[i] = float(sims[at].max())
    return out


def adjust(index: RankingIndex, fused: np.ndarray, cand: np.ndarray, declined: np.ndarray, state: MatchState,
           config: RankConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The final scores: the fused score minus the decline and load penalties.

    Returns the scores, the candidates' loads, capacities and load shares.
    """
    load = _loads(index, cand, state)
    cap = index.worker_capacity[cand]
    load_share = np.divide(load, cap, out=np.zeros_like(load), where=np.isfinite(cap) & (cap > 0))
    final = fused - config.decline_weight * declined - config.load_weight * load_share
    return final, load, cap, load_share


# -- 7. rank and explain -----------------------------------------------------------------------------
def rank(index: RankingIndex, query: Query, cand: np.ndarray, features: np.ndarray, evidence: QueryEvidence,
         fusion: Any, n: int, *, state: MatchState, declined_rows: DeclinedRows, config: RankConfig,
         explain: bool) -> list[Recommendation]:
    """The ``n`` best candidates in order, with their components (features, the fusion's per-feature
    contributions, penalties) and, when asked, their explanations."""
    f = features
    fused = fusion.decision_function(f, np.zeros(len(f), dtype=np.int64)) if len(f) else np.zeros(0)
    declined = declined_similarity(index, query, cand, state, declined_rows)
    final, load, cap, load_share = adjust(index, fused, cand, declined, state, config)
    order = np.lexsort((cand, -final))[:n]
    contrib = fusion.contributions(f[order]) if hasattr(fusion, "contributions") else None
    ids = index.projection.ids["Worker"]
    out: list[Recommendation] = []
    names: dict[tuple[str, str], str] = {}  # node names read once for all the explanations
    for at, j in enumerate(order):
        comps = {name: float(f[j, k]) for k, name in enumerate(FEATURES) if f[j, k] != 0.0}
        if contrib is not None:
            comps.update({f"{name}@fused": float(contrib[at, k]) for k, name in enumerate(FEATURES)
                          if contrib[at, k] != 0.0})
        comps["fused"] = float(fused[j])
        if declined[j]:
            comps["decline_penalty"] = -config.decline_weight * float(declined[j])
        if load_share[j]:
            comps["load_penalty"] = -config.load_weight * float(load_share[j])
        why = None
        if explain:
            why = build_explanation(index, query, int(cand[j]), f[j], evidence.word_sims, load=int(load[j]),
                                    capacity=float(cap[j]), declined_similar=float(declined[j]), names=names)
        out.append(Recommendation(ids[int(cand[j])], float(final[j]), comps, why))
    return out
