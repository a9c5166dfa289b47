"""The ranking index: everything the signals need, precomputed once from a :class:`~graph.projection.Projection`.

A :class:`RankingIndex` sees the graph through a *history* mask: only solved problems inside it
count as evidence (text similarity, skill profiles, prior work, the random-walk graph). The
evaluation builds one index on the older part of a dataset to train the learned fusion without
leaking the held-out problems, and the product builds one on everything.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from graph.projection import Projection
from recommender.signals import bm25_weights, transition_matrix
from recommender.text import TextModel, TextViews, problem_text, profile_text

__all__ = ["Encoder", "RankingIndex", "day_number", "natural_key"]

_LEVEL_SCORE = {"国家级": 3.0, "全国": 3.0, "national": 3.0, "省级": 2.0, "provincial": 2.0, "市级": 1.0, "city": 1.0}


class Encoder(Protocol):
    """What the ranker needs of :class:`embeddings.encoder.Encoder`."""

    identity: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


def day_number(value: Any) -> float:
    """Days since 1970-01-01 of a ``YYYY-MM-DD...`` string; NaN when absent or unreadable.

    Examples
    --------
    >>> day_number("1970-01-11T08:00")
    10.0
    >>> import math; math.isnan(day_number(None))
    True
    """
    if not isinstance(value, str) or len(value) < 10:
        return float("nan")
    try:
        return float(np.datetime64(value[:10], "D").astype(np.int64))
    except ValueError:
        return float("nan")


def natural_key(text: str) -> tuple[Any, ...]:
    """Sort key that orders ``q9`` before ``q10`` (ids that count up in creation order).

    Examples
    --------
    >>> sorted(["q10", "q9", "p1"], key=natural_key)
    ['p1', 'q9', 'q10']
    """
    import re

    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text))


def _row_normalise(m: sp.csr_matrix) -> sp.csr_matrix:
    m = sp.csr_matrix(m, dtype=np.float32)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel())
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ m)


def _binary(m: sp.csr_matrix) -> sp.csr_matrix:
    out = sp.csr_matrix(m, dtype=np.float32, copy=True)
    out.data[:] = 1.0
    return out


@dataclass
class _Edges:
    """The history ``SOLVED`` edges in the CSR order of :attr:`RankingIndex.solved`."""

    rating: np.ndarray
    day: np.ndarray
    trainees: np.ndarray


class RankingIndex:
    """Precomputed matrices over one projection, restricted to a history of solved problems.

    Parameters
    ----------
    projection
        The graph.
    history
        Boolean mask over the projection's problems that may serve as evidence; ``None`` means all.
    encoder
        Optional dense text encoder; when given, problem and profile embeddings are computed
        (or taken from ``vectors``) and the dense signals switch on.
    vectors
        Precomputed dense vectors by problem id (e.g. from the store's embedding cache).
    """

    def __init__(self, projection: Projection, *, history: np.ndarray | None = None, encoder: Encoder | None = None,
                 vectors: Mapping[str, np.ndarray] | None = None) -> None:
        proj = projection
        self.projection = proj
        self.encoder = encoder
        n_problems = proj.n("Problem")
        mask = np.ones(n_problems, dtype=bool) if history is None else np.asarray(history, dtype=bool)
        self.history_mask = mask
        self.n_workers = proj.n("Worker")
        self.n_skills = proj.n("Skill")

        # --- the history SOLVED edges -------------------------------------------------------
        solved_edges = proj.edge_list("SOLVED", "Worker", "Problem")
        starts = np.asarray(solved_edges.start, dtype=np.int64)
        ends = np.asarray(solved_edges.end, dtype=np.int64)
        keep = mask[ends] if len(ends) else np.zeros(0, dtype=bool)
        edge_ids = np.flatnonzero(keep)
        hp = np.unique(ends[keep])  # history problems with at least one solver
        self.hp = hp
        self.hp_pos = {int(p): i for i, p in enumerate(hp)}
        col = np.searchsorted(hp, ends[keep])
        solved = sp.csr_matrix((edge_ids.astype(np.float64) + 1.0, (starts[keep], col)),
                               shape=(self.n_workers, len(hp)))
        solved.sort_indices()
        order = solved.data.astype(np.int64) - 1
        props = solved_edges.props

        def edge_prop(key: str) -> np.ndarray:
            out = np.full(len(order), np.nan)
            for i, e in enumerate(order):
                v = props[e].get(key)
                if isinstance(v, int | float) and not isinstance(v, bool):
                    out[i] = float(v)
            return out

        self.edges = _Edges(rating=edge_prop("rating"),
                            day=np.array([day_number(props[e].get("at")) for e in order]),
                            trainees=edge_prop("trainees"))
        solved.data = np.ones_like(solved.data)
        self.solved = sp.csr_matrix(solved, dtype=np.float32)  # workers x history problems
        self.solved_csc = sp.csc_matrix(self.solved)
        self.n_solved = np.diff(self.solved.indptr).astype(np.float64)

        # --- text -----------------------------------------------------------------------------
        p_props = proj.props["Problem"]
        self.problem_texts = [problem_text(p_props[int(p)]) for p in hp]
        # the vocabulary and idf come from the evidence itself (solved history problems)
        self.text = TextModel()
        self.docs: TextViews = self.text.fit_transform(self.problem_texts)
        self.docs_word_t = sp.csr_matrix(self.docs.word.T)
        self.docs_char_t = sp.csr_matrix(self.docs.char.T)
        aliases: dict[str, list[str]] = {}
        for sid, sprops in zip(proj.ids["Skill"], proj.props["Skill"], strict=True):
            if sprops.get("aliases"):
                aliases[sid] = list(sprops["aliases"])
        w_props = proj.props["Worker"]
        self.profile_texts = [profile_text(self._worker_row(i), aliases) for i in range(self.n_workers)]
        self.profiles = self.text.transform(self.profile_texts)
        self.profiles_word_t = sp.csr_matrix(self.profiles.word.T)
        self.profiles_char_t = sp.csr_matrix(self.profiles.char.T)
        worker_counts = self.solved @ self.docs.counts
        self.bm25_t = sp.csr_matrix(bm25_weights(sp.csr_matrix(worker_counts)).T)

        # --- skills ---------------------------------------------------------------------------
        requires = proj.matrix("REQUIRES", "Problem", "Skill")
        self.problem_skills = sp.csr_matrix(requires[hp]) if len(hp) else sp.csr_matrix((0, self.n_skills))
        df = np.bincount(self.problem_skills.indices, minlength=self.n_skills).astype(np.float64)
        self.skill_idf = np.log((len(hp) + 1.0) / (df + 1.0)) + 1.0
        self.skill_counts = sp.csr_matrix(self.solved @ self.problem_skills)  # workers x skills
        prof = self.skill_counts.copy().astype(np.float32)
        prof.data = np.log1p(prof.data)
        self.skill_profiles = _row_normalise(sp.csr_matrix(prof @ sp.diags(self.skill_idf.astype(np.float32))))
        logc = self.skill_counts.copy().astype(np.float64)
        logc.data = np.log1p(logc.data)
        self.skill_logcounts_csc = sp.csc_matrix(logc)
        self.declared = sp.csr_matrix(proj.matrix("HAS_SKILL", "Worker", "Skill"))
        self.declared_sets = [set(np.asarray(proj.ids["Skill"])[self.declared.indices[a:b]].tolist())
                              for a, b in zip(self.declared.indptr[:-1], self.declared.indptr[1:], strict=True)]

        # --- enterprises, chains, districts --------------------------------------------------
        posted = proj.matrix("POSTED", "Enterprise", "Problem")
        self.problem_enterprise = sp.csr_matrix(posted.T)[hp] if len(hp) else sp.csr_matrix((0, posted.shape[0]))
        self.worker_enterprise = sp.csr_matrix(self.solved @ self.problem_enterprise)
        self.enterprise_chain = proj.matrix("IN_CHAIN", "Enterprise", "IndustryChain")
        self.worker_chain = sp.csr_matrix(self.worker_enterprise @ self.enterprise_chain)
        p_district = proj.matrix("LOCATED_IN", "Problem", "District")
        self.problem_district = sp.csr_matrix(p_district[hp]) if len(hp) else sp.csr_matrix((0, p_district.shape[1]))
        self.worker_district_work = sp.csc_matrix(self.solved @ self.problem_district)
        self.worker_enterprise_csc = sp.csc_matrix(self.worker_enterprise)
        self.worker_chain_csc = sp.csc_matrix(self.worker_chain)
        adj = proj.matrix("ADJACENT_TO", "District", "District")
        self.district_adjacency = sp.csr_matrix(((adj + adj.T) > 0).astype(np.float32))
        self.worker_district = [w.get("district") for w in w_props]
        self.worker_employer = [w.get("employer_id") for w in w_props]
        self.worker_active = np.array([w.get("active") is not False for w in w_props], dtype=bool)
        self.worker_capacity = np.array([float(w["capacity"]) if isinstance(w.get("capacity"), int | float)
                                         else np.inf for w in w_props])

        # --- priors ---------------------------------------------------------------------------
        rated = ~np.isnan(self.edges.rating)
        rows = np.repeat(np.arange(self.n_workers), np.diff(self.solved.indptr))
        rating_sum = np.bincount(rows[rated], weights=self.edges.rating[rated], minlength=self.n_workers)
        rating_n = np.bincount(rows[rated], minlength=self.n_workers)
        self.quality = (rating_sum + 3.5 * 2) / (rating_n + 2) - 3.5  # shrunk towards a middling 3.5
        trained = np.nan_to_num(self.edges.trainees)
        self.trainees = np.bincount(rows, weights=trained, minlength=self.n_workers)
        self.teaches = np.array([bool(w.get("teaches")) for w in w_props]) | (self.trainees > 0)
        self.honours = np.array([len(w.get("honours") or []) + _LEVEL_SCORE.get(str(w.get("level") or ""), 0.0)
                                 for w in w_props])

        # --- the random-walk graph ------------------------------------------------------------
        self._build_walk()

        # --- dense vectors --------------------------------------------------------------------
        self.dense_docs: np.ndarray | None = None
        self.dense_profiles: np.ndarray | None = None
        if encoder is not None:
            known = vectors or {}
            pids = [proj.ids["Problem"][int(p)] for p in hp]
            missing = [i for i, pid in enumerate(pids) if pid not in known]
            docs = np.zeros((len(hp), encoder.dim), dtype=np.float32)
            for i, pid in enumerate(pids):
                if pid in known:
                    docs[i] = known[pid]
            if missing:
                docs[missing] = encoder.encode([self.problem_texts[i] for i in missing])
            self.dense_docs = docs
            self.dense_profiles = encoder.encode(self.profile_texts) if self.profile_texts else None

    def _worker_row(self, i: int) -> dict[str, Any]:
        row = dict(self.projection.props["Worker"][i])
        extra = row.get("extra") or {}
        if isinstance(extra, dict):
            for key, value in extra.items():
                row.setdefault(key, value)
        return row

    def _build_walk(self) -> None:
        proj = self.projection
        blocks = ["Worker", "Problem", "Skill", "Enterprise", "IndustryChain", "District"]
        sizes = {"Worker": self.n_workers, "Problem": len(self.hp), "Skill": self.n_skills,
                 "Enterprise": proj.n("Enterprise"), "IndustryChain": proj.n("IndustryChain"),
                 "District": proj.n("District")}
        self.walk_offset: dict[str, int] = {}
        at = 0
        for label in blocks:
            self.walk_offset[label] = at
            at += sizes[label]
        self.walk_size = at
        pairs = [
            ("Worker", "Problem", self.solved),
            ("Problem", "Skill", self.problem_skills),
            ("Worker", "Skill", self.declared),
            ("Enterprise", "Problem", sp.csr_matrix(self.problem_enterprise.T)),
            ("Enterprise", "IndustryChain", self.enterprise_chain),
            ("Skill", "IndustryChain", proj.matrix("IN_CHAIN", "Skill", "IndustryChain")),
            ("Worker", "District", proj.matrix("LOCATED_IN", "Worker", "District")),
            ("Enterprise", "District", proj.matrix("LOCATED_IN", "Enterprise", "District")),
            ("Problem", "District", self.problem_district),
            ("District", "District", proj.matrix("ADJACENT_TO", "District", "District")),
        ]
        rows: list[np.ndarray] = []
        cols: list[np.ndarray] = []
        for a, b, m in pairs:
            coo = sp.coo_matrix(m)
            if coo.nnz == 0:
                continue
            r = coo.row.astype(np.int64) + self.walk_offset[a]
            c = coo.col.astype(np.int64) + self.walk_offset[b]
            rows += [r, c]
            cols += [c, r]
        if rows:
            r_all, c_all = np.concatenate(rows), np.concatenate(cols)
            adj = sp.csr_matrix((np.ones(len(r_all), dtype=np.float32), (r_all, c_all)),
                                shape=(self.walk_size, self.walk_size))
            adj.data[:] = 1.0
        else:
            adj = sp.csr_matrix((self.walk_size, self.walk_size), dtype=np.float32)
        self.walk = transition_matrix(adj).astype(np.float32)

    # -- small lookups ---------------------------------------------------------------------------
    def problem_id(self, h: int) -> str:
        """Problem id of a history column."""
        return self.projection.ids["Problem"][int(self.hp[h])]

    def worker_history(self, w: int) -> np.ndarray:
        """History columns of the problems a worker solved."""
        return self.solved.indices[self.solved.indptr[w]:self.solved.indptr[w + 1]]

    def describe(self) -> dict[str, Any]:
        """Sizes, for logs and model metadata."""
        return {"workers": self.n_workers, "history_problems": int(len(self.hp)), "skills": self.n_skills,
                "walk_nodes": self.walk_size, "walk_edges": int(self.walk.nnz),
                "encoder": getattr(self.encoder, "identity", None)}

    def __repr__(self) -> str:
        return f"RankingIndex({json.dumps(self.describe(), ensure_ascii=False)})"
