"""Graph explorer: start from any node, expand neighbours through a JSON endpoint, filter by type.

Only the matching graph is explorable (``graph.model.DOMAIN_LABELS``): users, API keys, matches and
audit events never leave through these endpoints, and nodes carry a display name only (no contact).
"""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from graph.model import DOMAIN_LABELS
from web.ui import bp
from web.ui.access import READERS, role_required, user_district
from web.ui.context import store

__all__ = ["LABEL_NAMES", "graph_explorer", "graph_neighbours", "graph_search", "node_element"]

LABEL_NAMES = {
    "Worker": _l("劳模工匠"), "Skill": _l("技能"), "Enterprise": _l("企业"), "IndustryChain": _l("产业链"),
    "District": _l("区县"), "Problem": _l("问题"),
}
NEIGHBOUR_LIMIT = 200
#: Node types not shown at first around a district (its problems).
DISTRICT_HIDDEN = frozenset({"Problem"})


def node_element(label: str, node_id: str, props: dict[str, Any]) -> dict[str, Any]:
    """A cytoscape node: ``{"data": {"id": "Label:id", "label": name, "type": Label, "node_id": id}}``."""
    name = props.get("name") or props.get("title") or node_id
    return {"data": {"id": f"{label}:{node_id}", "label": str(name)[:40], "type": label, "node_id": node_id}}


def _domain_label(label: str | None) -> str:
    if label not in DOMAIN_LABELS:
        abort(400)
    return str(label)


@bp.route("/graph")
@role_required(*READERS)
def graph_explorer() -> str:
    start = None
    label, node_id = request.args.get("label"), request.args.get("id")
    if label in DOMAIN_LABELS and node_id:
        node = store().get_node(label, node_id)
        if node is not None:
            start = node_element(label, node_id, node)
    own = user_district()
    if start is None and own and store().get_node("District", own) is not None:
        start = node_element("District", own, store().get_node("District", own) or {})  # the user's district
    if start is None:  # open on something rather than an empty canvas
        for first_label in ("District", "IndustryChain", "Worker"):
            first = store().list_nodes(first_label, limit=1)
            if first:
                start = node_element(first_label, first[0]["id"], first[0])
                break
    # a district links to every worker, enterprise and problem in it: open without its problems (hundreds
    # of overlapping nodes otherwise); ticking 问题 loads them
    types = [t for t in LABEL_NAMES if not (start and start["data"]["type"] == "District" and t in DISTRICT_HIDDEN)]
    return render_template("ui/graph.html", start=start, label_names={k: str(v) for k, v in LABEL_NAMES.items()},
                           start_types=types)


@bp.route("/graph/search")
@role_required(*READERS)
def graph_search() -> Response:
    q = (request.args.get("q") or "").strip()[:100]
    if not q:
        return jsonify(results=[])
    out = []
    for label, node_id, _score in store().fulltext(q, labels=list(DOMAIN_LABELS), limit=20):
        node = store().get_node(label, node_id)
        if node is not None and label in DOMAIN_LABELS:
            out.append(node_element(label, node_id, node))
    # skills, districts and chains are named by their id: match those directly too
    for label in ("Skill", "District", "IndustryChain"):
        node = store().get_node(label, q)
        if node is not None and all(e["data"]["id"] != f"{label}:{q}" for e in out):
            out.insert(0, node_element(label, q, node))
    return jsonify(results=out)


@bp.route("/graph/neighbours")
@role_required(*READERS)
def graph_neighbours() -> Response:
    label = _domain_label(request.args.get("label"))
    node_id = request.args.get("id") or ""
    centre = store().get_node(label, node_id)
    if centre is None:
        abort(404)
    wanted = set(request.args.getlist("type")) & set(DOMAIN_LABELS) or set(DOMAIN_LABELS)
    nodes = [node_element(label, node_id, centre)]
    edges = []
    for rel, other in store().neighbours(label, node_id, limit=NEIGHBOUR_LIMIT):
        if other.label not in wanted:
            continue
        nodes.append(node_element(other.label, other.id, dict(other.props)))
        source, target = f"{rel.start_label}:{rel.start_id}", f"{rel.end_label}:{rel.end_id}"
        edges.append({"data": {"id": f"{source}|{rel.type}|{target}", "source": source, "target": target,
                               "label": rel.type}})
    return jsonify(nodes=nodes, edges=edges, truncated=len(nodes) > NEIGHBOUR_LIMIT)
