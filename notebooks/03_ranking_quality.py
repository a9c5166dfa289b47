# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 03 · Ranking quality
#
# How well does the ranker put the worker who actually solved a problem near the top? This notebook replays
# history and reads the external benchmark:
#
# 1. **time-split replay** of the graph's own history: the newest 20% of solved problems (by `posted_at`) are
#    ranked over *all* workers using only what was posted before them; every solver counts as relevant;
# 2. **ablation**: the fused ranker against each single signal, and the learned correction against the
#    query-normalised default fusion;
# 3. **breakdowns** per service type and per industry chain;
# 4. the **gis-stackexchange** benchmark (real StackExchange experts) as measured in `docs/ranking.md`.
#
# The replay goes through `recommender.evaluate.evaluate_dataset`, the function behind `jianglian evaluate`: the
# history is written as a dataset directory, the test problems as a queries file (no candidates: every worker is
# ranked), and the function loads the history into a fresh store, learns the fusion from that history alone
# (`recommender.training.train_ranker`, its own inner time split) and ranks. The test problems are not in that
# store at all, so nothing about them can leak. `benchmarks/ranking_bench.py` runs the same split with the test
# problems kept in the graph (their `SOLVED` edges masked) and also scores "text only" / "graph only" signal
# groups; its numbers are in `docs/ranking.md` and differ slightly from the ones here.
#
# Metrics (`recommender.metrics`): MRR, P@1, P@3 (a relevant worker in the top 1 / 3) and nDCG@10, with ties
# broken against the relevant worker (a ranker that scores everybody the same earns the worst rank).

# %%
import json
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import display

import graph
from demo.research import configure_cjk_matplotlib, open_research_store
from graph.dataset import export_dataset
from recommender.evaluate import evaluate_dataset
from recommender.metrics import QueryResult, pessimistic_ranks, summarise

font = configure_cjk_matplotlib()
ROOT = Path(graph.__file__).resolve().parents[1]
store = open_research_store()
print(f"store: {store.kind}")
scratch_dir = tempfile.TemporaryDirectory(prefix="jianglian-nb-replay-")  # removed in the last cell
work = Path(scratch_dir.name)
export_dataset(store, work / "all")
enterprises = {e["id"]: e for e in store.iter_nodes("Enterprise")}
store.close()

# %% [markdown]
# ## 1. The time split
#
# Problems are ordered by `posted_at` (then id). The newest 20% of the *solved* ones are the test window; the
# history is every problem posted before the first of them (solved or open). Files other than `problems.jsonl`
# (workers, enterprises, the taxonomy) are copied unchanged.

# %%
TEST_SHARE = 0.2
rows = [json.loads(line) for line in (work / "all" / "problems.jsonl").read_text(encoding="utf-8").splitlines()]
order = sorted(rows, key=lambda p: (str(p.get("posted_at") or ""), p["id"]))
solved_rows = [p for p in order if p.get("solved_by")]
test = solved_rows[len(solved_rows) - round(len(solved_rows) * TEST_SHARE):]
cut = order.index(test[0])
history = order[:cut]

(work / "history").mkdir()
for path in (work / "all").glob("*.jsonl"):
    if path.name != "problems.jsonl":
        (work / "history" / path.name).write_bytes(path.read_bytes())
(work / "history" / "problems.jsonl").write_text(
    "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in history), encoding="utf-8")
QUERY_FIELDS = ("title", "description", "skills", "enterprise_id", "district", "service_type")
with open(work / "queries.jsonl", "w", encoding="utf-8") as fh:
    for p in test:
        query = {"id": p["id"], "problem": {k: p[k] for k in QUERY_FIELDS if p.get(k) is not None},
                 "expected": p["solved_by"]}
        fh.write(json.dumps(query, ensure_ascii=False) + "\n")
print(f"history: {len(history)} problems posted before {test[0].get('posted_at')}; "
      f"test: {len(test)} solved problems posted {test[0].get('posted_at')} .. {test[-1].get('posted_at')}")

# %% [markdown]
# ## 2. Replay: the chosen fusion, the default fusion and every single signal
#
# Two runs of `evaluate_dataset`: `fusion="auto"` (the learned correction when it beats the query-normalised
# default with confidence, a paired bootstrap over the history's pseudo-queries; the run's choice and its reason
# are printed) and `fusion="default"` (every signal z-scored within the query, the signal families weighted
# equally, nothing fitted). `ablation=True` also scores each single signal on the same queries. The dense signals
# are off here (`encoder=None`) to keep the notebook fast; `docs/ranking.md` has the ablation with them.

# %%
def replay(fusion: str):
    out = work / f"ranked-{fusion}.jsonl"
    report = evaluate_dataset(work / "history", work / "queries.jsonl", out, seed=7, fusion=fusion, ablation=True)
    ranked = {}
    for line in out.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        ranked[row["id"]] = {r["worker_id"]: r["score"] for r in row["ranking"]}
    return report, ranked


auto, ranked_auto = replay("auto")
weights, ranked_weights = replay("default")
print(f"chosen by auto: {auto.chosen} ({auto.model_version}): {auto.why}; "
      f"{auto.timings['total']:.0f} s + {weights.timings['total']:.0f} s")
display(pd.DataFrame(auto.validation).T.round(4).rename_axis("validation on the history's pseudo-queries"))

# %%
METRICS = ["MRR", "P@1", "P@3", "nDCG@10"]
table = {f"fused: {auto.chosen} (auto)": auto.metrics, "fused: query-normalised default": weights.metrics}
table.update({f"single: {name}": m for name, m in auto.ablation.items()})
ablation = pd.DataFrame(table).T[METRICS].sort_values("nDCG@10", ascending=False)
display(ablation.round(4))

fig, ax = plt.subplots(figsize=(9, 6))
colours = ["#c44e52" if name.startswith("fused") else "#4c72b0" for name in ablation.index]
ax.barh(ablation.index, ablation["nDCG@10"], color=colours)
ax.invert_yaxis()
ax.set_xlabel("nDCG@10 over the test window")
ax.set_title(f"ablation: {len(test)} test problems ranked over all workers (red: fused)")

# %% [markdown]
# Reading the table: the graph signals (`ppr`, the personalised PageRank from the problem's skills, similar
# problems, enterprise, chain and district; `skill_*`) carry more than the text signals (`text_*`, `char_*`,
# `bm25`), and the learned correction beats every single signal. Compare the two fused rows: the default weighs
# the signal families equally, a prior not fitted to this data; the learned correction picks up that district
# and prior work for the same enterprise matter more here (see `docs/ranking.md`). `popularity` and `district`
# alone are weak: `district` has three values, so most workers tie and ties are broken against the relevant
# worker.
#
# Where does the relevant worker land? The share of test problems with a solver in the top *k*:

# %%
def ranks_of(ranked):
    """The pessimistic rank of every solver of every test problem."""
    return {p["id"]: pessimistic_ranks(ranked[p["id"]], p["solved_by"]) for p in test}


best_rank = {name: pd.Series({pid: min(r) for pid, r in ranks_of(ranked).items()})
             for name, ranked in ((f"fused: {auto.chosen}", ranked_auto), ("fused: default", ranked_weights))}
ks = list(range(1, 51))
fig, ax = plt.subplots(figsize=(7, 4))
for name, ranks in best_rank.items():
    ax.plot(ks, [(ranks <= k).mean() for k in ks], label=name)
ax.set_xlabel("k (out of all workers)")
ax.set_ylabel("test problems with a solver in the top k")
ax.set_ylim(0, 1)
ax.grid(alpha=0.3)
ax.legend()

# %% [markdown]
# ## 3. Per service type and per industry chain
#
# The same test queries grouped by the problem's service type (技术帮扶, 技能培训, ...) and by the industry chain
# of the posting enterprise. Small groups are noisy: the `n` column says how many test problems each has.

# %%
def breakdown(key):
    groups = {}
    for p in test:
        groups.setdefault(key(p), []).append(p["id"])
    out = []
    for name, ranked in ((f"fused: {auto.chosen}", ranked_auto), ("fused: default", ranked_weights)):
        ranks = ranks_of(ranked)
        for group, ids in groups.items():
            m = summarise(QueryResult(pid, tuple(ranks[pid])) for pid in ids)
            out.append({"group": group, "ranker": name, "n": len(ids), **{k: m[k] for k in METRICS}})
    frame = pd.DataFrame(out)
    wide = frame.pivot_table(index=["group", "n"], columns="ranker", values="nDCG@10").reset_index("n")
    return wide.sort_values("n", ascending=False)


by_service = breakdown(lambda p: p.get("service_type") or "（未填）")
by_chain = breakdown(lambda p: (enterprises.get(p.get("enterprise_id")) or {}).get("industry_chain") or "（无）")
display(by_service.round(4))
display(by_chain.round(4))

fig, axes = plt.subplots(1, 2, figsize=(15, 7), gridspec_kw={"width_ratios": [1, 1.6]})
by_service.drop(columns="n").plot.barh(ax=axes[0], title="nDCG@10 per service type (服务类型)")
by_chain.drop(columns="n").plot.barh(ax=axes[1], title="nDCG@10 per industry chain (产业链)")
for ax, frame in zip(axes, (by_service, by_chain), strict=True):
    ax.set_yticks(range(len(frame)), [f"{g} (n={n})" for g, n in zip(frame.index, frame["n"], strict=True)])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
fig.tight_layout()

# %% [markdown]
# ## 4. The gis-stackexchange benchmark
#
# An external expert-finding benchmark: 32,939 past gis.stackexchange questions with their answerers, and new
# questions each with 20 candidate answerers (the true one and 19 sampled). Only titles and tags exist there (no
# enterprises, districts, dates or service types), so it tests the text and skill signals and the learned fusion.
#
# Evaluating it loads the 33k-problem history and trains the fusion on it: a few minutes of CPU, too much for a
# notebook that runs in CI. The numbers below are read from `docs/ranking.md`, where they were measured with
#
# ```
# jianglian evaluate ../shared/benchmarks/gis-stackexchange \
#     --queries ../shared/benchmarks/gis-stackexchange/queries-test.jsonl --out test.jsonl --ablation
# ```
#
# Set `JIANGLIAN_NOTEBOOK_GIS=<n>` before starting Jupyter to also run the real `evaluate_dataset` here on the
# first *n* dev queries (the cost is the history, not *n*).

# %%
doc = (ROOT / "docs" / "ranking.md").read_text(encoding="utf-8")
section = next(s for s in doc.split("\n## ") if s.startswith("gis-stackexchange"))
lines = [line for line in section.splitlines() if line.startswith("|")]
header = [c.strip() for c in lines[0].strip("|").split("|")]
gis = pd.DataFrame([[c.replace("**", "").replace("`", "").strip() for c in line.strip("|").split("|")]
                    for line in lines[2:]], columns=header).set_index(header[0])
gis = gis.apply(pd.to_numeric, errors="coerce")
display(gis)

test_mrr = gis["test MRR"].dropna().sort_values()
fig, ax = plt.subplots(figsize=(8, 5.5))
ax.barh(test_mrr.index, test_mrr.values,
        color=["#999999" if n.startswith("reference") else "#c44e52" if "chosen" in n else "#4c72b0"
               for n in test_mrr.index])
ax.set_xlabel("test MRR (20 candidates per question)")
ax.set_title("gis-stackexchange test set, from docs/ranking.md (grey: the benchmark's reference rankers)")

# %%
GIS_QUERIES = int(os.environ.get("JIANGLIAN_NOTEBOOK_GIS", "0") or 0)
gis_dir = Path(os.environ.get("JIANGLIAN_GIS_DIR", ROOT.parent / "shared" / "benchmarks" / "gis-stackexchange"))
if GIS_QUERIES > 0:
    dev_lines = (gis_dir / "queries-dev.jsonl").read_text(encoding="utf-8").splitlines()[:GIS_QUERIES]
    (work / "gis-dev.jsonl").write_text("\n".join(dev_lines) + "\n", encoding="utf-8")
    live = evaluate_dataset(gis_dir, work / "gis-dev.jsonl", work / "gis-ranked.jsonl", ablation=True, log=print)
    display(pd.DataFrame({f"learned ({live.chosen})": live.metrics, **live.ablation}).T[METRICS].round(4))
else:
    print("JIANGLIAN_NOTEBOOK_GIS is not set: gis-stackexchange was not run live (see the table above)")

# %%
scratch_dir.cleanup()
