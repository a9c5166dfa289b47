"""Issue 14, item 6: the smaller visible things (dashboard pace labels, default tab, own district, the header,
names and dates on the timeline, Chinese error pages, an assignment plan that keeps its word)."""

from __future__ import annotations

import html
import json
import re
from typing import Any

import pytest

from graph.store import GraphStore
from tests import api_support
from tests.api_support import login_as, make_app

demo_dir = api_support.demo_dir
store = api_support.store


def _pace(app: Any, **cell: Any) -> str:
    with app.test_request_context("/"):
        module = app.jinja_env.get_template("ui/_macros.html").make_module({})
        found = re.search(r'data-pace="([\w-]+)"', str(module.pace(cell)))
    assert found is not None
    return found.group(1)


def test_nothing_done_is_never_on_track_once_work_is_due(store: GraphStore) -> None:
    app = make_app(store)
    # the case: 0/77 and 0/22 were 「正常」 and 「进度滞后」; zero done against a due share is behind either way
    assert _pace(app, target=77, done=0, expected=3.1, at_risk=False) == "slightly-behind"
    assert _pace(app, target=22, done=0, expected=5.0, at_risk=True) == "behind"
    assert _pace(app, target=22, done=0, expected=0.0, at_risk=False) == "not-started"
    assert _pace(app, target=22, done=6, expected=5.0, at_risk=False) == "on-track"
    assert _pace(app, target=0, done=0, expected=0.0, at_risk=False) == "none"


def test_dashboard_opens_on_the_whole_campaign_with_the_users_district_marked(store: GraphStore) -> None:
    app = make_app(store)
    client, _ = login_as(app, store, "district", district="亭湖区")
    page = client.get("/dashboard").get_data(as_text=True)
    tabs = re.findall(r'<a class="btn small ([^"]*)" href="/dashboard\?phase=(-?\d+)"', page)
    assert [phase for cls, phase in tabs if "primary" in cls] == ["-1"]  # 全程 is the default tab
    row = re.search(r'<tr class="own-district" data-testid="own-district">\s*<td>(.*?)</td>', page, flags=re.S)
    assert row is not None and row.group(1).startswith("亭湖区")
    assert page.count('data-testid="own-district"') == 1
    header = re.search(r'data-testid="current-user">(.*?)<', page)
    assert header is not None and header.group(1) == "district-亭湖区(亭湖区 区县协调员)"


def test_the_demo_district_user_is_named_once_in_the_header(store: GraphStore) -> None:
    from web.auth import create_user

    app = make_app(store)
    create_user(store, "district", "long-password", role="district", district="亭湖区", display_name="区县协调员")
    client, _ = login_as(app, store, "district", username="district")
    header = re.search(r'data-testid="current-user">(.*?)<', client.get("/problems").get_data(as_text=True))
    assert header is not None and header.group(1) == "亭湖区 区县协调员"


def test_the_timeline_names_people_and_dates_read_like_dates(store: GraphStore) -> None:
    from web.auth import create_user

    app = make_app(store)
    create_user(store, "zhang", "long-password", role="city", display_name="张主任")
    problem = next(p for p in store.iter_nodes("Problem") if p.get("status") == "open")
    worker = next(w for w in store.iter_nodes("Worker") if w.get("active") is not False
                  and w.get("employer_id") != problem.get("enterprise_id"))
    with app.app_context():
        from web.ui.context import selection

        match = selection().invite(problem["id"], worker["id"], actor="zhang")
    client, _ = login_as(app, store, "city", username="zhang")
    page = client.get(f"/matches/{match['id']}").get_data(as_text=True)
    assert "张主任" in page and "· zhang<" not in page
    assert not re.search(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}", page)  # no ISO timestamps on the page
    assert re.search(r"(今天|昨天|\d{4}年\d{1,2}月\d{1,2}日) \d{2}:\d{2}", page)


@pytest.mark.parametrize("lang,title", [("zh", "找不到页面"), ("en", "Page not found")])
def test_error_pages_speak_the_users_language(store: GraphStore, lang: str, title: str) -> None:
    app = make_app(store)
    client, _ = login_as(app, store, "worker", worker_id=next(iter(store.iter_nodes("Worker")))["id"])
    client.set_cookie("lang", lang)
    missing = client.get("/no-such-page")
    assert missing.status_code == 404 and 'data-status="404"' in missing.get_data(as_text=True)
    assert f"<h1>{title}" in missing.get_data(as_text=True)
    forbidden = client.get("/dashboard")  # a worker may not open the coordinators' dashboard
    body = forbidden.get_data(as_text=True)
    assert forbidden.status_code == 403 and 'data-status="403"' in body
    assert ("没有权限" if lang == "zh" else "Not allowed") in body and "Forbidden" not in body
    api = client.get("/api/v1/no-such-route")  # the API keeps its problem+json
    assert api.status_code == 404 and api.headers["Content-Type"].startswith("application/problem+json")


def test_the_assignment_plan_keeps_its_word(store: GraphStore) -> None:
    app = make_app(store)
    client, _ = login_as(app, store, "district", district="亭湖区")
    page = client.get("/assignment").get_data(as_text=True)
    pairs = re.findall(r'<tr data-testid="plan-pair" data-tier="(\w+)">(.*?)</tr>', page, flags=re.S)
    assert pairs, "the demo district has a plan"
    assert "checked" not in re.search(r'data-testid="plan-form">(.*?)</form>', page, flags=re.S).group(1)
    tiers = [t for t, _row in pairs]
    assert "cross" not in tiers  # other districts only when asked
    assert tiers == sorted(tiers, key=["district", "city"].index)  # district team first, then the city team
    for _tier, row in pairs:
        reason = re.search(r'data-testid="pair-reason">(.*?)</td>', row, flags=re.S)
        assert reason is not None and "本月还可接" in reason.group(1)
        points = re.search(r'data-testid="pair-points">(\d+) ', row)
        assert points is not None and 0 <= int(points.group(1)) <= 100
    for jargon in ("最小费用流", "贪心", "min-cost", "greedy"):
        assert jargon not in page
    # each pair's district: the district team's pairs are all this district's workers
    with app.app_context():
        for _tier, row in pairs:
            value = html.unescape(re.search(r'name="pair" value="([^"]+)"', row).group(1))
            problem_id, worker_id = json.loads(value)
            worker = store.get_node("Worker", worker_id) or {}
            if _tier == "district":
                assert worker.get("team") == "亭湖区"
            else:
                assert worker.get("team") == "city" or worker.get("city_team") is True
    asked = client.get("/assignment?cross=1").get_data(as_text=True)
    assert re.search(r'<input [^>]*name="cross" value="1" checked', asked)
    assert not re.search(r'<input [^>]*name="cross" value="1" checked', page)
    asked_tiers = re.findall(r'<tr data-testid="plan-pair" data-tier="(\w+)">', asked)
    assert asked_tiers == sorted(asked_tiers, key=["district", "city", "cross"].index)
