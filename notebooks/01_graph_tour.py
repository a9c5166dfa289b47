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
# # 01 · A tour of the Jianglian graph
#
# Workers (劳模, 工匠), the skills they declare, the enterprises that post problems, the industry chains and
# districts of Yancheng, and the past problems workers solved form one property graph (see the README's
# *graph model*). This notebook shows what is in it:
#
# 1. how many nodes of each label and relationships of each type there are;
# 2. how connected nodes are (degree distributions, log-log);
# 3. which skills each industry chain asks for (a chains × skills heat map);
# 4. one district's neighbourhood, drawn;
# 5. Cypher queries a researcher can adapt (run only when `NEO4J_URI` points at a Neo4j server).
#
# By default the notebook explores the deterministic demo dataset (`demo.generator`, scale 1, seed 7) in a private
# in-memory store; with `NEO4J_URI` set it reads that Neo4j database instead (an empty database gets the demo
# data first). Everything below goes through the store interface (`graph.store.GraphStore`), so both behave the
# same.

# %%
from collections import Counter

import matplotlib.pyplot as plt
import networkx as nx
import numpy as np
import pandas as pd
from IPython.display import display

from demo.research import configure_cjk_matplotlib, neo4j_requested, open_research_store, research_cypher
from graph.model import REL_TYPES

font = configure_cjk_matplotlib()
store = open_research_store()
print(f"store: {store.kind}; Chinese labels drawn with {font}")

# %% [markdown]
# ## 1. Counts by label and relationship type
#
# `GraphStore.counts()` returns node counts per label and relationship counts per type. In the demo data the
# problems dominate (2,000 solved and 200 open); `SOLVED` has more rows than solved problems because some
# problems were solved by a team of workers.

# %%
counts = store.counts()
labels = {k: v for k, v in counts.items() if k[0].isupper() and not k.isupper()}
rels = {k: v for k, v in counts.items() if k.isupper()}
fig, axes = plt.subplots(1, 2, figsize=(12, 3.8))
pd.Series(labels).sort_values().plot.barh(ax=axes[0], color="#4c72b0", title="nodes per label")
pd.Series(rels).sort_values().plot.barh(ax=axes[1], color="#dd8452", title="relationships per type")
for ax in axes:
    ax.set_xscale("log")
    ax.set_xlabel("count (log scale)")
fig.tight_layout()
display(pd.DataFrame({"count": counts}).T)

# %% [markdown]
# ## 2. Degree distributions
#
# The degree of a node is the number of relationships touching it (both directions, every type). Plotted on
# log-log axes as "how many nodes have degree *d*", per label: skills and districts are hubs (a few nodes with
# hundreds of relationships), problems have a handful each, and the solved-problem counts of workers are
# skewed: a few prolific solvers and a long tail of workers with little or no history, the cold-start case the
# ranking must handle.

# %%
degree: Counter[tuple[str, str]] = Counter()
for rel_type in REL_TYPES:
    for rel in store.relationships(rel_type):
        degree[(rel.start_label, rel.start_id)] += 1
        degree[(rel.end_label, rel.end_id)] += 1
for label in labels:  # isolated nodes have degree 0 and would not appear above
    for node in store.iter_nodes(label):
        degree.setdefault((label, node["id"]), 0)
deg = pd.DataFrame([(label, node_id, d) for (label, node_id), d in degree.items()],
                   columns=["label", "id", "degree"])

fig, ax = plt.subplots(figsize=(7, 4.5))
for label, group in deg.groupby("label"):
    freq = group["degree"].value_counts().sort_index()
    freq = freq[freq.index > 0]
    ax.loglog(freq.index, freq.values, "o", alpha=0.7, label=f"{label} (n={len(group)})")
ax.set_xlabel("degree d")
ax.set_ylabel("nodes with degree d")
ax.set_title("degree distribution per label (log-log)")
ax.legend(fontsize=8)
deg.groupby("label")["degree"].describe()[["count", "mean", "50%", "max"]]

# %% [markdown]
# The same for the one relationship the ranking learns most from: how many problems each worker solved.

# %%
solved_per_worker = Counter(rel.start_id for rel in store.relationships("SOLVED"))
history = pd.Series([solved_per_worker.get(w["id"], 0) for w in store.iter_nodes("Worker")])
fig, ax = plt.subplots(figsize=(7, 3.5))
freq = history.value_counts().sort_index()
ax.loglog(freq.index[freq.index > 0], freq[freq.index > 0].values, "o")
ax.set_xlabel("problems solved")
ax.set_ylabel("workers")
ax.set_title(f"solved history per worker; {int((history == 0).sum())} workers have none")
history.describe()

# %% [markdown]
# ## 3. Which skills each industry chain asks for
#
# A problem `REQUIRES` skills and is `POSTED` by an enterprise that sits `IN_CHAIN` of an industry chain. The
# heat map counts, for the most requested skills, the problems of each chain that require them. Read along a
# row to see a chain's needs (新能源 asks for different skills than 纺织服装); read down a column to see how
# broadly a skill is needed. Cross-cutting skills such as quality or safety management light up many rows.

# %%
chain_of_enterprise = {rel.start_id: rel.end_id for rel in store.relationships("IN_CHAIN")
                       if rel.start_label == "Enterprise"}
enterprise_of_problem = {rel.end_id: rel.start_id for rel in store.relationships("POSTED")}
pairs = pd.DataFrame(
    [(chain_of_enterprise.get(enterprise_of_problem.get(rel.start_id, ""), "（无产业链）"), rel.end_id)
     for rel in store.relationships("REQUIRES")],
    columns=["chain", "skill"],
)
top_skills = pairs["skill"].value_counts().index[:30]
heat = pd.crosstab(pairs["chain"], pairs["skill"]).reindex(columns=top_skills, fill_value=0)
heat = heat.loc[heat.sum(axis=1).sort_values(ascending=False).index]

fig, ax = plt.subplots(figsize=(14, 8))
image = ax.imshow(np.log1p(heat.values), aspect="auto", cmap="magma_r")
ax.set_xticks(range(len(heat.columns)), heat.columns, rotation=70, ha="right", fontsize=9)
ax.set_yticks(range(len(heat.index)), heat.index, fontsize=9)
ax.set_title("problems requiring a skill, per industry chain (产业链 × 技能; colour: log(1 + count))")
fig.colorbar(image, ax=ax, fraction=0.025, label="log(1 + problems)")
fig.tight_layout()

# %% [markdown]
# ## 4. One district's neighbourhood
#
# The workers `LOCATED_IN` one district, the skills they declare (`HAS_SKILL`) and the districts `ADJACENT_TO`
# it (where on-site help can come from quickly). Built from `store.relationships(...)` so it works on both
# stores; on the embedded store `MemoryStore.to_networkx()` gives the whole graph as a networkx
# `MultiDiGraph` if you want to run networkx algorithms on it.

# %%
districts = [d["id"] for d in store.iter_nodes("District")]
district = "大丰区" if "大丰区" in districts else districts[0]
sub = nx.Graph()
sub.add_node(("District", district), kind="District")
for rel in store.relationships("ADJACENT_TO", start=("District", district)):
    sub.add_edge(("District", district), ("District", rel.end_id))
    sub.nodes[("District", rel.end_id)]["kind"] = "District"
names = {}
for rel in store.relationships("LOCATED_IN", end=("District", district)):
    if rel.start_label != "Worker":
        continue
    worker = ("Worker", rel.start_id)
    sub.add_edge(worker, ("District", district))
    sub.nodes[worker]["kind"] = "Worker"
    names[worker] = (store.get_node("Worker", rel.start_id) or {}).get("name", rel.start_id)
    for skill in store.relationships("HAS_SKILL", start=worker):
        sub.add_edge(worker, ("Skill", skill.end_id))
        sub.nodes[("Skill", skill.end_id)]["kind"] = "Skill"

colours = {"District": "#c44e52", "Worker": "#4c72b0", "Skill": "#55a868"}
sizes = {"District": 900, "Worker": 260, "Skill": 160}
pos = nx.spring_layout(sub, seed=7, k=0.35)
fig, ax = plt.subplots(figsize=(13, 10))
nx.draw_networkx_edges(sub, pos, ax=ax, alpha=0.25)
for kind, colour in colours.items():
    nodes = [n for n, data in sub.nodes(data=True) if data.get("kind") == kind]
    nx.draw_networkx_nodes(sub, pos, nodelist=nodes, node_color=colour, node_size=sizes[kind], ax=ax, label=kind)
nx.draw_networkx_labels(sub, pos, {n: names.get(n, n[1]) for n in sub.nodes}, font_size=7,
                        font_family=font, ax=ax)
ax.set_title(f"{district}: {len(names)} 名劳模工匠, their skills (技能) and the adjacent districts (相邻区县)")
ax.legend(scatterpoints=1, loc="lower left")
ax.axis("off")
print(f"{sub.number_of_nodes()} nodes, {sub.number_of_edges()} edges")

# %% [markdown]
# ## 5. Cypher a researcher can adapt
#
# With Neo4j (`JIANGLIAN_STORE=neo4j`, `NEO4J_URI`), the same graph answers Cypher. Pass values as
# parameters (`$eid`), never by formatting them into the query text. These examples come from the README:
#
# ```cypher
# // workers who solved problems in the same chain as enterprise E0001
# MATCH (e:Enterprise {id: $eid})-[:IN_CHAIN]->(c)<-[:IN_CHAIN]-(:Enterprise)-[:POSTED]->(p)<-[:SOLVED]-(w:Worker)
# RETURN w.id, w.name, count(p) AS n ORDER BY n DESC LIMIT 10;
#
# // Chinese full-text search over names, titles and descriptions (analyzer: cjk)
# CALL db.index.fulltext.queryNodes('jianglian_text', '主轴') YIELD node, score
# RETURN node.id, score LIMIT 10;
#
# // skills most often required in a district's open problems
# MATCH (p:Problem {status: 'open'})-[:LOCATED_IN]->(:District {id: $district}), (p)-[:REQUIRES]->(s:Skill)
# RETURN s.name AS skill, count(*) AS problems ORDER BY problems DESC LIMIT 10;
# ```
#
# The next cell runs them through `demo.research.research_cypher` when `NEO4J_URI` is set. On the embedded
# store it runs the equivalent full-text search through the store interface instead.

# %%
SAME_CHAIN_SOLVERS = """
MATCH (e:Enterprise {id: $eid})-[:IN_CHAIN]->(c)<-[:IN_CHAIN]-(:Enterprise)-[:POSTED]->(p)<-[:SOLVED]-(w:Worker)
RETURN w.id AS worker, w.name AS name, count(p) AS n ORDER BY n DESC LIMIT 10
"""
FULLTEXT = """
CALL db.index.fulltext.queryNodes('jianglian_text', $text) YIELD node, score
RETURN node.id AS id, score LIMIT 10
"""
OPEN_SKILLS = """
MATCH (p:Problem {status: 'open'})-[:LOCATED_IN]->(:District {id: $district}), (p)-[:REQUIRES]->(s:Skill)
RETURN s.name AS skill, count(*) AS problems ORDER BY problems DESC LIMIT 10
"""
if neo4j_requested():
    enterprise = store.list_nodes("Enterprise", limit=1)[0]["id"]
    display(pd.DataFrame(research_cypher(SAME_CHAIN_SOLVERS, {"eid": enterprise})))
    display(pd.DataFrame(research_cypher(FULLTEXT, {"text": "主轴"})))
    display(pd.DataFrame(research_cypher(OPEN_SKILLS, {"district": district})))
else:
    print("NEO4J_URI is not set: the Cypher examples are not run; the store's own full-text search for 主轴:")
    hits = store.fulltext("主轴", labels=["Problem"], limit=10)
    display(pd.DataFrame(
        [(node_id, round(score, 3), (store.get_node(label, node_id) or {}).get("title")) for label, node_id, score
         in hits], columns=["id", "score", "title"]))

# %%
store.close()
