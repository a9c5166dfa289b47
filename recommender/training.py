"""Choosing the fusion from a graph's own history (no benchmark label is ever used).

Why this module is long: pseudo-queries, the cross-fitted training and the paired-bootstrap choice are one
procedure with shared guards against leakage; ``docs/ranking.md`` walks through it in this order.

Solved problems of the history become pseudo-queries shaped like the evaluation queries: the
problem's text and skills, one solver as the expected worker and ``n_negatives`` workers with
history as the other candidates, never a co-solver nor a worker interchangeable with the expected
one (same skills and work), optionally with the popularity of the candidates really ranked. Their
features come from an index that does not contain them: the older problems (a time split of the
newest 10 %), or the other folds (cross-fitting, when the newest 10 % would be too few).

The served default is :class:`~recommender.fusion.QueryNormFusion` (no fitted parameter). A learned
correction (:class:`~recommender.fusion.CorrectedFusion`) replaces it only when its out-of-fold MRR
gain on the pseudo-queries has a paired-bootstrap lower bound above zero. ``docs/ranking.md`` has
the protocol and the measurements.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import scipy.sparse as sp

from graph.projection import Projection
from recommender.errors import ModelNotFound
from recommender.features import FEATURES, Query, compute_features
from recommender.fusion import (
    BoostedFusion,
    CorrectedFusion,
    Fusion,
    QueryNormFusion,
    fingerprint,
    fusion_from_dict,
)
from recommender.index import ACTIVITY_HALF_LIFE, Encoder, RankingIndex, time_order
from recommender.metrics import QueryResult, pessimistic_ranks, summarise

__all__ = [
    "PseudoQueries",
    "TrainedRanker",
    "choose_fusion",
    "fresh_activity",
    "future_only_skills",
    "make_pseudo_queries",
    "mrr_of",
    "paired_bootstrap",
    "popularity_matched_weights",
    "reciprocal_ranks",
    "score_groups",
    "skill_aliases",
    "time_order",
    "worker_priors",
    "train_ranker",
    "N_NEGATIVES",
]

#: Other candidates of a pseudo-query besides its expected worker (20 candidates in all).
N_NEGATIVES = 19


def skill_aliases(proj: Projection) -> dict[str, str]:
    """Alias (and name) -> canonical skill id, from the projection's skill nodes."""
    out: dict[str, str] = {}
    for sid, props in zip(proj.ids["Skill"], proj.props["Skill"], strict=True):
        for alias in props.get("aliases") or []:
            out.setdefault(str(alias), sid)
        if props.get("name"):
            out.setdefault(str(props["name"]), sid)
    return out


@dataclass
class PseudoQueries:
    """Queries with candidates and 0/1 labels, in time order."""

    queries: list[Query] = field(default_factory=list)
    candidates: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries)


def interchangeable_signatures(proj: Projection, history: np.ndarray) -> sp.csr_matrix:
    """Row-normalised skill signatures of the workers: declared skills plus the skills of the history
    problems they solved (log counts, idf-weighted). Two workers whose signatures have a cosine of
    :data:`INTERCHANGEABLE_COSINE` or more do the same work: neither is a negative for the other."""
    solved = sp.csr_matrix(proj.matrix("SOLVED", "Worker", "Problem"), dtype=np.float64)
    hist = sp.diags(np.asarray(history, dtype=np.float64))
    requires = sp.csr_matrix(proj.matrix("REQUIRES", "Problem", "Skill"), dtype=np.float64)
    counts = sp.csr_matrix(solved @ hist @ requires)
    counts.data = np.log1p(counts.data)
    declared = sp.csr_matrix(proj.matrix("HAS_SKILL", "Worker", "Skill"), dtype=np.float64)
    declared.data[:] = 1.0
    sig = sp.csr_matrix(counts + declared)
    df = np.bincount(sig.indices, minlength=sig.shape[1]).astype(np.float64)
    idf = np.log((sig.shape[0] + 1.0) / (df + 1.0)) + 1.0
    sig = sp.csr_matrix(sig @ sp.diags(idf))
    norms = np.sqrt(np.asarray(sig.multiply(sig).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv) @ sig)


#: Skill-signature cosine from which two workers count as interchangeable (see :func:`interchangeable_signatures`).
INTERCHANGEABLE_COSINE = 0.9


def popularity_matched_weights(values: np.ndarray, pool: np.ndarray, reference: np.ndarray | None,
                               bins: int = 4) -> np.ndarray | None:
    """Sampling weights over ``pool`` so that its prior values match ``reference``'s distribution.

    ``values`` (one row per worker) and ``reference`` (one row per candidate really ranked: the
    evaluation's candidate lists, label-free) hold the same columns, e.g. ``log(1 + problems solved)``
    and recent activity; the match is on the joint histogram of per-column quantile bins. ``None``
    (or fewer than 20 reference rows) gives ``None``: uniform sampling.

    Examples
    --------
    >>> w = popularity_matched_weights(np.array([0, 1, 1, 9, 9, 9.0]), np.arange(6), np.array([9.0] * 10 + [0.0] * 10))
    >>> round(float(w[:3].sum()), 2), round(float(w[3:].sum()), 2)
    (0.5, 0.5)
    """
    if reference is None or len(reference) < 20 or not len(pool):
        return None
    ref = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    mine = np.asarray(values, dtype=np.float64).reshape(len(values), -1)[pool]
    ref_bin = np.zeros(len(ref), dtype=np.int64)
    my_bin = np.zeros(len(mine), dtype=np.int64)
    for j in range(ref.shape[1]):
        edges = np.unique(np.quantile(ref[:, j], np.linspace(0, 1, bins + 1)[1:-1]))
        ref_bin = ref_bin * (bins + 1) + np.searchsorted(edges, ref[:, j], side="right")
        my_bin = my_bin * (bins + 1) + np.searchsorted(edges, mine[:, j], side="right")
    size = (bins + 1) ** ref.shape[1]
    want = np.bincount(ref_bin, minlength=size) / len(ref)
    have = np.bincount(my_bin, minlength=size).astype(np.float64)
    w = np.divide(want[my_bin], have[my_bin], out=np.zeros(len(pool)), where=have[my_bin] > 0)
    if w.sum() <= 0:
        return None
    w = np.maximum(w, 1e-3 * w[w > 0].min())  # every pool worker stays possible
    return w / w.sum()


def worker_priors(proj: Projection, history: np.ndarray | None = None) -> np.ndarray:
    """``(n workers, 2)``: ``log(1 + problems solved)`` and recent activity (as the ``activity`` feature)
    over the ``history`` mask: the columns :func:`popularity_matched_weights` matches on."""
    mask = np.ones(proj.n("Problem"), dtype=bool) if history is None else np.asarray(history, dtype=bool)
    solved = sp.csr_matrix(proj.matrix("SOLVED", "Worker", "Problem"), dtype=np.float64)
    age = np.empty(len(mask), dtype=np.float64)
    order = time_order(proj)
    order = order[mask[order]]
    age[order[::-1]] = np.arange(len(order), dtype=np.float64)
    decay = np.where(mask, np.exp2(-np.where(mask, age, 0.0) / max(ACTIVITY_HALF_LIFE * mask.sum(), 1.0)), 0.0)
    counts = np.asarray(solved @ mask.astype(np.float64)).ravel()
    return np.column_stack([np.log1p(counts), np.log1p(np.asarray(solved @ decay).ravel())])


def make_pseudo_queries(proj: Projection, problems: np.ndarray, history: np.ndarray, *,
                        n_negatives: int = N_NEGATIVES,
                        seed: int = 0, reference_popularity: np.ndarray | None = None,
                        same_work: float = INTERCHANGEABLE_COSINE) -> PseudoQueries:
    """Pseudo-queries from solved ``problems`` with candidates drawn from workers with history.

    ``history`` is the boolean problem mask of the index the features will come from: only
    workers who solved something there are candidates (the expected one included). A negative is
    never a co-solver of the problem nor interchangeable with the expected worker (skill-signature
    cosine ``>= same_work``): history credits one solver, but a colleague doing the same work would
    have been a right answer too. With ``reference_popularity`` (:func:`worker_priors` rows of the
    candidates really ranked), negatives are drawn so that their popularity and activity match it.
    """
    rng = np.random.default_rng(seed)
    solved = proj.matrix("SOLVED", "Worker", "Problem").tocsc()
    counts = np.asarray(solved[:, np.flatnonzero(history)].sum(axis=1)).ravel()
    has_history = counts > 0
    pool = np.flatnonzero(has_history)
    weights = None
    if reference_popularity is not None:
        weights = popularity_matched_weights(worker_priors(proj, history), pool, reference_popularity)
    sig = interchangeable_signatures(proj, history)
    aliases = skill_aliases(proj)
    out = PseudoQueries()
    if len(pool) < 2:
        return out
    for p in problems:
        solvers = solved.indices[solved.indptr[p]:solved.indptr[p + 1]]
        eligible = solvers[has_history[solvers]]
        if not len(eligible):
            continue
        expected = int(rng.choice(eligible))
        allowed = ~np.isin(pool, solvers)
        others = pool[allowed]
        p_others = None if weights is None else weights[allowed] / weights[allowed].sum()
        # draw a few more than needed, then drop the ones interchangeable with the expected worker
        draw = rng.choice(others, size=min(len(others), 3 * n_negatives + 10), replace=False, p=p_others)
        alike = np.asarray((sig[draw] @ sig[expected].T).todense()).ravel() >= same_work
        negatives = draw[~alike][:n_negatives]
        if not len(negatives):
            continue
        row = dict(proj.props["Problem"][int(p)])
        row["id"] = proj.ids["Problem"][int(p)]
        cand = np.concatenate([[expected], negatives]).astype(np.int64)
        rng.shuffle(cand)
        out.queries.append(Query.from_row(row, skill_of=aliases))
        out.candidates.append(cand)
        out.labels.append(cand == expected)
    return out


def _ranks(scores: np.ndarray, labels: np.ndarray) -> list[int]:
    """Pessimistic ranks of one query's relevant candidates (:func:`recommender.metrics.pessimistic_ranks`)."""
    keys = [str(j) for j in range(len(scores))]
    return pessimistic_ranks(dict(zip(keys, scores, strict=True)), [keys[j] for j in np.flatnonzero(labels)])


def mrr_of(scores: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """Metrics of per-query score vectors against 0/1 labels (pessimistic ties)."""
    return summarise([QueryResult(str(i), tuple(_ranks(s, y)))
                      for i, (s, y) in enumerate(zip(scores, labels, strict=True))])


def _stack(feats: list[np.ndarray], labels: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = np.vstack(feats) if feats else np.zeros((0, len(FEATURES)))
    y = np.concatenate(labels) if labels else np.zeros(0, dtype=bool)
    groups = np.repeat(np.arange(len(feats)), [len(f) for f in feats])
    return x, y, groups


def score_groups(fusion: Fusion, feats: list[np.ndarray]) -> list[np.ndarray]:
    """Fused scores per query, computed in one call (tree ensembles have a high per-call cost)."""
    if not feats:
        return []
    x, _, groups = _stack(feats, [np.zeros(len(f), dtype=bool) for f in feats])
    scores = fusion.decision_function(x, groups)
    return np.split(scores, np.cumsum([len(f) for f in feats])[:-1])


@dataclass
class TrainedRanker:
    """The fusion chosen by :func:`train_ranker` and the evidence for the choice."""

    fusion: Fusion
    chosen: str                                   # "weights" or a learned kind
    validation: dict[str, dict[str, float]]       # "default"/"learned" -> out-of-fold metrics; "gain" -> bootstrap
    n_train: int = 0
    n_valid: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """``"fused-default@<hash>"`` or ``"learned@<hash>"``."""
        if isinstance(self.fusion, BoostedFusion):
            params = {"kind": self.fusion.kind, "meta": self.meta, "valid": self.validation}
        else:
            params = self.fusion.to_dict()
        prefix = "learned" if self.chosen == "learned" else "fused-default"
        return f"{prefix}@{fingerprint(params)}"

    def save(self, directory: str | Path) -> Path:
        """Write ``ranker.json`` (and ``ranker.joblib`` for tree models) under ``directory``."""
        base = Path(directory)
        base.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {"version": self.version, "chosen": self.chosen, "validation": self.validation,
                               "n_train": self.n_train, "n_valid": self.n_valid, "meta": self.meta}
        if isinstance(self.fusion, BoostedFusion):
            import joblib

            joblib.dump(self.fusion, base / "ranker.joblib")
            doc["fusion"] = {"kind": self.fusion.kind, "file": "ranker.joblib"}
        else:
            doc["fusion"] = self.fusion.to_dict()
        tmp = base / "ranker.json.tmp"
        tmp.write_text(json.dumps(doc, ensure_ascii=False, indent=1), encoding="utf-8")
        tmp.replace(base / "ranker.json")
        return base / "ranker.json"

    @classmethod
    def load(cls, directory: str | Path) -> TrainedRanker:
        """Read a model written by :meth:`save`; raise :class:`ModelNotFound` if absent or unreadable."""
        path = Path(directory) / "ranker.json"
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            fusion: Fusion
            if doc["fusion"]["kind"] == BoostedFusion.kind:
                import joblib

                fusion = joblib.load(Path(directory) / doc["fusion"]["file"])
            else:
                fusion = fusion_from_dict(doc["fusion"])
        except (OSError, ValueError, KeyError) as err:
            raise ModelNotFound(f"no usable ranking model at {path}: {err}") from err
        return cls(fusion=fusion, chosen=doc["chosen"], validation=doc.get("validation", {}),
                   n_train=doc.get("n_train", 0), n_valid=doc.get("n_valid", 0), meta=doc.get("meta", {}))


def reciprocal_ranks(scores: list[np.ndarray], labels: list[np.ndarray]) -> np.ndarray:
    """1 / (pessimistic rank of the first relevant candidate) per query.

    Examples
    --------
    >>> reciprocal_ranks([np.array([0.2, 0.9, 0.9])], [np.array([False, True, False])]).tolist()
    [0.5]
    """
    return np.array([1.0 / min(_ranks(s, y)) if np.any(y) else 0.0 for s, y in zip(scores, labels, strict=True)])


def paired_bootstrap(gain: np.ndarray, *, resamples: int = 2000, confidence: float = 0.95,
                     seed: int = 0) -> dict[str, float]:
    """Mean of per-query ``gain`` and its one-sided bootstrap lower bound (resampling queries).

    Examples
    --------
    >>> r = paired_bootstrap(np.full(50, 0.1)); round(r["mean"], 3), round(r["low"], 3)
    (0.1, 0.1)
    """
    gain = np.asarray(gain, dtype=np.float64)
    if not len(gain):
        return {"mean": 0.0, "low": 0.0, "high": 0.0, "queries": 0.0}
    rng = np.random.default_rng(seed)
    means = gain[rng.integers(0, len(gain), size=(resamples, len(gain)))].mean(axis=1)
    return {"mean": float(gain.mean()), "low": float(np.quantile(means, 1.0 - confidence)),
            "high": float(np.quantile(means, confidence)), "queries": float(len(gain))}


def future_only_skills(proj: Projection, history: np.ndarray, held: np.ndarray) -> sp.csr_matrix:
    """``(workers, skills)``: the declared skills a worker's profile can only have learned from ``held``.

    A profile written from a worker's record (as in both public benchmarks, where a worker's skills are
    the tags of their answered questions) knows the problems a pseudo-query replays: it would make the
    declared-skill signals look far better on pseudo-queries than on new problems. A declared skill is
    hidden from the pseudo-queries' index when the worker solved a held-out problem requiring it and
    no history problem requiring it.
    """
    solved = sp.csr_matrix(proj.matrix("SOLVED", "Worker", "Problem"), dtype=np.float64)
    requires = sp.csr_matrix(proj.matrix("REQUIRES", "Problem", "Skill"), dtype=np.float64)
    in_held = np.zeros(solved.shape[1])
    in_held[np.asarray(held, dtype=np.int64)] = 1.0
    later = sp.csr_matrix(solved @ sp.diags(in_held) @ requires)
    before = sp.csr_matrix(solved @ sp.diags(np.asarray(history, dtype=np.float64)) @ requires)
    declared = sp.csr_matrix(proj.matrix("HAS_SKILL", "Worker", "Skill"), dtype=np.float64)
    only_later = sp.csr_matrix((later > 0).astype(np.float64) - (later > 0).multiply(before > 0))
    hidden = sp.csr_matrix(only_later.multiply(declared > 0))
    hidden.eliminate_zeros()
    return hidden


def fresh_activity(proj: Projection, order: np.ndarray, queries: np.ndarray, candidates: list[np.ndarray],
                   half_life: float) -> list[np.ndarray]:
    """The ``activity`` feature of each pseudo-query's candidates measured at the query's own posting time.

    The index measures activity at the end of its history; a pseudo-query posted later in the held-out
    window would see it stale, while a served query sees it fresh (computed now). Here every problem
    solved before the query (in ``order``, the time order of the problems that may be evidence,
    held-out ones included) counts ``0.5 ** (problems posted in between / half_life)``.

    Examples
    --------
    >>> import types
    >>> proj = types.SimpleNamespace(matrix=lambda *a: sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]])))
    >>> [a.round(3).tolist() for a in fresh_activity(proj, np.arange(3), np.array([2]), [np.array([0, 1])], 1.0)]
    [[0.916, 0.0]]
    """
    solved = sp.csr_matrix(proj.matrix("SOLVED", "Worker", "Problem"))
    position = np.full(solved.shape[1], -1, dtype=np.int64)
    position[order] = np.arange(len(order))
    out = []
    for q, cand in zip(queries, candidates, strict=True):
        t = position[int(q)]
        values = np.zeros(len(cand))
        for j, w in enumerate(cand):
            pos = position[solved.indices[solved.indptr[w]:solved.indptr[w + 1]]]
            pos = pos[(pos >= 0) & (pos < t)]
            values[j] = np.log1p(np.exp2(-(t - 1 - pos) / max(half_life, 1.0)).sum())
        out.append(values)
    return out


def choose_fusion(default_rr: np.ndarray, learned_rr: np.ndarray, *, mode: str = "auto", confidence: float = 0.95,
                  seed: int = 0) -> tuple[str, dict[str, float], str]:
    """``("default" | "learned", bootstrap of the gain, why)`` from per-query reciprocal ranks of both fusions
    on the same pseudo-queries: in ``"auto"`` mode the learned correction serves only when the one-sided
    ``confidence`` lower bound of its mean gain is above 0; ``"default"``/``"learned"`` force the choice.

    Examples
    --------
    >>> choose_fusion(np.full(100, 0.5), np.full(100, 0.4))[0]
    'default'
    >>> choose_fusion(np.full(100, 0.5), np.full(100, 0.6))[0]
    'learned'
    """
    gain = paired_bootstrap(np.asarray(learned_rr) - np.asarray(default_rr), confidence=confidence, seed=seed)
    if mode == "auto":
        chosen = "learned" if gain["low"] > 0 else "default"
        why = (f"learned correction's MRR gain over the default {gain['mean']:+.4f} on {int(gain['queries'])} "
               f"pseudo-queries, one-sided {confidence:.0%} lower bound {gain['low']:+.4f} "
               f"({'> 0: learned' if chosen == 'learned' else '<= 0: the default serves'})")
    else:
        chosen = "default" if mode in ("default", "weights") else "learned"
        why = f"forced ({mode}); the learned correction's gain {gain['mean']:+.4f} (lower bound {gain['low']:+.4f})"
    return chosen, gain, why


def _pseudo_features(proj: Projection, order: np.ndarray, base: np.ndarray, *, encoder: Encoder | None,
                     holdout: float, target_queries: int, max_queries: int, folds: int, n_negatives: int, seed: int,
                     reference_popularity: np.ndarray | None,
                     say: Callable[[str], None]) -> tuple[PseudoQueries, list[np.ndarray], dict[str, Any]]:
    """Pseudo-queries and their features: a time split when the newest ``holdout`` share gives at least
    ``target_queries``, else cross-fitting over ``folds`` random folds of the solved history (each fold's
    problems ranked against an index of the others)."""
    solved_cols = np.asarray(proj.matrix("SOLVED", "Worker", "Problem").sum(axis=0)).ravel() > 0
    solved_order = order[solved_cols[order]]
    n_hold = int(round(len(solved_order) * holdout))
    pseudo = PseudoQueries()
    feats: list[np.ndarray] = []
    if n_hold >= target_queries or len(solved_order) < 2 * folds:
        held = solved_order[len(solved_order) - n_hold:] if n_hold else solved_order[:0]
        held = held[-max_queries:]
        history = base.copy()
        if len(held):  # everything posted from the first held-out problem on is outside the history
            first = int(np.flatnonzero(np.isin(order, held))[0])
            history[order[first:]] = False
        pseudo = make_pseudo_queries(proj, held, history, n_negatives=n_negatives, seed=seed,
                                     reference_popularity=reference_popularity)
        if len(pseudo):
            say(f"pseudo-queries: the newest {holdout:.0%} of solved problems ({len(pseudo)}) against "
                f"{int(history.sum())} older problems")
            index = RankingIndex(encoder=encoder).fit(proj, history=history,
                                                      hidden_declared=future_only_skills(proj, history, held))
            feats, _ = compute_features(index, pseudo.queries, pseudo.candidates)
            at = proj.index["Problem"]
            posted = np.array([at[q.problem_id or ""] for q in pseudo.queries], dtype=np.int64)
            fresh = fresh_activity(proj, order, posted, pseudo.candidates, ACTIVITY_HALF_LIFE * len(index.hp))
            for row, values in zip(feats, fresh, strict=True):
                row[:, FEATURES.index("activity")] = values
        return pseudo, feats, {"protocol": "time-split", "holdout": holdout, "history_problems": int(history.sum())}
    chosen = solved_order[-max_queries:]
    fold_of = np.random.default_rng(seed).integers(0, folds, size=len(chosen))
    for f in range(folds):
        part = chosen[fold_of == f]
        history = base.copy()
        history[part] = False
        fold = make_pseudo_queries(proj, part, history, n_negatives=n_negatives, seed=seed + f,
                                   reference_popularity=reference_popularity)
        if not len(fold):
            continue
        fold_index = RankingIndex(encoder=encoder).fit(proj, history=history,
                                                       hidden_declared=future_only_skills(proj, history, part))
        fold_feats, _ = compute_features(fold_index, fold.queries, fold.candidates)
        pseudo.queries += fold.queries
        pseudo.candidates += fold.candidates
        pseudo.labels += fold.labels
        feats += fold_feats
        say(f"  fold {f + 1}/{folds}: {len(fold)} pseudo-queries")
    say(f"pseudo-queries: {len(pseudo)} by {folds}-fold cross-fitting over the {len(solved_order)} solved problems "
        f"(the newest {holdout:.0%} alone would give {n_hold})")
    return pseudo, feats, {"protocol": f"{folds}-fold", "holdout": holdout, "history_problems": int(base.sum())}


def train_ranker(
    proj: Projection,
    *,
    encoder: Encoder | None = None,
    weights: Mapping[str, float] | None = None,
    holdout: float = 0.1,
    n_negatives: int = N_NEGATIVES,
    max_queries: int = 4000,
    min_queries: int = 30,
    target_queries: int = 300,
    folds: int = 5,
    seed: int = 0,
    mode: Literal["auto", "default", "weights", "learned"] = "auto",
    within: np.ndarray | None = None,
    reference_popularity: np.ndarray | None = None,
    confidence: float = 0.95,
    log: Callable[[str], None] | None = None,
) -> TrainedRanker:
    """Choose the fusion on ``proj``'s own history: the query-normalised default, or a learned correction
    of it when that wins with confidence.

    Pseudo-queries (solved problems of the history with their solver as the expected worker) come from
    the newest ``holdout`` share by a time split, or, when that would give fewer than
    ``target_queries``, from ``folds``-fold cross-fitting over all solved problems. The learned
    correction (:class:`~recommender.fusion.CorrectedFusion`) is scored out of fold (``folds``
    contiguous blocks of pseudo-queries) against the default on the same queries; a paired bootstrap
    over queries gives a one-sided ``confidence`` lower bound of its MRR gain, and ``mode="auto"``
    serves it only when that bound is above 0. ``"default"`` (alias ``"weights"``) and ``"learned"``
    force the choice (the comparison is still measured and reported). ``within`` restricts training
    to a part of the graph (e.g. a replay's history); ``reference_popularity`` makes the negatives'
    popularity match the candidates that will be ranked (see :func:`make_pseudo_queries`).
    """
    say = log or (lambda _msg: None)
    if mode == "weights":
        mode = "default"
    order = time_order(proj)
    base = np.ones(proj.n("Problem"), dtype=bool) if within is None else np.asarray(within, dtype=bool).copy()
    order = order[base[order]]
    pseudo, feats, protocol = _pseudo_features(
        proj, order, base, encoder=encoder, holdout=holdout, target_queries=target_queries, max_queries=max_queries,
        folds=folds, n_negatives=n_negatives, seed=seed, reference_popularity=reference_popularity, say=say)
    meta: dict[str, Any] = {**protocol, "n_negatives": n_negatives, "seed": seed, "pseudo_queries": len(pseudo),
                            "encoder": getattr(encoder, "identity", None),
                            "popularity_matched": reference_popularity is not None}
    default = QueryNormFusion(weights=weights).fit()
    if len(pseudo) < min_queries:
        say(f"only {len(pseudo)} pseudo-queries: serving the default fusion")
        return TrainedRanker(default, "default", {}, 0, 0, meta)
    default_rr = reciprocal_ranks(score_groups(default, feats), pseudo.labels)
    learned_rr = np.zeros(len(feats))
    bounds = np.linspace(0, len(feats), folds + 1).astype(int)
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        train = [i for i in range(len(feats)) if not lo <= i < hi]
        x, y, g = _stack([feats[i] for i in train], [pseudo.labels[i] for i in train])
        fold_model = CorrectedFusion(weights=weights, random_state=seed).fit(x, y, g)
        learned_rr[lo:hi] = reciprocal_ranks(score_groups(fold_model, feats[lo:hi]), pseudo.labels[lo:hi])
    chosen, gain, meta["why"] = choose_fusion(default_rr, learned_rr, mode=mode, confidence=confidence, seed=seed)
    validation = {"default": {"MRR": float(default_rr.mean())}, "learned": {"MRR": float(learned_rr.mean())},
                  "gain": gain}
    say(f"  out-of-fold MRR on {len(feats)} pseudo-queries: default {default_rr.mean():.4f}, "
        f"learned correction {learned_rr.mean():.4f}")
    say(f"chosen fusion: {chosen} ({meta['why']})")
    n_valid = len(feats)
    if chosen == "default":
        return TrainedRanker(default, "default", validation, 0, n_valid, meta)
    all_x, all_y, all_g = _stack(feats, pseudo.labels)
    final = CorrectedFusion(weights=weights, random_state=seed).fit(all_x, all_y, all_g)
    return TrainedRanker(final, "learned", validation, len(feats), n_valid, meta)
