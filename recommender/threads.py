"""A recommendation's work on more than one core: its large reads split in parts, its walk beside its text reads.

A query's sparse reads (:mod:`recommender.kernels`) wait on scattered loads, not on arithmetic, and release the
GIL, so two threads read nearly twice as fast; the walk needs none of the text reads' results, so it runs on a
helper thread while they do. Each number is still computed by one loop in one order: the results do not depend
on the threads.

``JIANGLIAN_QUERY_THREADS`` sets the threads a process uses for one recommendation (default: the cores it may
use, at most 2; ``1`` does everything in the calling thread). The helper threads are made on first use, again in
a forked child (a parent's threads do not follow a fork). A part not yet started when its result is needed is
taken back and run by the thread that needs it, so a busy helper never leaves the caller idle.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import numpy as np

__all__ = ["SPLIT_ENTRIES", "in_background", "in_parts", "query_threads", "split_bounds"]

T = TypeVar("T")

#: Below this many stored entries a read is not split (a hand-off to a thread costs tens of microseconds).
SPLIT_ENTRIES = 60_000
#: A large read is cut into up to this many parts per thread: a helper busy with other work (the walk) when the
#: read starts takes the later parts once it is free, the caller the rest. Measured (docs/benchmarks.md, section
#: 7): 3 was no faster at 1M problems and 2-3 ms slower at p95 at scale 45 (more hand-offs) than 1.
PARTS_PER_THREAD = 1
_THREADS_VARIABLE = "JIANGLIAN_QUERY_THREADS"
_pool: tuple[int, int, ThreadPoolExecutor] | None = None  # (the process that made it, its threads, the pool)
_pool_lock = threading.Lock()


def query_threads() -> int:
    """Threads one recommendation uses: ``JIANGLIAN_QUERY_THREADS``, else the usable cores, at most 2.

    Raises
    ------
    ValueError
        When the variable is set to anything but a positive integer.
    """
    value = os.environ.get(_THREADS_VARIABLE, "").strip()
    if value:
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{_THREADS_VARIABLE} must be a positive integer, not {value!r}")
        return int(value)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(2, cores))


def _executor(threads: int) -> ThreadPoolExecutor:
    """This process's ``threads - 1`` helper threads."""
    global _pool
    with _pool_lock:
        if _pool is None or _pool[0] != os.getpid() or _pool[1] != threads:
            _pool = (os.getpid(), threads, ThreadPoolExecutor(max_workers=threads - 1,
                                                              thread_name_prefix="jianglian-query"))
        return _pool[2]


def _result(future: Future[T], work: Callable[[], T]) -> T:
    """``future``'s result; run here when no helper has started it yet."""
    if future.cancel():
        return work()
    return future.result()


def split_bounds(sizes: np.ndarray, parts: int) -> np.ndarray:
    """Bounds ``b`` (``b[0] = 0``, ``b[-1] = len(sizes)``, non-decreasing) cutting the items into ``parts`` runs
    of about equal total ``sizes``.

    Examples
    --------
    >>> split_bounds(np.array([5, 1, 1, 1, 1, 1]), 2).tolist()
    [0, 1, 6]
    """
    total = np.cumsum(sizes, dtype=np.int64)
    if not len(total):
        return np.zeros(parts + 1, dtype=np.int64)
    cuts = np.searchsorted(total, total[-1] * np.arange(1, parts) / parts, side="left") + 1
    return np.concatenate([[0], np.minimum(cuts, len(sizes)), [len(sizes)]]).astype(np.int64)


def in_parts(read: Callable[[int, int], T], sizes: np.ndarray, *, threads: int | None = None) -> list[T]:
    """``read(lo, hi)`` over consecutive runs of items of about equal ``sizes`` (stored entries), the runs read at
    once by :func:`query_threads` threads; the results in item order. One run when the sizes are small.

    Examples
    --------
    >>> in_parts(lambda lo, hi: (lo, hi), np.array([1, 1, 1]))
    [(0, 3)]
    """
    threads = query_threads() if threads is None else threads
    parts = min(PARTS_PER_THREAD * threads, max(1, int(np.sum(sizes)) // SPLIT_ENTRIES), len(sizes))
    if parts <= 1:
        return [read(0, len(sizes))]
    bounds = split_bounds(sizes, parts)
    pool = _executor(threads)
    works = [(lambda lo=int(bounds[i]), hi=int(bounds[i + 1]): read(lo, hi)) for i in range(parts)]
    later = [pool.submit(work) for work in works[1:]]
    results: list[T | None] = [works[0](), *([None] * len(later))]
    # the helpers take the parts from the front; the caller takes back the ones not started, from the back
    for i in range(len(later), 0, -1):
        results[i] = _result(later[i - 1], works[i])
    return results  # type: ignore[return-value]


def in_background(work: Callable[[], T], *, threads: int | None = None) -> Callable[[], T]:
    """Start ``work`` on a helper thread and return what waits for its result (raising what it raised); with
    one thread, or when no helper has started it by then, the work runs when its result is asked for.

    Examples
    --------
    >>> result = in_background(lambda: 6 * 7)
    >>> result()
    42
    """
    threads = query_threads() if threads is None else threads
    if threads <= 1:
        return work
    future = _executor(threads).submit(work)
    return lambda: _result(future, work)
