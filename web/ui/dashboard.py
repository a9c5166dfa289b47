"""The dashboard: programme targets per district x phase x metric, with progress bars, at-risk flags
and a chart (Chart.js served from ``static/vendor``)."""

from __future__ import annotations

from typing import Any

from flask import current_app, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from werkzeug.wrappers import Response

from web.extensions import get_state
from web.ui import bp
from web.ui.access import READERS, role_required, user_district, user_role
from web.ui.context import store
from workflow.progress import programme_progress
from workflow.targets import Targets, load_targets

__all__ = ["METRIC_LABELS", "dashboard", "index", "targets"]

METRIC_LABELS = {
    "visits": _l("进企服务人次"),
    "problems_solved": _l("解决现场技术问题"),
    "people_trained": _l("培训职工人次"),
}


def targets() -> Targets:
    """``app.config["TARGETS"]`` if it is a :class:`Targets`, else the settings' targets file, else the defaults."""
    configured = current_app.config.get("TARGETS")
    if isinstance(configured, Targets):
        return configured
    return load_targets(get_state().settings.targets_file)


@bp.route("/")
def index() -> Response:
    if not current_user.is_authenticated:
        return redirect(url_for("ui.login"))
    if current_user.role == "worker":
        return redirect(url_for("ui.my_problems"))
    return redirect(url_for("ui.dashboard"))


@bp.route("/dashboard")
@role_required(*READERS)
def dashboard() -> str:
    progress = programme_progress(store(), targets=targets())
    phases = progress["phases"]
    try:
        chosen = int(request.args.get("phase", ""))
    except ValueError:
        chosen = -1  # the whole campaign first (the current phase is marked on its tab and named above)
    if not -1 <= chosen < len(phases):
        chosen = -1

    def cells(district_block: dict[str, Any]) -> dict[str, Any]:
        return district_block["total"] if chosen == -1 else district_block["phases"][chosen]

    table = [{"district": d, "cells": cells(progress["by_district"][d])} for d in progress["districts"]]
    own = user_district() if user_role() == "district" else None
    chart = {
        "labels": progress["districts"],
        "metrics": [{"key": m, "label": str(METRIC_LABELS[m]),
                     "done": [row["cells"][m]["done"] for row in table],
                     "target": [row["cells"][m]["target"] for row in table],
                     "expected": [row["cells"][m]["expected"] for row in table]} for m in progress["metrics"]],
        "text": {"done": str(_l("已完成")), "target": str(_l("目标")), "expected": str(_l("按进度应完成"))},
    }
    counts = {
        "open": store().count_nodes("Problem", where={"status": "open"}),
        "matched": store().count_nodes("Problem", where={"status": "matched"}),
        "invited": store().count_nodes("Match", where={"state": "invited"}),
        "accepted": store().count_nodes("Match", where={"state": "accepted"}),
    }
    # volunteers waiting for a coordinator (「我想接」), the user's district first-hand
    pending = [m for m in store().list_nodes("Match", where={"state": "volunteered"})
               if own is None or m.get("district") == own]
    pending.sort(key=lambda m: str(m.get("volunteered_at") or ""), reverse=True)
    volunteers = [{"match": m, "problem": store().get_node("Problem", str(m["problem_id"])) or {},
                   "worker": store().get_node("Worker", str(m["worker_id"])) or {}} for m in pending[:10]]
    return render_template("ui/dashboard.html", progress=progress, chosen=chosen, table=table,
                           volunteers=volunteers, volunteer_count=len(pending),
                           city=cells(progress["city"]), chart=chart, metric_labels=METRIC_LABELS, counts=counts,
                           own_district=own)
