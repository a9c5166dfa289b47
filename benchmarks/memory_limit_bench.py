"""A process with the index files, run inside a kernel memory limit (issue 13's "≤ 4 GB at 1M", enforced).

``RSS`` counts every mapped page a process has touched, and the kernel maps up to 16 neighbouring pages of the
page cache on each fault (fault-around), so after a hundred queries a process over the index files shows most of
the files as its own resident memory, although those pages are the kernel's cache: shared, clean, dropped under
pressure. What a machine must really give a web worker is what it needs to keep answering at speed. This
script measures that: it runs ``benchmarks/index_bench.py``'s child (start, map the files, answer ``--queries``
recommendations) in a memory cgroup whose limit counts the process's own memory *and* the page cache it
brings in (cgroup v1 ``memory.limit_in_bytes`` or v2 ``memory.max``), after emptying the page cache with
``--cold`` (so every page the process needs is read from disk and charged to it), and compares its answers and
latency with the same child run without a limit.

Reported: the limit, the cgroup's peak usage (``memory.max_usage_in_bytes`` / ``memory.peak``) and how often it
hit the limit, the child's RssAnon / RssFile after the queries, time to the first answer, query p50/p95/p99,
and how many of the top-10 lists equal the unlimited run's.

Needs root (cgroups, ``/proc/sys/vm/drop_caches``) and index files already built under ``--data``/index (e.g.
by ``index_bench.py`` at that scale)::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/memory_limit_bench.py --data /tmp/ib7/scale-455 \\
        --limit-gb 4 [--cold] [--queries 100]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.index_bench import _pct, _same_tops  # noqa: E402

_V1 = Path("/sys/fs/cgroup/memory")
_V2 = Path("/sys/fs/cgroup")


class MemoryCgroup:
    """A memory cgroup of its own (v1 if the memory controller is mounted there, else v2), removed on close."""

    def __init__(self, limit_bytes: int) -> None:
        name = f"jianglian-bench-{os.getpid()}"
        if (_V1 / "memory.limit_in_bytes").exists() or (_V1 / "cgroup.procs").exists():
            self.v1 = True
            self.path = _V1 / name
            self.path.mkdir()
            (self.path / "memory.limit_in_bytes").write_text(str(limit_bytes))
        else:
            self.v1 = False
            self.path = _V2 / name
            self.path.mkdir()
            (self.path / "memory.max").write_text(str(limit_bytes))
        self.limit = limit_bytes

    def join(self) -> None:
        """Move the calling process into the group (a child's ``preexec_fn``: before it execs)."""
        (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def peak_bytes(self) -> int:
        return int((self.path / ("memory.max_usage_in_bytes" if self.v1 else "memory.peak")).read_text())

    def limit_hits(self) -> int:
        if self.v1:
            return int((self.path / "memory.failcnt").read_text())
        events = dict(line.split() for line in (self.path / "memory.events").read_text().splitlines())
        return int(events.get("max", 0))

    def close(self) -> None:
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:
                time.sleep(0.1)


def _drop_caches() -> None:
    os.sync()
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def _child(data: Path, queries: int, group: MemoryCgroup | None, extra: list[str]) -> dict[str, Any]:
    cmd = [sys.executable, str(ROOT / "benchmarks" / "index_bench.py"), "--child", str(data), "--queries",
           str(queries), "--brute", "0", "--encoder", "none", *extra]
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    log = data / f"limit-child-{time.strftime('%H%M%S')}.log"
    with log.open("w") as err:
        proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True, env=env,
                              preexec_fn=group.join if group else None, check=False)
    if proc.returncode:
        raise RuntimeError(f"child failed ({proc.returncode}), see {log}:\n{log.read_text()[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["source"] != "files":
        raise RuntimeError(f"the child did not map the index files (source {result['source']!r}): build them first")
    return result


def _line(name: str, r: dict[str, Any]) -> str:
    q = r["query_ms"]
    anon, file = r["anon_file_mb"]["queries"]
    return (f"{name}: first answer {r['first_s']:.1f} s after the start; query p50 / p95 / p99 {_pct(q, 50):.1f} / "
            f"{_pct(q, 95):.1f} / {_pct(q, 99):.1f} ms; peak RSS {r['peak_rss_mb']:.0f} MB; after the queries "
            f"RssAnon {anon:.0f} MB, RssFile {file:.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="a data directory whose index/ holds built files")
    parser.add_argument("--limit-gb", type=float, default=4.0)
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--cold", action="store_true", help="empty the page cache before each run")
    parser.add_argument("--madvise", default="", help="passed to the child (an experiment: random, normal)")
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.error("needs root: memory cgroups and /proc/sys/vm/drop_caches")
    extra = ["--madvise", args.madvise] if args.madvise else []
    load = os.getloadavg()
    print(f"# memory_limit_bench: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {os.cpu_count()} cores, "
          f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, data {args.data}, {args.queries} queries, "
          f"limit {args.limit_gb:g} GiB, {'cold' if args.cold else 'warm'} page cache"
          f"{', madvise ' + args.madvise if args.madvise else ''}", flush=True)
    if args.cold:
        _drop_caches()
    free = _child(args.data, args.queries, None, extra)
    print(_line("no limit", free), flush=True)
    group = MemoryCgroup(int(args.limit_gb * (1 << 30)))
    try:
        if args.cold:
            _drop_caches()
        limited = _child(args.data, args.queries, group, extra)
        peak, hits = group.peak_bytes(), group.limit_hits()
    finally:
        group.close()
    print(_line(f"limit {args.limit_gb:g} GiB", limited), flush=True)
    same, worst = _same_tops(limited["tops"], free["tops"])
    print(f"limit {args.limit_gb:g} GiB: cgroup peak {peak / 2**20:.0f} MB (process memory and the page cache it "
          f"brought in), limit reached {hits} times; same top 10 as without the limit {same} / {len(free['tops'])} "
          f"(max score difference {worst:.1e}); slowdown at p50 "
          f"{np.median(limited['query_ms']) / np.median(free['query_ms']):.2f}x", flush=True)


if __name__ == "__main__":
    main()
