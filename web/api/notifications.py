"""A user's notifications (通知) in the JSON API: the list with the unread count, marking read.

The same rows as the 「通知」 page (:mod:`web.ui.notices`), written by :mod:`workflow.notifications` with each
selection step. Who sees whose:

* a **logged-in user** (any role, a worker too): only their own; naming another ``user`` or ``worker_id`` is 403;
* an **API key** is the platform, not a person, and has no notifications of its own. Like every other read,
  a ``read`` key lists notifications city-wide, narrowed with ``user`` (a username) or ``worker_id`` (the users
  linked to that worker), so the platform can show its users their inbox or relay them through its own
  channels; it learns nothing a read key cannot read already (the matches, their reasons and history).
  Marking read changes data: a ``write`` key, naming the ``user`` (``docs/security.md``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import Response, jsonify

from web import auth
from web.api import bp, schemas
from web.api.paging import page_response
from web.errors import Forbidden, NotFound, ValidationFailed, request_language
from web.extensions import get_state
from workflow.notifications import list_notifications, mark_read, message_text, unread_count

__all__: list[str] = []

_FIELDS = ("id", "user_id", "kind", "unread", "at", "read_at", "actor", "match_id", "problem_id", "worker_id",
           "problem_title", "worker_name", "reason")


def _item(note: dict[str, Any], lang: str) -> dict[str, Any]:
    item = {k: note[k] for k in _FIELDS if note.get(k) is not None}
    item["unread"] = bool(note.get("unread"))
    try:
        item["text"] = message_text(str(note.get("kind")), problem=str(note.get("problem_title") or ""),
                                    worker=str(note.get("worker_name") or ""), reason=str(note.get("reason") or ""),
                                    lang=lang)
    except KeyError:  # a kind this version does not know
        item["text"] = str(note.get("kind") or "")
    return item


def _own(principal: auth.Principal, user: str | None, worker_id: str | None) -> list[str]:
    """A logged-in user's own notifications: naming anyone else is refused."""
    if (user not in (None, principal.id)) or (worker_id is not None and worker_id != principal.worker_id):
        raise Forbidden("只能查看自己的通知", reason_en="a user may only see their own notifications")
    return [principal.id]


def _recipients(user: str | None, worker_id: str | None) -> list[str] | None:
    """An API key's filter: the named user, the users of a worker (both: their intersection), or everyone."""
    users: list[str] | None = None
    if worker_id is not None:
        users = [str(u["id"]) for u in get_state().store.list_nodes("User", where={"worker_id": worker_id})]
    if user is not None:
        users = [user] if users is None or user in users else []
    return users


F = TypeVar("F", bound=Callable[..., Any])


def _keys_write(view: F) -> F:
    """Refuse a read-scoped API key (403) before the body is validated."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        principal = auth.current_principal()
        if principal is not None and principal.kind == "apikey" and principal.scope != "write":
            raise Forbidden("此 API 密钥只有读权限", reason_en="this API key has read scope only")
        return view(*args, **kwargs)

    return cast(F, wrapper)


@bp.get("/notifications")
@auth.require("read")
@bp.input(schemas.NotificationQuery, location="query", arg_name="query")
@bp.output(schemas.NotificationPageDoc)
@bp.doc(summary="Notifications, newest first, with the unread count", security="ApiKeyAuth",
        tags=["notifications"], responses=schemas.error_responses(403, 422),
        description="A logged-in user gets their own (any other `user`/`worker_id` is 403). An API key gets "
                    "every user's, narrowed by `user` or `worker_id`. `unread` in the body counts the unread "
                    "notifications of the same recipients whatever the page or the `unread` filter; `text` is "
                    "the sentence in the request's language (`lang`, then `Accept-Language`).")
def list_(query: dict[str, Any]) -> Response:
    principal = auth.current_principal()
    assert principal is not None
    user, worker_id = query.get("user"), query.get("worker_id")
    users = _own(principal, user, worker_id) if principal.kind == "user" else _recipients(user, worker_id)
    store = get_state().store
    page, per_page = query["page"], query["per_page"]
    found = list_notifications(store, users, unread=query.get("unread"), offset=(page - 1) * per_page,
                               limit=per_page)
    lang = request_language()
    return page_response([_item(n, lang) for n in found.items], total=found.total, page=page, per_page=per_page,
                         extra={"unread": found.unread})


@bp.post("/notifications/read")
@auth.require("read")  # any logged-in user marks their own (a viewer too) ...
@_keys_write  # ... and a key needs the write scope, checked before the body like every other write
@bp.input(schemas.MarkReadIn, arg_name="data")
@bp.output(schemas.MarkReadDoc)
@bp.doc(summary="Mark notifications read (some, or all unread)", security="ApiKeyAuth", tags=["notifications"],
        responses=schemas.error_responses(400, 403, 404, 413, 422),
        description="`{\"ids\": [...]}` or `{\"all\": true}`. A logged-in user marks their own; an API key needs "
                    "the write scope and names the `user`. An id that is not the recipient's (or does not "
                    "exist) is 404 and nothing is marked; ids already read count for nothing.")
def mark(data: dict[str, Any]) -> Response:
    principal = auth.current_principal()
    assert principal is not None
    if principal.kind == "apikey":
        if not data.get("user"):
            raise ValidationFailed({"body.user": ["API 密钥需指明用户 / an API key must name the user"]})
        user_id = str(data["user"])
        if get_state().store.get_node("User", user_id) is None:
            raise NotFound("User", user_id)
    else:
        user_id = _own(principal, data.get("user"), None)[0]
    state = get_state()
    ids = data.get("ids")
    if ids:
        for note_id in dict.fromkeys(ids):
            note = state.store.get_node("Notification", note_id)
            if note is None or note.get("user_id") != user_id:  # someone else's is as unknown as a missing one
                raise NotFound("Notification", note_id)
    marked = mark_read(state.store, user_id, ids or None, state.selection._clock())
    return jsonify(marked=marked, unread=unread_count(state.store, user_id))
