"""Processes for ``tests/test_store_processes.py`` and ``benchmarks/freshness_bench.py``, started with ``spawn``.

Each opens the store itself (the embedded store on a data directory, or Neo4j through a driver of its own),
so it shares nothing with its parent but the database.
"""

from __future__ import annotations

import time
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

__all__ = ["follower", "open_store", "writer"]


def open_store(target: str) -> Any:
    """The embedded store on the data directory ``target``, or Neo4j when ``target`` is a URI."""
    if "://" in target:
        from graph.neo4j_store import Neo4jStore

        return Neo4jStore.connect(target)
    from graph.memory import MemoryStore

    return MemoryStore(target)


def writer(target: str, name: str, n: int, barrier: Barrier, results: Queue[Any]) -> None:
    """Write ``n`` workers and matches (and read the store between writes); put ``(name, what it saw)``."""
    from graph.store import NodeRow, WriteBatch

    store = open_store(target)
    try:
        barrier.wait(timeout=60)
        for i in range(n):
            store.apply(WriteBatch(nodes=[NodeRow("Worker", f"{name}-{i:04d}", {"name": name, "i": i}),
                                          NodeRow("Match", f"M-{name}-{i:04d}", {"state": "invited", "i": i})]))
            assert store.get_node("Worker", f"{name}-{i:04d}") == {"id": f"{name}-{i:04d}", "name": name, "i": i}
        barrier.wait(timeout=60)  # both are done: each must see all of the other's writes now
        seen = {w["name"] for w in store.iter_nodes("Worker")}
        results.put((name, store.count_nodes("Worker"), store.count_nodes("Match"), sorted(seen),
                     store.revision, store.label_revision("Match")))
    except BaseException as err:  # reported to the test, which fails on it
        results.put((name, "error", repr(err)))
    finally:
        store.close()


def follower(target: str, worker_id: str, commands: Queue[Any], results: Queue[Any]) -> None:
    """Build a recommender on the store, then for each command ``("watch", problem_id)`` rank the open problems
    for ``worker_id`` (the engine refreshes itself from the change feed on each call) until the problem
    appears; put ``("seen", problem_id, time.time(), calls)``. ``None`` ends it."""
    from recommender.engine import Recommender

    store = open_store(target)
    try:
        t = time.perf_counter()
        engine = Recommender(store)
        engine.recommended_problems(worker_id, n=10)  # built at start, as a served process does before /readyz
        results.put(("ready", worker_id, time.perf_counter() - t, 0))
        while True:
            command = commands.get()
            if command is None:
                return
            _, problem_id = command
            results.put(("watching", problem_id, time.time(), 0))
            calls = 0
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                calls += 1
                ranked = engine.recommended_problems(worker_id, n=100_000)
                if any(s.problem_id == problem_id for s in ranked):
                    results.put(("seen", problem_id, time.time(), calls))
                    break
                time.sleep(0.005)
            else:
                results.put(("timeout", problem_id, time.time(), calls))
    except BaseException as err:
        results.put(("error", repr(err), 0.0, 0))
    finally:
        store.close()
