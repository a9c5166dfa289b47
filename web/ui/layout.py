"""Values every page template can use: the navigation for the user's role, labels, the language."""

from __future__ import annotations

from typing import Any

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from web.ui import bp
from web.ui.access import READERS, split_actor, user_role
from web.ui.context import store
from web.ui.i18n import ROLE_LABELS, STATUS_LABELS, ui_lang

__all__ = ["NAV", "actor_label", "status_label"]

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
    ("ui.api_keys", _l("接口密钥"), ("admin",)),
    ("ui.my_problems", _l("适合我的问题"), ("worker",)),
    ("ui.worker_home", _l("我的资料"), ("worker",)),
)


@bp.app_template_global("status_label")
def status_label(status: str | None) -> str:
    return str(STATUS_LABELS.get(status or "", status or ""))


@bp.app_template_global("actor_label")
def actor_label(actor: str | None) -> str:
    """An audit actor as a person reads it: a coordinator acting for a worker names both."""
    who, worker_id = split_actor(str(actor or ""))
    if worker_id is None:
        return who
    worker = store().get_node("Worker", worker_id) or {}
    name = f"{worker['name']}({worker_id})" if worker.get("name") else worker_id
    return _("%(who)s 代 %(worker)s", who=who, worker=name)


@bp.app_context_processor
def _layout_values() -> dict[str, Any]:
    role = user_role()
    items = [(endpoint, label) for endpoint, label, roles in NAV if role in roles]
    label = ""
    if current_user and current_user.is_authenticated:
        label = f"{current_user.display_name}({ROLE_LABELS.get(role, role)})"
    return {"nav_items": items, "current_user_label": label, "ui_lang": ui_lang()}


@bp.app_template_filter("zip_pairs")
def _zip_pairs(values: Any) -> list[tuple[str, str]]:
    """``[a, b]`` -> ``[(a, a), (b, b)]`` for select options whose value is their label."""
    return [(str(v), str(v)) for v in values]


@bp.app_template_filter("status_pairs")
def _status_pairs(values: Any) -> list[tuple[str, str]]:
    return [(str(v), status_label(str(v))) for v in values]
