"""Each role's main journey in a real headless Chromium, on a laptop (1366x768) and a phone (390x844).

Issue 14 ("done when"): a worker answers an invitation on a phone (the notification badge, the invitation,
accepting, then the enterprise's address and contact person), volunteers for a recommended problem (「我想接」);
the district coordinator is notified, confirms the volunteer and invites a worker found by search; a viewer reads
the dashboard and gets a Chinese 403 page where they may not go; an admin reads the audit log. Every page visited
is checked for sideways scrolling (none at either size) and photographed under ``test-output/screenshots/``
(``journey-<role>-<step>-<width>.png``); any console error fails the test (see tests/test_browser.py).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from graph.store import GraphStore
from tests.test_browser import PASSWORD, Page, _invitable
from tests.test_browser import site as _site  # noqa: F401 (the module-scoped app, server and browser)
from web.auth import create_user
from workflow.selection import Selection

pytestmark = pytest.mark.browser

VIEWPORTS = [(1366, 768), (390, 844)]
IDS = ["laptop", "phone"]


@pytest.fixture(scope="module")
def site(_site: dict[str, Any]) -> Iterator[dict[str, Any]]:  # noqa: F811
    yield _site


class Journey:
    """A logged-in page that checks every visited page for sideways scrolling and photographs it."""

    def __init__(self, site: dict[str, Any], username: str, role: str, viewport: tuple[int, int]) -> None:
        self.page_obj = Page(site, username, viewport=viewport)
        self.page = self.page_obj.page
        self.role = role
        self.width = viewport[0]
        self.overflow: dict[str, int] = {}

    def check(self, step: str) -> None:
        self.page.wait_for_load_state()
        wider = int(self.page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))
        self.overflow[step] = wider
        self.page_obj.shot(f"journey-{self.role}-{step}-{self.width}")

    def goto(self, path: str, step: str) -> None:
        self.page_obj.goto(path)
        self.check(step)

    def expect_status(self, path: str, status: int, step: str) -> None:
        """Open a page that answers ``status`` on purpose (Chromium logs that as a console error: not ours)."""
        response = self.page.goto(self.page_obj.base + path)
        assert response is not None and response.status == status, (path, response and response.status)
        self.check(step)
        self.page_obj.errors = [e for e in self.page_obj.errors
                                if not (path in e and f"status of {status}" in e)]

    def close(self) -> None:
        self.page_obj.close()
        assert {k: v for k, v in self.overflow.items() if v > 0} == {}, f"pages wider than {self.width} px"


def _fresh_worker(store: GraphStore, used: set[str]) -> dict[str, Any]:
    sel = Selection(store)
    for worker in sorted(store.iter_nodes("Worker"), key=lambda w: w["id"]):
        if (worker["id"] not in used and worker.get("active") is not False and int(worker.get("capacity") or 2) >= 3
                and sel.worker_load(worker["id"]) == 0):
            used.add(worker["id"])
            return worker
    raise AssertionError("no free worker in the demo data")


def _untouched_problem(store: GraphStore, worker: dict[str, Any]) -> dict[str, Any]:
    taken = {m["problem_id"] for m in store.iter_nodes("Match")}
    return next(p for p in sorted(store.iter_nodes("Problem"), key=lambda p: p["id"])
                if p.get("status") == "open" and p["id"] not in taken and p.get("district")
                and _invitable(store, worker["id"], p.get("enterprise_id") or ""))


USED: set[str] = set()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=IDS)
def test_worker_answers_on_the_phone_volunteers_and_the_district_confirms(
        site: dict[str, Any], viewport: tuple[int, int]) -> None:
    store: GraphStore = site["store"]
    width = viewport[0]
    worker = _fresh_worker(store, USED)
    invited_problem = _untouched_problem(store, worker)
    district = str(invited_problem["district"])
    inviter = f"jd-{district}-{width}"
    create_user(store, inviter, PASSWORD, role="district", district=district, display_name=f"{district}协调员")
    # every district's coordinator, so whichever problem the worker volunteers for, someone is told
    for d in store.iter_nodes("District"):
        create_user(store, f"jc-{d['id']}-{width}", PASSWORD, role="district", district=d["id"],
                    display_name=f"{d['id']}协调员")
    create_user(store, f"jw-{width}", PASSWORD, role="worker", worker_id=worker["id"])
    Selection(store).invite(invited_problem["id"], worker["id"], actor=inviter, note="请尽快到厂看看")

    # -- the worker: badge, notification, the invitation, accept, then the enterprise's contact --------------
    me = Journey(site, f"jw-{width}", "worker", viewport)
    page = me.page
    me.check("home")
    assert page.inner_text("[data-testid=unread-badge]") == "1"
    page.click("[data-testid=notice-link]")
    me.check("notifications")
    page.click("[data-testid=notification] a")
    page.wait_for_selector("[data-testid=my-match][data-state=invited]")
    me.check("invitation")
    page.click("[data-testid=accept]")
    page.wait_for_selector("[data-testid=enterprise-contact]")
    me.check("accepted")
    enterprise = store.get_node("Enterprise", invited_problem["enterprise_id"]) or {}
    card = page.inner_text("[data-testid=enterprise-contact]")
    assert enterprise["name"] in card and enterprise["address"] in card and enterprise["contact_person"] in card
    assert page.locator("[data-testid=enterprise-phone]").get_attribute("href") == f"tel:{enterprise['contact_phone']}"
    assert store.list_nodes("Match", where={"worker_id": worker["id"], "problem_id": invited_problem["id"]})[0][
        "state"] == "accepted"

    # -- volunteer for a recommended problem from its page ------------------------------------------------------
    me.goto("/me/problems", "recommended")
    rows = page.locator("[data-testid=suggested-problem]:has([data-testid=volunteer-quick])")
    assert rows.count() > 0
    rows.first.locator("a").first.click()
    page.wait_for_selector("[data-testid=volunteer-card]")
    me.check("volunteer-form")
    volunteered_id = page.url.rsplit("/", 1)[1]
    page.fill("[data-testid=volunteer-note]", "做过同类设备,周三可上门")
    page.click("[data-testid=volunteer]")
    page.wait_for_selector("[data-testid=my-match][data-state=volunteered]")
    me.check("volunteered")
    assert "已报名,等待区县协调员确认" in page.inner_text("body")
    me.close()

    # -- the coordinator of that problem's district: notified, confirms, invites a worker found by search -----
    target = store.get_node("Problem", volunteered_id) or {}
    coordinator_name = f"jc-{target['district']}-{width}"
    them = Journey(site, coordinator_name, "coordinator", viewport)
    cpage = them.page
    them.goto("/dashboard", "dashboard")
    assert cpage.locator("[data-testid=own-district]").count() == 1
    assert cpage.inner_text("[data-testid=unread-badge]") == "1"
    cpage.click("[data-testid=notice-link]")
    them.check("notifications")
    cpage.click("[data-testid=notification][data-kind=volunteered] a")
    cpage.wait_for_selector("[data-testid=volunteers]")
    them.check("volunteers")
    volunteer = cpage.locator(f"[data-testid=volunteer][data-worker-id='{worker['id']}']")
    assert "做过同类设备" in volunteer.inner_text()
    volunteer.locator("[data-testid=confirm-volunteer]").click()
    cpage.wait_for_selector("[data-testid=match-list]")
    them.check("confirmed")
    match = store.list_nodes("Match", where={"worker_id": worker["id"], "problem_id": volunteered_id})[0]
    assert (match["state"], match["confirmed_by"]) == ("accepted", coordinator_name)
    # invite another worker found by search (not among the suggestions)
    suggested = {cpage.locator("[data-testid=suggestion]").nth(i).get_attribute("data-worker-id")
                 for i in range(cpage.locator("[data-testid=suggestion]").count())}
    other = next(w for w in sorted(store.iter_nodes("Worker"), key=lambda w: w["id"])
                 if w["id"] not in suggested and w["id"] != worker["id"] and w["id"] not in USED
                 and _invitable(store, w["id"], target.get("enterprise_id") or ""))
    cpage.fill("[data-testid=worker-q]", other["name"])
    cpage.click("[data-testid=find-worker-submit]")
    found = cpage.locator(f"[data-testid=found-worker][data-worker-id='{other['id']}']")
    found.wait_for()
    them.check("search")
    found.locator("[data-testid=invite-found]").click()
    cpage.wait_for_selector("[data-testid=timeline]")
    them.check("invited")
    assert store.list_nodes("Match", where={"worker_id": other["id"], "problem_id": volunteered_id})[0][
        "state"] == "invited"
    them.close()

    # -- the worker sees the confirmation and the second enterprise's contact ---------------------------------
    me = Journey(site, f"jw-{width}", "worker", viewport)
    page = me.page
    me.check("home-again")
    assert page.inner_text("[data-testid=unread-badge]") == "1"
    page.click("[data-testid=notice-link]")
    page.click("[data-testid=notification][data-kind=confirmed] a")
    page.wait_for_selector("[data-testid=enterprise-contact]")
    me.check("confirmed")
    page.goto(me.page_obj.base + "/me/problems")
    me.check("history")
    assert page.locator("[data-testid=accepted-match]").count() == 2
    me.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=IDS)
def test_a_coordinator_is_notified_of_a_volunteer_and_declines_it_with_a_reason(
        site: dict[str, Any], viewport: tuple[int, int]) -> None:
    store: GraphStore = site["store"]
    width = viewport[0]
    worker = _fresh_worker(store, USED)
    problem = _untouched_problem(store, worker)
    coordinator_name = f"jn-{width}"
    create_user(store, coordinator_name, PASSWORD, role="district", district=str(problem["district"]))
    create_user(store, f"jv-{width}", PASSWORD, role="worker", worker_id=worker["id"])
    Selection(store).volunteer(problem["id"], worker["id"], actor=f"jv-{width}", note="可以周末来")
    them = Journey(site, coordinator_name, "district", viewport)
    page = them.page
    them.goto("/problems", "problems")
    assert page.inner_text("[data-testid=unread-badge]") == "1"
    page.click("[data-testid=notice-link]")
    them.check("notifications")
    page.click("[data-testid=notification][data-kind=volunteered] a")
    page.wait_for_selector("[data-testid=volunteers]")
    them.check("volunteer")
    page.fill("[data-testid=decline-volunteer-reason]", "本周已安排本厂工程师")
    page.click("[data-testid=decline-volunteer]")
    page.wait_for_selector("[data-testid=match-list]")
    them.check("declined")
    them.goto("/assignment", "assignment")
    assert page.locator("[data-testid=plan-form] input[name=pair]:checked").count() == 0
    them.close()
    me = Journey(site, f"jv-{width}", "volunteer", viewport)
    me.goto("/me/problems", "history")
    item = me.page.locator("[data-testid=history-item][data-state=declined]")
    assert "本周已安排本厂工程师" in item.inner_text()
    me.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=IDS)
def test_viewer_and_admin_read_and_are_told_in_chinese_where_they_may_not_go(
        site: dict[str, Any], viewport: tuple[int, int]) -> None:
    store: GraphStore = site["store"]
    width = viewport[0]
    create_user(store, f"jview-{width}", PASSWORD, role="viewer", display_name="观察员")
    problem = next(p for p in sorted(store.iter_nodes("Problem"), key=lambda p: p["id"]) if p.get("status") == "open")
    viewer = Journey(site, f"jview-{width}", "viewer", viewport)
    for step, path in (("dashboard", "/dashboard"), ("problems", "/problems"),
                       ("problem", f"/problems/{problem['id']}"), ("workers", "/workers"),
                       ("enterprises", "/enterprises")):
        viewer.goto(path, step)
    viewer.expect_status("/assignment", 403, "forbidden")
    assert "没有权限" in viewer.page.inner_text("[data-testid=error-page]")
    viewer.expect_status("/problems/NO-SUCH-PROBLEM", 404, "not-found")
    assert "找不到页面" in viewer.page.inner_text("[data-testid=error-page]")
    viewer.close()
    admin = Journey(site, "admin", "admin", viewport)
    for step, path in (("audit", "/audit"), ("outbox", "/outbox"), ("apikeys", "/apikeys"), ("import", "/import")):
        admin.goto(path, step)
    admin.close()


@pytest.mark.parametrize("viewport", VIEWPORTS, ids=IDS)
def test_a_coordinator_confirms_a_volunteer_beyond_capacity_in_two_steps(
        site: dict[str, Any], viewport: tuple[int, int]) -> None:
    """Confirming is refused at capacity; the second confirmation says why and takes a ticked box and a reason."""
    store: GraphStore = site["store"]
    width = viewport[0]
    worker = _fresh_worker(store, USED)
    sel = Selection(store)
    first = _untouched_problem(store, worker)
    sel.confirm(sel.volunteer(first["id"], worker["id"], actor=worker["id"])["id"], actor="setup")
    problem = _untouched_problem(store, worker)
    store.update_node("Worker", worker["id"], {"capacity": 1})
    match_id = sel.volunteer(problem["id"], worker["id"], actor=worker["id"])["id"]
    coordinator_name = f"jo-{width}"
    create_user(store, coordinator_name, PASSWORD, role="district", district=str(problem["district"]))
    them = Journey(site, coordinator_name, "override", viewport)
    page = them.page
    them.goto(f"/problems/{problem['id']}#volunteers", "volunteer")
    page.locator(f"[data-testid=volunteer][data-worker-id='{worker['id']}'] [data-testid=confirm-volunteer]").click()
    page.wait_for_selector("[data-testid=override-form]")
    them.check("second-confirmation")
    assert "每月 1 项" in page.inner_text("[data-testid=refused-capacity]")
    page.fill("[data-testid=override-reason]", "本人同意本月多接一项")
    page.check("[data-testid=override-acknowledge]")
    page.click("[data-testid=override-confirm]")
    page.wait_for_selector("[data-testid=match-list]")
    them.check("confirmed")
    match = store.get_node("Match", match_id)
    assert (match["state"], match["confirmed_by"]) == ("accepted", coordinator_name)
    them.close()
