"""Login throttling: too many wrong passwords for one username, or from one address, lock logins out a while.

Failures are counted in moving windows kept in the rate limiter's storage (``RATELIMIT_STORAGE_URI``: by
default a SQLite file in the data directory that every worker process shares, :mod:`web.ratelimit_store`).
Two limits apply, both flask-limiter syntax:

``LOGIN_FAILURES_PER_USER`` (default ``10 per 15 minutes``)
    wrong passwords for one username, from anywhere: guessing one account's password stops there.
``LOGIN_FAILURES_PER_ADDRESS`` (default ``30 per 15 minutes``)
    wrong passwords from one client address, for any usernames: spraying one password over many
    accounts stops there.

While either limit is reached, every login attempt for that username or from that address is
refused before the password is checked (the right password too), until enough failures leave the
window. A successful login clears its username's count, not the address's. The price of the
per-username limit is that someone can keep one account locked by failing on purpose; an admin
still logs in from the command line (``jianglian user passwd``) and the lock ends on its own.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from flask import Flask, current_app
from flask_limiter import Limiter
from limits import RateLimitItem, parse
from limits.strategies import MovingWindowRateLimiter

__all__ = ["EXTENSION_KEY", "LoginThrottle", "init_throttle", "login_throttle"]

EXTENSION_KEY = "jianglian_login_throttle"


@dataclass(frozen=True)
class _Limits:
    per_user: RateLimitItem
    per_address: RateLimitItem


class LoginThrottle:
    """Counts failed logins per username and per address.

    Parameters
    ----------
    limiter
        The app's :class:`flask_limiter.Limiter`, whose storage keeps the counts.
    per_user, per_address
        Limits in flask-limiter syntax, e.g. ``"10 per 15 minutes"``.
    """

    def __init__(self, limiter: Limiter, *, per_user: str, per_address: str) -> None:
        self._strategy = MovingWindowRateLimiter(limiter.storage)
        self._limits = _Limits(parse(per_user), parse(per_address))

    def _keys(self, username: str, address: str | None) -> list[tuple[RateLimitItem, str, str]]:
        return [(self._limits.per_user, "login-user", username.casefold()),
                (self._limits.per_address, "login-address", address or "-")]

    def wait_seconds(self, username: str, address: str | None) -> int:
        """0 when a login attempt may proceed, else the seconds until one may."""
        wait = 0.0
        for item, scope, key in self._keys(username, address):
            if not self._strategy.test(item, scope, key):
                reset = self._strategy.get_window_stats(item, scope, key).reset_time
                wait = max(wait, reset - time.time(), 1.0)
        return math.ceil(wait)

    def failed(self, username: str, address: str | None) -> None:
        """Count one wrong password."""
        for item, scope, key in self._keys(username, address):
            self._strategy.hit(item, scope, key)

    def succeeded(self, username: str) -> None:
        """Forget the username's failures (the address keeps its count)."""
        item, scope, key = self._keys(username, None)[0]
        self._strategy.clear(item, scope, key)


def init_throttle(app: Flask, limiter: Limiter) -> LoginThrottle:
    """Create the app's login throttle over ``limiter``'s storage."""
    throttle = LoginThrottle(limiter, per_user=str(app.config["LOGIN_FAILURES_PER_USER"]),
                             per_address=str(app.config["LOGIN_FAILURES_PER_ADDRESS"]))
    app.extensions[EXTENSION_KEY] = throttle
    return throttle


def login_throttle(app: Flask | None = None) -> LoginThrottle:
    """The login throttle of ``app`` (default: the current app)."""
    throttle: LoginThrottle = (app or current_app).extensions[EXTENSION_KEY]
    return throttle
