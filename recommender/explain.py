"""Explanations a coordinator can check: similar solved problems, matched skills, real graph paths, reasons.

Every path is assembled hop by hop from relationships present in the projection (which mirrors
the store), at most three hops long, starting at the worker.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from recommender.features import FEATURES, ONSITE_TYPES, RD_TYPES, TRAINING_TYPES, Query, gather_segments
from recommender.index import RATING_PRIOR, RankingIndex

__all__ = ["Explanation", "explain"]

_F = {name: i for i, name in enumerate(FEATURES)}


@dataclass
class Explanation:
    """Evidence behind one recommendation."""

    similar_problems: list[dict[str, Any]] = field(default_factory=list)  # {"id", "title", "similarity"}
    matched_skills: list[str] = field(default_factory=list)
    paths: list[dict[str, Any]] = field(default_factory=list)  # {"nodes": [...], "rels": [...]}
    reasons: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _PathBuilder:
    """Walks real edges of the projection; each hop is checked before it is added."""

    def __init__(self, index: RankingIndex, names: dict[tuple[str, str], str] | None = None) -> None:
        self.proj = index.projection
        # a node's properties are read once per explanation, or per ranking when the caller keeps ``names``
        self._names: dict[tuple[str, str], str] = {} if names is None else names

    def node(self, label: str, node_id: str) -> dict[str, Any]:
        name = self._names.get((label, node_id))
        if name is None:
            props = self.proj.props[label][self.proj.index[label][node_id]]
            name = self._names[label, node_id] = str(props.get("name") or props.get("title") or node_id)
        return {"label": label, "id": node_id, "name": name}

    def hop(self, rel_type: str, a: tuple[str, str], b: tuple[str, str]) -> dict[str, str] | None:
        """The relationship between consecutive path nodes ``a`` then ``b``, if it exists."""
        if self.proj.has_edge(rel_type, a[0], a[1], b[0], b[1]):
            return {"type": rel_type, "direction": "->"}
        if self.proj.has_edge(rel_type, b[0], b[1], a[0], a[1]):
            return {"type": rel_type, "direction": "<-"}
        return None

    def path(self, nodes: list[tuple[str, str]], types: list[str]) -> dict[str, Any] | None:
        if len(types) != len(nodes) - 1 or len(types) > 3:
            return None
        rels = []
        for rel_type, a, b in zip(types, nodes[:-1], nodes[1:], strict=True):
            rel = self.hop(rel_type, a, b)
            if rel is None:
                return None
            rels.append(rel)
        return {"nodes": [self.node(*n) for n in nodes], "rels": rels}


def _row(m: Any, i: int) -> np.ndarray:
    """Column indices of row ``i`` of a CSR matrix (without scipy's indexing overhead)."""
    return np.asarray(m.indices[m.indptr[i]:m.indptr[i + 1]], dtype=np.int64)


def _enterprise_of(index: RankingIndex, cols: np.ndarray) -> np.ndarray:
    """The enterprise (projection index) that posted each history problem, ``-1`` when none did."""
    pe = index.problem_enterprise
    cols = np.asarray(cols, dtype=np.int64)
    if not len(cols) or not pe.nnz:
        return np.full(len(cols), -1, dtype=np.int64)
    starts = pe.indptr[cols]
    has = pe.indptr[cols + 1] > starts
    return np.where(has, pe.indices[np.minimum(starts, pe.nnz - 1)], -1).astype(np.int64)


def explain(index: RankingIndex, query: Query, worker: int, features: np.ndarray, word_sims: np.ndarray,
            *, load: int = 0, capacity: float = float("inf"), declined_similar: float = 0.0,
            names: dict[tuple[str, str], str] | None = None) -> Explanation:
    """Build the explanation of ranking ``worker`` (projection index) for ``query``.

    ``word_sims`` are the query's cosines to the index's history problems (as computed for the
    features), ``features`` the worker's feature row. ``names``, kept by the caller across the
    explanations of one ranking (of one projection), holds the node names already read.
    """
    proj = index.projection
    wid = proj.ids["Worker"][worker]
    me = ("Worker", wid)
    builder = _PathBuilder(index, names)
    out = Explanation()

    # -- similar solved problems ----------------------------------------------------------
    cols = index.worker_history(worker)
    if len(cols) and len(word_sims):
        sims = word_sims[cols]
        top = cols[np.argsort(-sims, kind="stable")[:3]]
        for h in top:
            if word_sims[h] <= 0:
                continue
            pid = index.problem_id(int(h))
            title = proj.prop("Problem", pid, "title") or proj.prop("Problem", pid, "description") or pid
            out.similar_problems.append({"id": pid, "title": str(title), "similarity": round(float(word_sims[h]), 4)})

    # -- matched skills ---------------------------------------------------------------------
    history_skills: set[str] = set()
    if len(cols):
        skill_cols = _row(index.skill_counts, worker)
        history_skills = {proj.ids["Skill"][int(s)] for s in skill_cols}
    declared = index.declared_sets[worker]
    out.matched_skills = [s for s in query.skills if s in declared or s in history_skills]

    # -- paths ------------------------------------------------------------------------------
    stored = query.problem_id if query.problem_id in proj.index["Problem"] else None
    paths: list[dict[str, Any]] = []

    def add(nodes: list[tuple[str, str]], types: list[str]) -> None:
        """Keep the path through ``nodes`` if it is real and new, while fewer than three are kept (checked
        first: a path is not assembled to be dropped)."""
        if len(paths) < 3:
            path = builder.path(nodes, types)
            if path is not None and path not in paths:
                paths.append(path)

    ent = query.enterprise_id if query.enterprise_id in proj.index["Enterprise"] else None
    chain_idx = _row(index.enterprise_chain, proj.index["Enterprise"][ent]) if ent else np.zeros(0, dtype=np.int64)
    chains = [proj.ids["IndustryChain"][int(c)] for c in chain_idx]
    # prior work for the same enterprise, else in the same chain (enterprises from the POSTED edges)
    posted_by = _enterprise_of(index, cols)
    if ent and len(cols):
        own = index.hp_pos.get(proj.index["Problem"][stored], -1) if stored else -1
        hit = cols[(posted_by == proj.index["Enterprise"][ent]) & (cols != own)]
        if len(hit):
            add([me, ("Problem", index.problem_id(int(hit[0]))), ("Enterprise", ent)], ["SOLVED", "POSTED"])
    if chains and len(cols) and not paths:
        known = np.flatnonzero(posted_by >= 0)
        ec = index.enterprise_chain
        pos, ptr = gather_segments(ec.indptr, posted_by[known])
        in_chain = np.zeros(len(pos), dtype=bool)
        for c in chain_idx:  # one or two chains: cheaper than np.isin's set-up
            in_chain |= ec.indices[pos] == c
        hits = np.flatnonzero(in_chain)
        if len(hits):
            row = int(np.searchsorted(ptr, hits[0], side="right") - 1)  # the first history problem in a chain
            h = int(cols[known[row]])
            other = proj.ids["Enterprise"][int(posted_by[known[row]])]
            chain = proj.ids["IndustryChain"][int(ec.indices[pos[hits[0]]])]
            add([me, ("Problem", index.problem_id(h)), ("Enterprise", other), ("IndustryChain", chain)],
                ["SOLVED", "POSTED", "IN_CHAIN"])
    if out.similar_problems:
        add([me, ("Problem", out.similar_problems[0]["id"])], ["SOLVED"])
    for skill in out.matched_skills[:2]:
        if skill in declared:
            if stored:
                add([me, ("Skill", skill), ("Problem", stored)], ["HAS_SKILL", "REQUIRES"])
            else:
                add([me, ("Skill", skill)], ["HAS_SKILL"])
        elif len(cols):
            ps = index.problem_skills
            pos, ptr = gather_segments(ps.indptr, cols)
            hits = np.flatnonzero(ps.indices[pos] == proj.index["Skill"][skill])
            if len(hits):
                pid = index.problem_id(int(cols[np.searchsorted(ptr, hits[0], side="right") - 1]))
                add([me, ("Problem", pid), ("Skill", skill)], ["SOLVED", "REQUIRES"])
    wd = index.worker_district[worker]
    if query.district and wd:
        if wd == query.district:
            if ent:
                add([me, ("District", wd), ("Enterprise", ent)], ["LOCATED_IN", "LOCATED_IN"])
            add([me, ("District", wd)], ["LOCATED_IN"])
        else:
            add([me, ("District", wd), ("District", query.district)], ["LOCATED_IN", "ADJACENT_TO"])
    out.paths = paths

    # -- reasons (Chinese) ------------------------------------------------------------------
    reasons = out.reasons
    if out.similar_problems:
        best = out.similar_problems[0]
        reasons.append(f"曾解决相似问题「{best['title'][:40]}」（相似度 {best['similarity']:.2f}）")
    if out.matched_skills:
        reasons.append(f"具备所需技能：{'、'.join(out.matched_skills[:5])}")
    f = features
    if f[_F["enterprise"]] > 0:
        reasons.append(f"曾为该企业解决过 {int(round(np.expm1(f[_F['enterprise']])))} 个问题")
    if f[_F["chain"]] > 0 and chains:
        reasons.append(f"在{chains[0]}产业链有 {int(round(np.expm1(f[_F['chain']])))} 次服务经历")
    if f[_F["district"]] >= 1.0:
        reasons.append(f"与问题同在{query.district}")
    elif f[_F["district"]] > 0:
        reasons.append(f"所在{wd}与{query.district}相邻，便于现场服务")
    if query.service_type in TRAINING_TYPES and index.teaches[worker]:
        trained = int(index.trainees[worker])
        done = f"，累计培训 {trained} 人次" if trained else ""
        reasons.append(f"有培训/带徒记录{done}，适合{query.service_type}")
    if query.service_type in RD_TYPES and f[_F["text_hits"]] > 0:
        reasons.append(f"在相关方向有 {int(round(np.expm1(f[_F['text_hits']])))} 项攻关经历，适合{query.service_type}")
    if query.service_type in ONSITE_TYPES and f[_F["district"]] == 0 and query.district:
        reasons.append("注意：不在本地或相邻区县，现场服务需安排行程")
    n_solved = int(index.n_solved[worker])
    if n_solved:
        rated = abs(index.quality[worker]) > 1e-9
        rating = f"，平均评价约 {index.quality[worker] + RATING_PRIOR:.1f} 分" if rated else ""
        reasons.append(f"已解决 {n_solved} 个问题{rating}")
    else:
        reasons.append("新入库的劳模工匠，依据技能与个人简介推荐")
    honours = proj.props["Worker"][worker].get("honours") or []
    if honours:
        reasons.append(f"荣誉：{'、'.join(map(str, honours[:3]))}")
    if load:
        cap = "不限" if not np.isfinite(capacity) else str(int(capacity))
        reasons.append(f"本月已承担 {load} 项任务（月容量 {cap}）")
    if declined_similar > 0.5:
        reasons.append("曾婉拒类似需求，排序已下调")
    return out
