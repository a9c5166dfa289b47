"""A racing process for ``tests/test_selection_concurrency.py``: its own store, one selection step per command.

The store is a Neo4j driver of its own when ``uri`` is a URI (``bolt://...``), else the embedded store opened on
the data directory ``uri`` names (any number of processes open one directory at once).

Started with the ``spawn`` start method, so it shares nothing with the test process but the database. Each
command waits on a barrier shared by every racer, so all of them read and write the same match at once.
"""

from __future__ import annotations

from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from typing import Any

__all__ = ["race"]


def race(uri: str, user: str, password: str, name: str, commands: Queue[Any], results: Queue[Any],
         barrier: Barrier) -> None:
    """Serve commands ``(action, arg, arg)`` until ``None``; put ``(name, outcome, detail)`` for each."""
    from graph.memory import MemoryStore
    from graph.neo4j_store import Neo4jStore
    from graph.store import GraphStore
    from workflow.errors import CapacityExceeded, IllegalTransition, TransitionConflict
    from workflow.selection import Selection

    store: GraphStore = (Neo4jStore.connect(uri, user=user, password=password) if "://" in uri
                         else MemoryStore(uri))
    selection = Selection(store)
    store.ping()
    results.put((name, "ready", ""))
    try:
        while True:
            command = commands.get()
            if command is None:
                return
            action, *args = command
            barrier.wait(timeout=60)
            try:
                if action == "accept":
                    detail = selection.accept(args[0], actor=name)["state"]
                elif action == "decline":
                    detail = selection.decline(args[0], reason="本月在外地", actor=name)["state"]
                elif action == "withdraw":
                    detail = selection.withdraw(args[0], actor=name)["state"]
                elif action == "confirm":
                    detail = selection.confirm(args[0], actor=name)["state"]
                elif action == "decline_volunteer":
                    detail = selection.decline_volunteer(args[0], reason="已有人对接", actor=name)["state"]
                elif action == "invite":
                    detail = selection.invite(args[0], args[1], actor=name, allow_conflict=True)["id"]
                else:
                    raise ValueError(f"unknown action {action!r}")
            except TransitionConflict as err:  # read before the winner committed: the compare-and-set refused
                results.put((name, "conflict", str(err)))
            except IllegalTransition as err:  # read after the winner committed
                results.put((name, "illegal", str(err)))
            except CapacityExceeded as err:
                results.put((name, "capacity", str(err)))
            except Exception as err:  # reported to the test, which fails on it
                results.put((name, "error", repr(err)))
            else:
                results.put((name, "won", detail))
    finally:
        store.close()
