"""Write latency of the embedded store: SQLite (now) against the old snapshot + journal store, in one run.

Per scale, the demo dataset is generated and loaded into a SQLite :class:`~graph.memory.MemoryStore` persisted to
a temporary data directory and, when the old store's code can still be read from git (``--old-commit``, the last
commit before the move to SQLite), into the old journaled store too (its ``graph/memory.py`` at that commit,
imported from ``git show``). Then, interleaved so that other jobs on the machine slow both alike:

* ``--writes`` audit events (``create_node("AuditEvent", ...)``: what the API records after every
  recommendation),
* ``--writes // 8`` invitations and as many acceptances through :class:`workflow.selection.Selection` (a
  conditional ``WriteBatch``: the match locked and compared, the capacity checked, notifications and audit
  rows, the problem's status), and
* ``--writes // 8`` new problems through ``graph.dataset.save_row`` (as ``POST /problems``: a node, its
  relationships, missing skills; the reads it does first are included),

each timed per call: p50 / p95 / p99 / max ms. SQLite checkpoints its WAL in a background thread every second
while the writes run; the old journal would compact only once it outgrew the snapshot (at least 1 MiB, ≈ 4,000
writes), which these writes do not reach. Afterwards: the time to reopen each store and its size on disk.

Run::

    .venv/bin/python benchmarks/write_latency_bench.py --scales 1 10 45 [--writes 1000]
"""

from __future__ import annotations

import argparse
import sqlite3
import subprocess
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bulk_load_bench import machine  # noqa: E402
from demo.generator import generate  # noqa: E402
from graph.dataset import load_dataset, save_row  # noqa: E402
from graph.memory import DB_FILE, MemoryStore  # noqa: E402
from graph.store import GraphStore  # noqa: E402
from workflow.selection import Selection  # noqa: E402

__all__ = ["main", "old_store_class"]

REPO = Path(__file__).resolve().parent.parent
#: The last commit whose graph/memory.py is the snapshot + journal store.
OLD_COMMIT = "eecb3351645d15d17e1eaa281ddb0adb63f22108"


def old_store_class(commit: str = OLD_COMMIT) -> Any:
    """The old journaled ``MemoryStore`` class, its source read from git at ``commit`` (``None`` if unreadable).

    Its ``ChangeJournal`` helper (gone from :mod:`graph.store` since) comes from the same commit, and the
    ``store_id`` the interface asks for now is an empty string.
    """
    def show(path: str) -> str:
        return subprocess.run(["git", "show", f"{commit}:{path}"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout

    try:
        source, store_source = show("graph/memory.py"), show("graph/store.py")
    except (subprocess.CalledProcessError, OSError):
        return None
    start = store_source.index("class ChangeJournal:")
    journal = store_source[start:store_source.index("\n\n\n", start)]
    source = source.replace("    ChangeJournal,\n", "").replace(
        '__all__ = ["MemoryStore"]', "from collections import deque\n\n" + journal + '\n\n\n__all__ = ["MemoryStore"]')
    module = types.ModuleType("jianglian_old_memory")
    module.__file__ = f"{commit[:8]}:graph/memory.py"
    exec(compile(source, module.__file__, "exec"), module.__dict__)  # noqa: S102 - our own code, from git
    cls = module.MemoryStore
    cls.store_id = property(lambda self: "")
    cls.__abstractmethods__ = frozenset()
    return cls


def _pct(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    p50, p95, p99 = np.percentile(ms, [50, 95, 99])
    return f"{p50:.1f} / {p95:.1f} / {p99:.1f} / {ms.max():.0f}"


def _problem(store: GraphStore, n: int) -> dict[str, Any]:
    """A new problem row copied from a stored one."""
    src = store.list_nodes("Problem", offset=n % max(1, store.count_nodes("Problem")), limit=1)[0]
    row = {k: src[k] for k in ("title", "description", "service_type", "enterprise_id", "district", "skills")
           if src.get(k) is not None}
    return {**row, "id": f"PBENCH{n:05d}", "status": "open", "posted_at": "2026-11-24"}


def _size(directory: Path) -> float:
    return sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 2**20


def bench(scale: float, writes: int, tmp: Path, seed: int, old_cls: Any) -> dict[str, Any]:
    data = tmp / f"demo{scale:g}"
    t = time.perf_counter()
    generate(data, scale=scale, seed=seed)
    print(f"scale {scale:g}: generated in {time.perf_counter() - t:.0f} s", flush=True)
    stores: dict[str, GraphStore] = {}
    for name, cls in (("sqlite", MemoryStore), ("old journal", old_cls)):
        if cls is None:
            continue
        t = time.perf_counter()
        directory = tmp / f"{name.replace(' ', '-')}{scale:g}"
        store = cls(directory)
        load_dataset(store, data)
        stores[name] = store
        print(f"  loaded into {name} in {time.perf_counter() - t:.0f} s ({_size(directory):.1f} MB on disk)",
              flush=True)
    first = next(iter(stores.values()))
    problems = [p["id"] for p in first.list_nodes("Problem", where={"status": "open"}, limit=writes)]
    workers = [w["id"] for w in first.list_nodes("Worker", where={"active": True}, limit=writes)]
    selections = {name: Selection(store) for name, store in stores.items()}
    kinds = ("audit event", "invite", "accept", "new problem")
    times: dict[str, dict[str, list[float]]] = {name: {k: [] for k in kinds} for name in stores}
    for i in range(writes):
        for name, store in stores.items():
            t = time.perf_counter()
            store.create_node("AuditEvent", f"EBENCH{i:05d}", {"action": "recommendations_shown", "n": i,
                                                                "at": "2026-11-24T16:00:00"})
            times[name]["audit event"].append(time.perf_counter() - t)
            if i % 8 == 0 and problems and workers:
                sel = selections[name]
                problem, worker = problems[(i // 8) % len(problems)], workers[(i // 8) % len(workers)]
                t = time.perf_counter()
                match = sel.invite(problem, worker, actor="bench", allow_conflict=True, override_capacity=True)
                times[name]["invite"].append(time.perf_counter() - t)
                t = time.perf_counter()
                sel.accept(match["id"], actor=worker)
                times[name]["accept"].append(time.perf_counter() - t)
            if i % 8 == 4:
                row = _problem(store, i)
                t = time.perf_counter()
                save_row(store, "Problem", row)
                times[name]["new problem"].append(time.perf_counter() - t)
    out: dict[str, Any] = {"scale": scale, "writes": writes}
    for name, store in stores.items():
        directory = tmp / f"{name.replace(' ', '-')}{scale:g}"
        store.close()
        t = time.perf_counter()
        cls = MemoryStore if name == "sqlite" else old_cls
        cls(directory).close()
        out[name] = {k: _pct(v) for k, v in times[name].items() if v}
        out[name]["reopen"] = time.perf_counter() - t
        out[name]["mb"] = _size(directory)
    print(f"scale {scale:g} ({writes} audit events, {len(times['sqlite']['invite'])} invitations and acceptances, "
          f"{len(times['sqlite']['new problem'])} new problems; {machine()}):", flush=True)
    print("  store        | write       | p50 / p95 / p99 / max ms", flush=True)
    for name in stores:
        for kind in kinds:
            if kind in out[name]:
                print(f"  {name:12s} | {kind:11s} | {out[name][kind]}", flush=True)
        print(f"  {name:12s} | reopen {out[name]['reopen']:.2f} s, {out[name]['mb']:.1f} MB on disk", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--writes", type=int, default=1000, help="audit events per store and scale")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--old-commit", default=OLD_COMMIT, help="where to read the old store's code ('' to skip)")
    args = parser.parse_args(argv)
    old_cls = old_store_class(args.old_commit) if args.old_commit else None
    if args.old_commit and old_cls is None:
        print(f"the old store's code cannot be read at {args.old_commit}: SQLite only", flush=True)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
    print(f"commit {head.stdout.strip()}; SQLite {sqlite3.sqlite_version}; {DB_FILE} synchronous=FULL, WAL",
          flush=True)
    with tempfile.TemporaryDirectory(prefix="jl-write-") as tmp:
        for scale in args.scales:
            bench(scale, args.writes, Path(tmp), args.seed, old_cls)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
