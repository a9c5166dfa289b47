"""Who is told about a selection step, in the app and by message: ``Notification`` and ``OutboxMessage`` rows.

Every step of the two-way selection that the other side must answer or should know about makes one
``Notification`` per recipient (a ``User``), and for each recipient with an address on a message channel
(e-mail today) one ``OutboxMessage``. :class:`~workflow.selection.Selection` adds these rows to the step's
own :class:`~graph.store.WriteBatch`, so a notification exists exactly when its step committed: a process
dying after the write loses nothing, and :mod:`workflow.outbox` delivers the messages later.

==================== =========================================== ==========================================
step (match state)    who is told                                  kind
==================== =========================================== ==========================================
invited               the invited worker                           ``invited``
volunteered           coordinators of the problem's district        ``volunteered``
                      (city coordinators when the district has none)
accepted (from an     whoever invited (else the district's           ``accepted``
invitation)           coordinators); the worker if a coordinator
                      answered for them
accepted (confirmed   the worker                                   ``confirmed``
volunteer)
declined              the inviter / coordinators (an invitation),   ``declined`` / ``volunteer_declined``
                      the worker (a volunteer, with the reason)
withdrawn             the other side                               ``withdrawn``
completed             the worker                                   ``completed``
==================== =========================================== ==========================================

Nobody is told about their own step. Texts are kept as a kind plus its values (problem title, worker name,
reason): the pages and the API render them in the reader's language; a message is written in its recipient's
language, the ``language`` of the ``User`` (``zh`` when unset; :func:`user_language`), fixed when the step
commits (:func:`message_text`, :data:`TEXTS`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from graph.rules import new_id
from graph.store import GraphStore, NodeRow, WriteBatch

__all__ = [
    "ADDRESS_FIELDS",
    "DEFAULT_LANGUAGE",
    "KINDS",
    "LANGUAGES",
    "NotificationPage",
    "NotificationReader",
    "TEXTS",
    "TEXTS_EN",
    "TEXTS_ZH",
    "list_notifications",
    "mark_read",
    "message_subject",
    "message_text",
    "notification_rows",
    "notifications_for",
    "unread_count",
    "user_language",
]

#: Chinese text of each kind (``str.format`` fields: problem, worker, reason).
TEXTS_ZH: Final[Mapping[str, str]] = {
    "invited": "您收到一个对接邀请:「{problem}」",
    "volunteered": "{worker} 报名对接「{problem}」,请确认或婉拒",
    "accepted": "{worker} 接受了「{problem}」的邀请",
    "declined": "{worker} 婉拒了「{problem}」的邀请:{reason}",
    "confirmed": "您对「{problem}」的报名已确认,可以开始对接了",
    "volunteer_declined": "您对「{problem}」的报名未被采纳:{reason}",
    "withdrawn": "「{problem}」的对接已撤回({worker})",
    "completed": "「{problem}」的服务结果已登记",
}
#: English text of each kind (the same sentences as the pages' English catalogue, web/translations).
TEXTS_EN: Final[Mapping[str, str]] = {
    "invited": "You are invited to “{problem}”",
    "volunteered": "{worker} volunteered for “{problem}”: please confirm or decline",
    "accepted": "{worker} accepted the invitation to “{problem}”",
    "declined": "{worker} declined the invitation to “{problem}”: {reason}",
    "confirmed": "Your offer to take “{problem}” was confirmed: you can start",
    "volunteer_declined": "Your offer to take “{problem}” was declined: {reason}",
    "withdrawn": "The match for “{problem}” was withdrawn ({worker})",
    "completed": "The outcome of “{problem}” has been recorded",
}
#: Language code -> the texts of each kind.
TEXTS: Final[Mapping[str, Mapping[str, str]]] = {"zh": TEXTS_ZH, "en": TEXTS_EN}
LANGUAGES: Final[tuple[str, ...]] = tuple(TEXTS)
#: The language of a user who has not chosen one (the union's users read Chinese).
DEFAULT_LANGUAGE: Final = "zh"
KINDS: Final[tuple[str, ...]] = tuple(TEXTS_ZH)
_NO_REASON: Final[Mapping[str, str]] = {"zh": "未说明", "en": "no reason given"}
_SUBJECT: Final[Mapping[str, str]] = {"zh": "【匠联】{text}", "en": "[Jianglian] {text}"}

#: Message channel -> the ``User`` property holding that user's address on it. An SMS gateway is one more
#: entry (``"sms": "phone"``) plus a :class:`workflow.outbox.Channel` registered under ``"sms"``.
ADDRESS_FIELDS: Final[dict[str, str]] = {"email": "email"}

_ON_BEHALF: Final = " for "  # web.ui.access.ON_BEHALF: "<coordinator> for <worker id>"


class NotificationReader(Protocol):
    """The reads :func:`notification_rows` makes (a store, or the reader inside a write's transaction)."""

    def get_node(self, label: str, node_id: str) -> dict[str, Any] | None: ...

    def list_nodes(self, label: str, *, where: Mapping[str, Any] | None = None, offset: int = 0,
                   limit: int | None = None) -> list[dict[str, Any]]: ...


def user_language(user: Mapping[str, Any] | None) -> str:
    """The language a user's messages are written in: their ``language`` if it is one we write, else Chinese.

    Examples
    --------
    >>> user_language({"language": "en"}), user_language({}), user_language({"language": "fr"})
    ('en', 'zh', 'zh')
    """
    lang = str((user or {}).get("language") or "")
    return lang if lang in TEXTS else DEFAULT_LANGUAGE


def message_text(kind: str, *, problem: str, worker: str = "", reason: str = "", lang: str = DEFAULT_LANGUAGE) -> str:
    """The sentence of a notification in ``lang`` (``zh`` or ``en``; another code gives Chinese).

    Examples
    --------
    >>> message_text("invited", problem="注塑件缩痕")
    '您收到一个对接邀请:「注塑件缩痕」'
    >>> message_text("volunteer_declined", problem="主轴异响", reason="已有人对接")
    '您对「主轴异响」的报名未被采纳:已有人对接'
    >>> message_text("declined", problem="主轴异响", worker="王建国", lang="en")
    '王建国 declined the invitation to “主轴异响”: no reason given'
    """
    lang = lang if lang in TEXTS else DEFAULT_LANGUAGE
    return TEXTS[lang][kind].format(problem=problem, worker=worker, reason=reason or _NO_REASON[lang])


def message_subject(text: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """The subject line of a message whose text is ``text`` (at most 200 characters).

    Examples
    --------
    >>> message_subject("You are invited to “主轴异响”", "en")
    '[Jianglian] You are invited to “主轴异响”'
    """
    return _SUBJECT.get(lang, _SUBJECT[DEFAULT_LANGUAGE]).format(text=text)[:200]


def _kind(previous: str | None, to: str) -> str | None:
    if to == "invited":
        return "invited"
    if to == "volunteered":
        return "volunteered"
    if to == "accepted":
        return "confirmed" if previous == "volunteered" else "accepted"
    if to == "declined":
        return "volunteer_declined" if previous == "volunteered" else "declined"
    if to in ("withdrawn", "completed"):
        return to
    return None


def _active(users: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [u for u in users if u.get("active", True) is not False]


def _coordinators(store: NotificationReader, district: str | None, inviter: str | None) -> list[Mapping[str, Any]]:
    if inviter:
        user = store.get_node("User", inviter)
        if user is not None and user.get("role") in ("admin", "city", "district") and user.get("active", True):
            return [user]
    users = _active(store.list_nodes("User", where={"role": "district", "district": district})) if district else []
    return users or _active(store.list_nodes("User", where={"role": "city"}))


def _recipients(store: NotificationReader, match: Mapping[str, Any], kind: str, actor: str,
                previous: str | None) -> list[Mapping[str, Any]]:
    worker_users = _active(store.list_nodes("User", where={"worker_id": match.get("worker_id")}))
    who, _, behalf = actor.partition(_ON_BEHALF)
    district = match.get("district")
    if kind in ("invited", "confirmed", "volunteer_declined", "completed"):
        return worker_users
    if kind == "volunteered":
        return _coordinators(store, district, None)
    if kind in ("accepted", "declined"):
        return _coordinators(store, district, match.get("invited_by")) + (worker_users if behalf else [])
    if kind == "withdrawn":
        if any(u["id"] == who for u in worker_users):  # the worker withdrew: tell the coordinators
            return _coordinators(store, district, match.get("invited_by") or match.get("confirmed_by"))
        return worker_users
    return []


def notification_rows(store: NotificationReader, match: Mapping[str, Any], to: str, actor: str, now: datetime,
                      *, previous: str | None = None) -> list[NodeRow]:
    """``Notification`` and ``OutboxMessage`` rows for the step of ``match`` (as written) to ``to`` by ``actor``.

    ``previous`` is the state the match left (``None`` for a new match). The rows are meant for the step's
    own write batch (see the module docstring).
    """
    kind = _kind(previous, to)
    if kind is None:
        return []
    problem = store.get_node("Problem", str(match.get("problem_id"))) or {}
    worker = store.get_node("Worker", str(match.get("worker_id"))) or {}
    title = str(problem.get("title") or match.get("problem_id") or "")
    worker_name = str(worker.get("name") or match.get("worker_id") or "")
    reason = str(match.get("reason") or "")
    who = actor.partition(_ON_BEHALF)[0]
    stamp = now.isoformat(timespec="seconds")
    rows: list[NodeRow] = []
    seen: set[str] = set()
    for user in _recipients(store, match, kind, actor, previous):
        user_id = str(user["id"])
        if user_id == who or user_id in seen:
            continue
        seen.add(user_id)
        note_id = new_id("N", now)
        rows.append(NodeRow("Notification", note_id, {k: v for k, v in {
            "user_id": user_id, "kind": kind, "unread": True, "at": stamp, "actor": actor,
            "match_id": match.get("id"), "problem_id": match.get("problem_id"), "worker_id": match.get("worker_id"),
            "problem_title": title, "worker_name": worker_name, "reason": reason or None,
        }.items() if v is not None}))
        lang = user_language(user)
        text = message_text(kind, problem=title, worker=worker_name, reason=reason, lang=lang)
        for channel, field in ADDRESS_FIELDS.items():
            address = user.get(field)
            if not address:
                continue
            rows.append(NodeRow("OutboxMessage", new_id("O", now), {
                "channel": channel, "to": str(address), "user_id": user_id, "notification_id": note_id,
                "lang": lang, "subject": message_subject(text, lang), "body": text,
                "path": f"/notifications/{note_id}",
                "status": "pending", "attempts": 0, "created_at": stamp, "next_attempt_at": stamp,
            }))
    return rows


def notifications_for(store: GraphStore, user_id: str, *, limit: int = 100) -> list[dict[str, Any]]:
    """A user's notifications, newest first."""
    return list_notifications(store, [user_id], limit=limit).items


@dataclass(frozen=True)
class NotificationPage:
    """One page of notifications (newest first) with the counts a list shows beside it."""

    items: list[dict[str, Any]]
    #: How many notifications match the filter (every page together).
    total: int
    #: How many of the recipients' notifications are unread, whatever the filter.
    unread: int


def list_notifications(store: GraphStore, user_ids: Sequence[str] | None, *, unread: bool | None = None,
                       offset: int = 0, limit: int = 20) -> NotificationPage:
    """One page of notifications, newest first, and the counts.

    Parameters
    ----------
    user_ids
        Whose notifications (the recipients); ``None`` for everyone's.
    unread
        ``True``: only unread ones, ``False``: only read ones, ``None``: both.
    offset, limit
        The page: skip the ``offset`` newest, return at most ``limit``.

    Ids sort by creation time (:func:`graph.rules.new_id`) and the stores list by id, so for one recipient (or
    everyone) the page is a slice the store reads counted from the oldest end, beside two counts made by the
    store: only the page travels (on Neo4j a user with 10,000 notifications is 1.7 s when all of them are read
    to be sorted here; ``benchmarks/notifications_api_bench.py``). The counts and the slice are separate reads:
    a notification written between them may shift the page by one. Several recipients (the users of one
    worker) are merged in memory.
    """
    if offset < 0 or limit < 0:
        raise ValueError("offset and limit must not be negative")
    if user_ids is not None and len(user_ids) != 1:
        rows = [n for user_id in dict.fromkeys(user_ids)
                for n in store.list_nodes("Notification", where={"user_id": user_id})]
        unread_total = sum(1 for n in rows if n.get("unread"))
        if unread is not None:
            rows = [n for n in rows if bool(n.get("unread")) == unread]
        rows.sort(key=lambda n: str(n["id"]), reverse=True)
        return NotificationPage(rows[offset:offset + limit], len(rows), unread_total)
    base: dict[str, Any] = {} if user_ids is None else {"user_id": user_ids[0]}
    where = base if unread is None else {**base, "unread": unread}  # written true, set false when read
    total = store.count_nodes("Notification", where=where or None)
    unread_total = total if unread else store.count_nodes("Notification", where={**base, "unread": True})
    end = max(0, total - offset)
    start = max(0, end - limit)
    items = [] if end == start else store.list_nodes("Notification", where=where or None, offset=start,
                                                     limit=end - start)
    return NotificationPage(items[::-1], total, unread_total)


def unread_count(store: GraphStore, user_id: str) -> int:
    """How many of a user's notifications are unread (the badge)."""
    return store.count_nodes("Notification", where={"user_id": user_id, "unread": True})


def mark_read(store: GraphStore, user_id: str, note_ids: Sequence[str] | None, now: datetime) -> int:
    """Mark the user's notifications ``note_ids`` (all unread ones when ``None``) read; returns how many.

    Others' notifications are left alone, whatever ids are given.
    """
    unread = store.list_nodes("Notification", where={"user_id": user_id, "unread": True})
    wanted = None if note_ids is None else set(note_ids)
    stamp = now.isoformat(timespec="seconds")
    rows = [NodeRow("Notification", str(n["id"]), {"unread": False, "read_at": stamp})
            for n in unread if wanted is None or n["id"] in wanted]
    if rows:
        store.apply(WriteBatch(nodes=rows))
    return len(rows)
