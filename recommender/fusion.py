"""Fusion of signal features into one score: configurable weights, or a model learned from history.

All fusions follow scikit-learn conventions (keyword-only hyper-parameters stored as given,
validation in ``fit``, learned state ending in ``_``, ``fit`` returns ``self``). They score one
row per (problem, worker) pair; ``groups`` tells which rows belong to the same problem.

* :class:`WeightedFusion`: a weighted sum of globally z-scored features (the scaler is learned
  from a sample of candidate rows, the weights are configuration).
* :class:`PairwiseLogisticFusion`: a linear model fitted as logistic regression on differences
  between the expected worker's features and each other candidate's (RankNet-style pairs).
* :class:`BoostedFusion`: gradient-boosted trees on the features plus their within-problem
  z-scores, fitted pointwise (kept to read models saved before the query-normalised fusions; no
  longer trained: it is not monotone in the similarity signals and fell far below its own inputs on
  data it was not tuned on).
* :class:`QueryNormFusion`: the served default. Every feature is z-scored *within the query's
  candidates* (clipped), and the signal families (text, expertise, dense, graph, skills, context)
  weigh the same whatever their members' scales: no parameter is fitted, so it cannot overfit.
* :class:`CorrectedFusion`: the default plus a learned correction (pairwise logistic regression on the
  same within-query z-scores, penalised towards the default, monotone in the similarity signals).
  ``recommender.training`` serves it only when it beats the default with statistical confidence.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from recommender.features import FEATURES

__all__ = [
    "DEFAULT_WEIGHTS",
    "FAMILIES",
    "MONOTONE",
    "PRIOR_ONLY",
    "BoostedFusion",
    "CorrectedFusion",
    "Fusion",
    "PairwiseLogisticFusion",
    "QueryNormFusion",
    "WeightedFusion",
    "family_weights",
    "fingerprint",
    "fusion_from_dict",
    "pair_differences",
    "within_group_z",
]

#: General-purpose prior weights over z-scored features (not tuned to any benchmark).
DEFAULT_WEIGHTS: dict[str, float] = {
    "text_top3": 1.0, "text_max": 0.3, "text_hits": 0.2, "char_top3": 0.5, "char_max": 0.1, "bm25": 0.5,
    "profile": 0.3, "skill_hist": 0.3, "skill_count": 0.5, "skill_declared": 0.3, "ppr": 0.5,
    "enterprise": 0.3, "chain": 0.2, "district_work": 0.1, "district": 0.2, "popularity": 0.2, "quality": 0.2,
    "honours": 0.1, "teach_fit": 0.5, "onsite_fit": 0.5, "depth_fit": 0.3,
    "dense_top3": 1.0, "dense_max": 0.3, "dense_profile": 0.3, "expertise": 1.0,
}

#: Signal families of the query-normalised default: family -> (weight, members). A family's weight is
#: shared equally by its members, so adding a signal to a family does not change the family's say.
#: Popularity is deliberately absent: it helps where candidates were drawn uniformly and hurts where
#: they were drawn among active workers (docs/ranking.md); the learned correction may add it.
FAMILIES: dict[str, tuple[float, tuple[str, ...]]] = {
    "text": (1.0, ("text_top3", "char_top3", "bm25")),
    "expertise": (1.0, ("expertise",)),
    "dense": (1.0, ("dense_top3",)),
    "graph": (1.0, ("ppr",)),
    "skills": (1.0, ("skill_count",)),
    "profile": (0.25, ("profile", "dense_profile")),
    "context": (0.5, ("enterprise", "chain", "district_work", "teach_fit", "onsite_fit")),
}

#: Similarity signals: a fusion may never score a worker lower for being more similar on one of them.
MONOTONE: frozenset[str] = frozenset({
    "text_top3", "text_max", "char_top3", "char_max", "bm25", "profile", "skill_hist", "skill_count",
    "skill_declared", "ppr", "dense_top3", "dense_max", "dense_profile", "expertise",
})


def _check_x(x: Any) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != len(FEATURES):
        raise ValueError(f"expected a (n, {len(FEATURES)}) feature matrix, got shape {arr.shape}")
    return arr


def within_group_z(x: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    """Z-score every column within each group (a constant column becomes 0).

    Examples
    --------
    >>> within_group_z(np.array([[1.0], [3.0], [5.0]]), np.array([0, 0, 1])).ravel().tolist()
    [-1.0, 1.0, 0.0]
    """
    x = np.asarray(x, dtype=np.float64)
    g = np.zeros(len(x), dtype=np.int64) if groups is None else np.asarray(groups)
    _, inv = np.unique(g, return_inverse=True)
    count = np.bincount(inv).astype(np.float64)[:, None]
    total = np.zeros((count.shape[0], x.shape[1]))
    np.add.at(total, inv, x)
    mean = total / count
    sq = np.zeros_like(total)
    np.add.at(sq, inv, (x - mean[inv]) ** 2)
    std = np.sqrt(sq / count)
    return np.divide(x - mean[inv], std[inv], out=np.zeros_like(x), where=std[inv] > 1e-12)


def family_weights(families: Mapping[str, tuple[float, Sequence[str]]] | None = None) -> dict[str, float]:
    """Feature -> weight of the query-normalised default (each family's weight split over its members).

    Examples
    --------
    >>> family_weights({"text": (1.0, ("text_top3", "bm25")), "graph": (0.5, ("ppr",))})
    {'text_top3': 0.5, 'bm25': 0.5, 'ppr': 0.5}
    """
    out: dict[str, float] = {}
    for weight, members in (FAMILIES if families is None else families).values():
        for name in members:
            out[name] = out.get(name, 0.0) + float(weight) / len(members)
    return out


def pair_differences(z: np.ndarray, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Rows ``z[relevant] - z[other]`` for every (relevant, irrelevant) pair of rows within each group.

    Examples
    --------
    >>> pair_differences(np.array([[3.0], [1.0], [0.0]]), np.array([True, False, False]), np.zeros(3)).ravel().tolist()
    [2.0, 3.0]
    """
    diffs = []
    for grp in np.unique(groups):
        rows = np.flatnonzero(groups == grp)
        pos, neg = rows[y[rows]], rows[~y[rows]]
        for p in pos:
            if len(neg):
                diffs.append(z[p] - z[neg])
    if not diffs:
        raise ValueError("no (relevant, irrelevant) pairs to learn from")
    return np.vstack(diffs)


def _labelled(x: Any, y: Any, groups: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``x`` checked, ``y`` as booleans and ``groups`` as an array, all of the same length."""
    arr = _check_x(x)
    yy = np.asarray(y).astype(bool)
    g = np.asarray(groups)
    if len(yy) != len(arr) or len(g) != len(arr):
        raise ValueError("x, y and groups must have the same length")
    return arr, yy, g


class _Scaled:
    """A linear fusion over globally standardised features: ``coef_ . (x - mean_) / scale_``."""

    mean_: np.ndarray
    scale_: np.ndarray
    coef_: np.ndarray

    def _fit_scaler(self, x: np.ndarray) -> None:
        self.mean_ = x.mean(axis=0)
        std = x.std(axis=0)
        self.scale_ = np.where(std > 1e-12, std, 1.0)

    def _z(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean_) / self.scale_

    def decision_function(self, x: Any, groups: Any = None) -> np.ndarray:
        """Fused scores, one per row."""
        return self._z(_check_x(x)) @ self.coef_

    def contributions(self, x: Any) -> np.ndarray:
        """Per-feature additive contributions (rows sum to :meth:`decision_function`)."""
        return self._z(_check_x(x)) * self.coef_


class WeightedFusion(_Scaled):
    """Weighted sum of z-scored features.

    Parameters
    ----------
    weights
        Feature name -> weight; features not named weigh 0.

    Examples
    --------
    >>> x = np.zeros((2, len(FEATURES))); x[1, FEATURES.index("text_top3")] = 1.0
    >>> WeightedFusion(weights={"text_top3": 1.0}).fit(x).decision_function(x).tolist()
    [-1.0, 1.0]
    """

    kind = "weights"

    def __init__(self, *, weights: Mapping[str, float] | None = None) -> None:
        self.weights = weights

    def fit(self, x: Any, y: Any = None, groups: Any = None) -> WeightedFusion:
        """Learn the feature scaler from candidate rows."""
        arr = _check_x(x)
        unknown = set(self.weights or {}) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown feature(s) in weights: {', '.join(sorted(unknown))}")
        self._fit_scaler(arr)
        w = dict(DEFAULT_WEIGHTS if self.weights is None else self.weights)
        self.coef_ = np.array([float(w.get(name, 0.0)) for name in FEATURES])
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "features": list(FEATURES), "mean": self.mean_.tolist(),
                "scale": self.scale_.tolist(), "coef": self.coef_.tolist()}


class PairwiseLogisticFusion(_Scaled):
    """Linear fusion learned by logistic regression on pairwise feature differences.

    Parameters
    ----------
    C
        Inverse regularisation strength of the logistic regression.
    max_pairs
        Cap on training pairs (sampled with ``random_state``).
    random_state
        Seed of the pair sampling.
    """

    kind = "pairwise-logistic"

    def __init__(self, *, C: float = 0.1, max_pairs: int = 200_000, random_state: int = 0) -> None:
        self.C = C
        self.max_pairs = max_pairs
        self.random_state = random_state

    def fit(self, x: Any, y: Any, groups: Any) -> PairwiseLogisticFusion:
        """Fit from rows ``x`` with relevance ``y`` (1 for the expected worker) grouped by problem."""
        arr, yy, g = _labelled(x, y, groups)
        self._fit_scaler(arr)
        z = self._z(arr)
        d = pair_differences(z, yy, g)
        rng = np.random.default_rng(self.random_state)
        if len(d) > self.max_pairs:
            d = d[rng.choice(len(d), self.max_pairs, replace=False)]
        flip = rng.random(len(d)) < 0.5
        d[flip] *= -1.0
        from sklearn.linear_model import LogisticRegression  # fits only: serving a fusion does not import it

        model = LogisticRegression(C=self.C, fit_intercept=False, max_iter=2000)
        model.fit(d, (~flip).astype(int))
        self.coef_ = model.coef_[0].copy()
        self.n_pairs_ = len(d)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "features": list(FEATURES), "mean": self.mean_.tolist(),
                "scale": self.scale_.tolist(), "coef": self.coef_.tolist(), "C": self.C}


class BoostedFusion:
    """Gradient-boosted trees on the features and their within-problem z-scores (pointwise).

    Parameters
    ----------
    max_iter, learning_rate, max_leaf_nodes
        Passed to :class:`sklearn.ensemble.HistGradientBoostingClassifier`.
    random_state
        Seed.
    """

    kind = "boosted-trees"

    def __init__(self, *, max_iter: int = 200, learning_rate: float = 0.05, max_leaf_nodes: int = 31,
                 random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.random_state = random_state

    @staticmethod
    def _design(x: np.ndarray, groups: Any) -> np.ndarray:
        return np.hstack([x, within_group_z(x, None if groups is None else np.asarray(groups))])

    def fit(self, x: Any, y: Any, groups: Any) -> BoostedFusion:
        arr = _check_x(x)
        from sklearn.ensemble import HistGradientBoostingClassifier

        self.model_ = HistGradientBoostingClassifier(max_iter=self.max_iter, learning_rate=self.learning_rate,
                                                     max_leaf_nodes=self.max_leaf_nodes,
                                                     random_state=self.random_state)
        self.model_.fit(self._design(arr, groups), np.asarray(y).astype(int))
        return self

    def decision_function(self, x: Any, groups: Any = None) -> np.ndarray:
        arr = _check_x(x)
        return np.asarray(self.model_.decision_function(self._design(arr, groups)), dtype=np.float64)

    def contributions(self, x: Any) -> np.ndarray | None:
        return None  # trees have no additive per-feature contributions


#: Signals a learned correction may not re-weight: declared profiles are typically written after (and from)
#: the history the pseudo-queries replay, so on pseudo-queries they look far better than on new problems
#: (gis: ``skill_declared`` MRR 0.52 on pseudo-queries, 0.36 on real dev queries).
PRIOR_ONLY: frozenset[str] = frozenset({"profile", "skill_declared", "dense_profile"})


class QueryNormFusion:
    """Weighted sum of features z-scored within each query's candidates, clipped to ``[-clip, clip]``.

    Scores are comparable within a query only (use :class:`WeightedFusion` across problems).

    Parameters
    ----------
    weights
        Feature name -> weight; ``None``: :func:`family_weights` (the signal families, equally).
    clip
        Bound on a within-query z-score (one worker with a rare non-zero value cannot dominate).

    Examples
    --------
    >>> x = np.zeros((3, len(FEATURES))); x[:, FEATURES.index("bm25")] = [0.0, 1.0, 2.0]
    >>> QueryNormFusion(weights={"bm25": 1.0}).fit(x).decision_function(x).round(3).tolist()
    [-1.225, 0.0, 1.225]
    """

    kind = "query-z"

    def __init__(self, *, weights: Mapping[str, float] | None = None, clip: float = 3.0) -> None:
        self.weights = weights
        self.clip = clip

    def _prior(self) -> np.ndarray:
        w = family_weights() if self.weights is None else dict(self.weights)
        unknown = set(w) - set(FEATURES)
        if unknown:
            raise ValueError(f"unknown feature(s) in weights: {', '.join(sorted(unknown))}")
        return np.array([float(w.get(name, 0.0)) for name in FEATURES])

    def fit(self, x: Any = None, y: Any = None, groups: Any = None) -> QueryNormFusion:
        """Nothing to learn: set the weights (``x``, ``y`` and ``groups`` are accepted for symmetry)."""
        self.coef_ = self._prior()
        return self

    def transform(self, x: Any, groups: Any = None) -> np.ndarray:
        """The clipped within-query z-scores the weights apply to."""
        return np.clip(within_group_z(_check_x(x), None if groups is None else np.asarray(groups)),
                       -self.clip, self.clip)

    def decision_function(self, x: Any, groups: Any = None) -> np.ndarray:
        """Fused scores, one per row (``groups`` None: all rows are one query's candidates)."""
        return self.transform(x, groups) @ self.coef_

    def contributions(self, x: Any) -> np.ndarray:
        """Per-feature additive contributions of one query's rows (rows sum to :meth:`decision_function`)."""
        return self.transform(x) * self.coef_

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "features": list(FEATURES), "coef": self.coef_.tolist(), "clip": self.clip}


class CorrectedFusion(QueryNormFusion):
    """The query-normalised default plus a learned correction.

    The weights are ``prior + delta``, with ``delta`` minimising the pairwise logistic loss of
    (expected worker, other candidate) pairs of within-query z-scores plus ``penalty * |delta|^2``
    (a correction, not a model from scratch), under the bound ``weight >= 0`` for the
    :data:`MONOTONE` similarity signals; the :data:`PRIOR_ONLY` profile signals keep their prior weight.

    Parameters
    ----------
    weights, clip
        As :class:`QueryNormFusion` (the prior).
    penalty
        Strength of the pull towards the prior.
    max_pairs
        Cap on training pairs (sampled with ``random_state``).
    random_state
        Seed of the pair sampling.
    """

    kind = "query-z-learned"

    def __init__(self, *, weights: Mapping[str, float] | None = None, clip: float = 3.0, penalty: float = 0.003,
                 max_pairs: int = 200_000, random_state: int = 0) -> None:
        super().__init__(weights=weights, clip=clip)
        self.penalty = penalty
        self.max_pairs = max_pairs
        self.random_state = random_state

    def fit(self, x: Any = None, y: Any = None, groups: Any = None) -> CorrectedFusion:
        """Fit the correction from rows ``x`` with relevance ``y`` grouped by query."""
        from scipy.optimize import minimize

        arr, yy, g = _labelled(x, y, groups)
        z = self.transform(arr, g)
        d = pair_differences(z, yy, g)
        if len(d) > self.max_pairs:
            d = d[np.random.default_rng(self.random_state).choice(len(d), self.max_pairs, replace=False)]
        prior = self._prior()
        lam = float(self.penalty)

        def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
            margin = d @ w
            value = float(np.logaddexp(0.0, -margin).mean() + lam * np.sum((w - prior) ** 2))
            grad = -(d * (0.5 * (1.0 - np.tanh(0.5 * margin)))[:, None]).mean(axis=0) + 2 * lam * (w - prior)
            return value, grad

        bounds = [(float(prior[j]), float(prior[j])) if name in PRIOR_ONLY else (0.0, None) if name in MONOTONE
                  else (None, None) for j, name in enumerate(FEATURES)]
        start = np.array([min(max(p, lo if lo is not None else p), hi if hi is not None else p)
                          for p, (lo, hi) in zip(np.maximum(prior, 0.0), bounds, strict=True)])
        result = minimize(loss, start, jac=True, method="L-BFGS-B", bounds=bounds, options={"maxiter": 500})
        self.coef_ = np.asarray(result.x, dtype=np.float64)
        self.n_pairs_ = len(d)
        return self

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "kind": self.kind, "penalty": self.penalty}


Fusion = WeightedFusion | PairwiseLogisticFusion | BoostedFusion | QueryNormFusion


def fusion_from_dict(doc: Mapping[str, Any]) -> WeightedFusion | PairwiseLogisticFusion | QueryNormFusion:
    """Rebuild a linear fusion saved with ``to_dict`` (features are matched by name)."""
    names: Sequence[str] = doc["features"]
    pos = {n: i for i, n in enumerate(names)}

    def column(key: str, default: float) -> np.ndarray:
        values = doc[key]
        return np.array([float(values[pos[n]]) if n in pos else default for n in FEATURES])

    if doc["kind"] in (QueryNormFusion.kind, CorrectedFusion.kind):
        coef = column("coef", 0.0)
        norm = QueryNormFusion(weights=dict(zip(FEATURES, coef.tolist(), strict=True)),
                               clip=float(doc.get("clip", 3.0)))
        if doc["kind"] == CorrectedFusion.kind:
            norm = CorrectedFusion(weights=norm.weights, clip=norm.clip, penalty=float(doc.get("penalty", 0.003)))
        norm.coef_ = coef
        return norm
    fusion: WeightedFusion | PairwiseLogisticFusion
    if doc["kind"] == WeightedFusion.kind:
        fusion = WeightedFusion(weights={n: float(v) for n, v in zip(names, doc["coef"], strict=True)})
    elif doc["kind"] == PairwiseLogisticFusion.kind:
        fusion = PairwiseLogisticFusion(C=float(doc.get("C", 0.1)))
    else:
        raise ValueError(f"not a linear fusion: {doc['kind']!r}")
    fusion.mean_ = column("mean", 0.0)
    fusion.scale_ = column("scale", 1.0)
    fusion.coef_ = column("coef", 0.0)
    return fusion


def fingerprint(doc: Any) -> str:
    """Short stable hash of a JSON-able description (model versions)."""
    return hashlib.sha1(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()[:10]
