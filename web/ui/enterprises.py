"""Enterprise directory and profile (chain, flags, unionised or not, problems posted)."""

from __future__ import annotations

from flask import abort, render_template, request

from web.ui import bp
from web.ui.access import READERS, list_args, role_required, show_contact
from web.ui.context import store
from web.ui.paging import paginate
from web.ui.queries import chains, districts, filter_enterprises

__all__ = ["enterprise_detail", "enterprises"]


@bp.route("/enterprises")
@role_required(*READERS)
def enterprises() -> str:
    args = list_args(request.args)
    rows = filter_enterprises(store(), args)
    posted: dict[str, int] = {}
    for rel in store().relationships("POSTED"):
        posted[rel.start_id] = posted.get(rel.start_id, 0) + 1
    return render_template("ui/enterprises.html", page=paginate(rows), posted=posted,
                           districts=districts(store()), chains=chains(store()), args=args)


@bp.route("/enterprises/<enterprise_id>")
@role_required(*READERS)
def enterprise_detail(enterprise_id: str) -> str:
    ent = store().get_node("Enterprise", enterprise_id)
    if ent is None:
        abort(404)
    problems = [store().get_node("Problem", rel.end_id) or {"id": rel.end_id}
                for rel in store().relationships("POSTED", start=("Enterprise", enterprise_id))]
    problems.sort(key=lambda p: str(p.get("posted_at") or ""), reverse=True)
    staff = [store().get_node("Worker", rel.start_id) or {"id": rel.start_id}
             for rel in store().relationships("EMPLOYED_BY", end=("Enterprise", enterprise_id))]
    return render_template("ui/enterprise.html", ent=ent, problems=problems, staff=staff,
                           show_phone=show_contact(ent))
