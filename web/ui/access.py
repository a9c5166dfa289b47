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
    "list_args",
    "READERS",
    "can_edit_district",
    "can_edit_problem",
    "ON_BEHALF",
    "may_act",
    "on_behalf_actor",
    "principal",
    "split_actor",
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


#: Joins a coordinator and the worker they act for in an audit actor: ``"district-user for W0001"``.
#: Neither a username nor a worker id can hold a blank, so the actor splits back unambiguously, and
#: filtering the audit log by the coordinator still finds it (:func:`web.ui.audit.audit_log`).
ON_BEHALF = " for "


def on_behalf_actor(worker_id: str) -> str:
    """The audit actor of a step the logged-in coordinator takes for the invited worker.

    Examples
    --------
    >>> split_actor("district-user for W0001"), split_actor("W0001")
    (('district-user', 'W0001'), ('W0001', None))
    """
    return f"{user_name()}{ON_BEHALF}{worker_id}"


def split_actor(actor: str) -> tuple[str, str | None]:
    """``(who acted, the worker they acted for or None)`` from an audit actor."""
    who, sep, worker_id = actor.partition(ON_BEHALF)
    return (who, worker_id) if sep and worker_id else (actor, None)


def list_args(args: Mapping[str, str]) -> dict[str, str]:
    """A list page's filters: a district coordinator's lists open on their own district. Choosing 全部
    sends ``district=`` (empty), which is kept and means every district."""
    out = dict(args.items())
    own = user_district() if user_role() == "district" else None
    if own and "district" not in args:
        out["district"] = own
    return out


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
