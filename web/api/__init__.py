"""The platform's JSON API, versioned under ``/api/v1`` (blueprint ``api``).

Routes live in themed modules: :mod:`web.api.recommend` (rankings), :mod:`web.api.resources`
(workers, enterprises, problems, skills, industry chains), :mod:`web.api.matches` (two-way
selection and campaign assignment), :mod:`web.api.notifications` (a user's notifications),
:mod:`web.api.stats` (programme progress, audit log) and
:mod:`web.api.docs` (the interactive docs page). The OpenAPI document is at
``/api/v1/openapi.json``.
"""

from __future__ import annotations

from apiflask import APIBlueprint

__all__ = ["bp"]

bp = APIBlueprint("api", __name__, url_prefix="/api/v1", tag="api", static_folder="static",
                  static_url_path="/static")

from web.api import bodies, docs, matches, notifications, recommend, resources, stats  # noqa: E402,F401  (registers the routes)
