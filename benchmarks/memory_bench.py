"""Where the memory of one embedded-store process goes: the store, the projection, the ranking index.

For a demo scale (cached like ``latency_bench.py``), in a fresh process per scale:

* resident memory (RSS, from ``/proc/self/status``) after the import into an in-memory
  :class:`~graph.memory.MemoryStore`, after a :class:`~graph.projection.Projection` is built, and
  after the :class:`~recommender.engine.Recommender` (projection + ranking index) is built, plus the
  process's peak RSS;
* with ``--trace``: the Python heap the store *retains* after the import and the import's peak
  (``tracemalloc``; slower, and its own bookkeeping inflates RSS, so it is a separate run);
* the ranking index's largest arrays (bytes and non-zeros).

RSS after an import is larger than what the store retains: the import's temporary objects are freed,
but the allocator keeps most of that memory for the objects that come next.

Run::

    .venv/bin/python benchmarks/memory_bench.py --scales 10 45 [--trace]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bulk_load_bench import peak_mb, rss_mb  # noqa: E402
from benchmarks.latency_bench import _dataset  # noqa: E402
from graph.dataset import load_dataset  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from graph.projection import Projection  # noqa: E402
from recommender.engine import RankConfig, Recommender  # noqa: E402

__all__ = ["main"]


def _nbytes(m: object) -> int:
    if sp.issparse(m):
        return int(m.data.nbytes + m.indices.nbytes + m.indptr.nbytes)  # type: ignore[attr-defined]
    if isinstance(m, np.ndarray):
        return int(m.nbytes)
    return 0


def one_scale(directory: Path, trace: bool) -> None:
    """Measure one dataset in this process (meant to be a fresh one)."""
    base = rss_mb()
    if trace:
        tracemalloc.start(1)
    store = MemoryStore(None)
    t = time.perf_counter()
    load_dataset(store, directory)
    gc.collect()
    counts = store.counts()
    print(f"{directory.name}: workers {counts.get('Worker', 0):,}, problems {counts.get('Problem', 0):,}, "
          f"relationships {sum(v for k, v in counts.items() if k.isupper()):,}; interpreter and imports "
          f"{base:,.0f} MB", flush=True)
    if trace:
        current, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  store, Python heap retained {current / 2**20:,.1f} MB, import peak {peak / 2**20:,.1f} MB "
              f"({current / max(counts.get('Problem', 1), 1):,.0f} bytes per problem)", flush=True)
        return
    print(f"  after the import        RSS {rss_mb():8,.0f} MB  ({time.perf_counter() - t:.1f} s)", flush=True)
    t = time.perf_counter()
    proj = Projection.from_store(store)
    gc.collect()
    print(f"  + projection            RSS {rss_mb():8,.0f} MB  ({time.perf_counter() - t:.1f} s)", flush=True)
    del proj
    gc.collect()
    t = time.perf_counter()
    rec = Recommender(store, config=RankConfig(model_dir=Path(tempfile.mkdtemp(prefix="jianglian-mem-"))))
    gc.collect()
    print(f"  + recommender           RSS {rss_mb():8,.0f} MB  ({time.perf_counter() - t:.1f} s); "
          f"peak RSS {peak_mb():,.0f} MB", flush=True)
    rows: list[tuple[str, int, int]] = []
    for name, value in vars(rec.index).items():
        if all(hasattr(value, view) for view in ("word", "char", "counts")):
            for view in ("word", "char", "counts"):
                m = getattr(value, view)
                shared = view == "counts" and np.may_share_memory(m.indices, value.word.indices)
                rows.append((f"{name}.{view}" + (" (indices shared with word)" if shared else ""),
                             int(m.data.nbytes) if shared else _nbytes(m), int(m.nnz)))
        elif _nbytes(value):
            rows.append((name, _nbytes(value), int(getattr(value, "nnz", getattr(value, "size", 0)))))
    total = sum(r[1] for r in rows)
    print(f"  ranking index arrays {total / 2**20:,.0f} MB; the largest:")
    for name, size, nnz in sorted(rows, key=lambda r: -r[1])[:8]:
        print(f"    {name:45s} {size / 2**20:8,.1f} MB  {nnz:>13,} entries")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[10.0])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "jianglian-latency-data")
    parser.add_argument("--trace", action="store_true", help="also measure the store's retained heap (tracemalloc)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)  # internal: measure this directory here
    parser.add_argument("--trace-one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one is not None:
        one_scale(args.one, args.trace_one)
        return 0
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    for scale in args.scales:
        directory = _dataset(args.cache_dir, scale, args.seed)
        runs = [[]] + ([["--trace-one"]] if args.trace else [])
        for extra in runs:  # a fresh process each: RSS and peak belong to that measurement alone
            subprocess.run([sys.executable, __file__, "--one", str(directory), *extra], check=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
