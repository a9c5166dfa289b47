"""Offline evaluation: rank the candidates of benchmark queries against a dataset loaded fresh.

``jianglian evaluate DATASET_DIR --queries QUERIES.jsonl --out RANKED.jsonl`` calls
:func:`evaluate_dataset`. A query line is ``{"id", "problem": {...} | "<stored problem id>",
"candidates": [...]?, "expected": [...]?}``; the output has one line per query,
``{"id", "ranking": [{"worker_id", "score"}, ...]}`` best first with every candidate.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graph.dataset import LoadReport, load_dataset
from graph.memory import MemoryStore
from graph.projection import Projection
from recommender.errors import InvalidQuery
from recommender.features import FEATURES, Query, compute_features
from recommender.index import Encoder, RankingIndex
from recommender.metrics import QueryResult, pessimistic_ranks, summarise
from recommender.training import score_groups, skill_aliases, train_ranker, worker_priors

__all__ = ["EvalReport", "candidate_popularity", "evaluate_dataset", "load_projection", "read_queries", "score_table"]


@dataclass
class EvalReport:
    """What :func:`evaluate_dataset` measured."""

    metrics: dict[str, float]
    chosen: str
    model_version: str
    why: str
    validation: dict[str, dict[str, float]]
    ablation: dict[str, dict[str, float]] = field(default_factory=dict)
    skipped_rows: int = 0
    timings: dict[str, float] = field(default_factory=dict)


def read_queries(path: str | Path) -> list[dict[str, Any]]:
    """Read a queries file (JSON Lines); raise :class:`InvalidQuery` naming the first bad line."""
    out: list[dict[str, Any]] = []
    with open(path, encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise InvalidQuery(f"{path}:{number}: bad JSON: {err}") from err
            if not isinstance(row, dict) or "id" not in row or "problem" not in row:
                raise InvalidQuery(f"{path}:{number}: a query needs \"id\" and \"problem\"")
            out.append(row)
    return out


def _query_of(row: Mapping[str, Any], proj: Projection, aliases: Mapping[str, str]) -> Query:
    problem = row["problem"]
    if isinstance(problem, str):
        at = proj.index["Problem"].get(problem)
        if at is None:
            raise InvalidQuery(f"query {row['id']}: unknown problem {problem!r}")
        stored = dict(proj.props["Problem"][at])
        stored["id"] = problem
        return Query.from_row(stored, skill_of=aliases)
    if not isinstance(problem, dict):
        raise InvalidQuery(f"query {row['id']}: \"problem\" must be an object or a problem id")
    return Query.from_row(problem, skill_of=aliases)


def score_table(scores: Sequence[np.ndarray], rows: Sequence[Mapping[str, Any]],
                cand_ids: Sequence[Sequence[str]]) -> dict[str, float]:
    """Metrics of score vectors against each query's ``expected`` (queries without it are skipped)."""
    results = []
    for row, ids, s in zip(rows, cand_ids, scores, strict=True):
        expected = [str(e) for e in row.get("expected") or []]
        if not expected:
            continue
        results.append(QueryResult(str(row["id"]), tuple(pessimistic_ranks(dict(zip(ids, s, strict=True)),
                                                                            expected))))
    return summarise(results)


def load_projection(dataset_dir: str | Path) -> tuple[Projection, LoadReport]:
    """A dataset directory loaded into a fresh, temporary embedded store: its projection and the load report
    (rows skipped as invalid are listed there, not raised)."""
    with tempfile.TemporaryDirectory(prefix="jianglian-eval-") as tmp:
        store = MemoryStore(Path(tmp) / "store")
        try:
            report = load_dataset(store, dataset_dir, skip_invalid=True)
            return Projection.from_store(store), report
        finally:
            store.close()


def candidate_popularity(proj: Projection, rows: Sequence[Mapping[str, Any]]) -> np.ndarray | None:
    """Popularity and activity (:func:`~recommender.training.worker_priors`) of each listed candidate of the
    queries (label-free; ``None`` without candidate lists).

    The pseudo-queries that choose the fusion then draw their negatives with the same popularity as
    the candidates to be ranked: whether popularity separates right from wrong answers depends on
    how the candidates were drawn, and that is visible without any label.
    """
    wpos = proj.index["Worker"]
    listed = [wpos[str(c)] for r in rows if isinstance(r.get("candidates"), list) for c in r["candidates"]
              if str(c) in wpos]
    return worker_priors(proj)[listed] if listed else None


def evaluate_dataset(
    dataset_dir: str | Path,
    queries_path: str | Path,
    out_path: str | Path,
    *,
    seed: int = 0,
    encoder: Encoder | None = None,
    fusion: str = "auto",
    ablation: bool = False,
    log: Callable[[str], None] | None = None,
) -> EvalReport:
    """Load ``dataset_dir`` into a fresh embedded store, rank every query's candidates, write and score.

    Parameters
    ----------
    fusion
        ``"auto"`` (the learned correction only when it beats the default with confidence, see
        :func:`recommender.training.train_ranker`), ``"default"`` (alias ``"weights"``) or ``"learned"``.
    ablation
        Also score each single feature and report its metrics.
    """
    import time

    say = log or (lambda _msg: None)
    if fusion not in ("auto", "default", "weights", "learned"):
        raise InvalidQuery(f"fusion must be auto, default or learned, not {fusion!r}")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    rows = read_queries(queries_path)
    proj, report = load_projection(dataset_dir)
    for err in report.skipped[:20]:
        say(f"skipped {err}")
    timings["load"] = time.perf_counter() - t0
    say(f"loaded {', '.join(f'{k} {v}' for k, v in report.rows.items())}; {len(report.skipped)} row(s) skipped")

    sizes = [len(r["candidates"]) for r in rows if isinstance(r.get("candidates"), list)]
    n_neg = max(1, int(np.median(sizes)) - 1) if sizes else 19
    t1 = time.perf_counter()
    trained = train_ranker(proj, encoder=encoder, n_negatives=n_neg, seed=seed, mode=fusion,  # type: ignore[arg-type]
                           reference_popularity=candidate_popularity(proj, rows), log=say)
    timings["train"] = time.perf_counter() - t1
    say(f"fusion: {trained.chosen} ({trained.version}): {trained.meta.get('why', '')}")

    t2 = time.perf_counter()
    index = RankingIndex(encoder=encoder).fit(proj)
    aliases = skill_aliases(proj)
    queries = [_query_of(r, proj, aliases) for r in rows]
    worker_ids = proj.ids["Worker"]
    wpos = proj.index["Worker"]
    cand_ids: list[list[str]] = []
    cand_idx: list[np.ndarray] = []
    for r in rows:
        ids = [str(c) for c in r["candidates"]] if isinstance(r.get("candidates"), list) else list(worker_ids)
        ids = list(dict.fromkeys(ids))
        cand_ids.append(ids)
        cand_idx.append(np.array([wpos.get(c, -1) for c in ids], dtype=np.int64))
    known = [c[c >= 0] for c in cand_idx]
    feats_known, _ = compute_features(index, queries, known)
    timings["features"] = time.perf_counter() - t2
    feats: list[np.ndarray] = []
    for c, fk in zip(cand_idx, feats_known, strict=True):
        f = np.zeros((len(c), len(FEATURES)))
        f[c >= 0] = fk
        feats.append(f)
    scores = score_groups(trained.fusion, feats)
    # unknown candidates (not in the dataset) rank last
    for s, c in zip(scores, cand_idx, strict=True):
        if (c < 0).any() and (c >= 0).any():
            s[c < 0] = s[c >= 0].min() - 1.0
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as fh:
        for r, ids, s in zip(rows, cand_ids, scores, strict=True):
            order = sorted(range(len(ids)), key=lambda j: (-s[j], j))
            ranking = [{"worker_id": ids[j], "score": round(float(s[j]), 6)} for j in order]
            fh.write(json.dumps({"id": r["id"], "ranking": ranking}, ensure_ascii=False) + "\n")
    metrics = score_table(scores, rows, cand_ids)
    table: dict[str, dict[str, float]] = {}
    if ablation:
        for j, name in enumerate(FEATURES):
            if any(f[:, j].any() for f in feats):
                table[name] = score_table([f[:, j] for f in feats], rows, cand_ids)
    timings["total"] = time.perf_counter() - t0
    return EvalReport(metrics=metrics, chosen=trained.chosen, model_version=trained.version,
                      why=str(trained.meta.get("why", "")),
                      validation=trained.validation, ablation=table, skipped_rows=len(report.skipped),
                      timings=timings)
