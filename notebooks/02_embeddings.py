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
# # 02 · Text embeddings of problems
#
# The ranking's "similar past problems" signal needs an encoder that puts problems solved by the same worker
# close together. No pretrained Chinese model can be downloaded where Jianglian runs, so the project builds its
# own (`embeddings.builder.build_encoder`: character n-gram vocabulary, LSA initialisation, contrastive
# fine-tuning on pairs mined from solved history). This notebook:
#
# 1. builds that encoder on the older 90% of solved problems (held-out problems never enter training);
# 2. draws the problems in 2-D, coloured by the industry chain of the posting enterprise;
# 3. lists the nearest neighbours of one held-out problem;
# 4. compares encoders on the held-out problems with `embeddings.quality.hit_at_k`: the built encoder,
#    the same before fine-tuning (LSA only), character TF-IDF and the English `all-MiniLM-L6-v2`.
#
# **Cost.** `jianglian build-encoder` trains for 3 epochs; here the encoder is trained for **1 epoch** (same
# dimension, 256) so the notebook stays within about a minute of CPU, and MiniLM, a transformer that costs
# about 50 ms of CPU per text here, is compared on a **sample** (400 past problems, 100 held-out problems).
# The numbers are therefore a little below what the full build reaches; the ordering is what matters.

# %%
import tempfile
from collections import Counter, defaultdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import display
from sklearn.decomposition import PCA
from sklearn.manifold import TSNE

from demo.research import configure_cjk_matplotlib, open_research_store
from embeddings.builder import build_encoder, mine_grouped_pairs
from embeddings.encoder import load_encoder
from embeddings.index import exact_top_k
from embeddings.quality import Split, hit_at_k, holdout_split, tfidf_vectors
from embeddings.texts import problem_text, worker_text

font = configure_cjk_matplotlib()
store = open_research_store()
print(f"store: {store.kind}")

problems = {p["id"]: p for p in store.iter_nodes("Problem")}
texts = {pid: problem_text(p) for pid, p in problems.items()}
profiles = {w["id"]: worker_text(w) for w in store.iter_nodes("Worker")}
solved_by: dict[str, list[str]] = defaultdict(list)
for rel in store.relationships("SOLVED"):
    solved_by[rel.end_id].append(rel.start_id)
chain_of_enterprise = {e["id"]: e.get("industry_chain") or "（无）" for e in store.iter_nodes("Enterprise")}
chain = {pid: chain_of_enterprise.get(p.get("enterprise_id"), "（无）") for pid, p in problems.items()}
solved = sorted(pid for pid in problems if solved_by.get(pid))
print(f"{len(problems)} problems, {len(solved)} with solvers, {len(profiles)} worker profiles")

# %% [markdown]
# ## 1. Build the encoder on the training part
#
# `holdout_split` keeps 10% of the solved problems aside (seeded). Training pairs are mined from the other 90%
# only (`mine_grouped_pairs`: two problems solved by the same worker, a problem and its solver's profile); the
# unlabelled corpus is the training problems and the worker profiles.

# %%
split = holdout_split(solved, fraction=0.1, seed=0)
train_texts = {pid: texts[pid] for pid in split.train}
pairs, groups = mine_grouped_pairs(train_texts, {pid: solved_by[pid] for pid in split.train}, profiles, seed=0)
corpus = [*train_texts.values(), *profiles.values()]
print(f"{len(split.train)} training problems, {len(split.held_out)} held out; {len(pairs)} training pairs")

scratch_dir = tempfile.TemporaryDirectory(prefix="jianglian-nb-encoder-")  # removed in the last cell
models = Path(scratch_dir.name)
built_path = build_encoder(corpus, pairs, models / "built", dim=256, epochs=1, seed=0, groups=groups,
                           show_progress=False, progress=print)
lsa_path = build_encoder(corpus, [], models / "lsa", dim=256, epochs=0, seed=0, show_progress=False)
built = load_encoder(str(built_path))
lsa = load_encoder(str(lsa_path))
print(built, built.identity)

# %% [markdown]
# ## 2. Problems in two dimensions, coloured by industry chain
#
# Each problem's 256-dimensional vector is reduced to 50 dimensions by PCA, then to 2 by t-SNE (600 problems
# sampled, seeded; t-SNE is the expensive step). The eight largest chains have colours, the rest are grey.
# Chains with their own vocabulary form islands (in the demo data 晶硅光伏 and the software-heavy
# 新一代信息技术 / 数字经济 pair); chains whose problems are about machining, maintenance or training in
# general overlap, which is why the ranking does not rely on text alone.

# %%
ids = list(problems)
vectors = built.encode([texts[pid] for pid in ids])
rng = np.random.default_rng(0)
sample = np.sort(rng.choice(len(ids), size=min(600, len(ids)), replace=False))
reduced = PCA(n_components=50, random_state=0).fit_transform(vectors[sample])
xy = TSNE(n_components=2, init="pca", perplexity=30, max_iter=500, random_state=0).fit_transform(reduced)

sample_chains = [chain[ids[i]] for i in sample]
top = [c for c, _ in Counter(sample_chains).most_common(8)]
fig, ax = plt.subplots(figsize=(10, 8))
others = np.array([c not in top for c in sample_chains])
ax.scatter(xy[others, 0], xy[others, 1], s=8, c="#cccccc", label="其他产业链")
palette = plt.get_cmap("tab10")
for k, name in enumerate(top):
    mask = np.array([c == name for c in sample_chains])
    ax.scatter(xy[mask, 0], xy[mask, 1], s=10, color=palette(k), label=name)
ax.set_title("t-SNE of problem embeddings (built encoder), coloured by 产业链")
ax.legend(markerscale=2, fontsize=9, loc="best")
ax.set_xticks([])
ax.set_yticks([])

# %% [markdown]
# ## 3. Nearest neighbours of one held-out problem
#
# A held-out problem (the encoder never saw it) and its eight nearest training problems by cosine similarity
# (`embeddings.index.exact_top_k`). `shares solver` marks neighbours solved by one of the problem's own
# solvers: what the ranking turns into a vote for that worker.

# %%
query = next((pid for pid in split.held_out if "主轴" in texts[pid]), split.held_out[0])
train_ids = list(split.train)
train_vectors = built.encode([texts[pid] for pid in train_ids])
idx, scores = exact_top_k(built.encode([texts[query]]), train_vectors, 8)
print(f"query {query} ({chain[query]}, {problems[query].get('service_type')}): {problems[query].get('title')}")
print(f"solved by {solved_by[query]}")
truth = set(solved_by[query])
display(pd.DataFrame([
    {"id": train_ids[j], "similarity": round(float(s), 3), "title": problems[train_ids[j]].get("title"),
     "chain": chain[train_ids[j]], "solvers": ", ".join(solved_by[train_ids[j]]),
     "shares solver": bool(truth & set(solved_by[train_ids[j]]))}
    for j, s in zip(idx[0], scores[0], strict=True)
]))

# %% [markdown]
# ## 4. Encoder comparison: hit@10 on held-out problems
#
# `hit@10`: for each held-out problem, do its 10 nearest past problems include one solved by one of its true
# solvers? That is what the "similar past problems" signal needs. Two settings:
#
# - **all**: every held-out problem against every training problem (cheap encoders only);
# - **sample**: 100 held-out problems against 400 sampled training problems, where MiniLM is affordable.
#
# MiniLM is an English model: its vocabulary covers Chinese characters one by one with little meaning, so it
# is expected to lose to an encoder built from this corpus. Character TF-IDF is the honest baseline the built
# encoder has to beat.

# %%
tfidf = tfidf_vectors(list(train_texts.values()), analyzer="char")
small = Split(train=sorted(rng.choice(split.train, size=400, replace=False).tolist()),
              held_out=split.held_out[:100])
small_tfidf = tfidf_vectors([texts[pid] for pid in small.train], analyzer="char")
minilm = load_encoder("all-MiniLM-L6-v2")

rows = []
all_column = f"hit@10, all ({len(split.held_out)} queries)"
sample_column = f"hit@10, sample ({len(small.held_out)} queries)"
for name, embed, embed_small in (
    ("built (1 epoch)", built.encode, built.encode),
    ("built, LSA only (no fine-tuning)", lsa.encode, lsa.encode),
    ("char TF-IDF (1-3 grams)", tfidf, small_tfidf),
    ("all-MiniLM-L6-v2 (English)", None, minilm.encode),
):
    rows.append({
        "encoder": name,
        all_column: hit_at_k(embed, texts, solved_by, split, k=10) if embed else np.nan,
        sample_column: hit_at_k(embed_small, texts, solved_by, small, k=10),
    })
comparison = pd.DataFrame(rows).set_index("encoder")
display(comparison.round(3))
ax = comparison.plot.barh(figsize=(8, 3.5), title="hit@10 on held-out problems (higher is better)")
ax.set_xlim(0, 1)
ax.invert_yaxis()

# %%
store.close()
scratch_dir.cleanup()
