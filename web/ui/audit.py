"""Audit log: who saw which recommendation, who invited, accepted, declined, completed, withdrew."""

from __future__ import annotations

from flask import render_template, request
from flask_babel import lazy_gettext as _l

from web.ui import bp
from web.ui.access import role_required, split_actor
from web.ui.context import selection
from workflow.selection import AUDIT_KINDS

__all__ = ["KIND_LABELS", "audit_log"]

KIND_LABELS = {
    "recommendations_shown": _l("查看推荐"), "suggest": _l("列入候选"), "invite": _l("发出邀请"),
    "accept": _l("接受邀请"), "decline": _l("婉拒邀请"), "complete": _l("登记结果"), "withdraw": _l("撤回"),
    "volunteer": _l("报名(我想接)"), "confirm": _l("确认报名"),
}
PER_PAGE = 50


@bp.route("/audit")
@role_required("admin")
def audit_log() -> str:
    kind = request.args.get("kind") or None
    if kind not in AUDIT_KINDS:
        kind = None
    actor = (request.args.get("actor") or "").strip() or None
    try:
        page = max(1, int(request.args.get("page", "1")))
    except ValueError:
        page = 1
    problem_id = request.args.get("problem_id") or None
    offset = (page - 1) * PER_PAGE
    if actor is None:
        events = selection().audit(limit=PER_PAGE + 1, offset=offset, kind=kind, problem_id=problem_id)
    else:
        # a coordinator's steps include those taken for a worker ("<actor> for <worker id>")
        events = [e for e in selection().audit(limit=10**9, kind=kind, problem_id=problem_id)
                  if actor in (e.get("actor"), split_actor(str(e.get("actor") or ""))[0])][offset:offset + PER_PAGE + 1]
    has_next = len(events) > PER_PAGE
    return render_template("ui/audit.html", events=events[:PER_PAGE], page=page, has_next=has_next,
                           kinds=[(k, str(KIND_LABELS.get(k, k))) for k in AUDIT_KINDS], kind_labels=KIND_LABELS,
                           args=request.args, query=request.args.to_dict())
