"""``jianglian load`` of a large demo dataset into Neo4j (staged, ``graph.neo4j_load``): wall time, rows/s, heap.

Steps:

1. ``demo.generator.generate`` writes the demo dataset at ``--scale`` (or ``--data`` names one already written).
2. A fresh Neo4j 5.26 (``ops.neo4j_server.Neo4jServer``, ``--heap``, its own temporary data directory) starts on a
   free port.
3. **Load**: the real CLI, ``jianglian load DIR`` with ``JIANGLIAN_STORE=neo4j``, runs as a child process. Every
   ``--sample`` seconds ``jstat -gc`` reads the JVM's heap in use (eden + survivors + old generation, after
   whatever collections happened) and its capacity; the table shows the peak of both, the JVM's peak resident
   memory (VmHWM) and the load's own peak resident memory.
4. **Killed halfway, then re-run**: on a second fresh server, the same command is killed with SIGKILL once the
   database holds ``--kill-at`` × the first load's rows (nodes + relationships, polled every 0.5 s); the
   database then holds a staged, uncommitted load. The same
   command is run again: it undoes the killed load and loads everything. The table shows the kill time, the
   rows left tagged by the killed load, the re-run's wall time and whether the end state has the same counts
   as step 3.

Run::

    .venv/bin/python benchmarks/neo4j_load_bench.py --scale 10           # a quick look (≈ 170k rows)
    .venv/bin/python benchmarks/neo4j_load_bench.py --scale 72 --heap 1g # ≈ 1.2M rows, the province row
    # scale 455 (≈ 7.6M rows) from a dataset generated once, the loaded database kept for index_bench.py:
    nice -n 5 .venv/bin/python benchmarks/neo4j_load_bench.py --scale 455 --data /tmp/scale455 \
        --neo4j-dir /tmp/scale455-neo4j --port 7787 --kill-at 0

``--kill-at 0`` skips step 4; ``--kill-only ROWS`` skips step 3 (ROWS: the full load's nodes + relationships,
from an earlier run); ``--after-kill undo`` follows the kill with ``jianglian load --undo`` (the database must end
empty, no tags) instead of the re-run; ``--neo4j-dir`` keeps step 3's database in that directory (a fresh one: the
directory must not exist) instead of a temporary one, so ``benchmarks/index_bench.py --neo4j-dir`` can build the
ranking index from it. The table's CPU column is the load process's user + system time; the load average is
read at the start and the end (the machine is shared).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.bulk_load_bench import jvm_peak_mb, machine, source_state  # noqa: E402
from demo.generator import generate  # noqa: E402
from graph.neo4j_store import Neo4jStore  # noqa: E402
from ops.neo4j_server import Neo4jServer  # noqa: E402

__all__ = ["main"]

JIANGLIAN = Path(sys.executable).parent / "jianglian"
_TAGGED = ("MATCH (n) WHERE n._load IS NOT NULL RETURN count(n) AS n")


class _HeapSampler(threading.Thread):
    """Peak heap in use and committed (MB) of a JVM, from one ``jstat -gc PID INTERVAL`` process (one extra JVM
    for the whole run, not one per sample)."""

    def __init__(self, pid: int, every: float) -> None:
        super().__init__(daemon=True)
        self.peak_used = 0.0
        self.peak_capacity = 0.0
        self.proc = subprocess.Popen(["jstat", "-gc", str(pid), f"{max(1, int(every * 1000))}"],
                                     stdout=subprocess.PIPE, text=True)

    def run(self) -> None:
        assert self.proc.stdout is not None
        header: list[str] = []
        for line in self.proc.stdout:
            fields = line.split()
            if not fields:
                continue
            if fields[0] == "S0C":
                header = fields
                continue
            try:
                row = dict(zip(header, (float(v) for v in fields), strict=False))
            except ValueError:
                continue
            used = row["S0U"] + row["S1U"] + row["EU"] + row["OU"]
            capacity = row["S0C"] + row["S1C"] + row["EC"] + row["OC"]
            self.peak_used = max(self.peak_used, used / 1024)
            self.peak_capacity = max(self.peak_capacity, capacity / 1024)

    def finish(self) -> None:
        time.sleep(1.5)  # one more sample after the load
        self.proc.terminate()
        self.proc.wait()
        self.join()


def _env(server: Neo4jServer, data_dir: Path) -> dict[str, str]:
    return {**os.environ, "JIANGLIAN_STORE": "neo4j", "NEO4J_URI": server.uri, "NEO4J_DATABASE": "neo4j",
            "NEO4J_PASSWORD": "", "JIANGLIAN_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}


def _load(env: dict[str, str], dataset: Path | None, *,
          kill_at_rows: tuple[Neo4jServer, int] | None = None) -> tuple[float, int, str, float, float]:
    """Run ``jianglian load``: (wall seconds, exit status, output, its peak RSS in MB, its CPU seconds). With
    ``dataset`` None, ``jianglian load --undo``. With ``kill_at_rows``
    (server, rows), it is killed with SIGKILL once that server's database holds that many nodes + relationships."""
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out:
        what = ["--undo"] if dataset is None else [str(dataset)]
        proc = subprocess.Popen([str(JIANGLIAN), "load", *what], env=env, cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, text=True)
        watcher = None
        if kill_at_rows is not None:
            watcher = threading.Thread(target=_kill_at, args=(proc, *kill_at_rows), daemon=True)
            watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own rusage (peak RSS)
        if watcher is not None:
            watcher.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - started
        out.seek(0)
        text = out.read()
    return seconds, proc.returncode, text, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime


def _kill_at(proc: subprocess.Popen[str], server: Neo4jServer, rows: int) -> None:
    """SIGKILL ``proc`` once the database holds ``rows`` nodes + relationships (count store, every 0.5 s)."""
    store = Neo4jStore.connect(server.uri)
    try:
        while proc.poll() is None:
            if sum(store.counts().values()) >= rows:
                proc.send_signal(signal.SIGKILL)
                return
            time.sleep(0.5)
    finally:
        store.close()


def _counts(server: Neo4jServer) -> tuple[dict[str, int], int]:
    store = Neo4jStore.connect(server.uri)
    try:
        with store._driver.session(database="neo4j") as session:  # noqa: SLF001 - a benchmark's look inside
            tagged = int(session.run(_TAGGED).single(strict=True)["n"])
        return store.counts(), tagged
    finally:
        store.close()


class _Skip(Exception):
    """Step 4 not asked for (``--kill-at 0``)."""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--data", type=Path, default=None, help="a demo dataset already generated at --scale")
    parser.add_argument("--heap", default="1g")
    parser.add_argument("--kill-at", type=float, default=0.5,
                        help="kill the second load once the database holds this fraction of the first load's rows")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between heap samples")
    parser.add_argument("--neo4j-dir", type=Path, default=None,
                        help="keep the first load's database in this new directory (default: a temporary one)")
    parser.add_argument("--port", type=int, default=None, help="Bolt port of the first load's server")
    parser.add_argument("--kill-only", type=int, default=None, metavar="ROWS",
                        help="skip the first load; ROWS = its nodes + relationships (from an earlier run)")
    parser.add_argument("--after-kill", choices=("rerun", "undo"), default="rerun",
                        help="after the kill: run the same load again, or `jianglian load --undo`")
    args = parser.parse_args(argv)
    if args.neo4j_dir is not None and args.neo4j_dir.exists():
        parser.error(f"--neo4j-dir {args.neo4j_dir} exists; the load wants a fresh database")

    print(f"# neo4j_load_bench  {machine()}")
    print(f"# {source_state()}")
    print("# load average at the start: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()), flush=True)
    with tempfile.TemporaryDirectory(prefix="jl-load-bench-") as tmp:
        base = Path(tmp)
        dataset = args.data
        if dataset is None:
            dataset = base / "demo"
            started = time.perf_counter()
            counts = generate(dataset, scale=args.scale, seed=args.seed)
            print(f"# generated scale {args.scale:g} in {time.perf_counter() - started:.1f} s: {counts}")
        rows: list[dict[str, Any]] = []

        server = Neo4jServer(data_dir=args.neo4j_dir or base / "neo4j-1", heap=args.heap, port=args.port)
        counts, total = {}, args.kill_only or 0
        if args.kill_only is None:
            server.start()
        try:
            if args.kill_only is not None:
                raise _Skip
            assert server.pid is not None
            print(f"# loading into {server.uri} (data in {server.data_dir})", flush=True)
            sampler = _HeapSampler(server.pid, args.sample)
            sampler.start()
            seconds, code, out, client, cpu = _load(_env(server, base), dataset)
            sampler.finish()
            if code:
                print(out[-3000:])
                raise SystemExit(f"the load failed with status {code}")
            counts, tagged = _counts(server)
            total = sum(counts.values())
            rows.append({"run": "load", "seconds": seconds, "rows": total, "rate": total / seconds,
                         "heap": sampler.peak_used, "capacity": sampler.peak_capacity,
                         "jvm_rss": jvm_peak_mb(server.pid), "client": client, "tagged": tagged, "cpu": cpu,
                         "counts": counts,
                         "note": next((line for line in out.splitlines() if line.startswith("load ")), "")})
            load_now = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"# load done in {seconds:.1f} s, counts {counts}, load average {load_now}", flush=True)
        except _Skip:
            pass
        finally:
            server.stop()

        server = Neo4jServer(data_dir=base / "neo4j-2", heap=args.heap)
        if args.kill_at > 0:
            server.start()
        try:
            if args.kill_at <= 0:
                raise _Skip
            assert server.pid is not None
            killed_seconds, code, _, _, _ = _load(_env(server, base), dataset,
                                               kill_at_rows=(server, int(total * args.kill_at)))
            killed_counts, killed_tagged = _counts(server)
            rows.append({"run": f"killed at {args.kill_at:.0%}", "seconds": killed_seconds,
                         "rows": sum(killed_counts.values()), "rate": float("nan"), "heap": float("nan"),
                         "capacity": float("nan"), "jvm_rss": float("nan"), "client": float("nan"),
                         "cpu": float("nan"), "tagged": killed_tagged, "note": f"exit {code}"})
            load_now = " ".join(f"{x:.1f}" for x in os.getloadavg())
            print(f"# killed after {killed_seconds:.1f} s: {killed_counts}, {killed_tagged} tagged; load average "
                  f"{load_now}", flush=True)
            sampler = _HeapSampler(server.pid, args.sample)
            sampler.start()
            again, code, out, client, cpu = _load(_env(server, base),
                                                  None if args.after_kill == "undo" else dataset)
            sampler.finish()
            after, tagged = _counts(server)
            undo = next((line for line in out.splitlines() if " undone: " in line), "no undo line")
            if args.after_kill == "undo":
                undo = "; ".join(line for line in out.splitlines() if line.strip())[-300:]
            same = (f"same counts as the load: {after == counts}" if counts else f"counts {after}")
            if args.after_kill == "undo":
                same = f"database empty again: {sum(after.values()) == 0}"
            rows.append({"run": "re-run" if args.after_kill == "rerun" else "load --undo", "seconds": again,
                         "rows": sum(after.values()),
                         "rate": sum(after.values()) / again, "heap": sampler.peak_used,
                         "capacity": sampler.peak_capacity, "jvm_rss": jvm_peak_mb(server.pid),
                         "client": client, "tagged": tagged, "cpu": cpu,
                         "note": f"exit {code}; {same}; {undo}"})
        except _Skip:
            pass
        finally:
            server.stop()

    print("# load average at the end: {:.1f} {:.1f} {:.1f}".format(*os.getloadavg()))
    print(f"\n## jianglian load into Neo4j, demo scale {args.scale:g}, heap {args.heap}")
    print("rows = nodes + relationships in the database afterwards; heap = peak in use / peak committed (jstat, "
          f"every {args.sample:g} s); JVM RSS = its VmHWM; client = the load process's peak RSS\n")
    print("| run | wall s | CPU s (load) | rows | rows/s | heap used MB | heap committed MB | JVM RSS MB | client MB | "
          "rows tagged | note |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        print(f"| {r['run']} | {r['seconds']:.1f} | {r['cpu']:.1f} | {r['rows']:,} | {r['rate']:,.0f} | "
              f"{r['heap']:,.0f} | "
              f"{r['capacity']:,.0f} | {r['jvm_rss']:,.0f} | {r['client']:,.0f} | {r['tagged']:,} | {r['note']} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
