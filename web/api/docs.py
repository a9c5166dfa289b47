"""The interactive API docs page (Swagger UI), served with its assets from this app.

APIFlask's own docs page loads its assets from a CDN and initialises them with an inline script;
the union's intranet has no internet and our Content-Security-Policy forbids inline scripts. This
page loads Swagger UI from ``/static/vendor/swagger-ui/`` (copied there from the npm package by
``make web-assets``; URLs in the ``SWAGGER_UI_*`` settings) and starts it from a static script.
"""

from __future__ import annotations

from flask import Response, make_response, render_template_string

from web.api import bp

__all__: list[str] = []

_PAGE = """<!doctype html>
<html lang="zh">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <meta name="csrf-token" content="{{ csrf_token() }}">
  <title>匠联 Jianglian API v1</title>
  <link rel="icon" type="image/png" href="{{ config.DOCS_FAVICON }}">
  <link rel="stylesheet" href="{{ config.SWAGGER_UI_CSS }}">
  <link rel="stylesheet" href="{{ url_for('api.static', filename='docs.css') }}">
</head>
<body>
  <div id="swagger-ui" data-spec-url="{{ url_for('openapi.spec') }}"></div>
  <div id="docs-missing" class="docs-missing" hidden>
    <h1>匠联 Jianglian API v1</h1>
    <p>Swagger UI 的静态文件尚未安装：请运行 <code>make web-assets</code>。
       The Swagger UI files are not installed yet: run <code>make web-assets</code>.</p>
    <p>OpenAPI: <a href="{{ url_for('openapi.spec') }}">{{ url_for('openapi.spec') }}</a></p>
  </div>
  <script src="{{ config.SWAGGER_UI_BUNDLE_JS }}"></script>
  <script src="{{ config.SWAGGER_UI_STANDALONE_PRESET_JS }}"></script>
  <script src="{{ url_for('api.static', filename='docs-init.js') }}"></script>
</body>
</html>
"""


@bp.get("/docs")
@bp.doc(hide=True)
def docs() -> Response:
    """The Swagger UI page for ``/api/v1/openapi.json``."""
    response = make_response(render_template_string(_PAGE))
    response.headers["Cache-Control"] = "no-store"
    return response
