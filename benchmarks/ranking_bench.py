"""Time-split replay on the demo data: ablation table and per-service-type breakdown.

The demo dataset is generated (``graph.demo.generate``), loaded into a fresh in-memory store, and
its solved problems ordered by ``posted_at``. The newest ``--test-share`` of them are the test
queries; each is ranked over *all* workers using only the history posted before the test window
(the learned fusion is trained inside that history too, by :func:`recommender.training.train_ranker`).
Every solver of a test problem counts as relevant.

Run::

    .venv/bin/python benchmarks/ranking_bench.py [--scale 1] [--seed 7] [--test-share 0.2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graph.dataset import load_dataset  # noqa: E402
from graph.demo import generate  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from graph.projection import Projection  # noqa: E402
from recommender.features import FEATURES, Query, compute_features  # noqa: E402
from recommender.fusion import DEFAULT_WEIGHTS, WeightedFusion  # noqa: E402
from recommender.index import RankingIndex  # noqa: E402
from recommender.metrics import QueryResult, pessimistic_ranks, summarise  # noqa: E402
from recommender.training import score_groups, skill_aliases, time_order, train_ranker  # noqa: E402

__all__ = ["main"]

TEXT = ("text_top3", "text_max", "text_hits", "char_top3", "char_max", "bm25", "profile")
GRAPH = ("ppr", "skill_hist", "skill_count", "skill_declared", "enterprise", "chain", "district_work", "district")


def _metrics(scores: list[np.ndarray], relevant: list[set[int]], n_workers: int) -> dict[str, float]:
    keys = [str(i) for i in range(n_workers)]
    results = []
    for s, rel in zip(scores, relevant, strict=True):
        results.append(QueryResult("", tuple(pessimistic_ranks(dict(zip(keys, s, strict=True)),
                                                               [keys[r] for r in rel]))))
    return summarise(results)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--test-share", type=float, default=0.2)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jianglian-bench-") as tmp:
        generate(Path(tmp) / "demo", scale=args.scale, seed=args.seed)
        store = MemoryStore(None)
        load_dataset(store, Path(tmp) / "demo")
    proj = Projection.from_store(store)
    order = time_order(proj)
    solved = proj.matrix("SOLVED", "Worker", "Problem").tocsc()
    is_solved = np.diff(solved.indptr) > 0
    solved_order = order[is_solved[order]]
    n_test = int(round(len(solved_order) * args.test_share))
    test = solved_order[len(solved_order) - n_test:]
    first = int(np.flatnonzero(order == test[0])[0])
    history = np.zeros(proj.n("Problem"), dtype=bool)
    history[order[:first]] = True
    print(f"demo scale {args.scale} seed {args.seed}: {proj.n('Worker')} workers, {proj.n('Problem')} problems; "
          f"history {int(history.sum())} problems, test {len(test)} solved problems "
          f"(posted from {proj.props['Problem'][int(test[0])].get('posted_at')})")

    trained = train_ranker(proj, within=history, seed=args.seed, log=lambda m: print("  " + m))
    index = RankingIndex(proj, history=history)
    aliases = skill_aliases(proj)
    queries = []
    for p in test:
        row = {k: v for k, v in proj.props["Problem"][int(p)].items() if k not in ("solved_by", "solved_at")}
        row["id"] = proj.ids["Problem"][int(p)]
        queries.append(Query.from_row(row, skill_of=aliases))
    everyone = np.arange(proj.n("Worker"))
    feats, _ = compute_features(index, queries, [everyone] * len(queries))
    relevant = [set(solved.indices[solved.indptr[p]:solved.indptr[p + 1]].tolist()) for p in test]
    service = [q.service_type or "-" for q in queries]

    weights = trained.fusion if trained.chosen == "weights" else None
    if weights is None:
        weights = WeightedFusion().fit(np.vstack(feats))
    rankers: dict[str, list[np.ndarray]] = {}
    for name in ("text_top3", "char_top3", "bm25", "profile", "skill_hist", "ppr", "district", "popularity"):
        rankers[f"single: {name}"] = [f[:, FEATURES.index(name)] for f in feats]
    base = dict(DEFAULT_WEIGHTS if weights.weights is None else weights.weights)
    for group_name, group in (("text only (weights over text signals)", TEXT),
                              ("graph only (weights over graph signals)", GRAPH)):
        sub = WeightedFusion(weights={k: v for k, v in base.items() if k in group}).fit(np.vstack(feats))
        rankers[group_name] = score_groups(sub, feats)
    rankers["fused (weights)"] = score_groups(weights, feats)
    if trained.chosen != "weights":
        rankers[f"learned ({trained.chosen})"] = score_groups(trained.fusion, feats)
    else:
        best = max((k for k in trained.validation if k != "weights"), key=lambda k: trained.validation[k]["MRR"],
                   default=None)
        if best is not None:
            forced = train_ranker(proj, within=history, seed=args.seed, mode="learned")
            rankers[f"learned ({forced.chosen}, not chosen)"] = score_groups(forced.fusion, feats)

    n_workers = proj.n("Worker")
    print(f"\nablation over {len(test)} test problems, ranking all {n_workers} workers (fusion chosen: "
          f"{trained.chosen})")
    print(f"{'ranker':45s} {'MRR':>7s} {'P@1':>7s} {'P@3':>7s} {'nDCG@10':>8s}")
    table = {}
    for name, scores in rankers.items():
        m = _metrics(scores, relevant, n_workers)
        table[name] = m
        print(f"{name:45s} {m['MRR']:7.4f} {m['P@1']:7.4f} {m['P@3']:7.4f} {m['nDCG@10']:8.4f}")

    by_type: dict[str, list[int]] = defaultdict(list)
    for i, st in enumerate(service):
        by_type[st].append(i)
    shown = [k for k in rankers if k.startswith(("text only", "graph only", "single: popularity", "fused",
                                                   "learned"))]
    print("\nnDCG@10 per service type")
    print(f"{'service type':10s} {'n':>5s} " + " ".join(f"{k.split(' (')[0][:12]:>12s}" for k in shown))
    for st, rows in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
        vals = []
        for k in shown:
            m = _metrics([rankers[k][i] for i in rows], [relevant[i] for i in rows], n_workers)
            vals.append(f"{m['nDCG@10']:12.4f}")
        print(f"{st:10s} {len(rows):5d} " + " ".join(vals))
    print(f"\ntotal {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
