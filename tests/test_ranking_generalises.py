"""The rules that keep the ranking safe on data nobody tuned on (issue "Ranking that generalises").

- the fusion choice: a learned correction that does not beat the default with confidence falls back;
- the learned correction is monotone in the similarity signals and leaves the profile signals alone;
- pseudo-query negatives: never a co-solver, never a worker interchangeable with the expected one,
  optionally drawn with the popularity of the candidates really ranked;
- the expertise model and the activity prior on hand-made histories;
- the default dense encoder's Chinese semantics (meaning shared with few characters in common).

All deterministic for a fixed seed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp

from graph.dataset import load_dataset
from graph.memory import MemoryStore
from graph.projection import Projection
from recommender.expertise import fit_expertise
from recommender.features import FEATURES
from recommender.fusion import MONOTONE, PRIOR_ONLY, CorrectedFusion, QueryNormFusion
from recommender.index import RankingIndex
from recommender.training import (
    choose_fusion,
    future_only_skills,
    make_pseudo_queries,
    paired_bootstrap,
    train_ranker,
    worker_priors,
)
from tests.ranking_fixtures import write_dataset

F = {name: i for i, name in enumerate(FEATURES)}


# -- the fusion choice ------------------------------------------------------------------------------------------

def test_a_learned_correction_that_loses_falls_back_to_the_default() -> None:
    rng = np.random.default_rng(0)
    default = rng.uniform(0.2, 1.0, 400)
    worse = np.clip(default - rng.uniform(0.0, 0.1, 400), 0.05, 1.0)
    chosen, gain, why = choose_fusion(default, worse)
    assert chosen == "default" and gain["mean"] < 0 and "default serves" in why


def test_a_noisy_small_gain_is_not_enough() -> None:
    rng = np.random.default_rng(1)
    default = rng.uniform(0.2, 1.0, 60)
    noisy = np.clip(default + rng.normal(0.01, 0.3, 60), 0.05, 1.0)  # mean gain > 0, far from significant
    chosen, gain, _ = choose_fusion(default, noisy)
    assert gain["low"] <= 0 < gain["high"] and chosen == "default"


def test_a_clear_gain_serves_the_learned_correction_and_forcing_is_reported() -> None:
    rng = np.random.default_rng(2)
    default = rng.uniform(0.2, 0.8, 300)
    better = np.clip(default + rng.uniform(0.05, 0.15, 300), 0.0, 1.0)
    chosen, gain, _ = choose_fusion(default, better)
    assert chosen == "learned" and gain["low"] > 0
    assert choose_fusion(default, better, mode="default")[0] == "default"
    assert choose_fusion(default, better - 0.5, mode="learned")[0] == "learned"
    assert paired_bootstrap(better - default, seed=3) == paired_bootstrap(better - default, seed=3)


def test_too_little_history_serves_the_default(tmp_path: Path) -> None:
    store = MemoryStore(None)
    load_dataset(store, write_dataset(tmp_path / "tiny"))
    trained = train_ranker(Projection.from_store(store), mode="auto")
    assert trained.chosen == "default" and isinstance(trained.fusion, QueryNormFusion)
    assert trained.version.startswith("fused-default@")


def _groups(n_queries: int, n_cand: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = rng.normal(size=(n_queries * n_cand, len(FEATURES)))
    g = np.repeat(np.arange(n_queries), n_cand)
    y = np.zeros(len(x), dtype=bool)
    y[np.arange(n_queries) * n_cand] = True
    return x, y, g


def test_the_correction_is_monotone_in_similarity_and_keeps_profile_weights() -> None:
    rng = np.random.default_rng(4)
    x, y, g = _groups(300, 10, rng)
    # the right worker has *lower* text similarity and higher popularity and profile similarity
    x[y, F["text_top3"]] -= 2.0
    x[y, F["popularity"]] += 2.0
    x[y, F["profile"]] += 3.0
    fusion = CorrectedFusion(penalty=0.001).fit(x, y, g)
    prior = QueryNormFusion().fit().coef_
    assert fusion.coef_[F["text_top3"]] == 0.0  # wanted negative, bounded at 0
    assert fusion.coef_[F["popularity"]] > 0.5  # free to move
    for name in PRIOR_ONLY:
        assert fusion.coef_[F[name]] == pytest.approx(prior[F[name]])
    assert all(fusion.coef_[F[name]] >= 0 for name in MONOTONE)
    again = CorrectedFusion(penalty=0.001).fit(x, y, g)
    assert np.array_equal(fusion.coef_, again.coef_)


def test_query_normalised_scores_do_not_depend_on_a_feature_s_scale() -> None:
    rng = np.random.default_rng(5)
    x, _, g = _groups(20, 8, rng)
    scaled = x.copy()
    scaled[:, F["bm25"]] = 1000.0 * scaled[:, F["bm25"]] + 7.0  # BM25 has no fixed scale across datasets
    fusion = QueryNormFusion().fit()
    assert np.allclose(fusion.decision_function(x, g), fusion.decision_function(scaled, g))


# -- negatives ---------------------------------------------------------------------------------------------------

def _crew(n_problems: int = 12) -> dict[str, list[dict[str, Any]]]:
    """Two interchangeable welders (same declared skill, same kind of work), and six others."""
    skills = [{"id": f"S{i}", "name": name} for i, name in enumerate(["焊接", "PLC编程", "数控加工", "钳工", "电工",
                                                                       "涂装", "铸造"], 1)]
    workers = [{"id": "weld-a", "skills": ["焊接"]}, {"id": "weld-b", "skills": ["焊接"]}]
    workers += [{"id": f"w{i}", "skills": [skills[i]["name"]]} for i in range(1, 7)]
    problems = []
    k = 0
    for round_ in range(n_problems):
        for w in workers:
            k += 1
            problems.append({"id": f"p{k:04d}", "title": f"{w['skills'][0]}问题{round_}",
                             "skills": list(w["skills"]), "status": "solved", "solved_by": [w["id"]],
                             "posted_at": f"2025-{1 + k // 60:02d}-{1 + k % 28:02d}"})
    return {"skills.jsonl": skills, "workers.jsonl": workers, "problems.jsonl": problems}


@pytest.fixture
def crew(tmp_path: Path) -> Projection:
    store = MemoryStore(None)
    load_dataset(store, write_dataset(tmp_path / "crew", _crew()))
    return Projection.from_store(store)


def test_interchangeable_workers_are_never_negatives(crew: Projection) -> None:
    wid = crew.index["Worker"]
    solved = crew.matrix("SOLVED", "Worker", "Problem").tocsr()
    by_a = solved.indices[solved.indptr[wid["weld-a"]]:solved.indptr[wid["weld-a"] + 1]]
    history = np.ones(crew.n("Problem"), dtype=bool)
    history[by_a[-4:]] = False
    for seed in range(5):
        pseudo = make_pseudo_queries(crew, by_a[-4:], history, n_negatives=4, seed=seed)
        assert len(pseudo) == 4
        for cand, label in zip(pseudo.candidates, pseudo.labels, strict=True):
            assert crew.ids["Worker"][int(cand[label][0])] == "weld-a"
            negatives = {crew.ids["Worker"][int(c)] for c in cand[~label]}
            assert "weld-b" not in negatives and len(negatives) == 4
    # with the rule off, the interchangeable welder does come up as a negative
    seen = set()
    for seed in range(10):
        loose = make_pseudo_queries(crew, by_a[-4:], history, n_negatives=6, seed=seed, same_work=1.01)
        seen |= {crew.ids["Worker"][int(c)] for cand, lab in zip(loose.candidates, loose.labels, strict=True)
                 for c in cand[~lab]}
    assert "weld-b" in seen


def test_negatives_follow_the_popularity_of_the_ranked_candidates(tmp_path: Path) -> None:
    data = _crew(6)
    # w1 and w2 get many more solved problems: the "popular" workers
    extra = [{"id": f"x{i:03d}", "title": f"额外问题{i}", "skills": ["PLC编程" if i % 2 else "数控加工"],
              "status": "solved", "solved_by": ["w1" if i % 2 else "w2"], "posted_at": "2024-06-01"}
             for i in range(60)]
    data["problems.jsonl"] = extra + data["problems.jsonl"]
    store = MemoryStore(None)
    load_dataset(store, write_dataset(tmp_path / "pop", data))
    proj = Projection.from_store(store)
    wid = proj.index["Worker"]
    priors = worker_priors(proj)
    reference = np.repeat(priors[[wid["w1"], wid["w2"]]], 20, axis=0)  # the ranked candidates are all popular
    solved = proj.matrix("SOLVED", "Worker", "Problem").tocsr()
    by_w5 = solved.indices[solved.indptr[wid["w5"]]:solved.indptr[wid["w5"] + 1]]
    history = np.ones(proj.n("Problem"), dtype=bool)
    history[by_w5[-3:]] = False
    matched = make_pseudo_queries(proj, by_w5[-3:], history, n_negatives=2, seed=0, reference_popularity=reference)
    uniform = make_pseudo_queries(proj, by_w5[-3:], history, n_negatives=2, seed=0)
    popular = {wid["w1"], wid["w2"]}
    share = lambda pq: np.mean([int(c) in popular for cand, lab in zip(pq.candidates, pq.labels, strict=True)  # noqa: E731
                                for c in cand[~lab]])
    assert share(matched) > 0.9 and share(uniform) < 0.9


def test_profiles_learned_from_the_held_out_problems_are_hidden(tmp_path: Path) -> None:
    data = _crew(3)
    data["workers.jsonl"][2]["skills"] = ["PLC编程", "铸造"]  # w1 declares 铸造, learned from one held-out problem
    data["problems.jsonl"].append({"id": "p9999", "title": "铸造砂眼", "skills": ["铸造"], "status": "solved",
                                   "solved_by": ["w1"], "posted_at": "2026-01-01"})
    store = MemoryStore(None)
    load_dataset(store, write_dataset(tmp_path / "leak", data))
    proj = Projection.from_store(store)
    held = np.array([proj.index["Problem"]["p9999"]])
    history = np.ones(proj.n("Problem"), dtype=bool)
    history[held] = False
    hidden = future_only_skills(proj, history, held)
    w1, casting = proj.index["Worker"]["w1"], proj.index["Skill"]["铸造"]
    assert hidden[w1, casting] == 1 and hidden.nnz == 1
    index = RankingIndex().fit(proj, history=history, hidden_declared=hidden)
    assert "铸造" not in index.declared_sets[w1] and "PLC编程" in index.declared_sets[w1]


# -- the expertise model and the activity prior -----------------------------------------------------------------

def test_expertise_prefers_the_worker_who_solves_such_problems_and_is_deterministic() -> None:
    rng = np.random.default_rng(6)
    topics = rng.random((4, 200)) < 0.05
    docs, owner = [], []
    for w in range(4):
        for _ in range(15):
            docs.append((topics[w] | (rng.random(200) < 0.02)).astype(float))
            owner.append(w)
    x = sp.csr_matrix(np.array(docs))
    x = sp.csr_matrix(x.multiply(1.0 / np.sqrt(np.asarray(x.multiply(x).sum(axis=1)))))
    solved = sp.csr_matrix((np.ones(len(owner)), (owner, np.arange(len(owner)))), shape=(4, len(owner)))
    model = fit_expertise(x, solved, dim=8, seed=0)
    again = fit_expertise(x, solved, dim=8, seed=0)
    assert model is not None and again is not None and np.array_equal(model.workers, again.workers)
    for w in range(4):
        z = model.embed(sp.csr_matrix(topics[w].astype(float)[None, :]))[0]
        assert int(np.argmax(model.scores(z, np.arange(4)))) == w


def test_activity_counts_recent_work_more_than_old_work(tmp_path: Path) -> None:
    data = _crew(1)
    old = [{"id": f"o{i}", "title": f"旧问题{i}", "skills": ["焊接"], "status": "solved", "solved_by": ["w1"],
            "posted_at": "2020-01-01"} for i in range(5)]
    new = [{"id": f"n{i}", "title": f"新问题{i}", "skills": ["焊接"], "status": "solved", "solved_by": ["w2"],
            "posted_at": "2026-11-01"} for i in range(5)]
    data["problems.jsonl"] += old + new
    store = MemoryStore(None)
    load_dataset(store, write_dataset(tmp_path / "act", data))
    index = RankingIndex().fit(Projection.from_store(store))
    wid = index.projection.index["Worker"]
    assert index.n_solved[wid["w1"]] == index.n_solved[wid["w2"]]
    assert index.activity[wid["w2"]] > index.activity[wid["w1"]] + 0.5


# -- the default dense encoder ---------------------------------------------------------------------------------

def test_the_default_encoder_knows_chinese_meaning_beyond_shared_characters() -> None:
    from embeddings.encoder import RANKING_DEFAULT, load_encoder
    from recommender.text import TextModel

    encoder = load_encoder(RANKING_DEFAULT)
    pairs = [  # same meaning, (almost) no characters in common; and an unrelated sentence
        ("数控机床主轴振动异常", "加工中心的转轴抖得厉害", "食堂菜单怎么安排"),
        ("焊缝出现气孔", "焊接接头里有小洞", "员工年终奖怎么发"),
        ("变频器频繁报过流故障", "调速器老是电流超限跳闸", "会议室预约流程"),
        ("注塑件表面有缩痕", "塑料制品外观凹陷", "公司年会节目排练"),
    ]
    texts = [t for triple in pairs for t in triple]
    v = encoder.encode(texts)
    assert v.shape == (len(texts), encoder.dim) and np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-4)
    assert np.array_equal(v, encoder.encode(texts))  # deterministic
    chars = TextModel().fit_transform(texts).char
    for i in range(len(pairs)):
        a, b, c = 3 * i, 3 * i + 1, 3 * i + 2
        assert v[a] @ v[b] > v[a] @ v[c] + 0.2, pairs[i]
    # character n-grams alone cannot tell these pairs from the unrelated ones
    char_margin = [float((chars[3 * i] @ chars[3 * i + 1].T).toarray()[0, 0]) for i in range(len(pairs))]
    assert min(char_margin) < 0.1
