"""The API docs page in headless Chromium: Swagger UI loads from the app's own static files, renders
every operation of the OpenAPI document and trips no Content-Security-Policy violation."""

from __future__ import annotations

import os
import shutil
import threading
import time
from pathlib import Path

import pytest

from graph.memory import MemoryStore
from web import create_app

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = os.environ.get("JIANGLIAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = REPO / "test-output" / "screenshots"


@pytest.mark.browser
def test_docs_page_renders_every_operation_offline() -> None:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make system-deps`")
    if not (REPO / "web" / "static" / "vendor" / "swagger-ui" / "swagger-ui-bundle.js").is_file():
        pytest.fail("web/static/vendor/swagger-ui is missing: run `make web-assets`")
    from playwright.sync_api import sync_playwright
    from waitress import create_server

    store = MemoryStore()
    app = create_app({"STORE": store, "SECRET_KEY": "docs-test"})
    spec = app.test_client().get("/api/v1/openapi.json").get_json()
    expected = sum(len(ops) for path, ops in spec["paths"].items() if path.startswith("/api/v1/"))
    server = create_server(app, host="127.0.0.1", port=0, threads=2)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.effective_port}/api/v1/docs"  # type: ignore[union-attr]
    errors: list[str] = []
    outside: list[str] = []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                         args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.on("request", lambda req: outside.append(req.url)
                    if not req.url.startswith(("http://127.0.0.1", "data:")) else None)
            page.goto(url)
            deadline = time.monotonic() + 30
            while page.locator(".opblock").count() < expected and time.monotonic() < deadline:
                time.sleep(0.2)
            assert page.locator(".opblock").count() == expected
            assert page.locator("#docs-missing").is_hidden()
            SHOTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(SHOTS / "api-docs.png"), full_page=False)
            browser.close()
    finally:
        server.close()
        thread.join(timeout=5)
        store.close()
    assert not errors, errors  # a CSP violation is reported as a console error
    assert not outside, outside  # nothing is fetched from another host (no CDN)
