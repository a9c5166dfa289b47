"""Problems for a worker from kept open-problem rows equal the computation from scratch (issue 16, finding 8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

import recommender.open_problems as open_module
from demo.generator import generate
from graph.dataset import load_dataset
from graph.memory import MemoryStore
from graph.store import NodeRow, RelRow, WriteBatch
from recommender.engine import ProblemSuggestion, RankConfig, Recommender
from recommender.features import FEATURES

#: Products summed in another order than compute_features' differ by float32 rounding (BM25 scores of
#: about 50 by up to 2e-5; a sentence-transformers encoder's vectors by 1e-7 with the batch they were
#: encoded in); nothing else may differ.
RTOL, ATOL = 1e-5, 1e-5


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate(out, scale=0.2, seed=7)  # 60 workers, 400 solved and 40 open problems
    return out


def _store(demo_dir: Path) -> MemoryStore:
    store = MemoryStore(None)
    load_dataset(store, demo_dir)
    return store


def _same(fast: list[ProblemSuggestion], direct: list[ProblemSuggestion]) -> None:
    """Same problems in the same order (up to ties within float rounding), same scores and components."""
    assert len(fast) == len(direct)
    by_id = {s.problem_id: s for s in direct}
    assert set(by_id) == {s.problem_id for s in fast}
    for at, (a, b) in enumerate(zip(fast, direct, strict=True)):
        if a.problem_id != b.problem_id:  # only a near-tie may swap places
            assert a.score == pytest.approx(b.score, rel=RTOL, abs=ATOL), (at, a.problem_id, b.problem_id)
        ref = by_id[a.problem_id]
        assert a.title == ref.title
        assert a.score == pytest.approx(ref.score, rel=RTOL, abs=ATOL)
        names = set(a.components) | set(ref.components)
        assert names <= set(FEATURES)
        for name in names:
            assert a.components.get(name, 0.0) == pytest.approx(ref.components.get(name, 0.0), rel=RTOL, abs=ATOL), \
                (a.problem_id, name)


def _check_all(rec: Recommender, workers: list[str]) -> int:
    compared = 0
    for w in workers:
        fast = rec.recommended_problems(w, n=1000)
        _same(fast, rec._recommended_problems_direct(w, n=1000))
        compared += len(fast)
    return compared


@pytest.mark.parametrize("with_encoder", [False, True], ids=["tfidf", "dense"])
def test_kept_rows_rank_like_the_computation_from_scratch(demo_dir: Path, tmp_path: Path, with_encoder: bool) -> None:
    encoder: Any = None
    if with_encoder:
        from embeddings.encoder import load_encoder

        encoder = load_encoder("all-MiniLM-L6-v2")  # small and packaged; the dense signals switch on
    store = _store(demo_dir)
    rec = Recommender(store, encoder=encoder, config=RankConfig(model_dir=tmp_path / "models"))
    workers = [w["id"] for w in store.list_nodes("Worker", limit=1000)]
    if with_encoder:  # the computation from scratch encodes every open problem again on every call
        workers = workers[::15]
    assert _check_all(rec, workers) > 20 * len(workers)
    some = rec.recommended_problems(workers[0], n=5)
    assert some and any(s.components.get("text_top3") for s in rec.recommended_problems(workers[0], n=1000))
    if with_encoder:
        assert any(s.components.get("dense_max") for s in some)
    # top n is the head of the full ranking
    assert [s.problem_id for s in some] == [s.problem_id for s in rec.recommended_problems(workers[0], n=1000)][:5]


def test_conflicts_of_interest_are_left_out_as_before(demo_dir: Path, tmp_path: Path) -> None:
    store = _store(demo_dir)
    rec = Recommender(store, config=RankConfig(model_dir=tmp_path / "models"))
    employed = next(w for w in store.list_nodes("Worker", limit=1000) if w.get("employer_id"))
    own = {p["id"] for p in store.list_nodes("Problem", where={"status": "open"}, limit=1000)
           if p.get("enterprise_id") == employed["employer_id"]}
    store.apply(WriteBatch(nodes=[NodeRow("Problem", "P-own", {
        "title": "本单位的注塑件缩痕", "status": "open", "enterprise_id": employed["employer_id"],
        "posted_at": "2024-05-01"})]))
    ids = {s.problem_id for s in rec.recommended_problems(employed["id"], n=1000)}
    assert ids and not ids & (own | {"P-own"})
    _same(rec.recommended_problems(employed["id"], n=1000), rec._recommended_problems_direct(employed["id"], n=1000))


def test_rows_follow_posts_edits_solves_and_closes(demo_dir: Path, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    store = _store(demo_dir)
    rec = Recommender(store, config=RankConfig(model_dir=tmp_path / "models", refit_share=1.0))
    workers = [w["id"] for w in store.list_nodes("Worker", limit=1000)]
    analysed: list[str] = []
    views = open_module._views

    def counting(text: Any, texts: Any) -> Any:
        analysed.extend(texts)
        return views(text, texts)

    monkeypatch.setattr(open_module, "_views", counting)
    open_ids = [p["id"] for p in store.list_nodes("Problem", where={"status": "open"}, limit=1000)]
    rec.recommended_problems(workers[0])
    assert len(analysed) == len(open_ids)  # every open problem once
    rec.recommended_problems(workers[1])
    assert len(analysed) == len(open_ids)  # kept between calls

    # posting a problem analyses that problem only
    analysed.clear()
    skill = store.list_nodes("Skill", limit=1)[0]["id"]
    store.apply(WriteBatch(nodes=[NodeRow("Problem", "P-new", {"title": "伺服电机过热报警", "description": "频繁停机",
                                                               "skills": [skill], "status": "open",
                                                               "posted_at": "2024-05-02"})],
                           rels=[RelRow("REQUIRES", "Problem", "P-new", "Skill", skill)]))
    assert "P-new" in {s.problem_id for s in rec.recommended_problems(workers[0], n=1000)}
    assert analysed == [rec._query("P-new").text]
    _check_all(rec, workers[:10])

    # an edited title is analysed again; a closed problem leaves the list
    analysed.clear()
    store.apply(WriteBatch(nodes=[NodeRow("Problem", open_ids[0], {"title": "数控机床主轴异响"}),
                                  NodeRow("Problem", open_ids[1], {"status": "closed"})]))
    got = {s.problem_id for s in rec.recommended_problems(workers[0], n=1000)}
    assert open_ids[0] in got and open_ids[1] not in got
    assert analysed == [rec._query(open_ids[0]).text]
    _check_all(rec, workers[:10])

    # solving an open problem gives new evidence: the index is updated and the kept rows follow it
    index = rec.index
    analysed.clear()
    store.apply(WriteBatch(nodes=[NodeRow("Problem", open_ids[2], {"status": "solved"})],
                           rels=[RelRow("SOLVED", "Worker", workers[3], "Problem", open_ids[2], {"rating": 5})]))
    got = {s.problem_id for s in rec.recommended_problems(workers[3], n=1000)}
    assert rec.index is not index and rec.last_refresh == "index"
    assert open_ids[2] not in got
    assert analysed == []  # the text model was kept, so were the open problems' text rows
    _check_all(rec, workers[:10])

    # a full rebuild fits a new text model: everything is analysed again
    rec.rebuild()
    analysed.clear()
    rec.recommended_problems(workers[0])
    assert len(analysed) == len(open_ids) - 1  # one posted, one closed, one solved
    _check_all(rec, workers[:10])


def test_no_open_problems_and_unknown_workers(tmp_path: Path, demo_dir: Path) -> None:
    store = _store(demo_dir)
    rec = Recommender(store, config=RankConfig(model_dir=tmp_path / "models"))
    open_ids = [p["id"] for p in store.list_nodes("Problem", where={"status": "open"}, limit=1000)]
    store.apply(WriteBatch(nodes=[NodeRow("Problem", p, {"status": "closed"}) for p in open_ids]))
    worker = store.list_nodes("Worker", limit=1)[0]["id"]
    assert rec.recommended_problems(worker) == [] == rec._recommended_problems_direct(worker)
    assert np.all(rec._open_problems().features(rec.index, 0).shape == (0, len(FEATURES)))
