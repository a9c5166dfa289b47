"""Latency of one recommendation (top 10 of all workers, with explanations) on the embedded store.

For each scale, the demo generator writes a synthetic Yancheng-like dataset (``scale=1``: 300
workers, 2,200 problems; ``45``: 13,500 workers, 99,000 problems; ``330``: 99,000 workers,
726,000 problems), cached under ``--cache-dir`` so reruns skip the generation. It is loaded into
an in-memory :class:`~graph.memory.MemoryStore` with ``--matches`` workflow matches (invited,
accepted, declined: the load and decline penalties read them on every request), and a
:class:`~recommender.engine.Recommender` is built once. Then, for ``--queries`` new problems
(copies of solved problems' fields, so not stored):

* **product**: ``Recommender.recommend(problem, n=10, explain=True)``: candidate generation,
  filters, scoring of a few hundred candidates (local personalised PageRank), explanations;
* **naive, brute force**: the same signals for *every* eligible worker, the personalised
  PageRank by power iteration over the whole walk graph (how the ranker worked before it
  became local), fusion, the same penalties and explanations for the top 10;
* **naive from the store** (``--naive-store-queries``, small scales only): no projection at
  all: every worker's ``SOLVED`` relationships and problem texts read from the store, TF-IDF
  top-3 cosine (one signal only).

Then the cost of keeping up with writes: ``refresh()`` after a workflow write (an audit event and
a match), after a problem is posted, after a problem is solved (incremental index update), and a
full rebuild for comparison.

Each timing is reported as wall clock and CPU time of this process (``time.process_time``): on a
machine shared with other jobs the wall clock includes waiting for a core, the CPU time does not.
The load average is printed with the results.

Run::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/latency_bench.py --scales 1 45 330 [--queries 100]
        [--stages 30 --profile 3]   # where a query's time goes: timers per engine step, cProfile
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import dataclasses
import functools
import gc
import io
import os
import platform
import pstats
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import recommender.engine as engine_module  # noqa: E402
import recommender.features as features_module  # noqa: E402
import recommender.pipeline as pipeline_module  # noqa: E402
from benchmarks.bulk_load_bench import peak_mb  # noqa: E402
from demo.generator import generate  # noqa: E402
from graph.dataset import load_dataset  # noqa: E402
from graph.memory import MemoryStore  # noqa: E402
from graph.store import NodeRow, RelRow, WriteBatch  # noqa: E402
from recommender.engine import RankConfig, Recommendation, Recommender  # noqa: E402
from recommender.explain import explain as build_explanation  # noqa: E402
from recommender.features import FEATURES, compute_features  # noqa: E402
from recommender.pipeline import DeclinedRows, declined_similarity  # noqa: E402
from recommender.query import vectorise  # noqa: E402
from recommender.signals import personalized_pagerank  # noqa: E402
from recommender.text import problem_text  # noqa: E402
from recommender.walk import seed_vector  # noqa: E402

__all__ = ["main"]

_FIELDS = ("title", "description", "skills", "enterprise_id", "district", "service_type")


def _pct(samples: list[float]) -> str:
    a = np.asarray(samples) * 1000.0
    return f"p50 {np.percentile(a, 50):7.1f}  p95 {np.percentile(a, 95):7.1f}  p99 {np.percentile(a, 99):7.1f} ms"


def _load() -> str:
    return "load average " + " / ".join(f"{x:.1f}" for x in os.getloadavg())


def _timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``, its wall clock and its CPU time in seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _dataset(cache_dir: Path, scale: float, seed: int) -> Path:
    out = cache_dir / f"demo-s{scale:g}-seed{seed}"
    if not (out / "problems.jsonl").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=out.name + ".", dir=cache_dir))
        generate(tmp, scale=scale, seed=seed)
        tmp.rename(out)
    return out


def _add_matches(store: MemoryStore, n: int, seed: int) -> None:
    """Workflow state of a busy month: invitations, acceptances and declines (and their audit events)."""
    rng = np.random.default_rng(seed)
    workers = [w["id"] for w in store.list_nodes("Worker", limit=20_000)]
    problems = [p["id"] for p in store.list_nodes("Problem", where={"status": "open"}, limit=20_000)]
    month = date.today().isoformat() + "T09:00:00"
    rows = []
    for i in range(n):
        state = ("invited", "accepted", "declined", "completed")[i % 4]
        rows.append(NodeRow("Match", f"bench-m{i}", {"worker_id": workers[int(rng.integers(len(workers)))],
                                                     "problem_id": problems[int(rng.integers(len(problems)))],
                                                     "state": state, "created_at": month}))
        rows.append(NodeRow("AuditEvent", f"bench-a{i}", {"kind": "invite", "actor": "bench", "at": month}))
    store.apply(WriteBatch(nodes=rows))


def naive_recommend(rec: Recommender, problem: dict[str, Any], n: int = 10) -> list[Recommendation]:
    """Brute force: every signal for every eligible worker, the walk by power iteration over the whole graph."""
    idx = rec.index
    query = vectorise(idx, rec._query(problem))
    rec._workflow = rec._read_workflow()
    everyone = rec._eligible(query, np.arange(idx.n_workers))
    feats, evidence = compute_features(idx, [query], [everyone], ppr=False, keep_evidence=True,
                                       damping=rec.config.damping)  # exact cosines to every history problem
    f = feats[0]
    sims = evidence[0].word_sims
    sk = [rec.projection.index["Skill"][s] for s in query.skills if s in rec.projection.index["Skill"]]
    seed = seed_vector(idx, query, (np.arange(len(sims)), sims), sk).toarray().ravel()
    walk = personalized_pagerank(idx.walk, seed.astype(np.float32), damping=rec.config.damping, tol=1e-5,
                                 max_iter=200)
    w0 = idx.walk_offset["Worker"]
    f[:, FEATURES.index("ppr")] = np.log1p(walk[w0 + everyone] * idx.walk_size)
    fused = rec.fusion.decision_function(f, np.zeros(len(f), dtype=np.int64))
    cfg = rec.config
    ids = rec.projection.ids["Worker"]
    declined = declined_similarity(idx, query, everyone, rec._workflow, DeclinedRows(idx, rec._workflow))
    load = np.array([rec._workflow.load.get(ids[w], 0) for w in everyone], dtype=np.float64)
    cap = idx.worker_capacity[everyone]
    share = np.divide(load, cap, out=np.zeros_like(load), where=np.isfinite(cap) & (cap > 0))
    score = fused - cfg.decline_weight * declined - cfg.load_weight * share
    order = np.lexsort((everyone, -score))[:n]
    return [Recommendation(ids[int(everyone[j])], float(score[j]), {"fused": float(fused[j])},
                           build_explanation(idx, query, int(everyone[j]), f[j], evidence[0].word_sims,
                                             load=int(load[j]), capacity=float(cap[j]),
                                             declined_similar=float(declined[j])))
            for j in order]


def _naive_from_store(store: MemoryStore, rec: Recommender, problem: dict[str, Any]) -> list[tuple[str, float]]:
    """Brute force without the projection: every worker's history read from the store, cosine top-3."""
    text = rec.index.text
    q = text.transform([problem_text(problem)]).word
    scores = []
    for worker in store.iter_nodes("Worker"):
        rels = store.relationships("SOLVED", start=("Worker", worker["id"]))
        texts = [problem_text(store.get_node("Problem", r.end_id) or {}) for r in rels]
        if texts:
            sims = np.sort((text.transform(texts).word @ q.T).toarray().ravel())[::-1]
            scores.append((worker["id"], float(sims[:3].sum())))
        else:
            scores.append((worker["id"], 0.0))
    scores.sort(key=lambda s: -s[1])
    return scores[:10]


def _stage_breakdown(rec: Recommender, queries: list[dict[str, Any]], n_profile: int,
                     first_pass: list[float] | None = None) -> None:
    """Where one query's time goes: wall clock per stage of ``recommend`` (timers wrapped around the engine's
    steps for one more pass over the queries), then a cProfile of ``n_profile`` queries (top functions by own
    time). Stages nest: ``features`` includes ``ppr walk`` and ``text rows``."""
    stages: dict[str, list[float]] = {}
    current: dict[str, float] = {}

    def timed(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrap(*a: Any, **k: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                current[name] = current.get(name, 0.0) + time.perf_counter() - t
        return wrap

    patches: list[tuple[Any, str, Any]] = [
        (rec, "_current_workflow", "workflow read"), (rec, "_query", "query parse"),
        (engine_module, "vectorise", "query analysis (once)"), (rec, "_similar", "text: similar problems"),
        (engine_module, "generate_candidates", "candidates (incl. profile text)"),
        (rec, "_eligible", "eligibility filter"), (engine_module, "score", "features (all signals)"),
        (features_module, "walk_scores", "  of which ppr walk"),
        (features_module, "_entry_dots", "  of which text rows"),
        (pipeline_module, "declined_similarity", "decline penalty"),
        (pipeline_module, "build_explanation", "explanations"),
    ]
    saved = [(obj, attr, obj.__dict__.get(attr)) for obj, attr, _ in patches]
    for obj, attr, name in patches:
        setattr(obj, attr, timed(name, getattr(obj, attr)))
    total: list[float] = []
    per_query: list[dict[str, float]] = []
    try:
        for q in queries:
            current.clear()
            t = time.perf_counter()
            rec.recommend(q, n=10, explain=True)
            total.append(time.perf_counter() - t)
            per_query.append(dict(current))
            for name, v in current.items():
                stages.setdefault(name, []).append(v)
    finally:
        for obj, attr, old in saved:
            if old is None:
                delattr(obj, attr)
            else:
                setattr(obj, attr, old)
    tot = float(np.median(total))
    print(f"stages (wall, {len(queries)} queries, timers on; total p50 {tot * 1000:.1f} ms):", flush=True)
    for _, _, name in patches:
        ms = np.asarray(stages.get(name, [0.0])) * 1000.0
        print(f"  {name:34s} p50 {np.percentile(ms, 50):7.1f}  p95 {np.percentile(ms, 95):7.1f} ms  "
              f"({np.median(ms) / (tot * 1000):.0%} of the p50 total)", flush=True)
    slowest = list(np.argsort(total)[::-1][:3])
    print("  the slowest queries (what the tail is made of), ms per stage:", flush=True)
    if first_pass is not None:  # and the queries that were slowest when first ranked (the measured pass)
        slowest += [j for j in np.argsort(first_pass[:len(queries)])[::-1][:3] if j not in slowest]
    for j in slowest:
        parts = ", ".join(f"{name.strip()} {per_query[j].get(name, 0.0) * 1000:.1f}" for _, _, name in patches
                          if per_query[j].get(name, 0.0) >= 0.001)
        first = f" (first ranked in {first_pass[j] * 1000:.1f})" if first_pass is not None else ""
        print(f"    query {j}: total {total[j] * 1000:.1f}{first}: {parts}", flush=True)
    if n_profile:
        prof = cProfile.Profile()
        prof.enable()
        for q in queries[:n_profile]:
            rec.recommend(q, n=10, explain=True)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(12)
        print(f"cProfile of {n_profile} queries, top 12 by own time:", flush=True)
        print("\n".join(line for line in out.getvalue().splitlines()[4:] if line.strip()), flush=True)


def _refresh_costs(store: MemoryStore, rec: Recommender, query: dict[str, Any]) -> None:
    """What keeping up with writes costs: workflow write, a posted problem, a solved problem, a rebuild."""
    def one(label: str, write: Callable[[], object]) -> None:
        write()
        _, wall, cpu = _timed(rec.refresh)
        _, qwall, qcpu = _timed(lambda: rec.recommend(query, n=10))
        print(f"  refresh after {label:38s} {wall * 1000:9.1f} ms wall {cpu * 1000:9.1f} ms CPU "
              f"({rec.last_refresh}); next recommendation {qwall * 1000:.1f} ms wall {qcpu * 1000:.1f} ms CPU",
              flush=True)

    worker = rec.projection.ids["Worker"][0]
    one("a recommendation's audit event + match", lambda: store.apply(WriteBatch(nodes=[
        NodeRow("AuditEvent", "bench-audit", {"kind": "recommend", "actor": "bench"}),
        NodeRow("Match", "bench-match", {"worker_id": worker, "problem_id": "bench-p1", "state": "invited",
                                         "created_at": date.today().isoformat() + "T10:00:00"})])))
    one("a problem is posted", lambda: store.apply(WriteBatch(
        nodes=[NodeRow("Problem", "bench-p1", dict(query, status="open", posted_at="2026-06-30"))],
        rels=[RelRow("REQUIRES", "Problem", "bench-p1", "Skill", s) for s in query.get("skills") or []
              if store.get_node("Skill", s)])))
    one("that problem is solved (SOLVED + status)", lambda: store.apply(WriteBatch(
        nodes=[NodeRow("Problem", "bench-p1", {"status": "solved", "solved_at": "2026-07-02"})],
        rels=[RelRow("SOLVED", "Worker", worker, "Problem", "bench-p1", {"rating": 5, "at": "2026-07-02"})])))
    one("a worker is edited (capacity)", lambda: store.update_node("Worker", worker, {"capacity": 9}))
    _, wall, cpu = _timed(rec.rebuild)
    print(f"  full rebuild (projection from the store, text fit, index, calibration) {wall:.1f} s wall "
          f"{cpu:.1f} s CPU", flush=True)


def bench(scale: float, n_queries: int, n_naive: int, n_naive_store: int, n_matches: int, seed: int,
          cache_dir: Path, refresh: bool, n_stages: int = 0, n_profile: int = 0, encoder: Any = None) -> None:
    print(f"\n=== scale {scale:g} ({_load()}) ===", flush=True)
    directory, t_gen, c_gen = _timed(lambda: _dataset(cache_dir, scale, seed))
    store = MemoryStore(None)
    _, t_load, c_load = _timed(lambda: load_dataset(store, directory))
    _add_matches(store, n_matches, seed)
    counts = store.counts()
    model_dir = Path(tempfile.mkdtemp(prefix="jianglian-lat-models-"))  # empty: configured weights
    rec, t_build, c_build = _timed(lambda: Recommender(store, encoder=encoder, config=RankConfig(model_dir=model_dir)))
    print(f"workers {counts.get('Worker', 0):,}, problems {counts.get('Problem', 0):,}, "
          f"SOLVED {counts.get('SOLVED', 0):,}, matches {counts.get('Match', 0):,}; dataset {t_gen:.1f} s, "
          f"load {t_load:.1f} s wall / {c_load:.1f} s CPU, build {t_build:.1f} s wall / {c_build:.1f} s CPU "
          f"({rec.model_version}; {rec.index.describe()}); peak RSS {peak_mb():,.0f} MB", flush=True)

    problems = [p for p in rec.projection.props["Problem"] if p.get("status") == "solved"]
    rng = np.random.default_rng(seed)
    picked = [problems[i] for i in rng.choice(len(problems), size=min(n_queries, len(problems)), replace=False)]
    queries = [{k: p.get(k) for k in _FIELDS} for p in picked]
    rec.recommend(queries[0], n=10)  # warm-up
    wall: list[float] = []
    cpu: list[float] = []
    results = []
    collections: list[tuple[int, float]] = []  # (generation, seconds) of the garbage collections during the queries
    started: list[float] = []

    def on_gc(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            started[:] = [time.perf_counter()]
        elif started:
            collections.append((info["generation"], time.perf_counter() - started[0]))

    gc.callbacks.append(on_gc)
    try:
        for q in queries:
            recs, w, c = _timed(functools.partial(rec.recommend, q, n=10, explain=True))
            wall.append(w)
            cpu.append(c)
            results.append(recs)
            assert len(recs) == 10 and all(r.explanation is not None for r in recs)
    finally:
        gc.callbacks.remove(on_gc)
    print(f"product   wall {_pct(wall)}  | CPU {_pct(cpu)}  ({_load()}); peak RSS {peak_mb():,.0f} MB", flush=True)
    full = [t for g, t in collections if g == 2]
    print(f"  garbage collections during the queries: {len(collections)} ({len(full)} full, "
          f"{sum(full) * 1000:,.0f} ms in all, longest {max(full, default=0.0) * 1000:,.0f} ms; "
          f"{sum(t for g, t in collections if g < 2) * 1000:,.1f} ms in the young generations)", flush=True)
    if n_stages:
        _stage_breakdown(rec, queries[:n_stages], n_profile, wall)

    brute = copy.copy(rec)
    brute.config = dataclasses.replace(rec.config, max_candidates=10**9)
    n_naive = min(n_naive, len(queries))
    nwall: list[float] = []
    ncpu: list[float] = []
    agree = 0
    for q, recs in zip(queries[:n_naive], results[:n_naive], strict=True):
        full, w, c = _timed(functools.partial(naive_recommend, brute, q))
        nwall.append(w)
        ncpu.append(c)
        agree += len({r.worker_id for r in full} & {r.worker_id for r in recs})
    print(f"naive     wall {_pct(nwall)}  | CPU {_pct(ncpu)}  ({n_naive} queries; {_load()})", flush=True)
    print(f"  ratio naive/product: p50 wall {np.median(nwall) / np.median(wall[:n_naive]):.1f}x, "
          f"p95 wall {np.percentile(nwall, 95) / np.percentile(wall[:n_naive], 95):.1f}x, "
          f"p50 CPU {np.median(ncpu) / np.median(cpu[:n_naive]):.1f}x, "
          f"p95 CPU {np.percentile(ncpu, 95) / np.percentile(cpu[:n_naive], 95):.1f}x; "
          f"top-10 overlap with brute force {agree / (10 * max(n_naive, 1)):.1%}", flush=True)
    if n_naive_store:
        slow = [_timed(functools.partial(_naive_from_store, store, rec, q))[1] for q in queries[:n_naive_store]]
        print(f"naive from the store (text top-3 only, {len(slow)} queries): wall {_pct(slow)}; "
              f"ratio p50 {np.median(slow) / np.median(wall):.0f}x", flush=True)
    if refresh:
        _refresh_costs(store, rec, queries[0])
    print(f"peak RSS {peak_mb():,.0f} MB", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 45.0])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--naive-queries", type=int, default=30)
    parser.add_argument("--naive-store-queries", type=int, default=0)
    parser.add_argument("--matches", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "jianglian-latency-data")
    parser.add_argument("--no-refresh", action="store_true", help="skip the refresh measurements")
    parser.add_argument("--stages", type=int, default=0, help="time the stages of recommend on this many queries")
    parser.add_argument("--profile", type=int, default=0, help="cProfile this many queries (with --stages)")
    parser.add_argument("--encoder", default="none",
                        help="dense encoder of the ranking (use-multilingual-v3 is served by default); none: TF-IDF")
    args = parser.parse_args(argv)
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    encoder = None
    if args.encoder.lower() != "none":
        from embeddings.encoder import load_encoder

        encoder = load_encoder(args.encoder)
    machine = platform.processor() or platform.machine()
    print(f"{datetime.now().isoformat(timespec='seconds')} {platform.node()} {machine}, {os.cpu_count()} CPUs, "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}, {_load()}", flush=True)
    for scale in args.scales:
        bench(scale, args.queries, args.naive_queries, args.naive_store_queries, args.matches, args.seed,
              args.cache_dir, not args.no_refresh, args.stages, args.profile, encoder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
