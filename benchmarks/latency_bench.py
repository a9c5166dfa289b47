"""Latency of one recommendation (top 10 of all workers, with explanations) on the embedded store.

For each scale, the demo generator writes a synthetic Yancheng-like dataset (``scale=1``: 300
workers, 2,200 problems; ``scale=33``: about 10k workers and 73k problems), it is loaded into an
in-memory :class:`~graph.memory.MemoryStore`, and a :class:`~recommender.engine.Recommender` is
built once. Then, for ``--queries`` new problems (copies of recent problems, so not stored):

* **product**: ``Recommender.recommend(problem, n=10, explain=True)``: candidate generation,
  filters, full scoring of a few hundred candidates, explanations;
* **naive (all workers)**: the same signals for *every* worker (candidate generation off);
* **naive (from the store)**: no projection at all: for every worker, read their ``SOLVED``
  relationships and problem texts from the store and compute the TF-IDF top-3 cosine (one signal
  only; run on fewer queries because it is slow).

It prints p50/p95/p99 in milliseconds, the ratios, build time and peak memory (``ru_maxrss``).

Run::

    .venv/bin/python benchmarks/latency_bench.py --scales 1 33 [--queries 100]
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graph.dataset import load_dataset  # noqa: E402
from graph.demo import generate  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from recommender.engine import RankConfig, Recommender  # noqa: E402
from recommender.text import problem_text  # noqa: E402

__all__ = ["main"]


def _pct(samples: list[float]) -> str:
    a = np.asarray(samples) * 1000.0
    return f"p50 {np.percentile(a, 50):8.1f}  p95 {np.percentile(a, 95):8.1f}  p99 {np.percentile(a, 99):8.1f} ms"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _naive_from_store(store: MemoryStore, rec: Recommender, problem: dict[str, Any]) -> list[tuple[str, float]]:
    """Brute force without the projection: every worker's history read from the store, cosine top-3."""
    text = rec.index.text
    q = text.transform([problem_text(problem)]).word
    scores = []
    for worker in store.iter_nodes("Worker"):
        rels = store.relationships("SOLVED", start=("Worker", worker["id"]))
        texts = [problem_text(store.get_node("Problem", r.end_id) or {}) for r in rels]
        if texts:
            sims = np.sort((text.transform(texts).word @ q.T).toarray().ravel())[::-1]
            scores.append((worker["id"], float(sims[:3].sum())))
        else:
            scores.append((worker["id"], 0.0))
    scores.sort(key=lambda s: -s[1])
    return scores[:10]


def bench(scale: float, n_queries: int, n_naive_store: int, seed: int) -> None:
    print(f"\n=== scale {scale} ===", flush=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="jianglian-lat-") as tmp:
        generate(Path(tmp) / "demo", scale=scale, seed=seed)
        t_gen = time.perf_counter() - t0
        store = MemoryStore(None)
        load_dataset(store, Path(tmp) / "demo")
    t_load = time.perf_counter() - t0 - t_gen
    counts = store.counts()
    t1 = time.perf_counter()
    rec = Recommender(store, config=RankConfig(model_dir=Path(tmp) / "no-models"))
    t_build = time.perf_counter() - t1
    print(f"workers {counts.get('Worker', 0)}, problems {counts.get('Problem', 0)}, SOLVED {counts.get('SOLVED', 0)}; "
          f"generate {t_gen:.1f}s, load {t_load:.1f}s, build recommender {t_build:.1f}s "
          f"({rec.model_version}); peak RSS {_peak_mb():.0f} MB", flush=True)

    problems = store.list_nodes("Problem", where={"status": "solved"})
    rng = np.random.default_rng(seed)
    picked = [problems[i] for i in rng.choice(len(problems), size=min(n_queries, len(problems)), replace=False)]
    queries = [{k: p.get(k) for k in ("title", "description", "skills", "enterprise_id", "district", "service_type")}
               for p in picked]
    rec.recommend(queries[0], n=10)  # warm-up
    product: list[float] = []
    for q in queries:
        t = time.perf_counter()
        recs = rec.recommend(q, n=10, explain=True)
        product.append(time.perf_counter() - t)
        assert len(recs) == 10 and all(r.explanation is not None for r in recs)
    print(f"product (candidates + filters + scoring + explanations): {_pct(product)}", flush=True)

    brute = Recommender(store, config=RankConfig(model_dir=Path(tmp) / "no-models", max_candidates=10**9))
    brute._set_fusion()
    naive: list[float] = []
    agree = 0
    for q in queries:
        t = time.perf_counter()
        full = brute.recommend(q, n=10, explain=True)
        naive.append(time.perf_counter() - t)
        agree += len({r.worker_id for r in full} & {r.worker_id for r in rec.recommend(q, n=10, explain=False)})
    print(f"naive, every signal for every worker:                  {_pct(naive)}", flush=True)
    print(f"  ratio naive/product p50 {np.median(naive) / np.median(product):.1f}x, "
          f"p95 {np.percentile(naive, 95) / np.percentile(product, 95):.1f}x; "
          f"top-10 overlap with exhaustive scoring {agree / (10 * len(queries)):.1%}", flush=True)
    if n_naive_store:
        slow: list[float] = []
        for q in queries[:n_naive_store]:
            t = time.perf_counter()
            _naive_from_store(store, rec, q)
            slow.append(time.perf_counter() - t)
        print(f"naive from the store (text top-3 only, {len(slow)} queries): {_pct(slow)}; "
              f"ratio p50 {np.median(slow) / np.median(product):.0f}x", flush=True)
    print(f"peak RSS {_peak_mb():.0f} MB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 33.0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--naive-store-queries", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    for scale in args.scales:
        bench(scale, args.queries, args.naive_store_queries, args.seed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
