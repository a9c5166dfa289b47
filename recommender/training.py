"""Learning the fusion from a graph's own history, by a time split.

The newest solved problems (``holdout`` share, by ``posted_at``; by natural id order when the
data has no dates) become pseudo-queries shaped like the evaluation queries: the problem's text
and skills, one solver as the expected worker and ``n_negatives`` workers with history sampled
as the other candidates. Their features are computed against an index of the *older* problems
only, so no pseudo-query sees itself or anything after it. The learned fusions are fitted on the
older part of the pseudo-queries and compared with the configured weights on the newer part; the
winner is kept and, when learned, refitted on all pseudo-queries.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import joblib
import numpy as np

from graph.projection import Projection
from recommender.errors import ModelNotFound
from recommender.features import FEATURES, Query, compute_features
from recommender.fusion import (
    BoostedFusion,
    Fusion,
    PairwiseLogisticFusion,
    WeightedFusion,
    fingerprint,
    fusion_from_dict,
)
from recommender.index import Encoder, RankingIndex, day_number, natural_key
from recommender.metrics import QueryResult, pessimistic_ranks, summarise

__all__ = [
    "PseudoQueries",
    "TrainedRanker",
    "make_pseudo_queries",
    "mrr_of",
    "score_groups",
    "skill_aliases",
    "time_order",
    "train_ranker",
]


def skill_aliases(proj: Projection) -> dict[str, str]:
    """Alias (and name) -> canonical skill id, from the projection's skill nodes."""
    out: dict[str, str] = {}
    for sid, props in zip(proj.ids["Skill"], proj.props["Skill"], strict=True):
        for alias in props.get("aliases") or []:
            out.setdefault(str(alias), sid)
        if props.get("name"):
            out.setdefault(str(props["name"]), sid)
    return out


def time_order(proj: Projection) -> np.ndarray:
    """Problem indices oldest first: by ``posted_at`` (else ``solved_at``) when most problems are dated,
    then by natural id order (``q9`` before ``q10``)."""
    props = proj.props["Problem"]
    days = np.array([day_number(p.get("posted_at") or p.get("solved_at")) for p in props])
    keys = [natural_key(pid) for pid in proj.ids["Problem"]]
    by_id = sorted(range(len(keys)), key=keys.__getitem__)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[by_id] = np.arange(len(keys))
    if len(days) and np.mean(~np.isnan(days)) >= 0.5:
        filled = np.where(np.isnan(days), np.nanmin(days) if np.any(~np.isnan(days)) else 0.0, days)
        return np.lexsort((rank, filled))
    return np.asarray(by_id, dtype=np.int64)


@dataclass
class PseudoQueries:
    """Queries with candidates and 0/1 labels, in time order."""

    queries: list[Query] = field(default_factory=list)
    candidates: list[np.ndarray] = field(default_factory=list)
    labels: list[np.ndarray] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.queries)


def make_pseudo_queries(proj: Projection, problems: np.ndarray, history: np.ndarray, *, n_negatives: int = 19,
                        seed: int = 0) -> PseudoQueries:
    """Pseudo-queries from solved ``problems`` with candidates drawn from workers with history.

    ``history`` is the boolean problem mask of the index the features will come from: only
    workers who solved something there are candidates (the expected one included).
    """
    rng = np.random.default_rng(seed)
    solved = proj.matrix("SOLVED", "Worker", "Problem").tocsc()
    has_history = np.asarray(solved[:, np.flatnonzero(history)].sum(axis=1)).ravel() > 0
    pool = np.flatnonzero(has_history)
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
        others = np.setdiff1d(pool, solvers, assume_unique=False)
        k = min(n_negatives, len(others))
        if k == 0:
            continue
        negatives = rng.choice(others, size=k, replace=False)
        row = dict(proj.props["Problem"][int(p)])
        row["id"] = proj.ids["Problem"][int(p)]
        cand = np.concatenate([[expected], negatives]).astype(np.int64)
        rng.shuffle(cand)
        out.queries.append(Query.from_row(row, skill_of=aliases))
        out.candidates.append(cand)
        out.labels.append(cand == expected)
    return out


def mrr_of(scores: list[np.ndarray], labels: list[np.ndarray]) -> dict[str, float]:
    """Metrics of per-query score vectors against 0/1 labels (pessimistic ties)."""
    results = []
    for i, (s, y) in enumerate(zip(scores, labels, strict=True)):
        keys = [str(j) for j in range(len(s))]
        expected = [keys[j] for j in np.flatnonzero(y)]
        results.append(QueryResult(str(i), tuple(pessimistic_ranks(dict(zip(keys, s, strict=True)), expected))))
    return summarise(results)


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
    validation: dict[str, dict[str, float]]       # kind -> metrics on the validation slice
    n_train: int = 0
    n_valid: int = 0
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def version(self) -> str:
        """``"fused-weights@<hash>"`` or ``"learned@<hash>"``."""
        if isinstance(self.fusion, BoostedFusion):
            params = {"kind": self.fusion.kind, "meta": self.meta, "valid": self.validation}
        else:
            params = self.fusion.to_dict()
        prefix = "fused-weights" if self.chosen == "weights" else "learned"
        return f"{prefix}@{fingerprint(params)}"

    def save(self, directory: str | Path) -> Path:
        """Write ``ranker.json`` (and ``ranker.joblib`` for tree models) under ``directory``."""
        base = Path(directory)
        base.mkdir(parents=True, exist_ok=True)
        doc: dict[str, Any] = {"version": self.version, "chosen": self.chosen, "validation": self.validation,
                               "n_train": self.n_train, "n_valid": self.n_valid, "meta": self.meta}
        if isinstance(self.fusion, BoostedFusion):
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
                fusion = joblib.load(Path(directory) / doc["fusion"]["file"])
            else:
                fusion = fusion_from_dict(doc["fusion"])
        except (OSError, ValueError, KeyError) as err:
            raise ModelNotFound(f"no usable ranking model at {path}: {err}") from err
        return cls(fusion=fusion, chosen=doc["chosen"], validation=doc.get("validation", {}),
                   n_train=doc.get("n_train", 0), n_valid=doc.get("n_valid", 0), meta=doc.get("meta", {}))


def train_ranker(
    proj: Projection,
    *,
    encoder: Encoder | None = None,
    weights: Mapping[str, float] | None = None,
    holdout: float = 0.1,
    valid_share: float = 0.3,
    n_negatives: int = 19,
    max_queries: int = 4000,
    min_queries: int = 30,
    seed: int = 0,
    mode: Literal["auto", "weights", "learned"] = "auto",
    within: np.ndarray | None = None,
    log: Callable[[str], None] | None = None,
) -> TrainedRanker:
    """Fit and choose the fusion on ``proj``'s own history (see the module docstring).

    ``mode="auto"`` keeps a learned fusion only when it beats the weights on the validation slice;
    ``"weights"`` and ``"learned"`` force the choice (the validation is still measured and reported).
    ``within`` (a boolean problem mask) restricts training to a part of the graph, e.g. the
    history before a replay's test window; problems outside it are neither evidence nor queries.
    With fewer than ``min_queries`` usable pseudo-queries the configured weights are returned,
    their scaler fitted on whatever rows exist.
    """
    say = log or (lambda _msg: None)
    order = time_order(proj)
    if within is not None:
        order = order[np.asarray(within, dtype=bool)[order]]
    solved_cols = np.asarray(proj.matrix("SOLVED", "Worker", "Problem").sum(axis=0)).ravel() > 0
    solved_order = order[solved_cols[order]]
    n_hold = int(round(len(solved_order) * holdout))
    held = solved_order[len(solved_order) - n_hold:] if n_hold else solved_order[:0]
    if len(held) > max_queries:
        held = held[-max_queries:]
    history = np.ones(proj.n("Problem"), dtype=bool) if within is None else np.asarray(within, dtype=bool).copy()
    # everything posted from the first held-out problem on is outside the history
    if len(held):
        first = int(np.flatnonzero(np.isin(order, held))[0])
        history[order[first:]] = False
    pseudo = make_pseudo_queries(proj, held, history, n_negatives=n_negatives, seed=seed)
    meta: dict[str, Any] = {"holdout": holdout, "n_negatives": n_negatives, "seed": seed,
                            "history_problems": int(history.sum()), "pseudo_queries": len(pseudo),
                            "encoder": getattr(encoder, "identity", None)}
    weighted = WeightedFusion(weights=weights)
    if len(pseudo) < min_queries:
        say(f"only {len(pseudo)} pseudo-queries: using the configured weights")
        feats: list[np.ndarray] = []
        if len(pseudo):
            index = RankingIndex(proj, history=history, encoder=encoder)
            feats, _ = compute_features(index, pseudo.queries, pseudo.candidates)
        x, _, _ = _stack(feats, pseudo.labels)
        weighted.fit(x if len(x) else np.zeros((1, len(FEATURES))))
        return TrainedRanker(weighted, "weights", {}, 0, 0, meta)
    say(f"training on {len(pseudo)} pseudo-queries from the newest {holdout:.0%} of solved problems "
        f"against {int(history.sum())} older problems")
    index = RankingIndex(proj, history=history, encoder=encoder)
    feats, _ = compute_features(index, pseudo.queries, pseudo.candidates)
    cut = int(len(feats) * (1.0 - valid_share))
    tr_x, tr_y, tr_g = _stack(feats[:cut], pseudo.labels[:cut])
    candidates: dict[str, Fusion] = {
        "weights": WeightedFusion(weights=weights).fit(tr_x),
        PairwiseLogisticFusion.kind: PairwiseLogisticFusion(random_state=seed).fit(tr_x, tr_y, tr_g),
        BoostedFusion.kind: BoostedFusion(random_state=seed).fit(tr_x, tr_y, tr_g),
    }
    validation = {kind: mrr_of(score_groups(f, feats[cut:]), pseudo.labels[cut:]) for kind, f in candidates.items()}
    for kind, m in validation.items():
        say(f"  validation {kind:18s} MRR {m['MRR']:.4f}  P@1 {m['P@1']:.4f}  nDCG@10 {m['nDCG@10']:.4f}")
    allowed = {"auto": list(validation), "weights": ["weights"],
               "learned": [k for k in validation if k != "weights"]}[mode]
    best = max(allowed, key=lambda k: (validation[k]["MRR"], k == "weights"))
    all_x, all_y, all_g = _stack(feats, pseudo.labels)
    final: Fusion
    if best == "weights":
        final = WeightedFusion(weights=weights).fit(all_x)
    elif best == PairwiseLogisticFusion.kind:
        final = PairwiseLogisticFusion(random_state=seed).fit(all_x, all_y, all_g)
    else:
        final = BoostedFusion(random_state=seed).fit(all_x, all_y, all_g)
    say(f"chosen fusion: {best}")
    return TrainedRanker(final, best, validation, cut, len(feats) - cut, meta)
