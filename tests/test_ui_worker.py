"""The worker's own pages go somewhere (issue 14, item 2, first part): every link on them opens a page the
worker may see (no Forbidden), recommended problems open a worker's view of the problem, and the enterprise
is named once the worker has accepted."""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import urlsplit

from graph.store import GraphStore
from tests import api_support
from tests.api_support import login_as, make_app

demo_dir = api_support.demo_dir
store = api_support.store


def _links(page: str) -> set[str]:
    """Same-site page links (not assets, the language switch or forms)."""
    out = set()
    for href in re.findall(r'<a [^>]*href="([^"]+)"', page):
        path = urlsplit(html.unescape(href)).path
        if path.startswith("/") and not path.startswith(("/static/", "/lang/")):
            out.add(html.unescape(href))
    return out


def _solved_by(problem: dict[str, Any]) -> list[str]:
    value = problem.get("solved_by") or []
    return list(value) if isinstance(value, list) else [value]


def _setup(store: GraphStore) -> tuple[Any, Any, dict[str, str]]:
    """A worker who has solved problems, with one invitation waiting and one accepted."""
    app = make_app(store)
    solvers: dict[str, int] = {}
    for problem in store.iter_nodes("Problem"):
        for worker_id in _solved_by(problem):
            solvers[worker_id] = solvers.get(worker_id, 0) + 1
    open_problems = sorted((p for p in store.iter_nodes("Problem") if p.get("status") == "open"),
                           key=lambda p: p["id"])
    with app.app_context():
        from web.ui.context import selection

        for worker_id in sorted(solvers, key=lambda w: -solvers[w]):
            worker = store.get_node("Worker", worker_id) or {}
            fits = [p for p in open_problems if p.get("enterprise_id") != worker.get("employer_id")]
            if worker.get("active") is False or len(fits) < 2 or int(worker.get("capacity") or 2) < 2:
                continue
            invited = selection().invite(fits[0]["id"], worker_id, actor="test", note="请到厂看看")
            accepted = selection().invite(fits[1]["id"], worker_id, actor="test")
            selection().accept(accepted["id"], actor="test")
            break
        else:
            raise AssertionError("the demo data has no worker to try")
    client, _headers = login_as(app, store, "worker", worker_id=worker_id)
    ids = {"worker": worker_id, "invited": fits[0]["id"], "accepted": fits[1]["id"],
           "invited_match": invited["id"], "accepted_match": accepted["id"]}
    return app, client, ids


def test_every_link_on_a_workers_pages_opens(store: GraphStore) -> None:
    _app, client, ids = _setup(store)
    start = ["/me/problems", f"/workers/{ids['worker']}", f"/matches/{ids['invited_match']}",
             f"/matches/{ids['accepted_match']}", f"/me/problems/{ids['invited']}"]
    seen: dict[str, int] = {}
    for url in start:
        response = client.get(url)
        assert response.status_code == 200, url
        for link in _links(response.get_data(as_text=True)):
            if link not in seen:
                seen[link] = client.get(link).status_code
    assert any(link.startswith("/me/problems/") for link in seen)
    broken = {link: status for link, status in seen.items() if status not in (200, 302)}
    assert broken == {}, "links on the worker's pages that do not open for the worker"


def test_recommended_problems_link_to_a_workers_view_with_a_match_level(store: GraphStore) -> None:
    _app, client, ids = _setup(store)
    page = client.get("/me/problems").get_data(as_text=True)
    rows = re.findall(r'<tr data-testid="suggested-problem">(.*?)</tr>', page, flags=re.S)
    assert rows and all('href="/me/problems/' in row for row in rows)
    points = [int(p) for p in re.findall(r'data-testid="match-score" data-points="(\d+)"', page)]
    assert len(points) == len(rows) and points[0] == 100 and all(0 <= p <= 100 for p in points)
    assert f'href="/me/problems/{ids["invited"]}"' in page


def test_the_page_title_is_text_and_the_history_is_listed_once(store: GraphStore) -> None:
    # the title block once swallowed a copy of the history list (its endblock was missing)
    _app, client, _ids = _setup(store)
    page = client.get("/me/problems").get_data(as_text=True)
    title = re.search(r"<title>(.*?)</title>", page, flags=re.S)
    assert title is not None and "<" not in title.group(1) and title.group(1).startswith("适合我的问题")
    assert page.count('data-testid="my-history"') == 1


def test_the_enterprise_is_named_once_the_worker_has_accepted(store: GraphStore) -> None:
    _app, client, ids = _setup(store)
    for key, shown in (("invited", False), ("accepted", True)):
        problem = store.get_node("Problem", ids[key]) or {}
        enterprise = store.get_node("Enterprise", problem["enterprise_id"]) or {}
        page = client.get(f"/me/problems/{ids[key]}").get_data(as_text=True)
        cell = re.search(r'data-testid="worker-problem-enterprise">(.*?)</td>', page, flags=re.S)
        assert cell is not None
        assert (html.escape(str(enterprise["name"])) in cell.group(1)) is shown, key
    # the invitation can be answered from the problem's page
    page = client.get(f"/me/problems/{ids['invited']}").get_data(as_text=True)
    assert f"/matches/{ids['invited_match']}/accept" in page and 'name="reason"' in page


def test_a_worker_sees_no_closed_problem_of_others(store: GraphStore) -> None:
    _app, client, ids = _setup(store)
    mine = {p["id"] for p in store.iter_nodes("Problem") if ids["worker"] in _solved_by(p)}
    other = next(p for p in store.iter_nodes("Problem") if p.get("status") == "solved" and p["id"] not in mine)
    assert mine and client.get(f"/me/problems/{sorted(mine)[0]}").status_code == 200
    assert client.get(f"/me/problems/{other['id']}").status_code == 404
    assert client.get("/me/problems/NOPE").status_code == 404
    # and a coordinator's problem page, with the other suggested workers, stays closed to a worker
    assert client.get(f"/problems/{ids['invited']}").status_code == 403
