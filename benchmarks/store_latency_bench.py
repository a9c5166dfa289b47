"""Recommendation latency with the Neo4j store, against the embedded store in the same run.

The :class:`~recommender.engine.Recommender` reads the store once into a sparse projection
(``graph.projection.Projection.from_store``) and builds its ranking index from it; a query then touches only
the projection. So what differs between the stores is the **build** (reading every domain node and
relationship: paged ``iter_nodes`` and one ``relationships`` read per type from Neo4j over Bolt, dictionary
walks in-process for the embedded store); the per-query latency should be the same. This script measures both,
per scale:

* load the demo dataset into a fresh Neo4j 5.26 (``ops.neo4j_server.Neo4jServer``, one server per scale,
  the rows ``load_dataset`` builds committed every ``--commit-every`` rows) and into an embedded
  :class:`~graph.memory.MemoryStore` persisted to a temporary data directory (as ``jianglian serve`` runs it);
* time ``Projection.from_store`` and the full ``Recommender(store)`` build on each store;
* run the same ``--queries`` new problems (copies of solved problems, as in ``benchmarks/latency_bench.py``)
  through ``recommend(problem, n=10, explain=True)`` on each, interleaved (so that other jobs on the machine slow
  both alike), and print p50/p95/p99;
* time one small write (``create_node``): one SQLite transaction in the embedded store (before SQLite, a journal
  append, and before the journal a save of the whole graph; ``benchmarks/write_latency_bench.py`` compares the
  journal and SQLite);
* time ``Recommender.refresh()`` after one workflow write (an ``AuditEvent`` node, as the API records after
  every recommendation) and after one new problem (``graph.dataset.save_row``, as ``POST /problems``): the
  cost of keeping the projection fresh, paid by the next request;
* print the Python process's resident memory before/after each build, its high-water mark, and the JVM's.

The embedded store's own, fuller latency study is ``benchmarks/latency_bench.py`` (the ranking engineer's); the
embedded line here is only the same-run baseline for the Neo4j numbers.

Run::

    .venv/bin/python benchmarks/store_latency_bench.py --scales 1 33 [--queries 100] [--data-root /tmp/jl7]
"""

from __future__ import annotations

import argparse
import gc
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.bulk_load_bench import (  # noqa: E402
    chunked_apply,
    dataset_batch,
    jvm_peak_mb,
    machine,
    peak_mb,
    rss_mb,
    source_state,
)
from demo.generator import generate  # noqa: E402
from graph.dataset import load_dataset, save_row  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from graph.neo4j_store import Neo4jStore  # noqa: E402
from graph.projection import Projection  # noqa: E402
from graph.store import GraphStore  # noqa: E402
from ops.neo4j_server import Neo4jServer  # noqa: E402
from recommender.engine import RankConfig, Recommender  # noqa: E402

__all__ = ["main"]


def _pct(samples: list[float]) -> tuple[float, float, float]:
    a = np.asarray(samples) * 1000.0
    return float(np.percentile(a, 50)), float(np.percentile(a, 95)), float(np.percentile(a, 99))


def _queries(store: GraphStore, n: int, seed: int) -> list[dict[str, Any]]:
    # bounded: at 1M problems one unbounded, sorted read of every solved problem took the 2 GiB-heap server down
    problems = store.list_nodes("Problem", where={"status": "solved"}, limit=20_000)
    rng = np.random.default_rng(seed)
    picked = [problems[i] for i in rng.choice(len(problems), size=min(n, len(problems)), replace=False)]
    return [{k: p.get(k) for k in ("title", "description", "skills", "enterprise_id", "district", "service_type")}
            for p in picked]


def build(store: GraphStore, model_dir: Path) -> tuple[Recommender, dict[str, Any]]:
    """Time ``Projection.from_store`` and the whole ``Recommender`` build; the memory the recommender holds."""
    gc.collect()
    rss0 = rss_mb()
    t = time.perf_counter()
    projection = Projection.from_store(store)
    t_proj = time.perf_counter() - t
    del projection
    gc.collect()
    t = time.perf_counter()
    rec = Recommender(store, config=RankConfig(model_dir=model_dir))
    t_build = time.perf_counter() - t
    return rec, {"projection": t_proj, "build": t_build, "rss_before": rss0, "rss_after": rss_mb()}


def query_latencies(recs: dict[str, Recommender], queries: list[dict[str, Any]]) -> dict[str, list[float]]:
    """The same queries through each recommender, interleaved so that noise from other jobs hits all alike."""
    out: dict[str, list[float]] = {kind: [] for kind in recs}
    for rec in recs.values():
        rec.recommend(queries[0], n=10)  # warm-up
    for q in queries:
        for kind, rec in recs.items():
            t = time.perf_counter()
            ranked = rec.recommend(q, n=10, explain=True)
            out[kind].append(time.perf_counter() - t)
            assert len(ranked) == 10
    return out


def writes_and_refresh(store: GraphStore, rec: Recommender, queries: list[dict[str, Any]]) -> dict[str, float]:
    """One small write's latency, and what keeping the projection fresh costs the next request after (a) a
    workflow write (the API's audit event after every recommendation), (b) a new problem (as ``POST /problems``)."""
    writes, audit = [], []
    for i in range(5):
        t = time.perf_counter()
        store.create_node("AuditEvent", f"bench-{store.kind}-{i}", {"kind": "bench", "at": "2024-01-01"})
        writes.append(time.perf_counter() - t)
        t = time.perf_counter()
        rec.refresh()
        audit.append(time.perf_counter() - t)
    save_row(store, "Problem", {**queries[0], "id": "PBENCH0", "status": "open", "posted_at": "2026-11-24"})
    t = time.perf_counter()
    rec.refresh()
    post = time.perf_counter() - t
    return {"write": float(np.median(writes)), "refresh_audit": float(np.median(audit)), "refresh_post": post}


def _summary(kind: str, m: dict[str, Any]) -> None:
    print(f"{kind + ':':<9} query p50/p95/p99 {'/'.join(f'{x:.1f}' for x in m['latency'])} ms, "
          f"one write {m['write'] * 1000:.0f} ms, "
          f"refresh after an audit write {m['refresh_audit']:.3f} s, after a new problem {m['refresh_post']:.3f} s",
          flush=True)


def _load_neo4j(store: Neo4jStore, directory: Path, every: int) -> str:
    """The rows ``load_dataset`` would write, committed every ``every`` rows (one transaction does not fit a
    1 GiB heap above about 100k node rows; see ``benchmarks/bulk_load_bench.py``)."""
    batch, t_read = dataset_batch(directory)
    t = time.perf_counter()
    n = chunked_apply(store, batch, every)
    return f"read+validate {t_read:.0f} s, write {time.perf_counter() - t:.0f} s in {n} transactions"


def bench(scale: float, data_root: Path | None, n_queries: int, seed: int, tmp: Path, every: int,
          heap: str, conf: dict[str, str] | None, neo4j_only: bool = False) -> dict[str, Any]:
    print(f"\n=== scale {scale:g} === {machine()}", flush=True)
    directory = data_root / f"demo{scale:g}" if data_root is not None else None
    if directory is None or not (directory / "workers.jsonl").is_file():
        directory = tmp / f"demo{scale:g}"
        t = time.perf_counter()
        generate(directory, scale=scale, seed=seed)
        print(f"generated in {time.perf_counter() - t:.0f} s", flush=True)
    model_dir = tmp / "no-models"
    # a fresh server per scale: emptying a big database with Neo4jStore.clear() exceeds a 1 GiB heap's
    # transaction pool
    with Neo4jServer(heap=heap, conf=conf) as server:
        neo = Neo4jStore.connect(server.uri)
        neo.ensure_schema()
        print(f"Neo4j 5.26 at {server.uri}, heap {heap}, started in {server.startup_seconds:.0f} s; loaded "
              f"({_load_neo4j(neo, directory, every)})", flush=True)
        counts = neo.counts()
        queries = _queries(neo, n_queries, seed)
        rec_neo, m_neo = build(neo, model_dir)
        print(f"neo4j:    projection {m_neo['projection']:.1f} s, recommender build {m_neo['build']:.1f} s, "
              f"RSS {m_neo['rss_before']:.0f} -> {m_neo['rss_after']:.0f} MB", flush=True)

        runs: list[tuple[str, GraphStore, Recommender, dict[str, Any]]] = [("neo4j", neo, rec_neo, m_neo)]
        mem = None
        if not neo4j_only:
            mem = MemoryStore(tmp / f"store{scale:g}")  # persisted, as `jianglian serve` runs it
            t = time.perf_counter()
            load_dataset(mem, directory)
            size = sum(p.stat().st_size for p in (tmp / f"store{scale:g}").glob("jianglian.sqlite*")) / 2**20
            print(f"loaded into the embedded store in {time.perf_counter() - t:.0f} s (jianglian.sqlite {size:.0f} MB)",
                  flush=True)
            rec_mem, m_mem = build(mem, model_dir)
            print(f"embedded: projection {m_mem['projection']:.1f} s, recommender build {m_mem['build']:.1f} s, "
                  f"RSS {m_mem['rss_before']:.0f} -> {m_mem['rss_after']:.0f} MB", flush=True)
            runs.append(("embedded", mem, rec_mem, m_mem))

        latencies = query_latencies({kind: rec for kind, _, rec, _ in runs}, queries)
        same = None
        if len(runs) == 2:
            same = [r.worker_id for r in runs[0][2].recommend(queries[-1], n=10, explain=False)] == \
                [r.worker_id for r in runs[1][2].recommend(queries[-1], n=10, explain=False)]
        for kind, store, rec, m in runs:
            m["latency"] = _pct(latencies[kind])
            m.update(writes_and_refresh(store, rec, queries))
            _summary(kind, m)
        if same is not None:
            print(f"same top 10 from both stores for the last query: {same}", flush=True)
        jvm = jvm_peak_mb(server.pid)
        neo.close()
    if mem is not None:
        mem.close()
    out = {"scale": scale, "counts": counts, "same": same, "queries": len(queries), "jvm": jvm,
           **{kind: m for kind, _, _, m in runs}}
    del runs, rec_neo, mem
    gc.collect()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 33.0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--heap", default="1g", help="Neo4j JVM heap")
    parser.add_argument("--commit-every", type=int, default=50_000, help="rows per transaction of the Neo4j load")
    parser.add_argument("--pagecache", default=None, help="server.memory.pagecache.size (launcher default 64m)")
    parser.add_argument("--neo4j-only", action="store_true",
                        help="skip the embedded store (for scales where one process cannot hold both)")
    parser.add_argument("--data-root", type=Path, default=None,
                        help="directory holding already generated demo<scale>/ datasets (seed 7)")
    args = parser.parse_args(argv)
    print(machine(), flush=True)
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}; {source_state()}", flush=True)
    conf = {"server.memory.pagecache.size": args.pagecache} if args.pagecache else None
    rows = []
    with tempfile.TemporaryDirectory(prefix="jianglian-storelat-") as tmp:
        for scale in args.scales:
            rows.append(bench(scale, args.data_root, args.queries, args.seed, Path(tmp), args.commit_every, args.heap,
                              conf, args.neo4j_only))
    jvm = max(r["jvm"] for r in rows)
    print(f"\nPython peak RSS {peak_mb():.0f} MB (both stores, all scales); JVM peak RSS {jvm:.0f} MB; {machine()}")
    print("\n| scale | workers | problems | rels | store | projection s | recommender build s | "
          "p50 ms | p95 ms | p99 ms | one write ms | refresh after audit / new problem s | "
          "RSS held by the recommender MB |")
    print("|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        rels = sum(v for k, v in r["counts"].items() if k.isupper())
        for kind in ("neo4j", "embedded"):
            if kind not in r:
                continue
            m = r[kind]
            p50, p95, p99 = m["latency"]
            print(f"| {r['scale']:g} | {r['counts'].get('Worker', 0):,} | {r['counts'].get('Problem', 0):,} | "
                  f"{rels:,} | {kind} | {m['projection']:.1f} | {m['build']:.1f} | {p50:.1f} | {p95:.1f} | "
                  f"{p99:.1f} | {m['write'] * 1000:.0f} | {m['refresh_audit']:.3f} / {m['refresh_post']:.3f} | "
                  f"{m['rss_after'] - m['rss_before']:.0f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
