"""Write latency of the embedded store: the journal against the old save of the whole ``graph.json`` per write.

Per scale, the demo dataset is loaded into an embedded :class:`~graph.memory.MemoryStore` persisted to a
temporary data directory, closed, and the directory copied; one copy is opened as the store runs now (each
write appended to ``graph.journal.jsonl`` and fsynced, compaction at the default threshold), the other with
``journal=False`` (each write followed by an atomic save of the whole snapshot, as before the journal). Then,
interleaved so that other jobs on the machine slow both alike:

* ``--writes`` audit events (``create_node("AuditEvent", ...)``: what the API records after every
  recommendation), and
* ``--writes // 4`` new problems through ``graph.dataset.save_row`` (as ``POST /problems``: a node, its
  relationships, missing skills; the reads it does first are included),

each timed per call (p50 / p95 ms). Afterwards: the journal's size, the time to reopen the journaled store
(snapshot + replay of the journal) against the snapshot-only one, and the time of a compaction (``close``).

Run::

    .venv/bin/python benchmarks/journal_bench.py --scales 1 10 33 [--writes 200]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bulk_load_bench import machine, source_state  # noqa: E402
from demo.generator import generate  # noqa: E402
from graph.dataset import load_dataset, save_row  # noqa: E402
from graph.memory import JOURNAL, SNAPSHOT, MemoryStore  # noqa: E402

__all__ = ["main"]


def _pct(samples: list[float]) -> str:
    ms = np.array(samples) * 1000
    return f"{np.percentile(ms, 50):.1f} / {np.percentile(ms, 95):.1f}"


def _problem(store: MemoryStore, n: int) -> dict[str, Any]:
    """A new problem row copied from a stored one."""
    src = store.list_nodes("Problem", offset=n % max(1, store.count_nodes("Problem")), limit=1)[0]
    row = {k: src[k] for k in ("title", "description", "service_type", "enterprise_id", "district", "skills")
           if src.get(k) is not None}
    return {**row, "id": f"PBENCH{n:05d}", "status": "open", "posted_at": "2026-11-24"}


def bench(scale: float, writes: int, tmp: Path, seed: int) -> dict[str, Any]:
    data = tmp / f"demo{scale:g}"
    t = time.perf_counter()
    generate(data, scale=scale, seed=seed)
    with MemoryStore(tmp / f"new{scale:g}") as store:
        load_dataset(store, data)
    shutil.copytree(tmp / f"new{scale:g}", tmp / f"old{scale:g}", ignore=shutil.ignore_patterns("store.lock"))
    size = (tmp / f"new{scale:g}" / SNAPSHOT).stat().st_size / 2**20
    print(f"scale {scale:g}: generated and loaded in {time.perf_counter() - t:.0f} s; graph.json {size:.1f} MB; "
          f"{machine()}", flush=True)

    stores = {"journal": MemoryStore(tmp / f"new{scale:g}"),
              "save per write": MemoryStore(tmp / f"old{scale:g}", journal=False)}
    audit: dict[str, list[float]] = {k: [] for k in stores}
    post: dict[str, list[float]] = {k: [] for k in stores}
    for i in range(writes):
        for name, store in stores.items():
            t = time.perf_counter()
            store.create_node("AuditEvent", f"EBENCH{i:05d}", {"action": "recommendations_shown", "n": i,
                                                                "at": "2026-11-24T16:00:00"})
            audit[name].append(time.perf_counter() - t)
            if i % 4 == 0:
                row = _problem(store, i)
                t = time.perf_counter()
                save_row(store, "Problem", row)
                post[name].append(time.perf_counter() - t)
    journal_kb = (tmp / f"new{scale:g}" / JOURNAL).stat().st_size / 1024
    out: dict[str, Any] = {"scale": scale, "mb": size, "journal_kb": journal_kb, "writes": writes}
    for name, store in stores.items():
        out[name] = {"audit": _pct(audit[name]), "post": _pct(post[name])}
        store._release()  # as a killed process: the journal is left for the reopen below
    for name, directory in (("journal", tmp / f"new{scale:g}"), ("save per write", tmp / f"old{scale:g}")):
        t = time.perf_counter()
        store = MemoryStore(directory, journal=name == "journal")
        out[name]["open"] = time.perf_counter() - t
        t = time.perf_counter()
        store.compact()
        out[name]["compact"] = time.perf_counter() - t
        store.close()
    print(f"scale {scale:g} ({writes} audit events, {len(post['journal'])} new problems; {machine()}):", flush=True)
    for name in stores:
        m = out[name]
        print(f"  {name:15s} audit event p50/p95 {m['audit']} ms | new problem {m['post']} ms | reopen "
              f"{m['open']:.2f} s | compaction {m['compact']:.2f} s", flush=True)
    print(f"  journal after the writes: {journal_kb:.0f} KiB", flush=True)
    shutil.rmtree(data)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--writes", type=int, default=200, help="audit events per store and scale")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(machine(), flush=True)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; {source_state()}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="jianglian-journal-") as tmp:
        for scale in args.scales:
            results.append(bench(scale, args.writes, Path(tmp), args.seed))
    print("\n| scale | graph.json | store | audit event p50 / p95 ms | new problem p50 / p95 ms | reopen s | "
          "compaction s |")
    print("|---:|---:|---|---:|---:|---:|---:|")
    for r in results:
        for name in ("save per write", "journal"):
            m = r[name]
            print(f"| {r['scale']:g} | {r['mb']:.1f} MB | {name} | {m['audit']} | {m['post']} | {m['open']:.2f} | "
                  f"{m['compact']:.2f} |")
    print(f"\n{machine()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
