"""The notifications API: how long a page, the unread count and marking all read take as a user's list grows.

Usage::

    .venv/bin/python benchmarks/notifications_api_bench.py                  # embedded store, 200 / 2,000 / 10,000
    .venv/bin/python benchmarks/notifications_api_bench.py --sizes 1000 --neo4j   # also a fresh Neo4j (started here)

For each size N, one coordinator has N notifications (a fifth unread) and N other users' notifications sit beside
them. Through the Flask test client with the coordinator's session it times ``GET /api/v1/notifications`` (the
newest page of 20, the oldest page, ``unread=true``) and ``POST /api/v1/notifications/read {"all": true}``, the
median of ``--repeat`` calls each (marking is timed once, on the fifth left unread). ``load-all`` reads
every notification of the user and sorts them in Python (no HTTP), which is what a list would cost if the page
were cut here; the API asks the store for two counts and the page's slice instead
(:func:`workflow.notifications.list_notifications`), so only the page travels.
Prints a table; bounded by the sizes given.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graph.memory import MemoryStore  # noqa: E402
from graph.rules import TIMEZONE, new_id  # noqa: E402
from graph.store import GraphStore, NodeRow, WriteBatch  # noqa: E402

START = datetime(2026, 11, 20, 9, 0, tzinfo=TIMEZONE)


def _fill(store: GraphStore, n: int) -> None:
    store.apply(WriteBatch(nodes=[NodeRow("User", "tinghu", {"role": "district", "district": "亭湖区",
                                                              "active": True})]))
    rows = []
    for i in range(2 * n):
        at = START + timedelta(seconds=i)
        user = "tinghu" if i % 2 == 0 else f"other{i % 50}"
        rows.append(NodeRow("Notification", new_id("N", at), {
            "user_id": user, "kind": "volunteered", "unread": i % 10 == 0, "at": at.isoformat(timespec="seconds"),
            "actor": "wang", "match_id": f"M{i}", "problem_id": f"P{i}", "worker_id": "W1",
            "problem_title": f"注塑件缩痕{i}", "worker_name": "王建国"}))
        if len(rows) == 2000:
            store.apply(WriteBatch(nodes=rows))
            rows = []
    if rows:
        store.apply(WriteBatch(nodes=rows))


def _median_ms(call: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def measure(store: GraphStore, n: int, repeat: int) -> dict[str, float]:
    from tests.api_support import login_as, make_app

    _fill(store, n)
    app = make_app(store)
    client, headers = login_as(app, store, "district", district="亭湖区", username="tinghu")
    last = max(1, -(-n // 20))

    def get(query: str) -> Any:
        response = client.get(f"/api/v1/notifications{query}")
        assert response.status_code == 200, response.get_data(as_text=True)
        return response.get_json()

    assert get("?per_page=20")["total"] == n
    out = {
        "newest page": _median_ms(lambda: get("?per_page=20"), repeat),
        "oldest page": _median_ms(lambda: get(f"?per_page=20&page={last}"), repeat),
        "unread=true": _median_ms(lambda: get("?per_page=20&unread=true"), repeat),
        "load-all": _median_ms(lambda: sorted(store.list_nodes("Notification", where={"user_id": "tinghu"}),
                                              key=lambda r: str(r["id"]), reverse=True)[:20], repeat),
    }
    started = time.perf_counter()
    marked = client.post("/api/v1/notifications/read", json={"all": True}, headers=headers).get_json()
    out["mark all read"] = (time.perf_counter() - started) * 1000
    assert marked["unread"] == 0 and marked["marked"] == len(range(0, 2 * n, 2)[::5]), marked
    return out


@contextmanager
def _neo4j(heap: str) -> Iterator[Callable[[], GraphStore]]:
    from graph.neo4j_store import Neo4jStore
    from ops.neo4j_server import Neo4jServer

    with tempfile.TemporaryDirectory() as tmp, Neo4jServer(data_dir=Path(tmp) / "neo4j", heap=heap) as server:
        def fresh() -> GraphStore:
            store = Neo4jStore.connect(server.uri)
            store.clear()
            store.ensure_schema()
            return store

        yield fresh


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 2000, 10000])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--neo4j", action="store_true", help="also on a fresh Neo4j started here")
    parser.add_argument("--heap", default="1g")
    args = parser.parse_args(argv)
    columns = ["newest page", "oldest page", "unread=true", "load-all", "mark all read"]
    print(f"{'store':<9}{'N':>7}" + "".join(f"{c:>15}" for c in columns) + "   (ms; median of "
          f"{args.repeat}, marking once)")

    def report(kind: str, n: int, row: dict[str, float]) -> None:
        print(f"{kind:<9}{n:>7}" + "".join(f"{row[c]:>15.1f}" for c in columns), flush=True)

    for n in args.sizes:
        store = MemoryStore()
        store.ensure_schema()
        report("embedded", n, measure(store, n, args.repeat))
        store.close()
    if args.neo4j:
        with _neo4j(args.heap) as fresh:
            for n in args.sizes:
                neo = fresh()
                report("neo4j", n, measure(neo, n, args.repeat))
                neo.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
