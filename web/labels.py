"""Names of stored codes as people read them (Flask-Babel lazy strings: Chinese, English in ``messages.po``).

Shared by the pages (:mod:`web.ui`) and the texts rendered outside a page (:mod:`web.row_issues`, API errors), so it
imports nothing of either.
"""

from __future__ import annotations

from flask_babel import lazy_gettext as _l

__all__ = ["ROLE_LABELS", "STATUS_LABELS"]

#: Problem statuses and match states.
STATUS_LABELS = {
    "open": _l("待对接"), "matched": _l("已对接"), "solved": _l("已解决"), "closed": _l("已关闭"),
    "suggested": _l("已推荐"), "invited": _l("已邀请"), "volunteered": _l("已报名"), "accepted": _l("已接受"),
    "declined": _l("已婉拒"),
    "completed": _l("已完成"), "withdrawn": _l("已撤回"),
}
#: Account roles.
ROLE_LABELS = {
    "admin": _l("管理员"), "city": _l("市级协调员"), "district": _l("区县协调员"), "viewer": _l("只读用户"),
    "worker": _l("劳模工匠"),
}
