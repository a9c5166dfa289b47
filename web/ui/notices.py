"""The in-app notifications (通知): the list, the unread badge in the top bar, opening one marks it read.

The rows are written by :mod:`workflow.notifications` in the same write as the selection step they tell
about; this module only reads them and marks them read (a user sees and marks only their own).
"""

from __future__ import annotations

from typing import Any

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.wrappers import Response

from graph.errors import GraphError
from web.ui import bp
from web.ui.access import principal, role_required, user_role
from web.ui.context import selection, store
from web.ui.forms import ActionForm, EmailForm
from workflow.notifications import LANGUAGES, mark_read, notifications_for, unread_count, user_language

__all__ = ["OUTBOX_STATUSES", "TEXTS", "notice_text", "notification_open", "notifications", "notifications_email",
           "notifications_read_all", "outbox_log", "unread"]

ALL_ROLES = ("admin", "city", "district", "viewer", "worker")

#: The text of each kind (the same sentences as workflow.notifications.TEXTS_ZH, here for translation).
TEXTS: dict[str, Any] = {
    "invited": _l("您收到一个对接邀请:「%(problem)s」"),
    "volunteered": _l("%(worker)s 报名对接「%(problem)s」,请确认或婉拒"),
    "accepted": _l("%(worker)s 接受了「%(problem)s」的邀请"),
    "declined": _l("%(worker)s 婉拒了「%(problem)s」的邀请:%(reason)s"),
    "confirmed": _l("您对「%(problem)s」的报名已确认,可以开始对接了"),
    "volunteer_declined": _l("您对「%(problem)s」的报名未被采纳:%(reason)s"),
    "withdrawn": _l("「%(problem)s」的对接已撤回(%(worker)s)"),
    "completed": _l("「%(problem)s」的服务结果已登记"),
}


def notice_text(note: dict[str, Any]) -> str:
    """A notification's sentence in the page's language."""
    template = TEXTS.get(str(note.get("kind")))
    if template is None:
        return str(note.get("kind") or "")
    return str(template) % {"problem": note.get("problem_title") or note.get("problem_id") or "",
                            "worker": note.get("worker_name") or note.get("worker_id") or "",
                            "reason": note.get("reason") or "—"}


def unread() -> int:
    """The badge: the current user's unread notifications (0 when logged out)."""
    p = principal()
    if p is None or p.kind != "user":
        return 0
    try:
        return unread_count(store(), p.id)
    except GraphError:  # the store is down: the page (often the error page saying so) renders without a badge
        return 0


def _target(note: dict[str, Any]) -> str:
    problem_id = str(note.get("problem_id") or "")
    if user_role() == "worker":
        return url_for("ui.my_problem", problem_id=problem_id) if problem_id else url_for("ui.my_problems")
    if note.get("kind") == "volunteered" and problem_id:
        return url_for("ui.problem_detail", problem_id=problem_id, _anchor="volunteers")
    if note.get("match_id"):
        return url_for("ui.match_detail", match_id=note["match_id"])
    return url_for("ui.notifications")


@bp.route("/notifications")
@role_required(*ALL_ROLES)
def notifications() -> str:
    p = principal()
    assert p is not None
    rows = notifications_for(store(), p.id, limit=200)
    email_form = EmailForm()
    user = store().get_node("User", p.id) or {}
    email_form.email.data = user.get("email") or ""
    return render_template("ui/notifications.html", notes=rows, notice_text=notice_text, form=ActionForm(),
                           email_form=email_form, email=user.get("email") or "", language=user_language(user))


@bp.route("/notifications/email", methods=["POST"])
@role_required(*ALL_ROLES)
def notifications_email() -> Response:
    """The user sets (or clears) the address their notification e-mails go to, and the e-mails' language
    (``zh`` or ``en``; a form without it leaves the language as it was)."""
    p = principal()
    assert p is not None
    form = EmailForm()
    if not form.validate_on_submit():
        if form.csrf_token.errors:
            abort(400)
        flash(_("请选择中文或English") if form.language.errors else _("请输入有效的邮箱地址"), "error")
        return redirect(url_for("ui.notifications"))
    address = (form.email.data or "").strip()
    props = {"email": address}
    if form.language.data in LANGUAGES:
        props["language"] = form.language.data
    store().update_node("User", p.id, props)
    flash(_("通知会发到 %(email)s。", email=address) if address else _("已停止邮件通知,通知仍在本页显示。"),
          "success")
    return redirect(url_for("ui.notifications"))


@bp.route("/notifications/<note_id>")
@role_required(*ALL_ROLES)
def notification_open(note_id: str) -> Response:
    """Open a notification: mark it read and go to what it is about (someone else's id is a 404)."""
    p = principal()
    assert p is not None
    note = store().get_node("Notification", note_id)
    if note is None or note.get("user_id") != p.id:
        abort(404)
    if note.get("unread"):
        mark_read(store(), p.id, [note_id], selection()._clock())
    return redirect(_target(note))


@bp.route("/notifications/read", methods=["POST"])
@role_required(*ALL_ROLES)
def notifications_read_all() -> Response:
    p = principal()
    assert p is not None
    if not ActionForm().validate_on_submit():
        abort(400)
    mark_read(store(), p.id, None, selection()._clock())
    return redirect(url_for("ui.notifications"))


OUTBOX_STATUSES = ("pending", "sending", "sent", "failed")


@bp.route("/outbox")
@role_required("admin")
def outbox_log() -> str:
    """The record of notification e-mail: what was sent when (with the relay's Message-ID), what waits and why,
    what failed; newest first (the last 200, or of one status)."""
    status = request.args.get("status") or None
    if status not in OUTBOX_STATUSES:
        status = None
    rows = store().list_nodes("OutboxMessage", where={"status": status} if status else None)
    rows.sort(key=lambda r: str(r["id"]), reverse=True)
    counts = {s: store().count_nodes("OutboxMessage", where={"status": s}) for s in OUTBOX_STATUSES}
    return render_template("ui/outbox.html", rows=rows[:200], status=status, counts=counts,
                           configured=bool(current_app.config.get("SMTP_HOST")))
