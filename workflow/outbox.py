"""Delivering the outbox: ``OutboxMessage`` rows sent by e-mail (SMTP) or another channel, with retries.

:mod:`workflow.notifications` writes a ``pending`` row in the same batch as the selection step it tells about,
so a message exists exactly when its step committed. :class:`Outbox` delivers them later, outside any request:

1. **Claim** a due row with a conditional write (``pending`` and its attempt count as read -> ``sending``,
   ``claimed_at``, attempt + 1). Of two senders (two processes, or a thread and ``jianglian outbox send``)
   exactly one wins a row.
2. **Send** it through the row's channel (:class:`SmtpChannel` for ``email``).
3. **Record** the result: ``sent`` with ``sent_at`` and the channel's receipt (the Message-ID); or, on a
   temporary failure (connection refused, a 4xx reply), ``pending`` again with ``last_error`` and
   ``next_attempt_at`` backed off exponentially (:attr:`Outbox.base_delay` x 2^attempt, at most an hour);
   a permanent failure (a 5xx reply: unknown recipient, refused sender) or the last attempt ends in
   ``failed``.

A process that dies between claiming and recording leaves the row ``sending``; once its ``claimed_at`` is
older than :attr:`Outbox.lease` it is due again, so nothing is lost. Delivery is therefore *at least once*:
a crash after the relay accepted a message and before ``sent`` was written sends it a second time.

Channels: anything with ``send(message) -> receipt`` (:class:`Channel`); raise :class:`TemporaryFailure` to
retry and :class:`PermanentFailure` to give up. An SMS gateway is one more channel registered under ``"sms"``
(with ``"sms": "phone"`` in :data:`workflow.notifications.ADDRESS_FIELDS`, so rows are written for it).
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any, Final, Literal, Protocol

from graph.errors import WriteConflict
from graph.rules import now as _now
from graph.store import Expect, GraphStore, NodeRow, WriteBatch

__all__ = [
    "Channel",
    "DeliveryReport",
    "Outbox",
    "PermanentFailure",
    "SmtpChannel",
    "SmtpSettings",
    "TemporaryFailure",
    "start_sender",
]

log = logging.getLogger(__name__)

#: Longest wait between two attempts of one message.
MAX_DELAY: Final = timedelta(hours=1)
#: The words an e-mail adds around its row's text, in the row's ``lang`` (the recipient's language, chosen when the
#: row was written: :func:`workflow.notifications.user_language`): the label of the link, the signature.
_MAIL_TEXT: Final[Mapping[str, tuple[str, str]]] = {
    "zh": ("查看:", "—— 匠联 · 劳模工匠助企行(系统邮件,请勿直接回复)"),
    "en": ("Open: ", "— Jianglian · model workers and craftsmen helping enterprises (automated e-mail, please do "
                     "not reply)"),
}


class TemporaryFailure(Exception):
    """The channel could not deliver now; try again later."""


class PermanentFailure(Exception):
    """The channel will never deliver this message (a bad address, a refused sender)."""


class Channel(Protocol):
    """A way to send a message: returns a receipt to record (a Message-ID, a gateway's id)."""

    def send(self, message: Mapping[str, Any]) -> str: ...


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send e-mail.

    Parameters
    ----------
    host, port
        The mail relay (the union's intranet relay); port 25 by default, 465 for ``security="ssl"``,
        usually 587 for ``"starttls"``.
    sender
        The From address.
    security
        ``"none"`` (a relay inside the intranet), ``"starttls"`` or ``"ssl"`` (TLS from the start).
    username, password
        Log in when a username is given (only over TLS unless ``allow_plain_login``).
    timeout
        Seconds for the connection and each reply.
    """

    host: str
    sender: str
    port: int = 25
    security: Literal["none", "starttls", "ssl"] = "none"
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    allow_plain_login: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> SmtpSettings | None:
        """From the Flask settings ``SMTP_HOST``, ``SMTP_PORT``, ``SMTP_FROM``, ``SMTP_SECURITY``, ``SMTP_USER``,
        ``SMTP_PASSWORD``, ``SMTP_TIMEOUT`` (``JIANGLIAN_SMTP_*`` in the environment); ``None`` without a host.

        Examples
        --------
        >>> SmtpSettings.from_config({"SMTP_HOST": "relay.union.local", "SMTP_PORT": "2525"}).port
        2525
        >>> SmtpSettings.from_config({}) is None
        True
        """
        host = str(config.get("SMTP_HOST") or "").strip()
        if not host:
            return None
        security = str(config.get("SMTP_SECURITY") or "none").strip().lower()
        if security not in ("none", "starttls", "ssl"):
            raise ValueError(f"SMTP_SECURITY must be none, starttls or ssl, not {security!r}")
        default_port = 465 if security == "ssl" else 25
        return cls(host=host, port=int(config.get("SMTP_PORT") or default_port),
                   sender=str(config.get("SMTP_FROM") or f"jianglian@{host}"),
                   security=security,  # type: ignore[arg-type]
                   username=str(config["SMTP_USER"]) if config.get("SMTP_USER") else None,
                   password=str(config["SMTP_PASSWORD"]) if config.get("SMTP_PASSWORD") else None,
                   timeout=float(config.get("SMTP_TIMEOUT") or 10.0))


class SmtpChannel:
    """E-mail through an SMTP relay (``smtplib``): one connection per :meth:`send`.

    ``base_url`` (the app's public address), when given, ends each mail with a link to the notification.
    """

    def __init__(self, settings: SmtpSettings, *, base_url: str = "",
                 tls_context: ssl.SSLContext | None = None) -> None:
        self.settings = settings
        self.base_url = base_url.rstrip("/")
        self._tls = tls_context

    def compose(self, message: Mapping[str, Any]) -> EmailMessage:
        """The e-mail of an outbox row (plain text, UTF-8), worded in the row's ``lang`` (Chinese without one)."""
        mail = EmailMessage()
        mail["From"] = self.settings.sender
        mail["To"] = str(message["to"])
        mail["Subject"] = str(message.get("subject") or "")
        mail["Date"] = format_datetime(_now())
        domain = self.settings.sender.rpartition("@")[2] or None
        mail["Message-ID"] = make_msgid(idstring=str(message.get("id") or ""), domain=domain)
        lang = str(message.get("lang") or "zh")
        open_label, footer = _MAIL_TEXT.get(lang, _MAIL_TEXT["zh"])
        body = str(message.get("body") or "")
        if self.base_url and message.get("path"):
            body += f"\n\n{open_label}{self.base_url}{message['path']}"
        mail.set_content(f"{body}\n\n{footer}\n")
        mail["Content-Language"] = "en" if lang == "en" else "zh-CN"  # after set_content, which clears Content-*
        return mail

    def send(self, message: Mapping[str, Any]) -> str:
        s = self.settings
        mail = self.compose(message)
        if self._tls is None and s.security != "none":
            self._tls = ssl.create_default_context()  # once: loading the system's CA store takes ~50 ms
        context = self._tls
        try:
            smtp: smtplib.SMTP
            if s.security == "ssl":
                smtp = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout, context=context)
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            with smtp:
                if s.security == "starttls":
                    smtp.starttls(context=context)
                if s.username:
                    if s.security == "none" and not s.allow_plain_login:
                        raise PermanentFailure("refusing to send the SMTP password without TLS "
                                               "(set SMTP_SECURITY to starttls or ssl)")
                    smtp.login(s.username, s.password or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPResponseException as err:  # a reply code: 5xx is final, 4xx worth retrying
            text = f"{err.smtp_code} {err.smtp_error!r}"
            raise (PermanentFailure(text) if err.smtp_code >= 500 else TemporaryFailure(text)) from err
        except smtplib.SMTPRecipientsRefused as err:
            codes = [code for code, _ in err.recipients.values()]
            text = f"recipient refused: {err.recipients!r}"
            raise (PermanentFailure(text) if all(c >= 500 for c in codes) else TemporaryFailure(text)) from err
        except (smtplib.SMTPException, OSError) as err:  # connection refused, timeouts, TLS errors, disconnects
            raise TemporaryFailure(f"{type(err).__name__}: {err}") from err
        if refused:
            raise PermanentFailure(f"recipient refused: {refused!r}")
        return str(mail["Message-ID"])


@dataclass
class DeliveryReport:
    """What one :meth:`Outbox.deliver` pass did."""

    sent: list[str] = field(default_factory=list)
    retried: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: int = 0  # rows another sender claimed first, or of a channel without a sender here


class Outbox:
    """Sends the due ``OutboxMessage`` rows of a store through the registered channels.

    Parameters
    ----------
    store
        The graph store.
    channels
        Channel name -> :class:`Channel` (``{"email": SmtpChannel(...)}``). Rows of other channels wait.
    clock
        The current time (tests move it).
    max_attempts
        Attempts before a message is ``failed``.
    base_delay
        Seconds before the second attempt; doubled after each failure (at most :data:`MAX_DELAY`).
    lease
        Seconds after which a row left ``sending`` (its sender died) is due again.
    """

    def __init__(self, store: GraphStore, channels: Mapping[str, Channel], *,
                 clock: Callable[[], datetime] | None = None, max_attempts: int = 8, base_delay: float = 30.0,
                 lease: float = 600.0) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.store = store
        self.channels = dict(channels)
        self.clock = clock or _now
        self.max_attempts = max_attempts
        self.base_delay = base_delay
        self.lease = lease

    def due(self, limit: int = 100) -> list[dict[str, Any]]:
        """Rows to send now, oldest first: pending ones whose time has come, and abandoned ``sending`` ones."""
        now = self.clock()
        stale = now - timedelta(seconds=self.lease)
        rows = [r for r in self.store.list_nodes("OutboxMessage", where={"status": "pending"})
                if _when(r.get("next_attempt_at")) <= now]
        rows += [r for r in self.store.list_nodes("OutboxMessage", where={"status": "sending"})
                 if _when(r.get("claimed_at")) <= stale]
        rows.sort(key=lambda r: str(r["id"]))
        return [r for r in rows if r.get("channel") in self.channels][:limit]

    def deliver(self, limit: int = 100) -> DeliveryReport:
        """One pass: claim, send and record each due row (at most ``limit``)."""
        report = DeliveryReport()
        for row in self.due(limit):
            claimed = self._claim(row)
            if claimed is None:
                report.skipped += 1
                continue
            self._send(claimed, report)
        return report

    def _claim(self, row: Mapping[str, Any]) -> dict[str, Any] | None:
        stamp = self.clock().isoformat(timespec="seconds")
        attempts = int(row.get("attempts") or 0)
        expect = {"status": row.get("status"), "attempts": row.get("attempts"), "claimed_at": row.get("claimed_at")}
        try:
            self.store.apply(WriteBatch(
                nodes=[NodeRow("OutboxMessage", str(row["id"]), {"status": "sending", "claimed_at": stamp,
                                                                  "attempts": attempts + 1})],
                expect=[Expect("OutboxMessage", str(row["id"]), expect)]))
        except WriteConflict:  # another sender claimed it first
            return None
        return {**row, "status": "sending", "claimed_at": stamp, "attempts": attempts + 1}

    def _send(self, row: dict[str, Any], report: DeliveryReport) -> None:
        row_id = str(row["id"])
        try:
            receipt = self.channels[str(row["channel"])].send(row)
        except PermanentFailure as err:
            self._record(row, {"status": "failed", "last_error": str(err)[:500]})
            report.failed.append(row_id)
            log.warning("outbox %s to %s failed for good: %s", row_id, row.get("to"), err)
            return
        except Exception as err:  # TemporaryFailure, or a channel's own error: retry
            if row["attempts"] >= self.max_attempts:
                self._record(row, {"status": "failed", "last_error": f"{err} (after {row['attempts']} attempts)"[:500]})
                report.failed.append(row_id)
                log.warning("outbox %s to %s failed after %s attempts: %s", row_id, row.get("to"), row["attempts"], err)
                return
            delay = min(timedelta(seconds=self.base_delay * 2 ** (row["attempts"] - 1)), MAX_DELAY)
            retry_at = (self.clock() + delay).isoformat(timespec="seconds")
            self._record(row, {"status": "pending", "last_error": str(err)[:500], "next_attempt_at": retry_at})
            report.retried.append(row_id)
            log.info("outbox %s to %s: attempt %s failed (%s); next at %s", row_id, row.get("to"), row["attempts"],
                     err, retry_at)
            return
        self._record(row, {"status": "sent", "sent_at": self.clock().isoformat(timespec="seconds"),
                           "receipt": receipt[:300], "last_error": ""})
        report.sent.append(row_id)

    def _record(self, row: Mapping[str, Any], props: Mapping[str, Any]) -> None:
        """Write the outcome only if this sender still holds the claim (a lease that ran out was taken over)."""
        held = {"status": "sending", "claimed_at": row["claimed_at"]}
        try:
            self.store.apply(WriteBatch(nodes=[NodeRow("OutboxMessage", str(row["id"]), dict(props))],
                                        expect=[Expect("OutboxMessage", str(row["id"]), held)]))
        except WriteConflict:
            log.warning("outbox %s: the claim was taken over by another sender; its result stands", row["id"])

    def run(self, stop: threading.Event, interval: float = 30.0) -> None:
        """Deliver every ``interval`` seconds until ``stop`` is set (errors are logged, never raised)."""
        while not stop.is_set():
            try:
                self.deliver()
            except Exception:  # the store is down, a bug: keep the thread alive, try again next round
                log.exception("outbox delivery pass failed")
            stop.wait(interval)


def _when(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.min.replace(tzinfo=_now().tzinfo)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=_now().tzinfo)


def start_sender(outbox: Outbox, interval: float = 30.0) -> tuple[threading.Thread, threading.Event]:
    """Run :meth:`Outbox.run` in a daemon thread; set the returned event to stop it."""
    stop = threading.Event()
    thread = threading.Thread(target=outbox.run, args=(stop, interval), name="jianglian-outbox", daemon=True)
    thread.start()
    return thread, stop
