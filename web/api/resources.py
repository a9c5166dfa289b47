"""Workers, enterprises, problems, skills and industry chains: list, get, create, update.

Writes go through :func:`graph.dataset.save_row`, so a node's properties stay its dataset row and
its relationships (HAS_SKILL, LOCATED_IN, POSTED, REQUIRES, IN_CHAIN, ...) follow the row in the
same atomic write. ``PATCH`` merges the given fields into the stored row (``null`` clears one).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Response, jsonify, url_for

from graph.dataset import props_to_row, save_row
from graph.errors import DuplicateNode
from graph.rules import problem_status
from graph.store import GraphStore
from web import auth
from web.api import bp, schemas
from web.api.paging import page_response, paginate
from web.errors import NotFound, ValidationFailed
from web.extensions import get_state

__all__ = ["RESOURCES", "Resource", "serialize"]

_CST = timezone(timedelta(hours=8))
_HIDDEN = frozenset({"id", "extra_json", "password_hash", "key_hash"})


@dataclass(frozen=True)
class Resource:
    """One resource collection of the API."""

    label: str
    path: str
    title: str
    create: type[schemas.Schema]
    patch: type[schemas.Schema]
    query: type[schemas.Schema]
    id_prefix: str | None  # None: the node id is the name (skills, chains)


RESOURCES: tuple[Resource, ...] = (
    Resource("Worker", "workers", "workers (劳模工匠)", schemas.WorkerIn, schemas.WorkerPatch,
             schemas.WorkerQuery, "W"),
    Resource("Enterprise", "enterprises", "enterprises (企业)", schemas.EnterpriseIn, schemas.EnterprisePatch,
             schemas.EnterpriseQuery, "E"),
    Resource("Problem", "problems", "problems (技术难题/需求)", schemas.ProblemIn, schemas.ProblemPatch,
             schemas.ProblemQuery, "P"),
    Resource("Skill", "skills", "skills (技能)", schemas.SkillIn, schemas.SkillPatch, schemas.SkillQuery, None),
    Resource("IndustryChain", "industry-chains", "industry chains (产业链)", schemas.ChainIn, schemas.ChainPatch,
             schemas.PageQuery, None),
)


def serialize(label: str, node: Mapping[str, Any], principal: auth.Principal | None) -> dict[str, Any]:
    """A node as the API shows it: its row fields, ``extra_json`` unpacked, private fields dropped."""
    out: dict[str, Any] = {"id": node["id"]}
    for key, value in node.items():
        if key in _HIDDEN or key.startswith("_") or value is None:
            continue
        out[key] = value
    if node.get("extra_json"):
        try:
            extra = json.loads(node["extra_json"])
        except ValueError:
            extra = {}
        if isinstance(extra, dict):
            for key, value in extra.items():
                out.setdefault(key, value)
    if label == "Worker" and not auth.can_see_contact(principal, node):
        out.pop("contact", None)
    if label == "Enterprise" and not auth.can_see_contact(principal, node):
        out.pop("contact_phone", None)  # a person's phone: the same rule as a worker's contact
    if label == "Problem":
        out["status"] = problem_status(node)
    return out


# -- filtering ----------------------------------------------------------------------------------
def _contains(value: Any, wanted: str) -> bool:
    return isinstance(value, list) and wanted in value


def _text_has(node: Mapping[str, Any], keys: Iterable[str], needle: str) -> bool:
    needle = needle.casefold()
    return any(needle in str(node.get(k) or "").casefold() for k in keys)


def _filters(label: str, q: Mapping[str, Any], store: GraphStore) -> tuple[dict[str, Any],
                                                                           list[Callable[[dict[str, Any]], bool]]]:
    """Equality filters the store can apply, and the rest as predicates."""
    where: dict[str, Any] = {}
    preds: list[Callable[[dict[str, Any]], bool]] = []
    for key in ("district", "team", "level", "industry_chain", "category", "service_type", "enterprise_id"):
        if q.get(key) is not None and not (label == "Problem" and key == "industry_chain"):
            where[key] = q[key]
    if q.get("skill"):
        skill = q["skill"]
        preds.append(lambda n: _contains(n.get("skills"), skill))
    if q.get("tag") and label == "Enterprise":
        tag = q["tag"]
        preds.append(lambda n: _contains(n.get("tags"), tag))
    if q.get("chain"):
        chain = q["chain"]
        preds.append(lambda n: _contains(n.get("chain_ids"), chain))
    if q.get("active") is not None:
        active = q["active"]
        preds.append(lambda n: n.get("active", True) is active)
    if q.get("unionised") is not None and label == "Enterprise":
        where["unionised"] = q["unionised"]
    if q.get("status"):
        status = q["status"]
        preds.append(lambda n: problem_status(n) == status)
    if q.get("q"):
        needle = q["q"]
        keys = ("title", "description") if label == "Problem" else ("name",)
        preds.append(lambda n: _text_has(n, keys, needle))
    if label == "Problem" and any(q.get(k) is not None for k in ("industry_chain", "tag", "unionised")):
        enterprises = {e["id"]: e for e in store.iter_nodes("Enterprise")}

        def by_enterprise(n: dict[str, Any]) -> bool:
            ent = enterprises.get(str(n.get("enterprise_id")))
            if ent is None:
                return False
            if q.get("industry_chain") is not None and ent.get("industry_chain") != q["industry_chain"]:
                return False
            if q.get("tag") is not None and not _contains(ent.get("tags"), q["tag"]):
                return False
            return q.get("unionised") is None or ent.get("unionised") is q["unionised"]

        preds.append(by_enterprise)
    return where, preds


def _list(res: Resource, query: dict[str, Any]) -> Response:
    store = get_state().store
    principal = auth.current_principal()
    page, per_page = query["page"], query["per_page"]
    where, preds = _filters(res.label, query, store)
    if not preds:
        total = store.count_nodes(res.label, where=where or None)
        nodes = store.list_nodes(res.label, where=where or None, offset=(page - 1) * per_page, limit=per_page)
    else:
        matched = [n for n in store.list_nodes(res.label, where=where or None) if all(p(n) for p in preds)]
        total = len(matched)
        nodes = paginate(matched, page, per_page)
    return page_response([serialize(res.label, n, principal) for n in nodes], total=total, page=page,
                         per_page=per_page)


def _node_or_404(store: GraphStore, label: str, node_id: str) -> dict[str, Any]:
    node = store.get_node(label, node_id) if schemas.valid_id(node_id) else None
    if node is None:
        raise NotFound(label, node_id)
    return node


def _check_refs(store: GraphStore, row: Mapping[str, Any]) -> None:
    bad = {}
    for key in ("employer_id", "enterprise_id"):
        ref = row.get(key)
        if ref is not None and store.get_node("Enterprise", ref) is None:
            bad[f"body.{key}"] = [f"未知企业 / unknown enterprise {ref!r}"]
    if bad:
        raise ValidationFailed(bad)


def _new_id(prefix: str) -> str:
    return f"{prefix}{datetime.now(_CST):%Y%m%d}-{secrets.token_hex(4)}"


def _create(res: Resource, data: dict[str, Any]) -> tuple[Response, int, dict[str, str]]:
    state = get_state()
    store = state.store
    principal = auth.current_principal()
    row = dict(data)
    if res.id_prefix is None:
        row["id"] = row["name"]
    else:
        row.setdefault("id", _new_id(res.id_prefix))
    if res.label == "Problem":
        if row.get("enterprise_id") and not row.get("district"):
            ent = store.get_node("Enterprise", row["enterprise_id"])
            if ent is not None and ent.get("district"):
                row["district"] = ent["district"]
        if not row.get("district") and principal is not None and principal.role == "district":
            row["district"] = principal.district
        row.setdefault("status", "open")
        row.setdefault("posted_at", datetime.now(_CST).date().isoformat())
    auth.check_edit(principal, res.label, row.get("district"))
    _check_refs(store, row)
    if store.get_node(res.label, row["id"]) is not None:
        raise DuplicateNode(res.label, row["id"])
    node = save_row(store, res.label, row)
    location = url_for(f"api.{res.path}_get", node_id=node["id"])
    return jsonify(serialize(res.label, node, principal)), 201, {"Location": location}


def _update(res: Resource, node_id: str, data: dict[str, Any]) -> Response:
    store = get_state().store
    principal = auth.current_principal()
    node = _node_or_404(store, res.label, node_id)
    row = {k: v for k, v in props_to_row(res.label, node).items() if v is not None}
    old_district = row.get("district")
    for key, value in data.items():
        if value is None:
            row.pop(key, None)
        else:
            row[key] = value
    if res.label == "Problem" and not str(row.get("title") or "").strip() \
            and not str(row.get("description") or "").strip():
        raise ValidationFailed({"body.title": ["需要标题或描述 / a title or a description is required"]})
    auth.check_edit(principal, res.label, old_district, row.get("district"))
    _check_refs(store, {k: v for k, v in data.items() if k in ("employer_id", "enterprise_id")})
    saved = save_row(store, res.label, row)
    return jsonify(serialize(res.label, saved, principal))


# -- route registration -------------------------------------------------------------------------
def _register(res: Resource) -> None:
    label, path = res.label, res.path

    @bp.get(f"/{path}", endpoint=f"{path}_list")
    @auth.require("read")
    @bp.input(res.query, location="query", arg_name="query")
    @bp.doc(summary=f"List {res.title}", security="ApiKeyAuth", responses=schemas.error_responses(422), tags=[path])
    def list_view(query: dict[str, Any]) -> Response:
        return _list(res, query)

    @bp.get(f"/{path}/<node_id>", endpoint=f"{path}_get")
    @auth.require("read")
    @bp.doc(summary=f"Get one of the {res.title}", security="ApiKeyAuth", responses=schemas.error_responses(404),
            tags=[path])
    def get_view(node_id: str) -> Response:
        store = get_state().store
        return jsonify(serialize(label, _node_or_404(store, label, node_id), auth.current_principal()))

    @bp.post(f"/{path}", endpoint=f"{path}_create")
    @auth.require("write")
    @bp.input(res.create, arg_name="data")
    @bp.doc(summary=f"Create one of the {res.title}", security="ApiKeyAuth",
            responses={201: "created", **schemas.error_responses(400, 409, 413, 422)}, tags=[path])
    def create_view(data: dict[str, Any]) -> tuple[Response, int, dict[str, str]]:
        return _create(res, data)

    @bp.patch(f"/{path}/<node_id>", endpoint=f"{path}_update")
    @auth.require("write")
    @bp.input(res.patch, arg_name="data")
    @bp.doc(summary=f"Update one of the {res.title} (merge; null clears a field)", security="ApiKeyAuth",
            responses=schemas.error_responses(400, 404, 413, 422), tags=[path])
    def update_view(node_id: str, data: dict[str, Any]) -> Response:
        return _update(res, node_id, data)


for _res in RESOURCES:
    _register(_res)
