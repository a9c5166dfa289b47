"""recommender/threads.py: how a recommendation's work is split over threads (the numbers it gives are checked
in test_kernels.py and test_pipeline.py)."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import numpy as np
import pytest

from recommender import threads


def test_split_bounds_balance_the_entries() -> None:
    sizes = np.array([1, 1, 1, 1, 10, 1, 1, 1, 1, 1, 1])
    bounds = threads.split_bounds(sizes, 2)
    assert bounds[0] == 0 and bounds[-1] == len(sizes) and np.all(np.diff(bounds) >= 0)
    assert [int(sizes[bounds[i]:bounds[i + 1]].sum()) for i in range(2)] == [14, 6]  # cut after the middle item
    assert threads.split_bounds(np.zeros(0, dtype=np.int64), 3).tolist() == [0, 0, 0, 0]
    assert threads.split_bounds(np.array([4]), 3).tolist() == [0, 1, 1, 1]


def test_in_parts_reads_every_item_once_in_order() -> None:
    sizes = np.full(10, threads.SPLIT_ENTRIES)
    names: list[str] = []
    second = threading.Event()

    def read(lo: int, hi: int) -> list[int]:
        names.append(threading.current_thread().name)
        if lo:
            second.set()
        else:  # the caller's part waits (a while) until a helper has started the other
            second.wait(30)
        return list(range(lo, hi))

    parts = threads.in_parts(read, sizes, threads=2)
    assert len(parts) == 2 * threads.PARTS_PER_THREAD and sum(parts, []) == list(range(10))
    assert len(set(names)) == 2  # two threads read
    # never more parts than items, and small reads stay in the calling thread
    assert len(threads.in_parts(lambda lo, hi: hi - lo, np.array([10**6, 10**6]), threads=4)) == 2
    names.clear()
    assert threads.in_parts(read, np.array([5, 5, 5]), threads=4) == [[0, 1, 2]]
    assert names == [threading.current_thread().name]


def test_in_parts_raise_what_a_part_raised() -> None:
    def read(lo: int, hi: int) -> int:
        if lo:
            raise KeyError("second part")
        return hi

    with pytest.raises(KeyError, match="second part"):
        threads.in_parts(read, np.full(4, threads.SPLIT_ENTRIES), threads=2)


def test_in_background_gives_its_result_or_its_error() -> None:
    assert threads.in_background(lambda: 6 * 7, threads=2)() == 42

    def fails() -> int:
        raise ValueError("walk failed")

    with pytest.raises(ValueError, match="walk failed"):
        threads.in_background(fails, threads=2)()
    # with one thread nothing runs until the result is asked for, in the asking thread
    ran: list[str] = []
    later = threads.in_background(lambda: ran.append(threading.current_thread().name), threads=1)
    assert ran == []
    later()
    assert ran == [threading.current_thread().name]


def test_work_no_helper_has_started_runs_in_the_caller() -> None:
    release = threading.Event()
    busy = threads.in_background(release.wait, threads=2)  # the only helper waits
    ran: list[str] = []
    queued = threads.in_background(lambda: ran.append(threading.current_thread().name), threads=2)
    queued()  # taken back from the queue: no waiting for the busy helper
    assert ran == [threading.current_thread().name]
    release.set()
    assert busy() is True


def test_query_threads_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIANGLIAN_QUERY_THREADS", "3")
    assert threads.query_threads() == 3
    monkeypatch.delenv("JIANGLIAN_QUERY_THREADS")
    assert 1 <= threads.query_threads() <= 2
    for bad in ("0", "two", "-1", "1.5"):
        monkeypatch.setenv("JIANGLIAN_QUERY_THREADS", bad)
        with pytest.raises(ValueError, match="JIANGLIAN_QUERY_THREADS"):
            threads.query_threads()


def test_a_wrong_setting_stops_the_web_start(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from graph.memory import MemoryStore
    from web.app import create_app

    monkeypatch.setenv("JIANGLIAN_QUERY_THREADS", "many")
    store = MemoryStore(tmp_path / "store")
    try:
        with pytest.raises(ValueError, match="JIANGLIAN_QUERY_THREADS must be a positive integer"):
            create_app({"STORE": store, "TESTING": True, "SECRET_KEY": "t", "EMBEDDING_MODEL": "none"})
    finally:
        store.close()


def _helper_answers() -> None:  # (run in a forked process)
    started = threading.Event()

    def helper() -> int:
        started.set()
        return threading.get_ident()

    waiting = threads.in_background(helper, threads=2)
    assert started.wait(30), "no helper thread ran the work"
    assert waiting() != threading.get_ident()


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")
def test_a_forked_process_makes_its_own_helpers() -> None:
    release = threading.Event()
    threads.in_background(release.wait, threads=2)  # the parent's helper exists, and is busy, at the fork
    try:
        child = multiprocessing.get_context("fork").Process(target=_helper_answers)
        child.start()
        child.join(60)
        assert child.exitcode == 0
    finally:
        release.set()
