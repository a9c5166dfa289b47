"""Coordinator HTML pages (blueprint ``ui``): Chinese by default, English on request.

:func:`init_app` is called by :func:`web.app.create_app`; it installs the language selection and
registers the blueprint. The view modules are imported below so their routes attach to ``bp``.
"""

from __future__ import annotations

from flask import Blueprint, Flask

__all__ = ["bp", "init_app"]

bp = Blueprint("ui", __name__)


def init_app(app: Flask) -> None:
    """Install Flask-Babel (language selection) and register the pages."""
    from web.ui.i18n import init_babel

    init_babel(app)
    if "ui" not in app.blueprints:
        app.register_blueprint(bp)


# the views register their routes on bp when imported
from web.ui import (  # noqa: E402,F401
    apikeys,
    assignment,
    audit,
    auth,
    dashboard,
    enterprises,
    errorpages,
    explorer,
    importexport,
    layout,
    notices,
    overrides,
    problem_manage,
    problems,
    workers,
)
