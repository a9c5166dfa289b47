"""Notifications and the e-mail outbox: what they cost a selection step, and how fast a sender drains the outbox.

Usage::

    .venv/bin/python benchmarks/outbox_bench.py                # 300 steps, 300 messages
    .venv/bin/python benchmarks/outbox_bench.py --steps 1000 --messages 1000

Part 1 times ``Selection.invite`` + ``accept`` on the embedded store (workers, problems and one district
coordinator and one worker login with an e-mail address per worker), with ``notify=True`` (the step writes its
``Notification`` and ``OutboxMessage`` rows in its own batch) and ``notify=False``. Part 2 starts a real local SMTP
server (aiosmtpd) and times one ``Outbox.deliver`` pass over the pending messages (one SMTP connection per
message, as the relay sees it). Prints tables; bounded by the sizes given.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from graph.memory import MemoryStore  # noqa: E402
from graph.store import NodeRow, WriteBatch  # noqa: E402
from workflow.outbox import Outbox, SmtpChannel, SmtpSettings  # noqa: E402
from workflow.selection import Selection  # noqa: E402


def _store(n: int) -> MemoryStore:
    store = MemoryStore()
    rows = [NodeRow("Enterprise", "E1", {"name": "盐城精工机械", "district": "亭湖区"}),
            NodeRow("User", "tinghu", {"role": "district", "district": "亭湖区", "email": "tinghu@union.example"})]
    for i in range(n):
        rows.append(NodeRow("Worker", f"W{i}", {"name": f"工匠{i}", "capacity": 10, "active": True}))
        rows.append(NodeRow("User", f"w{i}", {"role": "worker", "worker_id": f"W{i}", "email": f"w{i}@example.cn"}))
        rows.append(NodeRow("Problem", f"P{i}", {"title": f"问题{i}", "status": "open", "district": "亭湖区",
                                                 "enterprise_id": "E1"}))
    store.apply(WriteBatch(nodes=rows))
    return store


def steps(n: int, notify: bool) -> tuple[list[float], int]:
    store = _store(n)
    sel = Selection(store, notify=notify)
    times = []
    for i in range(n):
        started = time.perf_counter()
        match = sel.invite(f"P{i}", f"W{i}", actor="tinghu")
        sel.accept(match["id"], actor=f"w{i}")
        times.append((time.perf_counter() - started) * 1000)
    return times, store.count_nodes("OutboxMessage")


def drain(n: int) -> tuple[float, int]:
    from aiosmtpd.controller import Controller

    class Sink:
        count = 0

        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            Sink.count += 1
            return "250 OK"

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Sink(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        store = _store(n)
        sel = Selection(store)
        for i in range(n):
            sel.invite(f"P{i}", f"W{i}", actor="tinghu")
        smtp = SmtpChannel(SmtpSettings(host="127.0.0.1", port=port, sender="noreply@jianglian.example"))
        started = time.perf_counter()
        report = Outbox(store, {"email": smtp}).deliver(limit=n)
        elapsed = time.perf_counter() - started
        assert len(report.sent) == Sink.count == n, (len(report.sent), Sink.count)
        return elapsed, n
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--messages", type=int, default=300)
    args = parser.parse_args()
    print(f"invite + accept on the embedded store, {args.steps} pairs")
    print(f"{'notifications':<14} {'median ms':>10} {'p95 ms':>8} {'outbox rows':>12}")
    for notify in (False, True):
        times, outbox = steps(args.steps, notify)
        p95 = sorted(times)[int(0.95 * len(times)) - 1]
        print(f"{'on' if notify else 'off':<14} {statistics.median(times):>10.2f} {p95:>8.2f} {outbox:>12}")
    elapsed, n = drain(args.messages)
    print(f"\none Outbox.deliver pass to a local aiosmtpd server: {n} messages in {elapsed:.2f} s "
          f"({n / elapsed:.0f} messages/s, {1000 * elapsed / n:.1f} ms each)")


if __name__ == "__main__":
    main()
