"""Cost of the expertise model (``recommender.expertise``) at a given scale, against one-vs-rest logistic regression.

Synthetic history shaped like the 1M tier of ``latency_bench.py --scales 455`` (136.5k workers, 1M solved
problems, a few dozen TF-IDF terms per problem, a Zipf vocabulary): time and peak memory of
:func:`~recommender.expertise.fit_expertise`, the size of what it keeps, and the cost of scoring one
query's candidates. The naive way, one logistic regression per worker over the same rows, is timed on a
sample of workers and extrapolated (it is not run in full: that is the point).

Run::

    .venv/bin/python benchmarks/expertise_bench.py [--problems 1001000] [--workers 136500] [--terms 200000]
        [--ovr-sample 20]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommender.expertise import fit_expertise  # noqa: E402

__all__ = ["main"]


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def synthetic(n_problems: int, n_workers: int, n_terms: int, nnz: int, seed: int) -> tuple[sp.csr_matrix,
                                                                                          sp.csr_matrix]:
    """TF-IDF-like rows (L2-normalised, Zipf term frequencies) and a SOLVED matrix (Zipf worker activity)."""
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, n_terms + 1, dtype=np.float64)
    p_term = 1.0 / ranks
    p_term /= p_term.sum()
    cols = rng.choice(n_terms, size=n_problems * nnz, p=p_term).astype(np.int32)
    rows = np.repeat(np.arange(n_problems, dtype=np.int32), nnz)
    vals = rng.random(n_problems * nnz).astype(np.float32) + 0.1
    x = sp.csr_matrix((vals, (rows, cols)), shape=(n_problems, n_terms))
    x.sum_duplicates()
    norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
    x = sp.csr_matrix(sp.diags((1.0 / np.maximum(norms, 1e-9)).astype(np.float32)) @ x)
    p_worker = 1.0 / np.arange(1, n_workers + 1) ** 0.8
    p_worker /= p_worker.sum()
    solver = rng.choice(n_workers, size=n_problems, p=p_worker)
    solved = sp.csr_matrix((np.ones(n_problems, dtype=np.float32), (solver, np.arange(n_problems))),
                           shape=(n_workers, n_problems))
    return x, solved


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--problems", type=int, default=1_001_000)
    parser.add_argument("--workers", type=int, default=136_500)
    parser.add_argument("--terms", type=int, default=200_000)
    parser.add_argument("--nnz", type=int, default=30, help="terms per problem")
    parser.add_argument("--ovr-sample", type=int, default=20, help="workers timed for the one-vs-rest estimate")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    x, solved = synthetic(args.problems, args.workers, args.terms, args.nnz, args.seed)
    print(f"synthetic history: {args.problems:,} problems x {args.terms:,} terms ({x.nnz:,} non-zeros), "
          f"{args.workers:,} workers; made in {time.perf_counter() - t0:.1f} s; peak RSS {_peak_mb():,.0f} MB")
    before = _peak_mb()
    t1 = time.perf_counter()
    model = fit_expertise(x, solved, seed=args.seed)
    fit_s = time.perf_counter() - t1
    assert model is not None
    kept = model.components.nbytes + model.workers.nbytes + model.terms.nbytes
    print(f"fit_expertise: {fit_s:.1f} s; peak RSS {_peak_mb():,.0f} MB (was {before:,.0f}); "
          f"keeps {kept / 2**20:.0f} MB (problem tower {model.components.shape}, worker tower {model.workers.shape})")

    rng = np.random.default_rng(args.seed + 1)
    queries = x[rng.choice(args.problems, 200, replace=False)]
    cand = [rng.choice(args.workers, 400, replace=False) for _ in range(200)]
    t2 = time.perf_counter()
    for i in range(200):
        z = model.embed(queries[i])[0]
        model.scores(z, cand[i])
    per_query = (time.perf_counter() - t2) / 200 * 1000
    print(f"scoring one query's 400 candidates: {per_query:.2f} ms")

    from sklearn.linear_model import LogisticRegression

    solved_csr = sp.csr_matrix(solved)
    busiest = np.argsort(-np.diff(solved_csr.indptr))[:args.ovr_sample]
    t3 = time.perf_counter()
    for w in busiest:
        y = np.zeros(args.problems, dtype=bool)
        y[solved_csr.indices[solved_csr.indptr[w]:solved_csr.indptr[w + 1]]] = True
        LogisticRegression(C=10.0, solver="liblinear").fit(x, y)
    per_worker = (time.perf_counter() - t3) / len(busiest)
    print(f"naive one-vs-rest logistic regression: {per_worker:.1f} s per worker (mean of the {len(busiest)} busiest) "
          f"-> about {per_worker * args.workers / 3600:,.0f} CPU hours for {args.workers:,} workers, "
          f"{per_worker * args.workers / fit_s:,.0f}x the expertise fit; its weights would take "
          f"{args.terms * args.workers * 4 / 2**30:,.0f} GB dense")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
