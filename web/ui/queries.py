"""Read-side helpers of the pages: filtered lists and joined rows built from the store.

At city scale (hundreds of workers and enterprises, thousands of problems) filtering in Python over
``iter_nodes`` is fast enough and keeps one code path for both stores.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from graph.rules import problem_status
from graph.spreadsheet import split_list
from graph.store import GraphStore

__all__ = [
    "SPECIALISED",
    "chains",
    "districts",
    "enterprise_names",
    "filter_enterprises",
    "filter_problems",
    "filter_workers",
    "split_list",
    "worker_history",
]

SPECIALISED = "专精特新"


def districts(store: GraphStore) -> list[str]:
    """District names in the store, else the Yancheng defaults."""
    names = sorted(n["id"] for n in store.iter_nodes("District"))
    if names:
        return names
    from workflow.targets import DEFAULT_DISTRICTS

    return list(DEFAULT_DISTRICTS)


def chains(store: GraphStore) -> list[str]:
    return sorted(n["id"] for n in store.iter_nodes("IndustryChain"))


def enterprise_names(store: GraphStore) -> dict[str, dict[str, Any]]:
    """Enterprise id -> properties (for joins)."""
    return {n["id"]: n for n in store.iter_nodes("Enterprise")}


def _contains(row: Mapping[str, Any], text: str, keys: Iterable[str]) -> bool:
    text = text.strip().lower()
    if not text:
        return True
    for key in keys:
        value = row.get(key)
        values = value if isinstance(value, list) else [value]
        if any(text in str(v).lower() for v in values if v is not None):
            return True
    return False


def _flag(value: str | None) -> bool | None:
    return {"yes": True, "no": False}.get(value or "")


def filter_problems(store: GraphStore, args: Mapping[str, str]) -> list[dict[str, Any]]:
    """Problems joined with their enterprise, filtered by the list page's query parameters, newest first."""
    enterprises = enterprise_names(store)
    specialised, unionised = _flag(args.get("specialised")), _flag(args.get("unionised"))
    out = []
    for problem in store.iter_nodes("Problem"):
        ent = enterprises.get(problem.get("enterprise_id") or "", {})
        row = {**problem, "enterprise": ent, "status_shown": problem_status(problem)}
        if args.get("district") and problem.get("district") != args["district"]:
            continue
        if args.get("chain") and ent.get("industry_chain") != args["chain"]:
            continue
        if args.get("service_type") and problem.get("service_type") != args["service_type"]:
            continue
        if args.get("status") and row["status_shown"] != args["status"]:
            continue
        if specialised is not None and (SPECIALISED in (ent.get("tags") or [])) != specialised:
            continue
        if unionised is not None and bool(ent.get("unionised")) != unionised:
            continue
        if not _contains(problem, args.get("q", ""), ("id", "title", "description", "skills")):
            continue
        out.append(row)
    out.sort(key=lambda r: (str(r.get("posted_at") or ""), r["id"]), reverse=True)
    return out


def filter_workers(store: GraphStore, args: Mapping[str, str]) -> list[dict[str, Any]]:
    out = []
    for worker in store.iter_nodes("Worker"):
        if args.get("district") and worker.get("district") != args["district"]:
            continue
        if args.get("team") and worker.get("team") != args["team"]:
            continue
        if args.get("skill") and not _contains(worker, args["skill"], ("skills",)):
            continue
        if not _contains(worker, args.get("q", ""), ("id", "name", "skills", "honours", "studio", "service_menu")):
            continue
        out.append(worker)
    return out


def filter_enterprises(store: GraphStore, args: Mapping[str, str]) -> list[dict[str, Any]]:
    specialised, unionised = _flag(args.get("specialised")), _flag(args.get("unionised"))
    out = []
    for ent in store.iter_nodes("Enterprise"):
        if args.get("district") and ent.get("district") != args["district"]:
            continue
        if args.get("chain") and ent.get("industry_chain") != args["chain"]:
            continue
        if specialised is not None and (SPECIALISED in (ent.get("tags") or [])) != specialised:
            continue
        if unionised is not None and bool(ent.get("unionised")) != unionised:
            continue
        if not _contains(ent, args.get("q", ""), ("id", "name", "tags")):
            continue
        out.append(ent)
    return out


def worker_history(store: GraphStore, worker_id: str) -> list[dict[str, Any]]:
    """Problems the worker solved (``SOLVED`` relationships), newest first, with the outcome."""
    out = []
    for rel in store.relationships("SOLVED", start=("Worker", worker_id)):
        problem = store.get_node("Problem", rel.end_id) or {"id": rel.end_id}
        out.append({"problem": problem, **dict(rel.props)})
    out.sort(key=lambda r: str(r.get("at") or r["problem"].get("solved_at") or ""), reverse=True)
    return out
