"""Tests of the deterministic demo-data generator (:mod:`demo.generator`)."""

from __future__ import annotations

import datetime as dt
import json
import random
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

from demo.generator import END, FILES, OPEN_FROM, START, DemoWorld, credit_code_valid, generate, generate_rows
from graph.model import SERVICE_TYPES

YANCHENG = {
    "亭湖区", "盐都区", "大丰区", "东台市", "建湖县", "射阳县", "阜宁县", "滨海县", "响水县",
    "盐城经济技术开发区", "盐南高新区",
}


def _read(path: Path) -> list[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    out = tmp_path_factory.mktemp("demo1")
    counts = generate(out, scale=1.0, seed=7)
    rows = {name: _read(out / name) for name in FILES}
    return {"dir": out, "counts": counts, "rows": rows}


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    generate(tmp_path / "a", scale=0.2, seed=11)
    generate(tmp_path / "b", scale=0.2, seed=11)
    generate(tmp_path / "c", scale=0.2, seed=12)
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    assert (tmp_path / "a" / "problems.jsonl").read_bytes() != (tmp_path / "c" / "problems.jsonl").read_bytes()
    assert (tmp_path / "a" / "workers.jsonl").read_bytes() != (tmp_path / "c" / "workers.jsonl").read_bytes()


def test_files_are_utf8_jsonl_without_ascii_escapes(data: dict[str, Any]) -> None:
    raw = (data["dir"] / "problems.jsonl").read_bytes()
    assert raw.endswith(b"\n") and b"\\u" not in raw
    text = raw.decode("utf-8")
    assert "异" in text or "不" in text
    for name in FILES:
        assert not (data["dir"] / (name + ".tmp")).exists()


def test_generate_rows_streams_the_same_rows(tmp_path: Path) -> None:
    generate(tmp_path, scale=0.2, seed=5)
    streamed: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for name, row in generate_rows(scale=0.2, seed=5):
        streamed[name].append(row)
    assert list(streamed) == list(FILES)
    for name in FILES:
        assert streamed[name] == _read(tmp_path / name), name


def test_counts_at_scale_one(data: dict[str, Any]) -> None:
    rows, counts = data["rows"], data["counts"]
    assert counts == {name: len(rows[name]) for name in FILES}
    assert counts["districts.jsonl"] == 11
    assert counts["chains.jsonl"] == 23
    assert 90 <= counts["skills.jsonl"] <= 130
    assert 280 <= counts["workers.jsonl"] <= 320
    firms = rows["enterprises.jsonl"]
    zjtx = [e for e in firms if "专精特新" in e["tags"]]
    giants = [e for e in zjtx if "小巨人" in e["tags"]]
    assert len(zjtx) == 246
    assert 5 <= len(giants) <= 40
    assert not [e for e in firms if "小巨人" in e["tags"] and "专精特新" not in e["tags"]]
    assert 300 <= len(firms) - len(zjtx) <= 400
    not_unionised = sum(not e["unionised"] for e in firms) / len(firms)
    assert 0.12 <= not_unionised <= 0.3
    status = Counter(p["status"] for p in rows["problems.jsonl"])
    assert 1900 <= status["solved"] <= 2100
    assert 180 <= status["open"] <= 220
    assert set(status) == {"solved", "open"}


def test_chains_and_districts_are_the_programme_ones(data: dict[str, Any]) -> None:
    rows = data["rows"]
    assert {d["name"] for d in rows["districts.jsonl"]} == YANCHENG
    chains = [c["name"] for c in rows["chains.jsonl"]]
    assert len(set(chains)) == 23
    for named in ("新能源", "新能源汽车及核心零部件", "新一代信息技术", "新材料", "大健康", "数字经济"):
        assert named in chains
    by_id = {d["id"]: d for d in rows["districts.jsonl"]}
    for d in rows["districts.jsonl"]:
        assert d["neighbours"], d["name"]
        for other in d["neighbours"]:
            assert d["id"] in by_id[other]["neighbours"], (d["name"], other)


def test_every_reference_resolves(data: dict[str, Any]) -> None:
    rows = data["rows"]
    for name in FILES:
        ids = [r["id"] for r in rows[name]]
        assert len(ids) == len(set(ids)), name
    skills = {s["name"] for s in rows["skills.jsonl"]}
    chain_ids = {c["id"] for c in rows["chains.jsonl"]}
    chain_names = {c["name"] for c in rows["chains.jsonl"]}
    firms = {e["id"]: e for e in rows["enterprises.jsonl"]}
    workers = {w["id"]: w for w in rows["workers.jsonl"]}
    aliases = [a for s in rows["skills.jsonl"] for a in s["aliases"]]
    assert len(aliases) == len(set(aliases)), "an alias names two skills"
    assert not set(aliases) & skills
    for s in rows["skills.jsonl"]:
        assert set(s["chain_ids"]) <= chain_ids
    for e in firms.values():
        assert e["district"] in YANCHENG and e["industry_chain"] in chain_names
    for w in workers.values():
        assert w["skills"] and set(w["skills"]) <= skills, w["id"]
        assert w["district"] in YANCHENG
        assert w["team"] == "city" or w["team"] in YANCHENG
        if "employer_id" in w:
            assert w["employer_id"] in firms
    for p in rows["problems.jsonl"]:
        assert p["skills"] and set(p["skills"]) <= skills, p["id"]
        assert p["enterprise_id"] in firms
        assert p["district"] == firms[p["enterprise_id"]]["district"]
        assert p["service_type"] in SERVICE_TYPES
        if p["status"] == "solved":
            assert 1 <= len(p["solved_by"]) <= 3
            assert len(set(p["solved_by"])) == len(p["solved_by"])
            assert all(w in workers for w in p["solved_by"])
            assert [o["worker_id"] for o in p["outcomes"]] == p["solved_by"]
            for o in p["outcomes"]:
                assert 1 <= o["rating"] <= 5 and o["hours"] > 0 and o["trainees"] >= 0
        else:
            assert "solved_by" not in p and "solved_at" not in p and "outcomes" not in p


def test_the_dataset_loader_accepts_it(data: dict[str, Any]) -> None:
    from graph.dataset import read_dataset

    parsed = read_dataset(data["dir"])
    assert parsed.errors == []
    assert len(parsed.rows["Problem"]) == len(data["rows"]["problems.jsonl"])


def test_worker_rows(data: dict[str, Any]) -> None:
    workers = data["rows"]["workers.jsonl"]
    levels = Counter(w["level"] for w in workers)
    assert set(levels) == {"national", "provincial", "city"}
    assert levels["city"] > levels["provincial"] > levels["national"] > 0
    for w in workers:
        assert 1 <= w["capacity"] <= 4
        assert w["honours"] and w["service_menu"]
        assert w["contact"].isdigit() and len(w["contact"]) == 11 and w["contact"][0] == "1"
        assert 2 <= len(w["name"]) <= 3
        if "studio" in w:
            assert w["studio"].startswith(w["name"]) and w["studio"].endswith("工作室")
    national = {"全国劳动模范", "全国五一劳动奖章", "大国工匠"}
    assert all(set(w["honours"]) & national for w in workers if w["level"] == "national")
    assert not any(set(w["honours"]) & national for w in workers if w["level"] != "national")
    assert 0.02 < sum(not w["active"] for w in workers) / len(workers) < 0.2
    assert 0.2 < sum(w["teaches"] for w in workers) / len(workers) < 0.8


def test_team_structure(data: dict[str, Any]) -> None:
    workers = data["rows"]["workers.jsonl"]
    city_team = [w for w in workers if w["city_team"]]
    assert 55 <= len(city_team) <= 70
    city_units = [w for w in workers if w["team"] == "city"]
    assert len(city_units) == 10 and all(w["city_team"] for w in city_units)
    assert [w["role"] for w in city_units].count("captain") == 1
    for district in YANCHENG:
        team = [w for w in workers if w["team"] == district]
        assert len(team) >= 10, district
        on_city = [w for w in team if w["city_team"]]
        assert len(on_city) == 5, district
        captains = [w for w in team if w["role"] == "captain"]
        assert len(captains) == 1 and captains[0]["city_team"], district  # the city team's vice-captain
        assert [w["role"] for w in team].count("vice_captain") == 1
        assert all(w["district"] == district for w in team)


def test_enterprise_rows(data: dict[str, Any]) -> None:
    firms = data["rows"]["enterprises.jsonl"]
    assert len({e["name"] for e in firms}) == len(firms)
    assert len({e["credit_code"] for e in firms}) == len(firms)
    assert all(credit_code_valid(e["credit_code"]) for e in firms)
    assert all(e["name"].endswith("公司") for e in firms)
    assert not credit_code_valid(firms[0]["credit_code"][:-1] + ("0" if firms[0]["credit_code"][-1] != "0" else "1"))
    assert sum("中小微" in e["tags"] for e in firms) > 200


def test_dates_are_consistent(data: dict[str, Any]) -> None:
    problems = data["rows"]["problems.jsonl"]
    posted = [p["posted_at"] for p in problems]
    assert posted == sorted(posted), "problems.jsonl is in posting order"
    months = set()
    for p in problems:
        day = dt.date.fromisoformat(p["posted_at"])
        assert START <= day <= END
        if p["status"] == "solved":
            solved = dt.date.fromisoformat(p["solved_at"])
            assert day <= solved <= END
            months.add((day.year, day.month))
        else:
            assert day >= OPEN_FROM
    assert len(months) >= 34  # three years, every month has some activity


def test_text_is_varied(data: dict[str, Any]) -> None:
    problems = data["rows"]["problems.jsonl"]
    titles = [p["title"] for p in problems]
    texts = [p["description"] for p in problems]
    assert len(set(titles)) / len(titles) > 0.9
    assert len(set(texts)) / len(texts) > 0.99
    grams = {t[i:i + 4] for t in texts for i in range(len(t) - 3)}
    assert len(grams) > 25_000
    assert all("{" not in t and "}" not in t for t in titles + texts)
    assert all(t.endswith("。") for t in texts)
    joined = "".join(texts)
    for synonyms in (("良率", "合格率", "成品率"), ("异响", "噪音大", "有杂音"), ("我司", "我公司", "本公司")):
        assert sum(s in joined for s in synonyms) >= 2, synonyms
    # problems of one skill share meaning, not wording: few exact repeats of long substrings
    by_skill: dict[str, list[str]] = defaultdict(list)
    for p in problems:
        by_skill[p["skills"][0]].append(p["description"])
    busiest = max(by_skill.values(), key=len)
    assert len(busiest) >= 20
    openings = Counter(t[:12] for t in busiest)
    assert openings.most_common(1)[0][1] <= len(busiest) * 0.3


def test_every_skill_and_service_has_a_grammar() -> None:
    world = DemoWorld(scale=0.2, seed=3)
    for skill in world.skill_names:
        for service in SERVICE_TYPES:
            for seed in range(3):
                title, text = world.problem_text([skill], service, seed=seed, enterprise=seed)
                assert title and text.endswith("。"), (skill, service)
                assert "{" not in title + text and "}" not in title + text, (skill, service, title, text)
    with pytest.raises(ValueError):
        world.problem_text(["焊接"], "打酱油")


def test_scale_must_be_positive() -> None:
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError):
            DemoWorld(scale=bad)


def test_scale_multiplies_entities() -> None:
    small, big = DemoWorld(scale=1.0, seed=2), DemoWorld(scale=3.0, seed=2)
    assert big.n_workers == 3 * small.n_workers
    assert big.n_enterprises == 3 * small.n_enterprises
    assert len(small.skill_names) == len(big.skill_names)
    assert sum(1 for _ in small.problems()) == 2200


def test_solvers_follow_the_matching_process(data: dict[str, Any]) -> None:
    rows = data["rows"]
    workers = {w["id"]: w for w in rows["workers.jsonl"]}
    solved = [p for p in rows["problems.jsonl"] if p["status"] == "solved"]
    slots = [(p, workers[w]) for p in solved for w in p["solved_by"]]
    overlap = sum(bool(set(w["skills"]) & set(p["skills"])) for p, w in slots) / len(slots)
    assert 0.7 < overlap < 0.97  # skills drive the choice, some solvers are chosen loosely
    share = Counter(w["district"] for w in workers.values())
    base = sum(share[p["district"]] / len(workers) for p, _ in slots) / len(slots)
    local = sum(w["district"] == p["district"] for p, w in slots) / len(slots)
    assert local > 1.4 * base
    training = [w for p, w in slots if p["service_type"] in ("技能培训", "名师带徒")]
    assert sum(w["teaches"] for w in training) / len(training) > 0.7
    # repeat business: an enterprise's later problem often goes to one of its earlier solvers
    seen: dict[str, set[str]] = defaultdict(set)
    again = eligible = 0
    for p in solved:
        if seen[p["enterprise_id"]]:
            eligible += 1
            again += bool(seen[p["enterprise_id"]] & set(p["solved_by"]))
        seen[p["enterprise_id"]].update(p["solved_by"])
    assert again / eligible > 0.4  # 0.33 without the prior-work bonus, 0.47 with it
    # monthly capacity holds
    load: Counter[tuple[str, str]] = Counter()
    for p in solved:
        for w in p["solved_by"]:
            load[(w, p["posted_at"][:7])] += 1
    assert all(n <= workers[w]["capacity"] for (w, _), n in load.items())


def test_history_is_learnable_but_not_trivial(data: dict[str, Any]) -> None:
    """A hand-made ranker on a time split beats chance by far and is far from perfect."""
    rows = data["rows"]
    workers = rows["workers.jsonl"]
    firms = {e["id"]: e for e in rows["enterprises.jsonl"]}
    solved = [p for p in rows["problems.jsonl"] if p["status"] == "solved"]
    cut = int(len(solved) * 0.8)
    train, test = solved[:cut], solved[cut:]
    by_firm: dict[str, Counter[str]] = defaultdict(Counter)
    by_chain: dict[str, Counter[str]] = defaultdict(Counter)
    for p in train:
        for w in p["solved_by"]:
            by_firm[p["enterprise_id"]][w] += 1
            by_chain[firms[p["enterprise_id"]]["industry_chain"]][w] += 1

    def score(p: dict[str, Any], w: dict[str, Any]) -> float:
        overlap = len(set(w["skills"]) & set(p["skills"])) / len(p["skills"])
        chain = firms[p["enterprise_id"]]["industry_chain"]
        return (3 * overlap + (w["district"] == p["district"]) + 2 * (by_firm[p["enterprise_id"]][w["id"]] > 0)
                + 0.3 * min(by_chain[chain][w["id"]], 5))

    def hit_rate(k: int, ranker: Any) -> float:
        hits = 0
        for p in test:
            top = sorted(workers, key=lambda w: -ranker(p, w))[:k]
            hits += bool({w["id"] for w in top} & set(p["solved_by"]))
        return hits / len(test)

    rnd = random.Random(0)
    chance = hit_rate(10, lambda p, w: rnd.random())
    informed = hit_rate(10, score)
    assert informed > max(0.5, 4 * chance)
    assert hit_rate(1, score) < 0.7
