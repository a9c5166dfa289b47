"""Embeddings benchmark: encoder throughput, vector search latency/recall, and retrieval quality (hit@10).

Prints markdown tables (the numbers in docs/embeddings.md come from here)::

    .venv/bin/python benchmarks/embeddings_bench.py                      # everything (1M search takes minutes)
    .venv/bin/python benchmarks/embeddings_bench.py --sections search --sizes 10000,100000
    .venv/bin/python benchmarks/embeddings_bench.py --sections ann-compare --sizes 100000
    .venv/bin/python benchmarks/embeddings_bench.py --sections quality,encode
    .venv/bin/python benchmarks/embeddings_bench.py --sections method --no-gis

Sections
--------
encode       sentences/s of the built encoder (trained here on the demo data) and of all-MiniLM-L6-v2,
             and the build time of the encoder on the demo data and on gis-stackexchange (~30k texts).
search       single-query latency p50/p95 for k=50, exact vs the index's HNSW, recall@50 of HNSW against
             exact, HNSW build time; data: random but clustered unit vectors (dim 256, ~1000 per cluster).
ann-compare  hnswlib vs faiss IndexHNSWFlat vs usearch at the same M / ef: build time, latency, recall.
method       hit@10 on the demo data of the build's stages (LSA initialisation only, + token weights,
             + token vectors = the default) against character TF-IDF, same seeded holdouts: why the method.
quality      hit@10 (a held-out problem's 10 nearest training problems include one solved by a true
             solver) of the built encoder, all-MiniLM-L6-v2 and plain TF-IDF, on the demo data and on
             gis-stackexchange, seeded 10% holdout; the encoder is built on the training part only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from embeddings.builder import BuildConfig, build_encoder, mine_grouped_pairs  # noqa: E402
from embeddings.encoder import load_encoder  # noqa: E402
from embeddings.index import VectorIndex, exact_top_k  # noqa: E402
from embeddings.quality import Split, hit_at_k, holdout_split, tfidf_vectors  # noqa: E402
from embeddings.texts import problem_text, worker_text  # noqa: E402

GIS = REPO.parent / "shared" / "benchmarks" / "gis-stackexchange"
Dataset = tuple[dict[str, str], dict[str, list[str]], dict[str, str]]  # problem texts, solvers, profiles
Analyzer = Literal["char", "word"]


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print a markdown table."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---" for _ in header) + "|")
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row) + " |")
    sys.stdout.flush()


def clustered_vectors(n: int, dim: int, *, seed: int, per_cluster: int = 1000, spread: float = 1.0) -> np.ndarray:
    """Unit vectors around ``n / per_cluster`` random centres (within-cluster cosine about 0.5)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // per_cluster), dim), dtype=np.float32)
    out = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):
        m = min(100_000, n - start)
        block = centres[rng.integers(len(centres), size=m)] + spread * rng.standard_normal((m, dim), dtype=np.float32)
        out[start : start + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def latencies(fn: Callable[[np.ndarray], Any], queries: np.ndarray) -> tuple[float, float]:
    """p50 and p95 in milliseconds of one call per query."""
    times = []
    for q in queries:
        start = time.perf_counter()
        fn(q[None, :])
        times.append(time.perf_counter() - start)
    return float(np.percentile(times, 50) * 1e3), float(np.percentile(times, 95) * 1e3)


def recall(got: np.ndarray | list[list[Any]], want: np.ndarray | list[list[Any]], k: int) -> float:
    return float(np.mean([len(set(list(g)[:k]) & set(list(w)[:k])) / k for g, w in zip(got, want, strict=True)]))


# -- search ---------------------------------------------------------------------------------------


def bench_search(sizes: Sequence[int], *, dim: int, k: int, n_queries: int, results: dict[str, Any]) -> None:
    rows = []
    for n in sizes:
        data = clustered_vectors(n + n_queries, dim, seed=n)
        vectors, queries = data[:n], data[n:]
        ids = [str(i) for i in range(n)]
        exact = VectorIndex(vectors, ids, backend="exact")
        start = time.perf_counter()
        truth, _ = exact_top_k(queries, vectors, k)
        batch_s = time.perf_counter() - start
        exact_p50, exact_p95 = latencies(partial(exact.search, k=k), queries[:100])
        start = time.perf_counter()
        ann = VectorIndex(vectors, ids, backend="hnsw")
        build_s = time.perf_counter() - start
        got, _ = ann.search(queries, k)
        rec = recall([[int(i) for i in row] for row in got], truth, k)
        ann_p50, ann_p95 = latencies(partial(ann.search, k=k), queries)
        rows.append([f"{n:,}", f"{exact_p50:.2f}", f"{exact_p95:.2f}", f"{ann_p50:.2f}", f"{ann_p95:.2f}",
                     f"{rec:.4f}", f"{build_s:.1f}", f"{batch_s / n_queries * 1e3:.2f}"])
        results.setdefault("search", []).append({"n": n, "exact_p50_ms": exact_p50, "exact_p95_ms": exact_p95,
                                                 "ann_p50_ms": ann_p50, "ann_p95_ms": ann_p95,
                                                 "recall_at_k": rec, "ann_build_s": build_s})
        print(f"  search n={n}: done", file=sys.stderr, flush=True)
        del exact, ann, data, vectors
    table(f"Search, dim {dim}, k={k}, {n_queries} queries (single-query latency in ms)",
          ["vectors", "exact p50", "exact p95", "HNSW p50", "HNSW p95", f"HNSW recall@{k}", "HNSW build s",
           "exact batched ms/query"], rows)


AnnLib = tuple[Callable[[], Any], Callable[[Any, int], None], Callable[[Any, np.ndarray], Any]]


def ann_libraries(vectors: np.ndarray, *, k: int, m: int, ef_construction: int) -> dict[str, AnnLib]:
    """``name -> (build, set_ef, search)`` for each candidate ANN library, with the same graph parameters."""
    import faiss
    import hnswlib
    from usearch.index import Index as UIndex

    n, dim = vectors.shape

    def h_build() -> Any:
        idx = hnswlib.Index(space="ip", dim=dim)
        idx.init_index(max_elements=n, M=m, ef_construction=ef_construction, random_seed=0)
        idx.add_items(vectors, np.arange(n))
        return idx

    def h_ef(idx: Any, ef: int) -> None:
        idx.set_ef(max(ef, k))

    def f_build() -> Any:
        idx = faiss.IndexHNSWFlat(dim, m, faiss.METRIC_INNER_PRODUCT)
        idx.hnsw.efConstruction = ef_construction
        idx.add(vectors)
        return idx

    def f_ef(idx: Any, ef: int) -> None:
        idx.hnsw.efSearch = ef

    def u_build() -> Any:
        idx = UIndex(ndim=dim, metric="ip", dtype="f32", connectivity=m, expansion_add=ef_construction)
        idx.add(np.arange(n), vectors)
        return idx

    def u_ef(idx: Any, ef: int) -> None:
        idx.expansion_search = ef

    return {
        "hnswlib": (h_build, h_ef, lambda idx, q: idx.knn_query(q, k=k)[0]),
        "faiss HNSWFlat": (f_build, f_ef, lambda idx, q: idx.search(q, k)[1]),
        "usearch": (u_build, u_ef, lambda idx, q: np.atleast_2d(idx.search(q, k).keys)),
    }


def bench_ann_compare(sizes: Sequence[int], *, dim: int, k: int, n_queries: int, m: int, ef_construction: int,
                      efs: Sequence[int], libraries: Sequence[str] | None, results: dict[str, Any]) -> None:
    rows = []
    for n in sizes:
        data = clustered_vectors(n + n_queries, dim, seed=n)
        vectors, queries = data[:n], data[n:]
        truth, _ = exact_top_k(queries, vectors, k)
        for name, (build, set_ef, search) in ann_libraries(vectors, k=k, m=m, ef_construction=ef_construction).items():
            if libraries and not any(name.startswith(lib) for lib in libraries):
                continue
            start = time.perf_counter()
            index = build()
            build_s = time.perf_counter() - start
            for ef in efs:
                set_ef(index, ef)
                got = search(index, queries)
                rec = recall(got, truth, k)
                p50, p95 = latencies(partial(search, index), queries)
                rows.append([f"{n:,}", name, ef, f"{rec:.4f}", f"{p50:.2f}", f"{p95:.2f}", f"{build_s:.1f}"])
                results.setdefault("ann_compare", []).append({"n": n, "library": name, "ef": ef, "recall": rec,
                                                              "p50_ms": p50, "p95_ms": p95, "build_s": build_s})
            del index
            print(f"  ann-compare n={n} {name}: done", file=sys.stderr, flush=True)
    table(f"ANN libraries, M={m}, ef_construction={ef_construction}, dim {dim}, k={k} (latency ms, one query)",
          ["vectors", "library", "ef", f"recall@{k}", "p50", "p95", "build s"], rows)


# -- datasets -----------------------------------------------------------------------------------------


def load_jsonl(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def read_dataset(directory: Path) -> Dataset:
    problems = [p for p in load_jsonl(directory / "problems.jsonl") if p.get("solved_by")]
    workers = load_jsonl(directory / "workers.jsonl")
    return ({p["id"]: problem_text(p) for p in problems}, {p["id"]: list(p["solved_by"]) for p in problems},
            {w["id"]: worker_text(w) for w in workers})


def demo_dataset(scale: float, seed: int) -> Dataset | None:
    try:
        from demo.generator import generate
    except ImportError:
        return None
    out = Path(tempfile.mkdtemp(prefix="jianglian-demo-"))
    generate(out, scale=scale, seed=seed)
    return read_dataset(out)


def build_on(data: Dataset, train_ids: Sequence[str], out: Path, seed: int = 0,
             config: BuildConfig | None = None) -> tuple[Path, float]:
    problems, solved_by, profiles = data
    train = {p: problems[p] for p in train_ids}
    pairs, groups = mine_grouped_pairs(train, solved_by, profiles, seed=seed)
    cfg = config or BuildConfig()
    start = time.perf_counter()
    build_encoder([*train.values(), *profiles.values()], pairs, out, seed=seed, dim=cfg.dim, epochs=cfg.epochs,
                  groups=groups, config=cfg, show_progress=False)
    return out, time.perf_counter() - start


# -- quality ------------------------------------------------------------------------------------------


def bench_quality(datasets: dict[str, tuple[Dataset, Analyzer]], *, seeds: Sequence[int], work: Path,
                  results: dict[str, Any]) -> None:
    rows = []
    minilm = load_encoder("all-MiniLM-L6-v2")
    for name, (data, analyzer) in datasets.items():
        problems, solved_by, _ = data
        scores: dict[str, list[float]] = {"built": [], "minilm": [], "tfidf": []}
        build_times = []
        for seed in seeds:
            split: Split = holdout_split(sorted(problems), fraction=0.1, seed=seed)
            path, build_s = build_on(data, split.train, work / f"{name}-{seed}")
            build_times.append(build_s)
            built = load_encoder(str(path))
            scores["built"].append(hit_at_k(partial(built.encode, batch_size=256), problems, solved_by, split))
            scores["minilm"].append(hit_at_k(lambda t: minilm.encode(t, batch_size=64), problems, solved_by, split))
            train_texts = [problems[p] for p in split.train]
            scores["tfidf"].append(hit_at_k(tfidf_vectors(train_texts, analyzer=analyzer), problems, solved_by, split))
            print(f"  quality {name} seed {seed}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in scores.items()),
                  file=sys.stderr, flush=True)
        held_out = round(len(problems) * 0.1)
        baseline = "char 1-3 gram TF-IDF" if analyzer == "char" else "word 1-2 gram TF-IDF"
        for label, key in (("built (jianglian encoder)", "built"), ("all-MiniLM-L6-v2", "minilm"),
                           (baseline, "tfidf")):
            vals = scores[key]
            rows.append([name, label, f"{np.mean(vals):.3f}", " ".join(f"{v:.3f}" for v in vals),
                         f"{len(seeds)} x {held_out}"])
        results.setdefault("quality", []).append({"dataset": name, "scores": scores, "build_s": build_times})
    table("Retrieval quality: hit@10 on held-out solved problems (seeded 10% holdouts)",
          ["dataset", "encoder", "mean hit@10", "per seed", "holdouts x problems"], rows)


# -- method -----------------------------------------------------------------------------------------

METHOD_VARIANTS: dict[str, BuildConfig] = {
    "LSA initialisation only (no fine-tuning)": BuildConfig(epochs=0, table_epochs=0),
    "LSA + token weights (stage 1 only)": BuildConfig(table_epochs=0),
    "LSA + token weights + token vectors (default)": BuildConfig(),
}


def bench_method(datasets: dict[str, tuple[Dataset, Analyzer]], *, seeds: Sequence[int], work: Path,
                 results: dict[str, Any]) -> None:
    """hit@10 of each build stage and of TF-IDF on the same holdouts (the encoder built on the training part)."""
    rows = []
    for name, (data, analyzer) in datasets.items():
        problems, solved_by, _ = data
        scores: dict[str, list[float]] = {label: [] for label in METHOD_VARIANTS}
        baseline = "char 1-3 gram TF-IDF" if analyzer == "char" else "word 1-2 gram TF-IDF"
        scores[baseline] = []
        build_times: dict[str, list[float]] = {label: [] for label in METHOD_VARIANTS}
        for seed in seeds:
            split: Split = holdout_split(sorted(problems), fraction=0.1, seed=seed)
            for n, (label, cfg) in enumerate(METHOD_VARIANTS.items()):
                path, build_s = build_on(data, split.train, work / f"method-{name}-{seed}-{n}", seed=seed,
                                         config=BuildConfig(**{**cfg.__dict__, "seed": seed}))
                build_times[label].append(build_s)
                built = load_encoder(str(path))
                scores[label].append(hit_at_k(partial(built.encode, batch_size=256), problems, solved_by,
                                              split))
            train_texts = [problems[p] for p in split.train]
            scores[baseline].append(hit_at_k(tfidf_vectors(train_texts, analyzer=analyzer), problems, solved_by,
                                             split))
            print(f"  method {name} seed {seed}: " + ", ".join(f"{v[-1]:.3f}" for v in scores.values()),
                  file=sys.stderr, flush=True)
        held_out = sum(1 for _ in holdout_split(sorted(problems), fraction=0.1, seed=seeds[0]).held_out)
        for label, vals in scores.items():
            secs = build_times.get(label)
            rows.append([name, label, f"{np.mean(vals):.3f}", " ".join(f"{v:.3f}" for v in vals),
                         f"{np.mean(secs):.1f}" if secs else "-", f"{len(seeds)} x {held_out}"])
        results.setdefault("method", []).append({"dataset": name, "scores": scores, "build_s": build_times})
    table("Method: hit@10 per build stage vs TF-IDF (same seeded 10% holdouts; encoder built on the training part)",
          ["dataset", "encoder", "mean hit@10", "per seed", "build s", "holdouts x problems"], rows)


# -- encode -------------------------------------------------------------------------------------------


def bench_encode(datasets: dict[str, tuple[Dataset, Analyzer]], *, work: Path, n_texts: int,
                 results: dict[str, Any]) -> None:
    rows = []
    build_rows = []
    encoders: dict[str, Any] = {}
    for name, (data, _) in datasets.items():
        problems, _, profiles = data
        path, build_s = build_on(data, sorted(problems), work / f"full-{name}")
        info = json.loads((path / "jianglian_build.json").read_text(encoding="utf-8"))
        build_rows.append([name, f"{len(problems) + len(profiles):,}", f"{info['pairs']:,}", info["vocab_size"],
                           f"{build_s:.1f}"])
        encoders[f"built on {name}"] = (load_encoder(str(path)), [*problems.values()])
        results.setdefault("build", []).append({"dataset": name, "texts": len(problems) + len(profiles),
                                                "pairs": info["pairs"], "seconds": build_s})
    table("Encoder build (all solved history of the dataset)", ["dataset", "texts", "pairs", "vocabulary", "seconds"],
          build_rows)
    some = next(iter(encoders.values()))[1]
    encoders["all-MiniLM-L6-v2"] = (load_encoder("all-MiniLM-L6-v2"), some)
    for label, (encoder, texts) in encoders.items():
        sample = (texts * (n_texts // max(1, len(texts)) + 1))[:n_texts]
        encoder.encode(sample[:64])  # warm-up
        start = time.perf_counter()
        encoder.encode(sample, batch_size=64)
        seconds = time.perf_counter() - start
        mean_len = np.mean([len(t) for t in sample])
        rows.append([label, encoder.dim, f"{n_texts:,}", f"{mean_len:.0f}", f"{n_texts / seconds:,.0f}"])
        results.setdefault("encode", []).append({"encoder": label, "sentences_per_s": n_texts / seconds})
    table("Encode throughput (batch 64, CPU)", ["encoder", "dim", "texts", "mean chars", "sentences/s"], rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sections", default="encode,search,quality",
                        help="comma-separated: encode, search, ann-compare, method, quality")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="vector counts for search sections")
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--k", type=int, default=50)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--m", type=int, default=16, help="HNSW M for ann-compare")
    parser.add_argument("--ef-construction", type=int, default=100, help="HNSW ef_construction for ann-compare")
    parser.add_argument("--efs", default="64,96,128", help="ef values for ann-compare")
    parser.add_argument("--libraries", default="", help="ann-compare: only these (hnswlib, faiss, usearch)")
    parser.add_argument("--demo-scale", type=float, default=1.0)
    parser.add_argument("--seeds", default="0,1,2", help="holdout seeds for the demo data (gis uses the first)")
    parser.add_argument("--encode-texts", type=int, default=5000)
    parser.add_argument("--no-gis", action="store_true", help="skip gis-stackexchange (quality and encode)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw numbers here")
    args = parser.parse_args(argv)
    sections = set(args.sections.split(","))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    seeds = [int(s) for s in args.seeds.split(",") if s]
    import torch

    print(f"# embeddings benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, torch threads {torch.get_num_threads()}, "
          f"load average at start {os.getloadavg()[0]:.1f}; python {platform.python_version()}")
    print(f"command: {' '.join([Path(sys.argv[0]).name, *(argv if argv is not None else sys.argv[1:])])}")
    results: dict[str, Any] = {"args": vars(args) | {"json": str(args.json)}}
    work = Path(tempfile.mkdtemp(prefix="jianglian-bench-"))
    datasets: dict[str, tuple[Dataset, Analyzer]] = {}
    if sections & {"quality", "encode", "method"}:
        demo = demo_dataset(args.demo_scale, 7)
        if demo is None:
            print("\n(demo.generator is not available: the demo rows are skipped)")
        else:
            datasets[f"demo (scale {args.demo_scale:g})"] = (demo, "char")
        if not args.no_gis and GIS.is_dir():
            datasets["gis-stackexchange"] = (read_dataset(GIS), "word")
    if "encode" in sections:
        bench_encode(datasets, work=work, n_texts=args.encode_texts, results=results)
    if "method" in sections:
        for name, entry in datasets.items():
            bench_method({name: entry}, seeds=seeds if name.startswith("demo") else seeds[:1], work=work,
                         results=results)
    if "quality" in sections:
        for name, entry in datasets.items():
            bench_quality({name: entry}, seeds=seeds if name.startswith("demo") else seeds[:1], work=work,
                          results=results)
    if "search" in sections:
        bench_search(sizes, dim=args.dim, k=args.k, n_queries=args.queries, results=results)
    if "ann-compare" in sections:
        bench_ann_compare(sizes, dim=args.dim, k=args.k, n_queries=args.queries, m=args.m,
                          ef_construction=args.ef_construction, efs=[int(e) for e in args.efs.split(",")],
                          libraries=[lib for lib in args.libraries.split(",") if lib], results=results)
    print(f"\nload average at end {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
