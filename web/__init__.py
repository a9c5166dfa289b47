"""The Jianglian web app: coordinator pages (``web.ui``) and the platform's JSON API (``web.api``).

Use :func:`create_app`; nothing is opened at import time.
"""

from __future__ import annotations

from web.app import create_app

__all__ = ["create_app"]
