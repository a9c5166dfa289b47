"""Values every page template can use: the navigation for the user's role, labels, the language."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from graph.rules import TIMEZONE
from web.labels import ROLE_LABELS, STATUS_LABELS
from web.ui import bp
from web.ui.access import READERS, split_actor, user_district, user_role, user_worker_id
from web.ui.context import store
from web.ui.i18n import ui_lang
from web.ui.notices import unread as unread_notices

__all__ = ["NAV", "actor_label", "status_label", "when"]

#: (endpoint, label, roles that see it)
NAV: tuple[tuple[str, Any, tuple[str, ...]], ...] = (
    ("ui.dashboard", _l("工作台"), READERS),
    ("ui.problems", _l("问题需求"), READERS),
    ("ui.workers", _l("劳模工匠"), READERS),
    ("ui.enterprises", _l("企业"), READERS),
    ("ui.graph_explorer", _l("关系图谱"), READERS),
    ("ui.assignment", _l("批量派单"), ("admin", "city", "district")),
    ("ui.import_page", _l("导入导出"), ("admin", "city", "district", "viewer")),
    ("ui.audit_log", _l("操作日志"), ("admin",)),
    ("ui.outbox_log", _l("邮件发送记录"), ("admin",)),
    ("ui.api_keys", _l("接口密钥"), ("admin",)),
    ("ui.my_problems", _l("适合我的问题"), ("worker",)),
    ("ui.worker_home", _l("我的资料"), ("worker",)),
)


@bp.app_template_global("status_label")
def status_label(status: str | None) -> str:
    return str(STATUS_LABELS.get(status or "", status or ""))


def _person(actor: str) -> str:
    """A user's display name (a worker user's worker name), else a worker's name, else the actor as written."""
    user = store().get_node("User", actor) if actor and not actor.startswith("apikey:") else None
    if user is not None:
        if user.get("worker_id"):
            worker = store().get_node("Worker", str(user["worker_id"])) or {}
            if worker.get("name"):
                return str(worker["name"])
        return str(user.get("display_name") or actor)
    named = store().get_node("Worker", actor) if actor else None
    if named is not None and named.get("name"):
        return str(named["name"])
    if actor.startswith("apikey:"):
        return _("平台接口")
    return actor


@bp.app_template_global("actor_label")
def actor_label(actor: str | None) -> str:
    """An audit actor as a person reads it: names, not usernames; a coordinator acting for a worker names both."""
    who, worker_id = split_actor(str(actor or ""))
    if worker_id is None:
        return _person(who)
    worker = store().get_node("Worker", worker_id) or {}
    name = f"{worker['name']}({worker_id})" if worker.get("name") else worker_id
    return _("%(who)s 代 %(worker)s", who=_person(who), worker=name)


@bp.app_template_filter("when")
def when(value: Any) -> str:
    """A stored timestamp or date as people read it, in Yancheng time: 「2026年12月5日 09:12」, 「今天 09:12」,
    「昨天 14:03」 (English: "5 Dec 2026, 09:12", "today 09:12"); a date alone without the time."""
    text = str(value or "")
    if not text:
        return ""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return text
    english = ui_lang() == "en"
    if len(text) <= 10:  # a date alone
        return f"{moment.day} {moment:%b %Y}" if english else f"{moment.year}年{moment.month}月{moment.day}日"
    if moment.tzinfo is not None:
        moment = moment.astimezone(TIMEZONE)
    clock = f"{moment:%H:%M}"
    days = (datetime.now(TIMEZONE).date() - moment.date()).days
    if days == 0:
        return f"today {clock}" if english else f"今天 {clock}"
    if days == 1:
        return f"yesterday {clock}" if english else f"昨天 {clock}"
    if english:
        return f"{moment.day} {moment:%b %Y}, {clock}"
    return f"{moment.year}年{moment.month}月{moment.day}日 {clock}"


@bp.app_context_processor
def _layout_values() -> dict[str, Any]:
    role = user_role()
    items = [(endpoint, label) for endpoint, label, roles in NAV if role in roles]
    label = ""
    unread = 0
    if current_user and current_user.is_authenticated:
        role_label = str(ROLE_LABELS.get(role, role))
        if role == "district" and user_district():
            role_label = f"{user_district()} {role_label}"
        display = str(current_user.display_name or "")
        if role == "worker" and display in ("", str(current_user.id)):  # a worker login: the worker's name
            worker = store().get_node("Worker", str(user_worker_id() or "")) or {}
            display = str(worker.get("name") or display)
        # the demo's district user is called 区县协调员: say it once, not 「区县协调员(区县协调员)」
        label = role_label if display in ("", str(ROLE_LABELS.get(role, role))) else f"{display}({role_label})"
        unread = unread_notices()
    return {"nav_items": items, "current_user_label": label, "ui_lang": ui_lang(), "unread_notices": unread}


@bp.app_template_filter("zip_pairs")
def _zip_pairs(values: Any) -> list[tuple[str, str]]:
    """``[a, b]`` -> ``[(a, a), (b, b)]`` for select options whose value is their label."""
    return [(str(v), str(v)) for v in values]


@bp.app_template_filter("status_pairs")
def _status_pairs(values: Any) -> list[tuple[str, str]]:
    return [(str(v), status_label(str(v))) for v in values]
