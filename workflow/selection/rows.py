"""How the two-way selection writes its rows: matches, audit events and a problem's outcomes.

Pure functions of what was read; the steps (:mod:`workflow.selection.steps` and the modules beside it) put
the rows they return into one conditional :class:`~graph.store.WriteBatch`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from graph.rules import new_id, problem_status
from graph.store import NodeRow, RelRow, WriteBatch
from workflow.errors import InvalidSelection
from workflow.selection.states import KIND_OF

__all__ = [
    "audit_event",
    "completion_props",
    "decline_reason",
    "decode_event",
    "decode_match",
    "history_json",
    "iso",
    "new_match_props",
    "no_none",
    "problem_outcomes",
    "rec_pair",
]


def iso(moment: datetime) -> str:
    """The timestamp the selection stores: ISO 8601 to the second, with the offset."""
    return moment.isoformat(timespec="seconds")


def no_none(props: Mapping[str, Any]) -> dict[str, Any]:
    """``props`` without its ``None`` values (the stores keep no nulls).

    >>> no_none({"a": 1, "b": None})
    {'a': 1}
    """
    return {k: v for k, v in props.items() if v is not None}


def _extra(node: Mapping[str, Any]) -> dict[str, Any]:
    raw = node.get("extra_json")
    if not raw:
        return {}
    extra = json.loads(raw)
    return extra if isinstance(extra, dict) else {}


def problem_outcomes(problem: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The ``outcomes`` list of a problem node (kept JSON-encoded in ``extra_json``).

    >>> problem_outcomes({"extra_json": '{"outcomes": [{"solved": true}, 3]}'})
    [{'solved': True}]
    """
    outcomes = _extra(problem).get("outcomes")
    return [o for o in outcomes if isinstance(o, dict)] if isinstance(outcomes, list) else []


def decode_match(node: Mapping[str, Any]) -> dict[str, Any]:
    """A match row with ``history`` decoded from ``history_json``."""
    row = dict(node)
    row["history"] = json.loads(row.get("history_json") or "[]")
    return row


def decode_event(node: Mapping[str, Any]) -> dict[str, Any]:
    """An audit event with ``detail`` decoded from ``detail_json``."""
    row = dict(node)
    row["detail"] = json.loads(row.get("detail_json") or "{}")
    return row


def decline_reason(reason: object) -> str:
    """The stripped reason of a decline; raises :class:`InvalidSelection` when there is none."""
    if not isinstance(reason, str) or not reason.strip():
        raise InvalidSelection("a decline needs a reason")
    return reason.strip()


def rec_pair(rec: Any) -> list[Any]:
    """``[worker_id, score]`` from a Recommendation, a mapping or a ``(worker_id, score)`` pair.

    >>> rec_pair(("w1", 1))
    ['w1', 1.0]
    """
    if isinstance(rec, Mapping):
        return [str(rec["worker_id"]), float(rec["score"])]
    if isinstance(rec, Sequence) and not isinstance(rec, str):
        return [str(rec[0]), float(rec[1])]
    return [str(rec.worker_id), float(rec.score)]


def history_json(match: Mapping[str, Any], to: str, now: datetime, actor: str, reason: str) -> str:
    """The match's ``history_json`` with the move to ``to`` appended."""
    history = json.loads(match.get("history_json") or "[]")
    history.append({"from": match.get("state"), "to": to, "at": iso(now), "actor": actor, "reason": reason or None})
    return json.dumps(history, ensure_ascii=False)


def new_match_props(problem: Mapping[str, Any], worker: Mapping[str, Any], state: str, now: datetime, *,
                    actor: str, note: str, model_version: str, score: float | None) -> dict[str, Any]:
    """The properties of a new match of ``problem`` and ``worker`` made in ``state``."""
    stamp = iso(now)
    history = [{"from": None, "to": state, "at": stamp, "actor": actor, "reason": None}]
    return no_none({
        "problem_id": problem["id"],
        "worker_id": worker["id"],
        "state": state,
        "created_at": stamp,
        "updated_at": stamp,
        "created_by": actor,
        f"{state}_at": stamp,
        "invited_by": actor if state == "invited" else None,
        "district": problem.get("district"),
        "note": note,
        "model_version": model_version,
        "score": score,
        "history_json": json.dumps(history, ensure_ascii=False),
    })


def audit_event(state: str, now: datetime, actor: str, match_id: str, match: Mapping[str, Any],
                detail: Mapping[str, Any], *, kind: str | None = None) -> NodeRow:
    """The ``AuditEvent`` row of a move of ``match`` to ``state`` (``kind`` defaults to the state's)."""
    return NodeRow("AuditEvent", new_id("A", now), no_none({
        "at": iso(now),
        "actor": actor,
        "kind": kind or KIND_OF[state],
        "problem_id": match.get("problem_id"),
        "worker_id": match.get("worker_id"),
        "match_id": match_id,
        "model_version": match.get("model_version") or None,
        "detail_json": json.dumps(no_none(dict(detail)), ensure_ascii=False, sort_keys=True),
    }))


def completion_props(problem: Mapping[str, Any], match: Mapping[str, Any], outcome: Mapping[str, Any],
                     stamp: str, note: str, batch: WriteBatch, others: bool | None) -> dict[str, Any]:
    """Problem properties (and the SOLVED relationship, added to ``batch``) for a completion.

    ``others``: whether another accepted match keeps the problem ``matched`` (``None`` when not asked).
    """
    worker_id = str(match["worker_id"])
    extra = _extra(problem)
    outcomes = problem_outcomes(problem)
    outcomes.append(no_none({
        "worker_id": worker_id,
        "match_id": match["id"],
        "solved": outcome["solved"],
        "rating": outcome["satisfaction"],
        "hours": outcome["hours"],
        "trainees": outcome["trainees"],
        "at": stamp,
        "note": note or None,
    }))
    extra["outcomes"] = outcomes
    # the same encoding graph.dataset.row_to_props uses, so export and re-load round-trip
    props: dict[str, Any] = {"extra_json": json.dumps(extra, ensure_ascii=False, sort_keys=True)}
    if outcome["solved"]:
        # row_relationships stamps every SOLVED with the row's solved_at: keep the first solve
        solved_at = str(problem.get("solved_at") or stamp)
        solved_by = [str(w) for w in problem.get("solved_by") or []]
        if worker_id not in solved_by:
            solved_by.append(worker_id)
        props.update({"status": "solved", "solved_at": solved_at, "solved_by": solved_by})
        batch.rels.append(RelRow("SOLVED", "Worker", worker_id, "Problem", str(problem["id"]), {
            "rating": outcome["satisfaction"], "hours": outcome["hours"], "trainees": outcome["trainees"],
            "at": solved_at,
        }))
    elif problem_status(problem) == "matched" and not others:
        props["status"] = "open"
    return props
