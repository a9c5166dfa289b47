"""The coordinator pages in a real headless Chromium (Debian's package) driven by Playwright.

The app is served by waitress on 127.0.0.1 (a free port) from a background thread, over the demo
dataset (scale 0.1) with the real recommender. Screenshots of the main pages are saved under
``test-output/screenshots/`` for a reviewer to look at. Any browser console error (a script error,
a Content-Security-Policy violation, a missing local asset) fails the test.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import Workbook

from demo.generator import generate
from graph.dataset import load_dataset
from graph.memory import MemoryStore
from graph.store import GraphStore
from web import create_app
from web.auth import create_user
from workflow.targets import Phase, Targets

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parent.parent
SHOTS = REPO / "test-output" / "screenshots"
CHROMIUM = os.environ.get("JIANGLIAN_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "browser-test-password"
TIMEOUT_MS = 60_000


class Server:
    """The app under waitress in a daemon thread."""

    def __init__(self, app: Any) -> None:
        from waitress import create_server

        self._server = create_server(app, host="127.0.0.1", port=0, threads=4)
        self.url = f"http://127.0.0.1:{self._server.effective_port}"  # type: ignore[union-attr]
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="waitress-test")

    def __enter__(self) -> Server:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.close()
        self._thread.join(timeout=5)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: run `make system-deps` (apt-get install chromium)")
    if not (REPO / "web" / "static" / "vendor" / "cytoscape" / "cytoscape.min.js").is_file():
        pytest.fail("web/static/vendor is missing: run `make web-assets`")
    data = tmp_path_factory.mktemp("demo")
    generate(data, scale=0.1, seed=7)
    store = MemoryStore()
    load_dataset(store, data)
    today = date.today()
    # one phase around today, so a completion made by the test lands inside the campaign
    targets = Targets(phases=(Phase("测试阶段", today - timedelta(days=30), today + timedelta(days=30)),))
    app = create_app({"STORE": store, "SECRET_KEY": "browser-test", "TARGETS": targets,
                      "API_RATE_LIMIT": "100000 per minute", "PAGE_RATE_LIMIT": "100000 per minute"})
    create_user(store, "coordinator", PASSWORD, role="city", display_name="市总协调员")
    create_user(store, "admin", PASSWORD, role="admin", display_name="管理员")
    SHOTS.mkdir(parents=True, exist_ok=True)
    from playwright.sync_api import sync_playwright

    with Server(app) as server, sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield {"url": server.url, "store": store, "browser": browser, "tmp": data}
        finally:
            browser.close()
        store.close()


class Page:
    """A logged-in browser page that records console errors."""

    def __init__(self, site: dict[str, Any], username: str, *, locale: str = "zh-CN",
                 viewport: tuple[int, int] = (1360, 900)) -> None:
        self.base = site["url"]
        width, height = viewport
        self.context = site["browser"].new_context(locale=locale, viewport={"width": width, "height": height},
                                                   is_mobile=width < 600, has_touch=width < 600)
        self.page = self.context.new_page()
        self.page.set_default_timeout(TIMEOUT_MS)
        self.errors: list[str] = []
        self.page.on("console", lambda msg: self.errors.append(f"{self.page.url}: {msg.text} {msg.location}")
                     if msg.type == "error" else None)
        self.page.on("pageerror", lambda err: self.errors.append(str(err)))
        self.goto("/login")
        self.page.fill("#username", username)
        self.page.fill("#password", PASSWORD)
        self.page.click("[data-testid=login-form] button[type=submit]")
        self.page.wait_for_load_state()
        assert "/login" not in self.page.url, self.page.content()[:500]

    def goto(self, path: str) -> Any:
        response = self.page.goto(self.base + path)
        assert response is not None and response.ok, (path, response and response.status)
        return response

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)

    def close(self) -> None:
        self.context.close()
        assert not self.errors, f"browser console errors: {self.errors}"


def wait_js(page: Any, expression: str, timeout: float = TIMEOUT_MS / 1000) -> None:
    """Poll a JavaScript expression until it is truthy (Playwright's ``wait_for_function`` evaluates its
    predicate with ``eval``, which the pages' Content-Security-Policy rightly forbids)."""
    from playwright.sync_api import Error as PlaywrightError

    deadline = time.monotonic() + timeout
    while True:
        try:
            if page.evaluate(expression):
                return
        except PlaywrightError:  # the page is navigating: its context is gone, try again
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.1)


def _done(page: Page, metric: str = "visits") -> int:
    page.goto("/dashboard?phase=-1")
    return int(page.page.inner_text(f"[data-testid=done-{metric}]"))


def _invitable(store: GraphStore, worker_id: str, enterprise_id: str) -> bool:
    worker = store.get_node("Worker", worker_id) or {}
    live = [m for m in store.iter_nodes("Match")
            if m["worker_id"] == worker_id and m["state"] in ("invited", "accepted")]
    return (worker.get("active") is not False and worker.get("employer_id") != enterprise_id
            and len(live) < int(worker.get("capacity") or 2))


def test_post_problem_invite_accept_complete_moves_dashboard(site: dict[str, Any]) -> None:
    store: GraphStore = site["store"]
    coordinator = Page(site, "coordinator")
    page = coordinator.page
    visits, trained = _done(coordinator), _done(coordinator, "people_trained")
    assert page.locator("#progress-chart").count() == 1
    wait_js(page, "window.jianglianChart && window.jianglianChart.data.labels.length > 0")
    coordinator.shot("dashboard-before")

    # intake form
    enterprise = next(e for e in store.iter_nodes("Enterprise") if e.get("district") == "亭湖区")
    coordinator.goto("/problems")
    page.click("[data-testid=new-problem]")
    page.fill("#title", "注塑机液压系统压力不稳")
    page.fill("#description", "注塑机液压系统压力波动大,产品出现缩痕和飞边,需要现场诊断液压与电气控制。")
    page.select_option("#enterprise_id", enterprise["id"])
    page.select_option("#district", "亭湖区")
    page.select_option("#service_type", "技术帮扶")
    page.fill("#skills", "液压维修、电气维修")
    coordinator.shot("problem-intake")
    page.click("[data-testid=problem-form] button[type=submit]")
    page.wait_for_selector("[data-testid=suggestion]")
    problem_id = page.url.rsplit("/", 1)[1]
    assert store.get_node("Problem", problem_id) is not None

    # suggestions with explanations (reasons always; the path graph is drawn when there are paths)
    suggestions = page.locator("[data-testid=suggestion]")
    assert suggestions.count() > 0
    assert page.locator("[data-testid=reasons] li").count() > 0
    graphs = page.locator(".path-graph")
    if graphs.count():
        wait_js(page, "document.querySelector('.path-graph')._cy.nodes().length > 1")
    coordinator.shot("problem-suggestions")

    # invite the first suggested worker who can take it
    worker_ids = [suggestions.nth(i).get_attribute("data-worker-id") for i in range(suggestions.count())]
    worker_id = next(w for w in worker_ids if w and _invitable(store, w, enterprise["id"]))
    card = page.locator(f"[data-testid=suggestion][data-worker-id='{worker_id}']")
    card.locator("input[name=note]").fill("请本周内到厂诊断")
    card.locator("[data-testid=invite]").click()
    page.wait_for_selector("[data-testid=timeline]")
    match_path = "/matches/" + page.url.rsplit("/", 1)[1]
    assert "已邀请" in page.inner_text("[data-testid=timeline]")

    # the worker logs in, sees the invitation and accepts
    create_user(store, "worker-b", PASSWORD, role="worker", worker_id=worker_id)
    worker = Page(site, "worker-b")
    assert worker.page.url.endswith("/me/problems")
    invitation = worker.page.locator("[data-testid=invitation]", has_text="注塑机液压系统压力不稳")
    assert "请本周内到厂诊断" in invitation.inner_text()
    worker.shot("worker-my-problems")
    invitation.get_by_role("button", name="接受邀请").click()
    worker.page.wait_for_load_state()
    assert "已接受邀请" in worker.page.content()
    worker.close()

    # the coordinator records the outcome
    coordinator.goto(match_path)
    page.check("#solved-0")  # nothing is pre-selected (issue 14, item 4)
    page.fill("#hours", "6")
    page.fill("#trainees", "15")
    page.select_option("#satisfaction", "5")
    page.fill("#note", "调整比例阀并培训维修班组")
    page.click("[data-testid=complete]")
    page.wait_for_selector("[data-testid=outcome]")
    timeline = page.inner_text("[data-testid=timeline]")
    for step in ("已邀请", "已接受", "已完成"):
        assert step in timeline
    coordinator.shot("match-timeline")
    assert store.get_node("Problem", problem_id)["status"] == "solved"

    # the dashboard moved
    assert _done(coordinator) == visits + 1
    assert _done(coordinator, "people_trained") == trained + 15
    coordinator.shot("dashboard-after")

    # the audit log shows who saw, invited, accepted and completed
    coordinator.close()
    admin = Page(site, "admin")
    admin.goto(f"/audit?problem_id={problem_id}")
    audit = admin.page.inner_text("[data-testid=audit-table]")
    for kind in ("查看推荐", "发出邀请", "接受邀请", "登记结果"):
        assert kind in audit
    admin.shot("audit-log")
    admin.close()


def _bad_workbook() -> bytes:
    book = Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.append(["编号*", "姓名*", "区县*", "技能", "每月服务容量", "在岗", "联系电话"])
    sheet.append(["BW1", "周正", "亭湖区", "焊接", 2, "是", 13900000001])
    sheet.append(["BW2", "吴敏", "亭湖", "焊接", 2, "是", ""])
    sheet.append(["BW3", "郑强", "盐都区", "焊接", "每月两次", "是", ""])
    sheet.append(["BW1", "重复的人", "盐都区", "焊接", 1, "是", ""])
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


@pytest.mark.parametrize("viewport", [(1366, 768), (390, 844)], ids=["laptop", "phone"])
def test_coordinator_invites_a_worker_found_by_search_and_accepts_for_them(
        site: dict[str, Any], viewport: tuple[int, int]) -> None:
    """Issue 14, item 4: any worker can be found by name and invited; answering for the worker needs the
    confirmation box ticked, and the timeline names the coordinator acting for the worker."""
    store: GraphStore = site["store"]
    problem = next(p for p in store.iter_nodes("Problem") if p.get("status") == "open"
                   and not [m for m in store.iter_nodes("Match") if m["problem_id"] == p["id"]])
    coordinator = Page(site, "coordinator", viewport=viewport)
    page = coordinator.page
    coordinator.goto(f"/problems/{problem['id']}")
    suggested = {page.locator("[data-testid=suggestion]").nth(i).get_attribute("data-worker-id")
                 for i in range(page.locator("[data-testid=suggestion]").count())}
    worker = next(w for w in store.iter_nodes("Worker") if w["id"] not in suggested
                  and _invitable(store, w["id"], problem.get("enterprise_id") or ""))
    page.fill("[data-testid=worker-q]", worker["name"])
    page.click("[data-testid=find-worker-submit]")
    row = page.locator(f"[data-testid=found-worker][data-worker-id='{worker['id']}']")
    row.wait_for()
    coordinator.shot(f"invite-by-search-{viewport[0]}")
    row.locator("[data-testid=invite-found]").click()
    page.wait_for_selector("[data-testid=timeline]")
    assert "已邀请" in page.inner_text("[data-testid=timeline]")
    # the browser itself refuses the answer until the box is ticked
    page.click("[data-testid=accept]")
    assert page.locator("[data-testid=confirm-accept]").evaluate("e => !e.checkValidity()")
    match_id = page.url.rsplit("/", 1)[1]
    assert store.get_node("Match", match_id)["state"] == "invited"
    page.check("[data-testid=confirm-accept]")
    page.click("[data-testid=accept]")
    page.wait_for_selector("[data-testid=outcome-form]")
    assert f"代 {worker['name']}" in page.inner_text("[data-testid=timeline]")
    assert store.get_node("Match", match_id)["state"] == "accepted"
    coordinator.shot(f"accept-for-worker-{viewport[0]}")
    coordinator.close()


def test_intake_form_filters_enterprises_and_picks_skills(site: dict[str, Any]) -> None:
    """Issue 14, item 4: the enterprise list narrows to what is typed; skills are added from the taxonomy."""
    store: GraphStore = site["store"]
    enterprise = sorted(store.iter_nodes("Enterprise"), key=lambda e: e["id"])[5]
    coordinator = Page(site, "coordinator", viewport=(390, 844))
    page = coordinator.page
    coordinator.goto("/problems/new")
    total = page.locator("#enterprise_id option").count()
    page.fill("[data-testid=enterprise-filter]", enterprise["name"])
    shown = page.eval_on_selector_all("#enterprise_id option", "os => os.filter(o => !o.hidden).map(o => o.value)")
    assert enterprise["id"] in shown and len(shown) < total
    assert page.eval_on_selector("#enterprise_id", "s => s.value") in shown
    page.select_option("#enterprise_id", enterprise["id"])
    assert page.eval_on_selector("#district", "s => s.value") == enterprise["district"]
    page.fill("[data-testid=skill-pick]", "CNC")
    page.click("[data-testid=skill-add]")
    page.fill("[data-testid=skill-pick]", "焊接")
    page.press("[data-testid=skill-pick]", "Enter")
    assert page.input_value("#skills") == "CNC、焊接"
    coordinator.shot("problem-intake-picker-390")
    coordinator.close()


def test_bad_spreadsheet_lists_row_errors_in_chinese(site: dict[str, Any], tmp_path: Path) -> None:
    path = tmp_path / "劳模工匠导入.xlsx"
    path.write_bytes(_bad_workbook())
    coordinator = Page(site, "coordinator")
    coordinator.goto("/import")
    coordinator.shot("import")
    page = coordinator.page
    page.select_option("#kind", "workers")
    page.set_input_files("#file", str(path))
    with page.expect_navigation():
        page.click("[data-testid=upload]")
    page.wait_for_selector("[data-testid=row-errors]")
    errors = page.inner_text("[data-testid=row-errors]")
    assert "第 3 行" in errors and "不在名单中" in errors
    assert "第 4 行" in errors and "每月服务容量" in errors and "整数" in errors
    assert "第 5 行" in errors and "重复" in errors
    assert page.inner_text("[data-testid=valid-count]") == "1"
    coordinator.shot("import-row-errors")
    with page.expect_navigation():
        page.click("[data-testid=apply-import]")
    wait_js(page, "document.getElementById('import-status').dataset.state === 'done'")
    assert site["store"].get_node("Worker", "BW1")["contact"] == "13900000001"
    coordinator.shot("import-done")
    coordinator.close()


def test_graph_explorer_renders_and_expands(site: dict[str, Any]) -> None:
    coordinator = Page(site, "coordinator")
    page = coordinator.page
    coordinator.goto("/graph?label=District&id=%E4%BA%AD%E6%B9%96%E5%8C%BA")
    assert page.locator("#graph-canvas canvas").count() > 0
    wait_js(page, "window.jianglianCy && window.jianglianCy.nodes().length > 1")
    before = page.evaluate("window.jianglianCy.nodes().length")
    assert before > 1
    # expand a worker neighbour by clicking it through cytoscape's API
    page.evaluate("window.jianglianCy.nodes('[type = \"Worker\"]').first().emit('tap') && true")
    wait_js(page, f"window.jianglianCy.nodes().length > {before}")
    # filter by type hides the other labels
    page.uncheck("input.type-filter[value=Skill]")
    hidden = page.evaluate("window.jianglianCy.nodes('[type = \"Skill\"]').filter(n => n.visible()).length")
    assert hidden == 0
    coordinator.shot("graph-explorer")
    # search for a start node
    page.fill("#graph-q", "盐都区")
    page.click("#graph-go")
    page.locator("#graph-results a").first.click()  # the district itself is listed first
    wait_js(page, "window.jianglianCy.nodes('.focus').length === 1 && "
                           "window.jianglianCy.nodes('.focus').data('node_id') === '盐都区'")
    coordinator.close()


def test_graph_explorer_opens_on_the_coordinators_district(site: dict[str, Any]) -> None:
    """Issue 14, item 4: a district coordinator's explorer opens on their district, without its problems
    (ticking 问题 loads them)."""
    store: GraphStore = site["store"]
    if store.get_node("User", "district-b") is None:
        create_user(store, "district-b", PASSWORD, role="district", district="亭湖区")
    coordinator = Page(site, "district-b", viewport=(390, 844))
    page = coordinator.page
    coordinator.goto("/graph")
    wait_js(page, "window.jianglianCy && window.jianglianCy.nodes().length > 1")
    assert page.evaluate("window.jianglianCy.nodes('.focus').data('node_id')") == "亭湖区"
    assert page.evaluate("window.jianglianCy.nodes('[type = \"Problem\"]').length") == 0
    coordinator.shot("graph-explorer-district-390")
    before = page.evaluate("window.jianglianCy.nodes().length")
    page.check("input.type-filter[value=Problem]")
    wait_js(page, "window.jianglianCy.nodes('[type = \"Problem\"]').length > 0")
    assert page.evaluate("window.jianglianCy.nodes().length") > before
    coordinator.close()


def test_main_pages_render_in_both_languages(site: dict[str, Any]) -> None:
    store: GraphStore = site["store"]
    worker = next(iter(store.iter_nodes("Worker")))
    enterprises = sorted(store.iter_nodes("Enterprise"), key=lambda e: bool(e.get("unionised")))
    enterprise = enterprises[0]  # one without a union if there is one (未建会 is highlighted)
    coordinator = Page(site, "coordinator")
    for name, path in (("problems", "/problems?status=open"), ("workers", "/workers"),
                       ("worker-profile", f"/workers/{worker['id']}"), ("enterprises", "/enterprises"),
                       ("enterprise-profile", f"/enterprises/{enterprise['id']}"),
                       ("assignment", "/assignment?district=%E4%BA%AD%E6%B9%96%E5%8C%BA")):
        coordinator.goto(path)
        assert "劳模工匠助企行" in coordinator.page.title()
        coordinator.shot(name)
    coordinator.goto("/dashboard")
    coordinator.page.click("text=English")
    coordinator.page.wait_for_load_state()
    assert "Person-visits to enterprises" in coordinator.page.content()
    coordinator.shot("dashboard-english")
    assert re.search(r"lang=\"en\"", coordinator.page.content())
    # a problem's suggestions in English: match levels and named factors, no model feature names
    problem = next(p for p in sorted(store.iter_nodes("Problem"), key=lambda p: p["id"]) if p.get("status") == "open")
    coordinator.goto(f"/problems/{problem['id']}")
    coordinator.page.locator("[data-testid=score-factors] summary").first.click()
    text = coordinator.page.inner_text("body")
    assert "Match" in text and "What makes up the match" in text
    assert not re.search(r"@fused|\bbm25\b|\bppr\b|text_top3|SOLVED|HAS_SKILL", text)
    coordinator.shot("problem-english")
    coordinator.close()


PHONE = (390, 844)


def _overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than a phone's screen (0 when nothing scrolls sideways)."""
    return int(page.page.evaluate("document.documentElement.scrollWidth")) - PHONE[0]


def test_pages_fit_a_phone_screen(site: dict[str, Any]) -> None:
    """At 390x844 no page scrolls sideways: the menu folds into the top bar, wide tables scroll inside
    their own box, and a worker can answer an invitation (the decline reason fits the screen)."""
    store: GraphStore = site["store"]
    problem = next(p for p in sorted(store.iter_nodes("Problem"), key=lambda p: p["id"], reverse=True)
                   if p.get("status") == "open" and p.get("district"))
    enterprise = next(iter(store.iter_nodes("Enterprise")))
    coordinator = Page(site, "admin", viewport=PHONE)
    page = coordinator.page
    wide: dict[str, int] = {}
    coordinator_pages = {
        "dashboard": "/dashboard", "problems": "/problems", "problem": f"/problems/{problem['id']}",
        "problem-new": "/problems/new", "workers": "/workers", "enterprises": "/enterprises",
        "enterprise": f"/enterprises/{enterprise['id']}", "graph": "/graph", "import": "/import",
        "assignment": "/assignment?district=%E4%BA%AD%E6%B9%96%E5%8C%BA", "audit": "/audit", "apikeys": "/apikeys",
    }
    for name, path in coordinator_pages.items():
        coordinator.goto(path)
        if name == "problem":
            page.wait_for_selector("[data-testid=suggestion]")
        wide[name] = _overflow(coordinator)
        coordinator.shot(f"phone-{name}")

    # invite a worker from the phone, so the worker has an invitation to answer
    coordinator.goto(f"/problems/{problem['id']}")
    suggestions = page.locator("[data-testid=suggestion]")
    worker_ids = [suggestions.nth(i).get_attribute("data-worker-id") for i in range(suggestions.count())]
    worker_id = next(w for w in worker_ids if w and _invitable(store, w, problem.get("enterprise_id") or ""))
    page.locator(f"[data-testid=suggestion][data-worker-id='{worker_id}'] [data-testid=invite]").click()
    page.wait_for_selector("[data-testid=timeline]")
    wide["match"] = _overflow(coordinator)
    coordinator.shot("phone-match")
    menu = page.locator("[data-testid=menu-toggle]")
    folded = menu.count() == 1 and menu.is_visible() and not page.locator(".sidebar nav").is_visible()
    if folded:
        menu.click()
        coordinator.shot("phone-menu")
    unfolds = folded and page.locator(".sidebar nav").is_visible()
    coordinator.close()

    create_user(store, "phone-worker", PASSWORD, role="worker", worker_id=worker_id)
    worker = Page(site, "phone-worker", viewport=PHONE)
    wpage = worker.page
    for name, path in (("worker-problems", "/me/problems"), ("worker-home", "/me")):
        worker.goto(path)
        wide[name] = _overflow(worker)
        worker.shot(f"phone-{name}")
    worker.goto("/me/problems")
    reason = wpage.locator("[data-testid=invitation] input[name=reason]").first
    box = reason.bounding_box()
    worker.close()
    assert {name: px for name, px in wide.items() if px > 0} == {}, "pages wider than a 390 px phone"
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE[0], box
    assert folded and unfolds, "on a phone the menu is folded behind a toggle in the top bar"
