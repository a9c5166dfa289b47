"""Programme progress per district x phase x metric, and the configurable targets."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest

from graph.config import Settings
from graph.memory import MemoryStore
from graph.rules import TIMEZONE
from workflow.progress import programme_progress
from workflow.selection import Selection
from workflow.targets import DEFAULT_DISTRICTS, METRICS, Phase, Targets, apportion, load_targets


# -- targets ---------------------------------------------------------------------------------------
def test_default_targets_split_the_city_figures_across_districts_and_phases() -> None:
    targets = Targets()
    assert len(targets.districts) == 11 and targets.districts == DEFAULT_DISTRICTS
    assert (targets.start, targets.end) == (date(2026, 11, 10), date(2027, 7, 31))
    assert len(targets.phases) == 4
    for before, after in zip(targets.phases, targets.phases[1:], strict=False):
        assert after.start == before.end + timedelta(days=1)  # contiguous, no gaps
    for metric, city in (("visits", 200), ("problems_solved", 200), ("people_trained", 800)):
        per_district = [targets.district_target(d, metric) for d in targets.districts]
        assert sum(per_district) == city and max(per_district) - min(per_district) <= 1
        for district in targets.districts:
            assert sum(targets.phase_targets(district, metric)) == targets.district_target(district, metric)


def test_overrides_keep_the_city_total() -> None:
    targets = Targets(district_targets={"亭湖区": {"visits": 40}})
    assert targets.district_target("亭湖区", "visits") == 40
    assert sum(targets.district_target(d, "visits") for d in targets.districts) == 200
    assert targets.district_target("亭湖区", "people_trained") == 73  # not overridden: the even split


def test_apportion_is_exact() -> None:
    assert apportion(7, [1, 1, 1]) == [3, 2, 2]
    assert apportion(0, [3, 1]) == [0, 0]
    assert sum(apportion(800, [51, 90, 76, 46])) == 800
    with pytest.raises(ValueError):
        apportion(-1, [1])


def test_targets_load_from_json_and_toml(tmp_path: Path) -> None:
    doc = {"city": {"visits": 10}, "districts": ["甲区", "乙区"], "margin": 0.25,
           "phases": [{"name": "一", "start": "2027-01-01", "end": "2027-01-31", "weight": 1},
                      {"name": "二", "start": "2027-02-01", "end": "2027-02-28", "weight": 3}]}
    (tmp_path / "t.json").write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    targets = load_targets(Settings.from_env({"JIANGLIAN_TARGETS": str(tmp_path / "t.json")}).targets_file)
    assert targets.city == {"visits": 10, "problems_solved": 200, "people_trained": 800}
    assert targets.districts == ("甲区", "乙区") and targets.margin == 0.25
    assert targets.phase_targets("甲区", "visits") == [1, 4]  # 5 split 1:3
    (tmp_path / "t.toml").write_text(
        'districts = ["甲区"]\n[city]\nvisits = 3\n[[phases]]\nname = "一"\nstart = 2027-01-01\nend = 2027-01-31\n'
        '[district_targets."甲区"]\npeople_trained = 9\n', encoding="utf-8")
    toml = load_targets(tmp_path / "t.toml")
    assert toml.phases == (Phase("一", date(2027, 1, 1), date(2027, 1, 31)),)
    assert toml.district_target("甲区", "people_trained") == 9
    assert Targets.from_mapping(targets.to_dict()) == targets
    assert load_targets(Settings.from_env({}).targets_file) == Targets() == load_targets(None)
    (tmp_path / "bad.json").write_text('{"phases": [{"name": "x", "start": "2027-02-01", "end": "2027-01-01"}]}')
    with pytest.raises(ValueError):
        load_targets(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="cannot read"):
        load_targets(tmp_path / "missing.json")


# -- progress from a hand-made store ---------------------------------------------------------------
TARGETS = Targets(
    city={"visits": 4, "problems_solved": 4, "people_trained": 20},
    districts=("甲区", "乙区"),
    phases=(Phase("一", date(2027, 1, 1), date(2027, 1, 10)), Phase("二", date(2027, 1, 11), date(2027, 1, 20))),
    margin=0.1,
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 1, 9, tzinfo=TIMEZONE)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    for wid in ("W1", "W2", "W3"):
        s.create_node("Worker", wid, {"name": wid, "capacity": 10})
    s.create_node("Enterprise", "E9", {"name": "丙厂", "district": "乙区"})
    problems = {"PA1": ("甲区", 2), "PA2": ("甲区", 1), "PB1": ("乙区", 1), "PX": ("丙区", 1),
                "PE": (None, 1), "POLD": ("甲区", 1)}
    for pid, (district, demand) in problems.items():
        props = {"title": pid, "status": "open", "demand": demand, "district": district}
        if pid == "PE":
            props["enterprise_id"] = "E9"  # no district of its own: the enterprise's counts
        s.create_node("Problem", pid, props)
    clock = Clock()
    sel = Selection(s, clock=clock)

    def at(day: date) -> None:
        clock.now = datetime(day.year, day.month, day.day, 10, tzinfo=TIMEZONE)

    def done(pid: str, wid: str, day: date, *, solved: bool, trainees: int, mid: str | None = None) -> None:
        at(day)
        if mid is None:
            mid = sel.invite(pid, wid, actor="c")["id"]
            sel.accept(mid, actor=wid)
        sel.complete(mid, solved=solved, hours=2, trainees=trainees, satisfaction=4, actor="c")

    at(date(2027, 1, 2))  # PA1 needs two workers: both are on it before the first finishes
    pa1 = [sel.invite("PA1", wid, actor="c")["id"] for wid in ("W1", "W2")]
    for mid, wid in zip(pa1, ("W1", "W2"), strict=True):
        sel.accept(mid, actor=wid)

    done("POLD", "W1", date(2026, 12, 20), solved=True, trainees=5)  # before the campaign
    done("PA1", "W1", date(2027, 1, 3), solved=True, trainees=3, mid=pa1[0])
    done("PA1", "W2", date(2027, 1, 4), solved=True, trainees=1, mid=pa1[1])  # the same problem: solved once
    done("PA2", "W3", date(2027, 1, 5), solved=False, trainees=2)  # a visit, not a solve
    done("PX", "W2", date(2027, 1, 6), solved=True, trainees=4)    # a district outside the list
    done("PE", "W3", date(2027, 1, 12), solved=True, trainees=6)   # 乙区 via the enterprise, phase 二
    # live and declined matches count for nothing
    clock.now = datetime(2027, 1, 7, 9, tzinfo=TIMEZONE)
    sel.invite("PB1", "W1", actor="c")
    sel.decline(sel.invite("PA2", "W1", actor="c")["id"], reason="忙", actor="W1")
    return s


def test_progress_per_district_phase_and_metric(store: MemoryStore) -> None:
    report = programme_progress(store, targets=TARGETS, today=date(2027, 1, 5))
    assert report["today"] == "2027-01-05" and report["metrics"] == list(METRICS)
    assert [(p["name"], p["elapsed"], p["current"]) for p in report["phases"]] == [("一", 0.5, True),
                                                                                   ("二", 0.0, False)]
    a1 = report["by_district"]["甲区"]["phases"][0]
    assert a1["visits"] == {"target": 1, "done": 3, "ratio": 3.0, "expected": 0.5, "at_risk": False}
    assert a1["problems_solved"]["done"] == 1  # PA1 once, PA2 unsolved
    assert a1["people_trained"] == {"target": 5, "done": 6, "ratio": 1.2, "expected": 2.5, "at_risk": False}
    b1 = report["by_district"]["乙区"]["phases"][0]
    assert b1["visits"] == {"target": 1, "done": 0, "ratio": 0.0, "expected": 0.5, "at_risk": True}
    b2 = report["by_district"]["乙区"]["phases"][1]
    assert b2["visits"]["done"] == 1 and b2["visits"]["at_risk"] is False  # phase 二 has not started
    # every cell once in the flat rows, and the at-risk list agrees with them
    assert len(report["rows"]) == 2 * 2 * 3
    assert {(r["district"], r["phase"], r["metric"]) for r in report["rows"] if r["at_risk"]} == {
        (x["district"], x["phase"], x["metric"]) for x in report["at_risk"]}
    assert ("乙区", "一", "visits") in {(x["district"], x["phase"], x["metric"]) for x in report["at_risk"]}
    # the city counts every district, including the unlisted one; the pre-campaign visit counts nowhere
    city = report["city"]
    assert city["phases"][0]["visits"]["done"] == 4 and city["phases"][1]["visits"]["done"] == 1
    assert city["total"]["visits"]["target"] == 4 and city["total"]["visits"]["done"] == 5
    assert city["total"]["problems_solved"]["done"] == 3  # PA1, PX, PE
    assert city["total"]["people_trained"]["done"] == 16
    assert report["unattributed"] == {"visits": 1, "problems_solved": 1, "people_trained": 4}
    assert report["outside_campaign"] == {"visits": 1, "problems_solved": 1, "people_trained": 5}
    json.dumps(report)  # JSON-ready


def test_a_finished_phase_that_missed_its_target_is_at_risk(store: MemoryStore) -> None:
    report = programme_progress(store, targets=TARGETS, today=date(2027, 3, 1))
    b1 = report["by_district"]["乙区"]["phases"][0]["visits"]
    assert b1["expected"] == 1.0 and b1["at_risk"] is True
    total_b = report["by_district"]["乙区"]["total"]["visits"]
    assert total_b == {"target": 2, "done": 1, "ratio": 0.5, "expected": 2.0, "at_risk": True}
    before = programme_progress(store, targets=TARGETS, today=date(2026, 12, 31))
    assert before["at_risk"] == [] and not any(p["current"] for p in before["phases"])


def test_an_empty_store_with_default_targets() -> None:
    report = programme_progress(MemoryStore(), today=date(2026, 12, 31))
    assert len(report["rows"]) == 11 * 4 * 3
    assert report["city"]["total"]["visits"]["target"] == 200
    assert report["city"]["total"]["people_trained"]["target"] == 800
    assert sum(c["visits"]["target"] for c in report["city"]["phases"]) == 200
    # the first phase ends with nothing done: every first-phase cell missed its target
    assert {x["phase"] for x in report["at_risk"]} == {"动员部署"}


def test_phase_weights_are_all_or_nothing() -> None:
    with pytest.raises(ValueError, match="every phase"):
        Targets(phases=(Phase("一", date(2027, 1, 1), date(2027, 1, 31), weight=1),
                        Phase("二", date(2027, 2, 1), date(2027, 2, 28))))
    with pytest.raises(ValueError, match="overlap"):
        Targets(phases=(Phase("一", date(2027, 1, 1), date(2027, 1, 31)),
                        Phase("二", date(2027, 1, 31), date(2027, 2, 28))))


def test_progress_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from cli.main import main

    targets = tmp_path / "targets.json"
    targets.write_text(json.dumps(TARGETS.to_dict(), ensure_ascii=False), encoding="utf-8")
    env = {"JIANGLIAN_DATA_DIR": str(tmp_path / "data"), "JIANGLIAN_STORE": "memory"}
    runner = CliRunner()
    table = runner.invoke(main, ["progress", "--today", "2027-01-05", "--targets", str(targets)], env=env)
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0] == "as of 2027-01-05 (current phase: 一)"
    # halfway through phase 一 with nothing done: behind the pro-rata expectation, marked !
    assert lines[3].split() == ["甲区", "0/2!", "0/2!", "0/10!"]
    assert lines[5].split() == ["全市", "0/4!", "0/4!", "0/20!"]
    assert lines[10].split() == ["二", "2027-01-11…2027-01-20", "0/2", "0/2", "0/10"]  # not started: not at risk
    as_json = runner.invoke(main, ["progress", "--today", "2027-01-05", "--targets", str(targets), "--json"], env=env)
    report = json.loads(as_json.output)
    assert report["city"]["total"]["visits"]["target"] == 4
    assert {(x["district"], x["phase"]) for x in report["at_risk"]} == {("甲区", "一"), ("乙区", "一")}
    bad = runner.invoke(main, ["progress", "--today", "05/01/2027"], env=env)
    assert bad.exit_code == 2
