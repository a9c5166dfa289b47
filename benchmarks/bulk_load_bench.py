"""Bulk load into Neo4j: ``UNWIND`` batches (``Neo4jStore.apply``) against one statement per row.

The rows are exactly those ``jianglian load`` writes for the demo dataset (``graph.dataset.load_dataset``
builds the :class:`~graph.store.WriteBatch`; a recording store catches it without writing). They are written
into a fresh Neo4j 5.26 (``ops.neo4j_server.Neo4jServer``, its own temporary data directory, schema from
``Neo4jStore.ensure_schema``: uniqueness constraints, range indexes and the ``cjk`` full-text index) by:

* **naive, auto-commit**: one parameterised statement per row, each its own transaction, in a plain loop over
  one session of the same driver (the statements are the store's own from :mod:`graph.cypher`, given a
  one-row list, so the plan is the same as a single-row ``MERGE``);
* **naive, one transaction**: the same statements inside one explicit transaction (round trips, no commits);
* **UNWIND, one transaction**: ``Neo4jStore.apply`` as ``jianglian load`` calls it (atomic; batches of
  ``--batch-size`` rows per statement);
* **UNWIND, commit every N rows**: the same statements, one ``apply`` per ``--commit-every`` rows (not atomic
  as a whole: what works when one transaction does not fit the transaction memory limit).

The naive ways run on the small demo dataset (``--naive-scale``, about 17k rows at scale 1) and are
extrapolated to the big one; every figure says whether it was measured or extrapolated. A transaction that
fails (e.g. ``dbms.memory.transaction.total.max`` reached, which the launcher sets to half the heap) is
reported with the number of rows written before the failure.

Run::

    .venv/bin/python benchmarks/bulk_load_bench.py --scale 72            # about 1M relationships
    .venv/bin/python benchmarks/bulk_load_bench.py --scale 72 --data /tmp/demo72 --heap 1g
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from demo.generator import generate  # noqa: E402
from graph import cypher  # noqa: E402
from graph.dataset import load_dataset  # noqa: E402
from graph.errors import GraphError  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from graph.neo4j_store import Neo4jStore, storable  # noqa: E402
from graph.store import Progress, WriteBatch  # noqa: E402
from ops.neo4j_server import Neo4jServer  # noqa: E402

__all__ = ["main"]


def source_state() -> str:
    """The commit measured, and the files with uncommitted changes (others' work in progress)."""
    repo = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True).stdout

    dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines() if line]
    return f"commit {git('rev-parse', '--short', 'HEAD').strip()}" + (
        f" + uncommitted changes in {', '.join(dirty)}" if dirty else " (clean)")


def machine() -> str:
    """One line about the machine and how busy it is right now."""
    load = os.getloadavg()
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((line.split(":", 1)[1].strip() for line in cpu.splitlines() if line.startswith("Model name")), "?")
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (f"{dt.datetime.now().isoformat(timespec='seconds')}  nproc {os.cpu_count()}  {model}  "
            f"{mem:.0f} GiB RAM  load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")


class _Recorder(MemoryStore):
    """An empty embedded store that keeps the batch ``load_dataset`` would write, and writes nothing."""

    def __init__(self) -> None:
        super().__init__(None)
        self.batch = WriteBatch()

    def apply(self, batch: WriteBatch, *, progress: Progress | None = None) -> None:
        self.batch = batch


def dataset_batch(directory: Path) -> tuple[WriteBatch, float]:
    """The write batch of an import of ``directory`` and the seconds spent reading/validating/deriving it."""
    started = time.perf_counter()
    recorder = _Recorder()
    load_dataset(recorder, directory)
    return recorder.batch, time.perf_counter() - started


def jvm_peak_mb(pid: int | None) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (OSError, TypeError):
        return float("nan")
    line = next((x for x in status.splitlines() if x.startswith("VmHWM:")), "VmHWM: 0 kB")
    return int(line.split()[1]) / 1024


def rss_mb() -> float:
    """This process's resident memory now, in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Result:
    def __init__(self, method: str, scale: float, batch: WriteBatch, seconds: float, measured: bool = True,
                 transactions: int | str = 1, error: str = "") -> None:
        self.method, self.scale, self.seconds, self.measured = method, scale, seconds, measured
        self.nodes, self.rels = len(batch.nodes), len(batch.rels)
        self.transactions, self.error = transactions, error

    @property
    def rows(self) -> int:
        return self.nodes + self.rels

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("nan")


def naive(driver: Any, database: str, batch: WriteBatch, *, one_transaction: bool) -> float:
    """One statement per row (nodes, then relationships), auto-commit or inside one transaction."""
    statements: list[tuple[str, dict[str, Any]]] = []
    for n in batch.nodes:
        statements.append((cypher.MERGE_NODES[n.label], {"rows": [[n.id, storable(n.props)]]}))
    for r in batch.rels:
        props = storable(r.props)
        row = [r.start_id, r.end_id, props] if props else [r.start_id, r.end_id]
        statements.append((cypher.MERGE_RELS[(r.type, r.start_label, r.end_label)], {"rows": [row]}))
    started = time.perf_counter()
    with driver.session(database=database) as session:
        if one_transaction:
            with session.begin_transaction() as tx:
                for query, params in statements:
                    tx.run(query, params).consume()
                tx.commit()
        else:
            for query, params in statements:
                session.run(query, params).consume()
    return time.perf_counter() - started


def _statements(rows: list[Any]) -> list[tuple[str, list[list[Any]]]]:
    """The store's UNWIND statements for node or relationship rows, 5,000 rows each."""
    grouped: dict[str, list[list[Any]]] = {}
    for r in rows:
        if hasattr(r, "label"):
            grouped.setdefault(cypher.MERGE_NODES[r.label], []).append([r.id, storable(r.props)])
        else:
            props = storable(r.props)
            grouped.setdefault(cypher.MERGE_RELS[(r.type, r.start_label, r.end_label)], []).append(
                [r.start_id, r.end_id, props] if props else [r.start_id, r.end_id])
    return [(q, rs[i:i + 5000]) for q, rs in grouped.items() for i in range(0, len(rs), 5000)]


def tx_memory_per_row(store: Neo4jStore, batch: WriteBatch) -> tuple[float, float]:
    """Transaction-state heap per node row and per relationship row (KiB), from ``SHOW TRANSACTIONS``.

    The rows are sent in an open transaction which is then rolled back (nodes), or after the nodes were
    committed (relationships); another session reads the open transaction's ``estimatedUsedHeapMemory``.
    """
    driver = store._driver

    def open_tx_bytes() -> int:
        records, _, _ = driver.execute_query(cypher_show_transactions, database_=store.database)
        # the open transaction is idle between statements (empty currentQuery); skip this monitoring query itself
        return max((int(r["mem"] or 0) for r in records if "SHOW TRANSACTIONS" not in (r["q"] or "")), default=0)

    out = []
    store.clear()
    for rows in (batch.nodes, batch.rels):
        with driver.session(database=store.database) as session:
            tx = session.begin_transaction()
            for query, chunk in _statements(rows):
                tx.run(query, {"rows": chunk}).consume()
            out.append(open_tx_bytes() / len(rows) / 1024)
            tx.rollback()
        if rows is batch.nodes:
            store.apply(WriteBatch(nodes=batch.nodes))
    store.clear()
    if not all(out):
        raise GraphError("SHOW TRANSACTIONS reported no heap use for the open transaction")
    return out[0], out[1]


#: Read-only monitoring statement (the application's Cypher lives in graph.cypher; this one is the benchmark's).
cypher_show_transactions = "SHOW TRANSACTIONS YIELD currentQuery AS q, estimatedUsedHeapMemory AS mem RETURN q, mem"


def chunked_apply(store: Neo4jStore, batch: WriteBatch, every: int) -> int:
    """``apply`` per ``every`` rows: nodes first, then relationships. Returns the number of transactions."""
    n = 0
    for start in range(0, len(batch.nodes), every):
        store.apply(WriteBatch(nodes=batch.nodes[start:start + every]))
        n += 1
    for start in range(0, len(batch.rels), every):
        store.apply(WriteBatch(rels=batch.rels[start:start + every]))
        n += 1
    return n


def _heap_mib(heap: str) -> float:
    units = {"k": 1 / 1024, "m": 1, "g": 1024}
    return float(heap[:-1]) * units[heap[-1].lower()] if heap[-1].isalpha() else float(heap) / 2**20


def _fresh(store: Neo4jStore) -> None:
    started = time.perf_counter()
    store.clear()
    print(f"  (cleared the database in {time.perf_counter() - started:.1f} s)", flush=True)


def _timed(label: str, run: Callable[[], Any]) -> tuple[float, Any, str]:
    print(f"- {label} ...", flush=True)
    started = time.perf_counter()
    try:
        value = run()
        error = ""
    except GraphError as err:
        value, error = None, f"{type(err).__name__}: {str(err).splitlines()[0][:300]}"
    seconds = time.perf_counter() - started
    print(f"  {seconds:.1f} s" + (f"  FAILED {error}" if error else ""), flush=True)
    return seconds, value, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=72.0, help="demo scale of the big load (72: ~1M rels)")
    parser.add_argument("--data", type=Path, default=None, help="an already generated demo dataset at --scale")
    parser.add_argument("--naive-scale", type=float, default=1.0, help="demo scale of the naive runs")
    parser.add_argument("--batch-size", type=int, default=5000, help="rows per UNWIND statement")
    parser.add_argument("--commit-every", type=int, default=50_000, help="rows per transaction when chunked")
    parser.add_argument("--heap", default="1g", help="Neo4j JVM heap (transaction memory limit: half of it)")
    parser.add_argument("--pagecache", default=None, help="server.memory.pagecache.size (launcher default 64m)")
    parser.add_argument("--skip-single", action="store_true", help="skip the big load in one transaction")
    parser.add_argument("--skip-naive", action="store_true", help="skip the naive runs (and the ratios)")
    args = parser.parse_args(argv)

    print(machine(), flush=True)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; {source_state()}", flush=True)
    with tempfile.TemporaryDirectory(prefix="jianglian-bulk-") as tmp:
        small_dir = Path(tmp) / "small"
        generate(small_dir, scale=args.naive_scale, seed=7)
        big_dir = args.data
        if big_dir is None:
            print(f"generating the demo dataset at scale {args.scale} ...", flush=True)
            big_dir = Path(tmp) / "big"
            generate(big_dir, scale=args.scale, seed=7)
        small, t_small = dataset_batch(small_dir)
        big, t_big = dataset_batch(big_dir)
        print(f"rows: scale {args.naive_scale}: {len(small.nodes)} nodes + {len(small.rels)} rels "
              f"(read+validate {t_small:.1f} s); scale {args.scale}: {len(big.nodes)} nodes + {len(big.rels)} rels "
              f"(read+validate+derive {t_big:.1f} s, not included below)", flush=True)

        conf = {"server.memory.pagecache.size": args.pagecache} if args.pagecache else None
        server = Neo4jServer(heap=args.heap, conf=conf)
        server.start()
        print(f"Neo4j 5.26 at {server.uri}, heap {args.heap}, pagecache {args.pagecache or '64m (launcher)'}, "
              f"started in {server.startup_seconds:.0f} s", flush=True)
        results: list[Result] = []
        try:
            store = Neo4jStore.connect(server.uri)
            store.batch_size = args.batch_size
            store.ensure_schema()
            driver = store._driver

            # warm-up: JIT and plan cache for every statement, on the small dataset
            _fresh(store)
            store.apply(small)
            kib_node, kib_rel = tx_memory_per_row(store, small)
            pool = _heap_mib(args.heap) / 2
            print(f"transaction state on the heap: {kib_node:.1f} KiB per node row, {kib_rel:.2f} KiB per relationship "
                  f"row (SHOW TRANSACTIONS, scale {args.naive_scale}); the transaction pool is half the heap, "
                  f"{pool:.0f} MiB: about {pool * 1024 / kib_node:,.0f} node rows or "
                  f"{pool * 1024 / kib_rel:,.0f} relationship rows per transaction", flush=True)
            if not args.skip_naive:
                _fresh(store)
                t, _, err = _timed(f"naive auto-commit, scale {args.naive_scale}",
                                   lambda: naive(driver, "neo4j", small, one_transaction=False))
                results.append(Result("naive: 1 statement per row, auto-commit", args.naive_scale, small, t,
                                      transactions=len(small), error=err))
                _fresh(store)
                t, _, err = _timed(f"naive one transaction, scale {args.naive_scale}",
                                   lambda: naive(driver, "neo4j", small, one_transaction=True))
                results.append(Result("naive: 1 statement per row, 1 transaction", args.naive_scale, small, t,
                                      error=err))
            _fresh(store)
            t, _, err = _timed(f"UNWIND one transaction, scale {args.naive_scale}", lambda: store.apply(small))
            results.append(Result(f"UNWIND {args.batch_size}/statement, 1 transaction", args.naive_scale, small, t,
                                  error=err))

            if not args.skip_single:
                _fresh(store)
                written = [0]
                t, _, err = _timed(f"UNWIND one transaction, scale {args.scale}",
                                   lambda: store.apply(big, progress=lambda n: written.__setitem__(0, written[0] + n)))
                if err:
                    # the driver retries a transient error, so this counts the rows of every attempt
                    err += (f" ({written[0]:,} rows sent over all attempts: the driver retried the transaction "
                            "on this transient error)")
                    print(f"  {err}", flush=True)
                results.append(Result(f"UNWIND {args.batch_size}/statement, 1 transaction", args.scale, big, t,
                                      error=err))
                if not server.running:
                    print("  the server died; restarting it", flush=True)
                    server.stop()
                    server.start()
                    store.close()
                    store = Neo4jStore.connect(server.uri)
                    store.batch_size = args.batch_size
                    store.ensure_schema()
            _fresh(store)
            t, n_tx, err = _timed(f"UNWIND, commit every {args.commit_every} rows, scale {args.scale}",
                                  lambda: chunked_apply(store, big, args.commit_every))
            results.append(Result(f"UNWIND {args.batch_size}/statement, commit every {args.commit_every:,}",
                                  args.scale, big, t, transactions=n_tx or "?", error=err))
            counts = store.counts()
            print(f"  stored: {sum(v for k, v in counts.items() if not k.isupper()):,} nodes, "
                  f"{sum(v for k, v in counts.items() if k.isupper()):,} relationships", flush=True)
            store.close()
        finally:
            peak = jvm_peak_mb(server.pid)
            server.stop()

    naive_auto = results[0]
    for r in [r for r in results[:2] if r.method.startswith("naive")]:  # extrapolate the naive rates
        if not r.error:
            results.append(Result(r.method, args.scale, big, (len(big.nodes) + len(big.rels)) / r.rate,
                                  measured=False, transactions=r.transactions if r.transactions == 1 else len(big)))
    print(f"\nJVM peak resident memory {peak:.0f} MB; {machine()}")
    print("\n| method | scale | nodes | rels | transactions | seconds | rows/s | x naive auto-commit | |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    for r in results:
        ratio = r.rate / naive_auto.rate if naive_auto.method.startswith("naive") and not naive_auto.error \
            else float("nan")
        note = f"FAILED: {r.error}" if r.error else "measured" if r.measured else "extrapolated from the measured rate"
        tx = f"{r.transactions:,}" if isinstance(r.transactions, int) else r.transactions
        rate, times = ("-", "-") if r.error else (f"{r.rate:,.0f}", f"{ratio:,.1f}")
        print(f"| {r.method} | {r.scale:g} | {r.nodes:,} | {r.rels:,} | {tx} | {r.seconds:,.1f} | {rate} | {times} | "
              f"{note} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
