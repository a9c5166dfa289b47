"""Rewrite a benchmark's candidate lists so that popularity and activity cannot tell the right worker apart.

The public benchmarks draw the 19 wrong candidates from all answerers, so "has answered a lot lately" alone
ranks well (history-stackexchange dev: recent activity MRR 0.736). Where candidates are drawn among active
workers (as in the held-out Chinese incident set, where popularity alone scores about chance) that prior is
useless and a fusion that leans on it falls. This script keeps each query's expected workers and replaces the
other candidates by workers of the most similar popularity and recent activity (nearest neighbours in those
two numbers, drawn at random among the closest), to check that the ranking holds up when the prior is useless::

    .venv/bin/python benchmarks/hard_candidates.py ../shared/benchmarks/history-stackexchange \\
        ../shared/benchmarks/history-stackexchange/queries-dev.jsonl /tmp/hist-hard.jsonl
    .venv/bin/jianglian evaluate ../shared/benchmarks/history-stackexchange --queries /tmp/hist-hard.jsonl \\
        --out /tmp/hist-hard-ranked.jsonl --ablation
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from recommender.evaluate import load_projection, read_queries  # noqa: E402
from recommender.training import worker_priors  # noqa: E402

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dataset", type=Path)
    parser.add_argument("queries", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--pool", type=int, default=40, help="draw the negatives among this many nearest workers")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    proj, _ = load_projection(args.dataset)
    priors = worker_priors(proj)
    z = (priors - priors.mean(axis=0)) / np.maximum(priors.std(axis=0), 1e-9)
    ids = proj.ids["Worker"]
    wpos = proj.index["Worker"]
    rng = np.random.default_rng(args.seed)
    rows = read_queries(args.queries)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as fh:
        for row in rows:
            expected = [str(e) for e in row.get("expected") or [] if str(e) in wpos]
            size = len(row.get("candidates") or []) or 20
            if not expected:
                continue
            centre = z[[wpos[e] for e in expected]].mean(axis=0)
            distance = np.linalg.norm(z - centre, axis=1)
            distance[[wpos[e] for e in expected]] = np.inf
            near = np.argsort(distance, kind="stable")[:max(args.pool, size)]
            negatives = rng.choice(near, size=min(size - len(expected), len(near)), replace=False)
            candidates = expected + [ids[int(w)] for w in negatives]
            rng.shuffle(candidates)
            fh.write(json.dumps({**row, "candidates": candidates}, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} queries with popularity- and activity-matched candidates to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
