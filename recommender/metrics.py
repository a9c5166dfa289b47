"""Ranking metrics with pessimistic tie breaking.

The expected worker of a query is placed *below* every candidate whose score ties with it, so a
ranker that gives everybody the same score earns the worst rank, not a lucky one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = ["QueryResult", "pessimistic_rank", "pessimistic_ranks", "summarise"]


def pessimistic_rank(scores: Mapping[str, float], expected: str) -> int:
    """1-based rank of ``expected`` counting every candidate scoring at least as high.

    A candidate missing from ``scores`` ranks last (``len(scores) + 1``).

    Examples
    --------
    >>> pessimistic_rank({"a": 0.9, "b": 0.5, "c": 0.5}, "b")
    3
    >>> pessimistic_rank({"a": 0.9, "b": 0.5, "c": 0.1}, "b")
    2
    """
    return pessimistic_ranks(scores, [expected])[0]


def pessimistic_ranks(scores: Mapping[str, float], expected: Sequence[str]) -> list[int]:
    """1-based ranks of the expected workers when ties are broken against them.

    Candidates are sorted by score, and within a tie every non-expected candidate comes first;
    expected workers missing from ``scores`` rank after everything.

    Examples
    --------
    >>> pessimistic_ranks({"a": 0.5, "b": 0.5, "c": 0.9, "d": 0.1}, ["a", "b"])
    [2, 3]
    """
    wanted = set(expected)
    order = sorted(scores, key=lambda w: (-scores[w], w in wanted))
    ranks = [i + 1 for i, w in enumerate(order) if w in wanted]
    missing = len(wanted - set(scores))
    ranks.extend(len(scores) + 1 + i for i in range(missing))
    return ranks


@dataclass(frozen=True)
class QueryResult:
    """The pessimistic ranks of a query's expected workers (usually one)."""

    query_id: str
    ranks: tuple[int, ...]


def _query_metrics(ranks: Sequence[int]) -> dict[str, float]:
    best = min(ranks)
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(len(ranks), 10)))
    dcg = sum(1.0 / math.log2(r + 1) for r in ranks if r <= 10)
    return {
        "MRR": 1.0 / best,
        "P@1": float(best <= 1),
        "P@3": float(best <= 3),
        "nDCG@10": dcg / ideal if ideal else 0.0,
    }


def summarise(results: Iterable[QueryResult]) -> dict[str, float]:
    """Mean MRR, P@1, P@3 and nDCG@10 over queries (``P@k``: an expected worker in the top k).

    Examples
    --------
    >>> summarise([QueryResult("q1", (1,)), QueryResult("q2", (2,))])["MRR"]
    0.75
    """
    totals = {"MRR": 0.0, "P@1": 0.0, "P@3": 0.0, "nDCG@10": 0.0}
    n = 0
    for result in results:
        if not result.ranks:
            continue
        n += 1
        for key, value in _query_metrics(result.ranks).items():
            totals[key] += value
    out = {key: (value / n if n else 0.0) for key, value in totals.items()}
    out["queries"] = float(n)
    return out
