"""Who may see and change what in the coordinator pages.

The rules themselves live in :mod:`web.auth` (one place for the API and the pages); this module
adapts them to page views: a missing login redirects to the login page, a wrong role is a 403.

Roles: ``admin`` and ``city`` coordinators act everywhere; a ``district`` coordinator reads
everything but changes only problems, workers and enterprises of their own district; a ``viewer``
only reads; a ``worker`` sees their own profile, the problems that fit them and their invitations.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort
from flask_login import current_user, login_required

from web.auth import Principal, can_see_contact, may_act_on_match, may_edit

__all__ = [
    "EDITORS",
    "READERS",
    "can_edit_district",
    "can_edit_problem",
    "may_act",
    "principal",
    "require_edit_district",
    "role_required",
    "show_contact",
    "user_district",
    "user_name",
    "user_role",
    "user_worker_id",
]

F = TypeVar("F", bound=Callable[..., Any])

EDITORS = ("admin", "city", "district")
READERS = ("admin", "city", "district", "viewer")


def principal() -> Principal | None:
    if current_user is None or not current_user.is_authenticated:
        return None
    return cast(Principal, current_user.principal())


def user_role() -> str:
    p = principal()
    return p.role if p is not None else ""


def user_district() -> str | None:
    p = principal()
    return p.district if p is not None else None


def user_worker_id() -> str | None:
    p = principal()
    return p.worker_id if p is not None else None


def user_name() -> str:
    """The actor written to the audit log (the same ``user:<name>`` form the API writes)."""
    p = principal()
    return p.actor if p is not None else "anonymous"


def role_required(*roles: str) -> Callable[[F], F]:
    """Log in first (redirect), then require one of ``roles`` (403)."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if user_role() not in roles:
                abort(403)
            return view(*args, **kwargs)

        return cast(F, login_required(wrapper))

    return decorate


def can_edit_district(district: str | None, label: str = "Problem") -> bool:
    """Admins and city coordinators edit everywhere; district coordinators only their own district."""
    return may_edit(principal(), label, district)


def can_edit_problem(problem: Mapping[str, Any]) -> bool:
    return can_edit_district(problem.get("district"))


def require_edit_district(district: str | None, label: str = "Problem") -> None:
    if not can_edit_district(district, label):
        abort(403)


def show_contact(worker: Mapping[str, Any]) -> bool:
    return can_see_contact(principal(), worker)


def may_act(action: str, match: Mapping[str, Any], problem_district: str | None) -> bool:
    """``invite``/``complete``/``withdraw`` for coordinators of the district; ``accept``/``decline`` also
    for the invited worker."""
    return may_act_on_match(principal(), action, match, problem_district)
