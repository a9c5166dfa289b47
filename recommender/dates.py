"""Dates and time order of problems: what "older" means to the ranking (activity, recency, time splits)."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from graph.projection import Projection

__all__ = ["day_number", "natural_key", "time_order"]


def day_number(value: Any) -> float:
    """Days since 1970-01-01 of a ``YYYY-MM-DD...`` string; NaN when absent or unreadable.

    Examples
    --------
    >>> day_number("1970-01-11T08:00")
    10.0
    >>> import math; math.isnan(day_number(None))
    True
    """
    if not isinstance(value, str) or len(value) < 10:
        return float("nan")
    try:
        return float(np.datetime64(value[:10], "D").astype(np.int64))
    except ValueError:
        return float("nan")


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders ``q9`` before ``q10`` (ids that count up in creation order).

    Examples
    --------
    >>> sorted(["q10", "q9", "p1"], key=natural_key)
    ['p1', 'q9', 'q10']
    """
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


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
