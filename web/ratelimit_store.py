"""A rate-limit storage in one SQLite file, shared by every process of a served app (issue 16, finding 8).

``memory://`` (the `limits` library's default) counts per process: served by N gunicorn workers, an API key got
N times its budget (measured: 80 calls admitted of a 40-call budget with 2 workers,
``tests/test_security_cost_limits.py``) and the login throttle N times its failures, all forgotten at restarts.
``sqlite:///<path>`` keeps the counters in a file that every worker opens, with each update in its own
``BEGIN IMMEDIATE`` transaction, so the budget is one budget.

The file holds only counters (no personal data) and is disposable: it is opened with ``synchronous=OFF``
(a crash may lose the last counts, never more) in WAL mode, and expired rows are swept as it is used.

:class:`SQLiteStorage` registers the ``sqlite`` scheme with `limits` by being defined (its metaclass does that);
:mod:`web.app` imports this module and, for a served app, points ``RATELIMIT_STORAGE_URI`` at
``<data dir>/ratelimits.sqlite3`` unless it is set.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from limits.storage import MovingWindowSupport, Storage

__all__ = ["SQLiteStorage", "storage_uri"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS events (key TEXT NOT NULL, at REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS events_key_at ON events (key, at)",
)
#: Sweep expired rows on about one update in this many.
_SWEEP_EVERY = 200


def storage_uri(path: str | os.PathLike[str]) -> str:
    """The ``RATELIMIT_STORAGE_URI`` of a counters file.

    Examples
    --------
    >>> storage_uri("/srv/jianglian/ratelimits.sqlite3")
    'sqlite:////srv/jianglian/ratelimits.sqlite3'
    """
    return "sqlite:///" + os.path.abspath(path)


class SQLiteStorage(Storage, MovingWindowSupport):
    """`limits` storage (fixed and moving windows) in a SQLite file: ``sqlite:///<absolute path>``."""

    STORAGE_SCHEME = ["sqlite"]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        path = uri.split("://", 1)[1]
        if not path.startswith("/"):
            raise ValueError(f"a sqlite rate-limit storage needs an absolute path: {uri!r}")
        self._path = path
        self._local = threading.local()
        self._updates = 0
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        with self._write() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    # -- connections: one per thread and process (a forked worker never reuses its parent's) -----------------
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "pid", None) != os.getpid():
            db = sqlite3.connect(self._path, timeout=10.0, isolation_level=None, check_same_thread=False)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=OFF")
            self._local.db, self._local.pid = db, os.getpid()
        return db

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        db = self._db()
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        self._updates += 1
        if self._updates % _SWEEP_EVERY == 0:
            self._sweep()

    def _sweep(self) -> None:
        now = time.time()
        db = self._db()
        db.execute("DELETE FROM counters WHERE expires <= ?", (now,))
        # no window is longer than a day (the longest limit this app sets is 15 minutes)
        db.execute("DELETE FROM events WHERE at < ?", (now - 86400,))

    # -- fixed windows -------------------------------------------------------------------------------------
    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._write() as db:
            row = db.execute("SELECT value, expires FROM counters WHERE key = ?", (key,)).fetchone()
            if row is None or row[1] <= now:
                value, expires = amount, now + expiry
            else:
                value, expires = row[0] + amount, row[1]
            db.execute("INSERT OR REPLACE INTO counters (key, value, expires) VALUES (?, ?, ?)",
                       (key, value, expires))
        return int(value)

    def get(self, key: str) -> int:
        row = self._db().execute("SELECT value FROM counters WHERE key = ? AND expires > ?",
                                 (key, time.time())).fetchone()
        return 0 if row is None else int(row[0])

    def get_expiry(self, key: str) -> float:
        now = time.time()
        row = self._db().execute("SELECT expires FROM counters WHERE key = ? AND expires > ?",
                                 (key, now)).fetchone()
        return now if row is None else float(row[0])

    def check(self) -> bool:
        try:
            self._db().execute("SELECT 1").fetchone()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        with self._write() as db:
            removed = db.execute("DELETE FROM counters").rowcount + db.execute("DELETE FROM events").rowcount
        return int(removed)

    def clear(self, key: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM counters WHERE key = ?", (key,))
            db.execute("DELETE FROM events WHERE key = ?", (key,))

    # -- moving windows (the login throttle) -----------------------------------------------------------------
    def acquire_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        if amount > limit:
            return False
        now = time.time()
        with self._write() as db:
            db.execute("DELETE FROM events WHERE key = ? AND at < ?", (key, now - expiry))
            (count,) = db.execute("SELECT count(*) FROM events WHERE key = ?", (key,)).fetchone()
            if count + amount > limit:
                return False
            db.executemany("INSERT INTO events (key, at) VALUES (?, ?)", [(key, now)] * amount)
        return True

    def get_moving_window(self, key: str, limit: int, expiry: int) -> tuple[float, int]:
        now = time.time()
        oldest, count = self._db().execute("SELECT min(at), count(*) FROM events WHERE key = ? AND at >= ?",
                                           (key, now - expiry)).fetchone()
        return (now, 0) if not count else (float(oldest), int(count))
