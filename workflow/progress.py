"""Programme progress against the campaign targets, per district and phase.

Counted from completed matches (the two-way selection's outcomes, :mod:`workflow.selection`):

- ``visits``: person-visits (人次), one per completed match;
- ``problems_solved``: distinct problems with a completed match whose outcome was solved, counted
  once, in the phase of their first solving completion;
- ``people_trained``: the sum of ``trainees`` over completed matches.

A completion belongs to the district of the problem (where the enterprise is: the visit happened
there) and to the phase containing its ``completed_at`` date (China Standard Time). City totals
count every completion inside the campaign, including problems whose district is not one of the
configured districts (reported as ``unattributed``); completions outside the campaign dates are
reported as ``outside_campaign`` and count towards nothing.

A cell is *at risk* when it is behind the pro-rata expectation (its target times the elapsed
fraction of the phase) by more than ``targets.margin`` times its target: a phase that has not
started cannot be at risk, and a finished phase that missed its target by more than the margin is.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime
from typing import Any

from graph.rules import TIMEZONE
from graph.store import GraphStore
from workflow.targets import METRICS, Targets

__all__ = ["cell", "completions", "programme_progress"]


def _zero() -> dict[str, int]:
    return {m: 0 for m in METRICS}


def cell(target: int, done: int, elapsed: float, margin: float) -> dict[str, Any]:
    """One progress cell: target, done, ratio (``None`` without a target), expected, at_risk.

    Examples
    --------
    >>> cell(10, 3, 0.5, 0.1)
    {'target': 10, 'done': 3, 'ratio': 0.3, 'expected': 5.0, 'at_risk': True}
    >>> cell(10, 5, 0.5, 0.1)["at_risk"]
    False
    """
    expected = target * elapsed
    return {
        "target": target,
        "done": done,
        "ratio": round(done / target, 4) if target else None,
        "expected": round(expected, 2),
        "at_risk": target > 0 and expected - done > margin * target,
    }


def _day(stamp: Any) -> date | None:
    """The CST calendar date of an ISO date or timestamp, or ``None`` if it cannot be parsed."""
    if not stamp:
        return None
    text = str(stamp)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        try:
            return date.fromisoformat(text[:10])
        except ValueError:
            return None
    if moment.tzinfo is not None:
        moment = moment.astimezone(TIMEZONE)
    return moment.date()


def completions(store: GraphStore) -> list[dict[str, Any]]:
    """Completed matches as ``{match_id, problem_id, worker_id, district, day, solved, trainees}``.

    The district is the problem's (falling back to the match's copy, then the enterprise's).
    """
    problems: dict[str, dict[str, Any] | None] = {}
    enterprises: dict[str, dict[str, Any] | None] = {}
    rows: list[dict[str, Any]] = []
    for match in store.list_nodes("Match", where={"state": "completed"}):
        problem_id = str(match.get("problem_id"))
        if problem_id not in problems:
            problems[problem_id] = store.get_node("Problem", problem_id)
        problem = problems[problem_id] or {}
        district = problem.get("district") or match.get("district")
        enterprise_id = problem.get("enterprise_id")
        if not district and enterprise_id:
            if enterprise_id not in enterprises:
                enterprises[enterprise_id] = store.get_node("Enterprise", enterprise_id)
            district = (enterprises[enterprise_id] or {}).get("district")
        trainees = match.get("trainees")
        rows.append({
            "match_id": match["id"],
            "problem_id": problem_id,
            "worker_id": match.get("worker_id"),
            "district": district or None,
            "day": _day(match.get("completed_at") or match.get("updated_at")),
            "solved": match.get("solved") is True,
            "trainees": trainees if isinstance(trainees, int) and not isinstance(trainees, bool) else 0,
        })
    return rows


def programme_progress(
    store: GraphStore,
    *,
    targets: Targets | None = None,
    today: date | None = None,
) -> dict[str, Any]:
    """Progress per district x phase x metric, district and city totals, and what is at risk.

    Parameters
    ----------
    targets
        Defaults to the built-in targets (callers pass ``load_targets(settings.targets_file)``).
    today
        The reporting date (default: today in China Standard Time).

    Returns
    -------
    dict
        JSON-ready::

            {"today", "margin", "metrics", "districts",
             "phases": [{"name", "start", "end", "elapsed", "current"}],
             "rows": [{"district", "phase", "metric", "target", "done", "ratio", "expected", "at_risk"}],
             "by_district": {district: {"phases": [{metric: cell}], "total": {metric: cell}}},
             "city": {"phases": [{metric: cell}], "total": {metric: cell}},
             "at_risk": [{"district", "phase", "metric"}],
             "unattributed": {metric: n}, "outside_campaign": {metric: n}}

        where a cell is ``{"target", "done", "ratio", "expected", "at_risk"}`` (see :func:`cell`).
    """
    targets = targets or Targets()
    today = today or datetime.now(TIMEZONE).date()
    phases = targets.phases
    elapsed = [p.elapsed(today) for p in phases]
    known = set(targets.districts)

    # done[district][phase][metric]; the city row counts every district, known or not
    done: dict[str | None, list[dict[str, int]]] = defaultdict(lambda: [_zero() for _ in phases])
    city_done = [_zero() for _ in phases]
    unattributed = _zero()
    outside = _zero()
    first_solve: dict[str, tuple[date, str | None]] = {}

    def add(district: str | None, day: date | None, metric: str, amount: int) -> None:
        phase = targets.phase_of(day) if day is not None else None
        if phase is None:
            outside[metric] += amount
            return
        city_done[phase][metric] += amount
        if district in known:
            done[district][phase][metric] += amount
        else:
            unattributed[metric] += amount

    for row in completions(store):
        add(row["district"], row["day"], "visits", 1)
        add(row["district"], row["day"], "people_trained", row["trainees"])
        if row["solved"] and row["day"] is not None:
            best = first_solve.get(row["problem_id"])
            if best is None or row["day"] < best[0]:
                first_solve[row["problem_id"]] = (row["day"], row["district"])
    for day, district in first_solve.values():
        add(district, day, "problems_solved", 1)

    rows: list[dict[str, Any]] = []
    at_risk: list[dict[str, Any]] = []
    by_district: dict[str, dict[str, Any]] = {}
    city_phase_targets = [_zero() for _ in phases]
    for district in targets.districts:
        phase_cells: list[dict[str, dict[str, Any]]] = [{} for _ in phases]
        total: dict[str, dict[str, Any]] = {}
        for metric in METRICS:
            split = targets.phase_targets(district, metric)
            for i, phase in enumerate(phases):
                city_phase_targets[i][metric] += split[i]
                c = cell(split[i], done[district][i][metric], elapsed[i], targets.margin)
                phase_cells[i][metric] = c
                rows.append({"district": district, "phase": phase.name, "metric": metric, **c})
                if c["at_risk"]:
                    at_risk.append({"district": district, "phase": phase.name, "metric": metric})
            total[metric] = _total(split, [done[district][i][metric] for i in range(len(phases))],
                                   elapsed, targets.margin)
        by_district[district] = {"phases": phase_cells, "total": total}

    city_phases = [
        {m: cell(city_phase_targets[i][m], city_done[i][m], elapsed[i], targets.margin) for m in METRICS}
        for i in range(len(phases))
    ]
    city_total: dict[str, dict[str, Any]] = {}
    for m in METRICS:
        # the city target is the programme's figure, which the district split adds up to unless overridden
        split = [city_phase_targets[i][m] for i in range(len(phases))]
        city_total[m] = _total(split, [city_done[i][m] for i in range(len(phases))], elapsed, targets.margin,
                               target=targets.city[m])
    current = targets.phase_of(today)
    return {
        "today": today.isoformat(),
        "margin": targets.margin,
        "metrics": list(METRICS),
        "districts": list(targets.districts),
        "phases": [
            {"name": p.name, "start": p.start.isoformat(), "end": p.end.isoformat(), "elapsed": round(elapsed[i], 4),
             "current": i == current}
            for i, p in enumerate(phases)
        ],
        "rows": rows,
        "by_district": by_district,
        "city": {"phases": city_phases, "total": city_total},
        "at_risk": at_risk,
        "unattributed": unattributed,
        "outside_campaign": outside,
    }


def _total(split: list[int], done: list[int], elapsed: list[float], margin: float,
           *, target: int | None = None) -> dict[str, Any]:
    """A campaign-total cell: expected is the sum of the phases' pro-rata expectations."""
    target = sum(split) if target is None else target
    expected = sum(t * e for t, e in zip(split, elapsed, strict=True))
    if split and sum(split) and target != sum(split):
        expected *= target / sum(split)
    fraction = expected / target if target else 0.0
    return cell(target, sum(done), fraction, margin)
