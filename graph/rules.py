"""The domain rules shared by the ranking (:mod:`recommender`) and the campaign workflow (:mod:`workflow`).

Ids, the clock and time zone, a problem's status, and a worker's monthly capacity: one definition each,
so the recommender's hard filter, two-way selection and the campaign assignment cannot disagree.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Final

__all__ = [
    "DEFAULT_CAPACITY",
    "LIVE_STATES",
    "TIMEZONE",
    "capacity_of",
    "counts_against_capacity",
    "current_month",
    "new_id",
    "now",
    "problem_status",
]

#: Monthly capacity assumed for a worker row without ``capacity``.
DEFAULT_CAPACITY: Final = 2
#: Yancheng time: timestamps and "the current month" are China Standard Time.
TIMEZONE: Final = timezone(timedelta(hours=8), "CST")
#: States in which a match occupies the worker and the problem's demand.
LIVE_STATES: Final[frozenset[str]] = frozenset({"invited", "accepted"})

_id_lock = threading.Lock()
_last_stamp = [0]


def now() -> datetime:
    """The current time in China Standard Time."""
    return datetime.now(TIMEZONE)


def new_id(prefix: str, at: datetime | None = None) -> str:
    """A unique id that sorts by creation time: ``<prefix>-<UTC microseconds>-<random>``.

    Ids made in one process are strictly increasing even within one microsecond.

    Examples
    --------
    >>> a, b = new_id("M"), new_id("M")
    >>> a < b and a.startswith("M-")
    True
    """
    stamp = int((at or datetime.now(UTC)).timestamp() * 1_000_000)
    with _id_lock:
        stamp = max(stamp, _last_stamp[0] + 1)
        _last_stamp[0] = stamp
    return f"{prefix}-{stamp:017d}-{secrets.token_hex(3)}"


def problem_status(problem: Mapping[str, Any]) -> str:
    """A problem's status, defaulting like the dataset does (``solved`` when it has solvers, else ``open``).

    Examples
    --------
    >>> problem_status({"id": "p1"}), problem_status({"id": "p2", "solved_by": ["w1"]})
    ('open', 'solved')
    """
    status = problem.get("status")
    if status:
        return str(status)
    return "solved" if problem.get("solved_by") else "open"


def counts_against_capacity(match: Mapping[str, Any], month: str) -> bool:
    """Whether a match counts against its worker's monthly capacity in ``month`` (``YYYY-MM``).

    Open invitations and accepted matches count whenever they started (they still occupy the
    worker); completed matches count in the month they were invited (finishing quickly does not
    free the month's budget; a confirmed volunteer counts from its confirmation). The one rule shared
    by :class:`workflow.selection.Selection`, the recommender's hard
    filter and the campaign assignment.

    Examples
    --------
    >>> counts_against_capacity({"state": "completed", "invited_at": "2026-11-03T09:00:00+08:00"}, "2026-11")
    True
    >>> counts_against_capacity({"state": "declined"}, "2026-11")
    False
    """
    state = match.get("state")
    started = match.get("invited_at") or match.get("confirmed_at") or ""  # a confirmed volunteer was never invited
    return state in LIVE_STATES or (state == "completed" and str(started)[:7] == month)


def current_month(at: datetime | None = None) -> str:
    """The capacity month (``YYYY-MM``) in China Standard Time."""
    moment = at or now()
    if moment.tzinfo is not None:
        moment = moment.astimezone(TIMEZONE)
    return moment.isoformat(timespec="seconds")[:7]


def capacity_of(worker: Mapping[str, Any]) -> int:
    """A worker's monthly capacity: the ``capacity`` property, :data:`DEFAULT_CAPACITY` without one.

    Examples
    --------
    >>> capacity_of({"capacity": 4}), capacity_of({}), capacity_of({"capacity": -1})
    (4, 2, 0)
    """
    capacity = worker.get("capacity")
    if isinstance(capacity, bool) or not isinstance(capacity, int):
        return DEFAULT_CAPACITY
    return max(0, capacity)
