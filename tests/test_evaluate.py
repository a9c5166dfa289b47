"""Evaluation metrics (pessimistic ties), the evaluate output format, and the CLI command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from recommender.evaluate import evaluate_dataset
from recommender.metrics import QueryResult, pessimistic_rank, pessimistic_ranks, summarise
from tests.ranking_fixtures import write_dataset


def test_hand_made_three_queries_with_a_tie() -> None:
    rankings = {
        "q1": ({"a": 3.0, "b": 2.0, "c": 1.0}, "a"),  # rank 1
        "q2": ({"a": 3.0, "b": 2.0, "c": 2.0}, "c"),  # ties with b: pessimistic rank 3, not 2
        "q3": ({"a": 1.0, "b": 5.0, "c": 0.0}, "a"),  # rank 2
    }
    ranks = {q: pessimistic_rank(scores, exp) for q, (scores, exp) in rankings.items()}
    assert ranks == {"q1": 1, "q2": 3, "q3": 2}
    m = summarise(QueryResult(q, (r,)) for q, r in ranks.items())
    assert m["MRR"] == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)
    assert m["P@1"] == pytest.approx(1 / 3)
    assert m["P@3"] == pytest.approx(1.0)
    assert m["nDCG@10"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(3)) / 3)
    assert m["queries"] == 3


def test_all_equal_scores_rank_the_expected_last() -> None:
    assert pessimistic_rank(dict.fromkeys("abcde", 0.0), "c") == 5
    assert pessimistic_ranks({"a": 1.0, "b": 1.0, "c": 0.5}, ["a", "b"]) == [1, 2]
    assert pessimistic_ranks({"a": 1.0}, ["zz"]) == [2]  # a missing expected worker ranks after everyone


def _queries(path: Path) -> Path:
    rows = [
        {"id": "q1", "problem": {"title": "风电法兰焊接裂纹", "skills": ["电焊"], "enterprise_id": "e2"},
         "candidates": ["w1", "w2", "w3", "w6"], "expected": ["w1"]},
        {"id": "q2", "problem": {"title": "PLC程序调试", "description": "触摸屏通讯", "skills": ["PLC"]},
         "expected": ["w2"]},
        {"id": "q3", "problem": "p4", "candidates": ["w3", "zz", "w1"], "expected": ["w3"]},
    ]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def _recompute(out: Path, queries: Path) -> float:
    expected = {json.loads(line)["id"]: json.loads(line)["expected"] for line in queries.read_text().splitlines()}
    rr = []
    for line in out.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        scores = {r["worker_id"]: r["score"] for r in row["ranking"]}
        rr.append(1.0 / min(pessimistic_ranks(scores, expected[row["id"]])))
    return sum(rr) / len(rr)


def test_evaluate_output_format_and_metrics(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "tiny")
    queries = _queries(tmp_path / "queries.jsonl")
    out = tmp_path / "ranked.jsonl"
    report = evaluate_dataset(data, queries, out, seed=3)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in lines] == ["q1", "q2", "q3"]
    assert [r["worker_id"] for r in lines[0]["ranking"]].__len__() == 4
    assert {r["worker_id"] for r in lines[0]["ranking"]} == {"w1", "w2", "w3", "w6"}
    assert {r["worker_id"] for r in lines[1]["ranking"]} == {f"w{i}" for i in range(1, 7)}  # all workers
    assert lines[2]["ranking"][-1]["worker_id"] == "zz"  # unknown candidate last
    for row in lines:
        scores = [r["score"] for r in row["ranking"]]
        assert scores == sorted(scores, reverse=True)
        assert set(row) == {"id", "ranking"} and all(set(r) == {"worker_id", "score"} for r in row["ranking"])
    assert report.metrics["queries"] == 3
    assert report.metrics["MRR"] == pytest.approx(_recompute(out, queries), abs=1e-6)
    assert report.metrics["MRR"] >= 2 / 3  # the welder, the PLC engineer and the CNC machinist are easy
    assert report.chosen == "default"  # too little history to train on: the query-normalised default
    assert report.model_version.startswith("fused-default@")


def test_cli_evaluate(tmp_path: Path) -> None:
    from cli.main import main

    data = write_dataset(tmp_path / "tiny")
    queries = _queries(tmp_path / "queries.jsonl")
    out = tmp_path / "ranked.jsonl"
    result = CliRunner().invoke(main, ["evaluate", str(data), "--queries", str(queries), "--out", str(out),
                                       "--seed", "1", "--ablation"])
    assert result.exit_code == 0, result.output
    assert "MRR" in result.output and "nDCG@10" in result.output and "text_top3" in result.output
    assert len(out.read_text(encoding="utf-8").splitlines()) == 3
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "x"}\n', encoding="utf-8")
    result = CliRunner().invoke(main, ["evaluate", str(data), "--queries", str(bad), "--out", str(out)])
    assert result.exit_code != 0 and "problem" in result.output


@pytest.mark.slow
def test_gis_subsample_beats_popularity(gis_dir: Path, tmp_path: Path) -> None:
    lines = (gis_dir / "queries-dev.jsonl").read_text(encoding="utf-8").splitlines()[:300]
    queries = tmp_path / "dev300.jsonl"
    queries.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = evaluate_dataset(gis_dir, queries, tmp_path / "out.jsonl", ablation=True)
    assert report.metrics["MRR"] > report.ablation["popularity"]["MRR"] + 0.1
    assert report.metrics["MRR"] > report.ablation["text_top3"]["MRR"]
