"""Time-split replay on the demo data: ablation table and per-service-type breakdown.

The demo dataset is generated (``demo.generator.generate``), loaded into a fresh in-memory store, and
its solved problems ordered by ``posted_at``. The newest ``--test-share`` of them are the test
queries; each is ranked over *all* workers using only the history posted before the test window
(the learned fusion is trained inside that history too, by :func:`recommender.training.train_ranker`).
Every solver of a test problem counts as relevant.

``--encoder`` adds the dense signals (``dense_top3``, ``dense_max``, ``dense_profile``) and runs the replay
twice in one process, without and then with the encoder, on the same split. ``--encoder build`` builds the
project's own encoder (:func:`embeddings.builder.build_encoder`, as ``jianglian build-encoder`` does) from the
history only: the texts of the problems posted before the test window, every worker profile, and training pairs
mined from the history's ``SOLVED`` edges; no test-window problem text or solver reaches it. Any other value is
a model path or name for :func:`embeddings.encoder.load_encoder`.

An encoder built from the whole history has also been fitted on the pairs of the pseudo-queries the fusion is
trained on (the newest 10 % of the history), so in training its dense signals look better than they will on new
problems. ``--train-encoder inner`` (with ``--encoder build``) gives :func:`train_ranker` a second encoder, built
from the history before its pseudo-query window, and uses the whole-history one for the test queries only.

Run::

    .venv/bin/python benchmarks/ranking_bench.py [--scale 1] [--seed 7] [--test-share 0.2] [--encoder build|PATH]
        [--train-encoder same|inner] [--per-problem]

``--per-problem`` ranks each test problem from the history before its own posting date (problems posted and
solved earlier in the test window become evidence for the later ones), with the fusion trained once before the
window, as a running service retrains periodically.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.generator import generate  # noqa: E402
from graph.dataset import load_dataset  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from graph.projection import Projection  # noqa: E402
from recommender.features import FEATURES, Query, compute_features  # noqa: E402
from recommender.fusion import DEFAULT_WEIGHTS, QueryNormFusion, WeightedFusion  # noqa: E402
from recommender.index import Encoder, RankingIndex  # noqa: E402
from recommender.metrics import QueryResult, pessimistic_ranks, summarise  # noqa: E402
from recommender.training import score_groups, skill_aliases, time_order, train_ranker  # noqa: E402

__all__ = ["main", "time_split"]

# the dense columns are constant (so 0) without an encoder
TEXT = ("text_top3", "text_max", "text_hits", "char_top3", "char_max", "bm25", "profile",
        "dense_top3", "dense_max", "dense_profile", "expertise")
GRAPH = ("ppr", "skill_hist", "skill_count", "skill_declared", "enterprise", "chain", "district_work", "district")


def time_split(proj: Projection, test_share: float) -> tuple[np.ndarray, np.ndarray]:
    """The newest ``test_share`` of the solved problems (oldest first) and the history mask: every problem posted
    before the first of them."""
    order = time_order(proj)
    solved = proj.matrix("SOLVED", "Worker", "Problem").tocsc()
    solved_order = order[(np.diff(solved.indptr) > 0)[order]]
    n_test = int(round(len(solved_order) * test_share))
    test = solved_order[len(solved_order) - n_test:]
    first = int(np.flatnonzero(order == test[0])[0])
    history = np.zeros(proj.n("Problem"), dtype=bool)
    history[order[:first]] = True
    return test, history


def _metrics(scores: list[np.ndarray], relevant: list[set[int]], n_workers: int) -> dict[str, float]:
    keys = [str(i) for i in range(n_workers)]
    results = []
    for s, rel in zip(scores, relevant, strict=True):
        results.append(QueryResult("", tuple(pessimistic_ranks(dict(zip(keys, s, strict=True)),
                                                               [keys[r] for r in rel]))))
    return summarise(results)


def build_history_encoder(store: MemoryStore, proj: Projection, history: np.ndarray, out: Path, *,
                          seed: int = 0) -> Any:
    """Build the project's encoder from the history problems only (plus all worker profiles) and load it.

    The corpus and the pairs are those of ``jianglian build-encoder`` (:func:`cli.embed.corpus_from_store`),
    restricted to the problems in ``history``: the test window's texts and solvers never reach the build.
    """
    from cli.embed import corpus_from_store
    from embeddings.builder import BuildConfig, build_encoder, mine_grouped_pairs
    from embeddings.encoder import load_encoder

    problems, solved_by, profiles = corpus_from_store(store)
    keep = {proj.ids["Problem"][int(p)] for p in np.flatnonzero(history)}
    problems = {pid: text for pid, text in problems.items() if pid in keep}
    solved_by = {pid: workers for pid, workers in solved_by.items() if pid in keep}
    pairs, groups = mine_grouped_pairs(problems, solved_by, profiles, seed=seed)
    print(f"building the encoder from the history only: {len(problems)} problems, {len(profiles)} profiles, "
          f"{len(pairs)} pairs")
    cfg = BuildConfig()
    started = time.perf_counter()
    build_encoder([t for t in [*problems.values(), *profiles.values()] if t.strip()], pairs, out, seed=seed,
                  dim=cfg.dim, epochs=cfg.epochs, groups=groups, config=cfg, show_progress=False)
    print(f"  built in {time.perf_counter() - started:.1f}s")
    return load_encoder(str(out))


def training_history(proj: Projection, within: np.ndarray, holdout: float = 0.1) -> np.ndarray:
    """The problems :func:`train_ranker` (default ``holdout``) uses as evidence: ``within`` minus its pseudo-query
    window (everything posted from the first of the newest ``holdout`` share of solved problems on)."""
    order = time_order(proj)
    order = order[within[order]]
    is_solved = np.asarray(proj.matrix("SOLVED", "Worker", "Problem").sum(axis=0)).ravel() > 0
    solved_order = order[is_solved[order]]
    n_hold = int(round(len(solved_order) * holdout))
    out = within.copy()
    if n_hold:
        first = int(np.flatnonzero(order == solved_order[len(solved_order) - n_hold])[0])
        out[order[first:]] = False
    return out


def _features_per_problem(proj: Projection, history: np.ndarray, test: np.ndarray, queries: list[Query],
                          encoder: Encoder | None) -> list[np.ndarray]:
    """Features of each test problem from the history before its own posting date.

    The evidence grows through the test window: problems posted (and solved) earlier in it become history for
    the later ones. One index per posting date, each derived from the previous one (``reuse``: the text model
    fitted on the first history is kept, as a running service keeps it until its next full build).
    """
    order = time_order(proj)
    position = np.empty(len(order), dtype=np.int64)
    position[order] = np.arange(len(order))
    dates = [str(proj.props["Problem"][int(p)].get("posted_at") or "") for p in test]
    everyone = np.arange(proj.n("Worker"))
    feats: list[np.ndarray] = [np.empty(0)] * len(test)
    index: RankingIndex | None = None
    start = 0
    while start < len(test):
        end = start
        while end < len(test) and dates[end] == dates[start]:
            end += 1
        mask = history.copy()
        earlier = order[:int(position[test[start:end]].min())]
        mask[earlier] = True  # everything posted before this date, test problems included
        index = RankingIndex(encoder=encoder).fit(proj, history=mask, reuse=index)
        rows, _ = compute_features(index, queries[start:end], [everyone] * (end - start))
        feats[start:end] = rows
        start = end
    return feats


def replay(proj: Projection, history: np.ndarray, test: np.ndarray, *, seed: int,
           encoder: Encoder | None = None, train_encoder: Encoder | None = None,
           per_problem: bool = False) -> dict[str, dict[str, float]]:
    """Train inside ``history``, rank every worker for the ``test`` problems, print the tables.

    ``train_encoder`` (default ``encoder``) is the encoder the fusion is trained with. ``per_problem``: each test
    problem is ranked from the history before its own posting date instead of the one before the test window.
    """
    t0 = time.perf_counter()
    solved = proj.matrix("SOLVED", "Worker", "Problem").tocsc()
    train_encoder = encoder if train_encoder is None else train_encoder
    trained = train_ranker(proj, within=history, seed=seed, encoder=train_encoder, log=lambda m: print("  " + m))
    aliases = skill_aliases(proj)
    queries = []
    for p in test:
        row = {k: v for k, v in proj.props["Problem"][int(p)].items() if k not in ("solved_by", "solved_at")}
        row["id"] = proj.ids["Problem"][int(p)]
        queries.append(Query.from_row(row, skill_of=aliases))
    everyone = np.arange(proj.n("Worker"))
    if per_problem:
        feats = _features_per_problem(proj, history, test, queries, encoder)
    else:
        index = RankingIndex(encoder=encoder).fit(proj, history=history)
        feats, _ = compute_features(index, queries, [everyone] * len(queries))
    relevant = [set(solved.indices[solved.indptr[p]:solved.indptr[p + 1]].tolist()) for p in test]
    service = [q.service_type or "-" for q in queries]

    weights = WeightedFusion().fit(np.vstack(feats))
    rankers: dict[str, list[np.ndarray]] = {}
    singles = ["text_top3", "char_top3", "bm25", "expertise", "profile", "skill_hist", "ppr", "district",
               "popularity", "activity"]
    if encoder is not None:
        singles[4:4] = ["dense_top3", "dense_max", "dense_profile"]
    for name in singles:
        rankers[f"single: {name}"] = [f[:, FEATURES.index(name)] for f in feats]
    base = dict(DEFAULT_WEIGHTS)
    for group_name, group in (("text only (weights over text signals)", TEXT),
                              ("graph only (weights over graph signals)", GRAPH)):
        sub = WeightedFusion(weights={k: v for k, v in base.items() if k in group}).fit(np.vstack(feats))
        rankers[group_name] = score_groups(sub, feats)
    rankers["fused (old configured weights)"] = score_groups(weights, feats)
    rankers["fused (query-normalised default)"] = score_groups(QueryNormFusion().fit(), feats)
    if trained.chosen == "learned":
        rankers["learned correction (chosen)"] = score_groups(trained.fusion, feats)
    else:
        forced = train_ranker(proj, within=history, seed=seed, encoder=train_encoder, mode="learned")
        rankers["learned correction (not chosen)"] = score_groups(forced.fusion, feats)

    n_workers = proj.n("Worker")
    evidence = "history before each problem" if per_problem else "history before the test window"
    print(f"\nablation over {len(test)} test problems ({evidence}), "
          f"ranking all {n_workers} workers (fusion chosen: "
          f"{trained.chosen}; encoder: {getattr(encoder, 'identity', None)}, trained with "
          f"{getattr(train_encoder, 'identity', None)})")
    print(f"{'ranker':45s} {'MRR':>7s} {'P@1':>7s} {'P@3':>7s} {'nDCG@10':>8s}")
    table = {}
    for name, scores in rankers.items():
        m = _metrics(scores, relevant, n_workers)
        table[name] = m
        print(f"{name:45s} {m['MRR']:7.4f} {m['P@1']:7.4f} {m['P@3']:7.4f} {m['nDCG@10']:8.4f}")

    # cold start and sparse history: the test problems whose every solver had solved at most 2 problems before
    n_before = np.asarray(solved[:, np.flatnonzero(history)].sum(axis=1)).ravel()
    sparse = [i for i, rel in enumerate(relevant) if rel and all(n_before[w] <= 2 for w in rel)]
    if sparse:
        print(f"\nsparse history: {len(sparse)} test problems whose solvers had solved <= 2 problems before "
              f"({sum(all(n_before[w] == 0 for w in relevant[i]) for i in sparse)} with none)")
        print(f"{'ranker':45s} {'MRR':>7s} {'P@1':>7s} {'P@3':>7s} {'nDCG@10':>8s}")
        for name, scores in rankers.items():
            m = _metrics([scores[i] for i in sparse], [relevant[i] for i in sparse], n_workers)
            table[f"sparse: {name}"] = m
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
    print(f"replay {time.perf_counter() - t0:.1f}s")
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--test-share", type=float, default=0.2)
    parser.add_argument("--encoder", default=None,
                        help="'build': build the project's encoder from the history only; otherwise a model path "
                             "or name. The replay then runs without and with it.")
    parser.add_argument("--train-encoder", choices=("same", "inner"), default="same",
                        help="with --encoder build: train the fusion with the same encoder, or with one built "
                             "from the history before the training's pseudo-queries (see the module docstring)")
    parser.add_argument("--per-problem", action="store_true",
                        help="rank each test problem from the history before its own posting date (the evidence "
                             "grows through the test window) instead of the history before the window")
    args = parser.parse_args(argv)
    if args.train_encoder != "same" and args.encoder != "build":
        parser.error("--train-encoder inner needs --encoder build")

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jianglian-bench-") as tmp:
        generate(Path(tmp) / "demo", scale=args.scale, seed=args.seed)
        store = MemoryStore(None)
        load_dataset(store, Path(tmp) / "demo")
        proj = Projection.from_store(store)
        test, history = time_split(proj, args.test_share)
        print(f"demo scale {args.scale} seed {args.seed}: {proj.n('Worker')} workers, {proj.n('Problem')} problems; "
              f"history {int(history.sum())} problems, test {len(test)} solved problems "
              f"(posted from {proj.props['Problem'][int(test[0])].get('posted_at')})")
        encoder: Any = None  # a SentenceTransformerEncoder (its identity is a read-only property)
        train_encoder: Any = None
        if args.encoder == "build":
            encoder = build_history_encoder(store, proj, history, Path(tmp) / "encoder", seed=args.seed)
            if args.train_encoder == "inner":
                train_encoder = build_history_encoder(store, proj, training_history(proj, history),
                                                      Path(tmp) / "train-encoder", seed=args.seed)

        elif args.encoder is not None:
            from embeddings.encoder import load_encoder

            encoder = load_encoder(args.encoder)

    tables = {"without encoder": replay(proj, history, test, seed=args.seed, per_problem=args.per_problem)}
    if encoder is not None:
        print()
        tables["with encoder"] = replay(proj, history, test, seed=args.seed, encoder=encoder,
                                        train_encoder=train_encoder, per_problem=args.per_problem)
        print("\nnDCG@10 without -> with the encoder")
        plain = {name.split(" (")[0] if name.startswith("learned") else name: m
                 for name, m in tables["without encoder"].items()}
        for name, m in tables["with encoder"].items():
            before = plain.get(name.split(" (")[0] if name.startswith("learned") else name)
            was = f"{before['nDCG@10']:.4f}" if before is not None else "-"
            print(f"{name:45s} {was:>8s} -> {m['nDCG@10']:.4f}")
    print(f"\ntotal {time.perf_counter() - t0:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
