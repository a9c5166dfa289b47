"""A separate process that opens a data directory's store, starts a recommender over the stored ranking index
and prints what it did as one JSON line (used by tests/test_index_files.py and benchmarks/index_bench.py).

Usage: ``python -m tests.index_process <store dir> <index dir> <models dir> <problem id>... [--hold SECONDS]``
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path


def _rss_kb(field: str = "VmHWM") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return -1


def main(argv: list[str]) -> None:
    hold = 0.0
    if "--hold" in argv:
        at = argv.index("--hold")
        hold = float(argv[at + 1])
        argv = argv[:at] + argv[at + 2:]
    store_dir, index_dir, models_dir, *problems = argv
    started = time.perf_counter()
    from graph.memory import MemoryStore
    from recommender.engine import RankConfig, Recommender

    store = MemoryStore(Path(store_dir))
    rec = Recommender(store, config=RankConfig(index_dir=Path(index_dir), model_dir=Path(models_dir)))
    ready = time.perf_counter() - started
    rankings = {pid: [[r.worker_id, r.score] for r in rec.recommend(pid)] for pid in problems}
    first = time.perf_counter() - started
    version = str(rec.index_state().get("version") or "")
    maps = Path(f"/proc/{os.getpid()}/maps").read_text()
    mapped = sorted({line.split()[-1] for line in maps.splitlines() if version and version in line})
    if hold:
        time.sleep(hold)
    print(json.dumps({"pid": os.getpid(), "source": rec.index_state()["source"], "ready_s": ready,
                      "first_s": first, "rankings": rankings, "mapped_files": len(mapped),
                      "peak_rss_kb": _rss_kb(), "rss_kb": _rss_kb("VmRSS")}))
    store.close()


if __name__ == "__main__":
    main(sys.argv[1:])
