"""The outbox sender of the web process: a daemon thread delivering notification e-mails (workflow.outbox).

Started by :func:`web.app.create_app` when ``SMTP_HOST`` is set (``JIANGLIAN_SMTP_HOST``) and ``OUTBOX_SENDER``
is true (the default), so requests never wait for the mail relay: a step writes its outbox rows in its own
transaction and this thread sends them every ``OUTBOX_INTERVAL`` seconds. Several processes (gunicorn
workers, ``jianglian outbox send``) may run senders at once: each row is claimed by one conditional write.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from flask import Flask

from graph.errors import GraphError
from workflow.outbox import Outbox, SmtpChannel, SmtpSettings

__all__ = ["init_outbox", "outbox_from_config"]

log = logging.getLogger(__name__)


def outbox_from_config(store: Any, config: Any) -> Outbox | None:
    """An :class:`~workflow.outbox.Outbox` over ``store`` with the e-mail channel of ``config``; ``None``
    when no ``SMTP_HOST`` is set."""
    settings = SmtpSettings.from_config(config)
    if settings is None:
        return None
    channel = SmtpChannel(settings, base_url=str(config.get("PUBLIC_URL") or ""))
    return Outbox(store, {"email": channel}, max_attempts=int(config.get("OUTBOX_MAX_ATTEMPTS") or 8),
                  base_delay=float(config.get("OUTBOX_RETRY_SECONDS") or 30.0))


def init_outbox(app: Flask) -> threading.Event | None:
    """Start the sender thread if mail is configured; returns the event that stops it (also set on close)."""
    if SmtpSettings.from_config(app.config) is None or not app.config.get("OUTBOX_SENDER", True):
        return None
    from web.extensions import get_state

    state = get_state(app)
    interval = float(app.config.get("OUTBOX_INTERVAL") or 30.0)
    stop = threading.Event()

    def run() -> None:
        while not stop.is_set():
            try:
                outbox = outbox_from_config(state.store, app.config)
                if outbox is not None:
                    outbox.deliver()
            except GraphError as err:  # the store is down (or the app shutting down): try again next round
                log.warning("outbox delivery pass skipped: %s", err)
            except Exception:  # a bug: keep the thread, say where
                log.exception("outbox delivery pass failed")
            stop.wait(interval)

    threading.Thread(target=run, name="jianglian-outbox", daemon=True).start()
    app.extensions["jianglian_outbox_stop"] = stop
    return stop
