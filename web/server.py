"""Running the app: waitress in this process (one worker), or gunicorn with several worker processes.

``jianglian serve --workers N`` (default: the cores this process may use) runs gunicorn's arbiter in the
calling process with ``N`` forked workers of the ``gthread`` class (``--threads`` request threads each). The
application is **not** preloaded: each worker calls :func:`web.create_app` after the fork and so opens its
own store (one Neo4j driver, or one embedded store handle, per process; a driver must never be shared across
a fork), builds its own ranking and closes its store when it exits. ``--workers 1`` keeps the single waitress
process of before.

Why gunicorn rather than waitress per process behind a supervisor of our own: gunicorn's arbiter already does
what a supervisor must (restart a dead worker, ``SIGHUP`` = start new workers with freshly loaded settings and
then stop the old ones gracefully, ``SIGTERM`` = stop accepting, finish the requests in flight within
``graceful_timeout``, exit; ``SIGTTIN``/``SIGTTOU`` add or remove a worker), the workers share one listening
socket (the kernel spreads the connections), and it is what a union's IT department already runs behind
systemd. It is Unix only, which the deployment is; waitress stays for one worker (and would be the way on
Windows).

Each worker's BLAS/OpenMP pools get its share of the cores (:func:`compute_threads`: one thread each for two
workers on two cores), set after the fork; ``/readyz`` reports the size as ``compute_threads``. Without it every
worker's pool is as large as the machine and the city-wide assignment plan took 2.0-2.3 s warm instead of 0.8 s
(``benchmarks/assignment_page_bench.py``, with and without ``OMP_NUM_THREADS=1``, load 2).

Every response carries ``X-Jianglian-Worker: <pid>`` when several workers serve, so an operator (and the tests)
can tell which process answered.

What *is* loaded before the fork (:func:`preload`, in a thread while the app is created) is read-only and opens
no store or driver: the ranking's modules (numpy, scipy, the engine) and the packaged multilingual encoder's
model (mapped from its cache under the data directory). The workers inherit them, so neither worker imports or
loads them again (a start pays them once, not once per worker on the same cores), and their pages stay shared
between the workers (the collector's generations are frozen before the fork, so a collection in a worker does
not write to them).
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask

    from graph.config import Settings

__all__ = ["WORKER_HEADER", "Preload", "compute_threads", "default_workers", "limit_compute_threads", "preload",
           "run_gunicorn", "run_waitress", "worker_header"]

#: The environment variables the numeric libraries read when they are loaded (libraries loaded later in a worker).
_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")

_log = logging.getLogger(__name__)

#: The response header naming the worker process that answered (several workers only).
WORKER_HEADER = "X-Jianglian-Worker"

_WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def default_workers() -> int:
    """The number of cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def compute_threads(workers: int, cores: int | None = None) -> int:
    """The BLAS/OpenMP threads each of ``workers`` processes should use: the cores shared out, at least 1.

    Every worker's numeric library starts a pool as large as the machine; ``N`` workers on ``N`` cores then
    run ``N x N`` threads that fight over the cores and a large product (the city-wide assignment plan's
    features) takes about twice as long under load as with one thread per worker (issue 14).

    >>> compute_threads(2, cores=2), compute_threads(1, cores=8), compute_threads(3, cores=8)
    (1, 8, 2)
    """
    return max(1, (cores if cores is not None else default_workers()) // max(1, workers))


def limit_compute_threads(threads: int) -> None:
    """Limit this process's BLAS/OpenMP pools (the loaded libraries now, and any loaded later) to ``threads``."""
    from threadpoolctl import threadpool_limits

    for name in _THREAD_VARIABLES:  # read by a library when it is loaded, so they cover the later ones
        os.environ[name] = str(threads)
    threadpool_limits(limits=threads)
    torch = sys.modules.get("torch")
    if torch is not None:  # the sentence-transformers encoders' own pool, if torch is already in
        torch.set_num_threads(threads)


def worker_header(wsgi_app: _WsgiApp) -> _WsgiApp:
    """Wrap a WSGI app so every response names this worker's pid in :data:`WORKER_HEADER`."""
    pid = str(os.getpid())

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            headers.append((WORKER_HEADER, pid))
            return start_response(status, headers, exc_info)

        return wsgi_app(environ, start)

    return app


class Preload:
    """The read-only part of the ranking loaded in a background thread (:func:`preload`)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.seconds: float | None = None
        self.error: str | None = None
        self._thread = threading.Thread(target=self._run, name="ranking-preload", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        started = time.perf_counter()
        try:
            import recommender.engine  # noqa: F401 - numpy, scipy and the engine, imported once for every worker
            from embeddings.encoder import MULTILINGUAL_ALIASES, NO_ENCODER, RANKING_DEFAULT, load_encoder

            named = (self.settings.embedding_model or RANKING_DEFAULT).strip()
            # only the packaged numpy encoder: a torch model is not loaded before a fork (its thread pools)
            if named.lower() not in NO_ENCODER and named in MULTILINGUAL_ALIASES:
                encoder = load_encoder(named, data_dir=self.settings.data_dir)
                encoder.preload()  # type: ignore[union-attr]
                encoder.identity  # noqa: B018 - the index files' fingerprint needs it: once, here
        except Exception as err:  # noqa: BLE001 - each worker loads what it needs anyway and reports failures
            self.error = f"{type(err).__name__}: {err}"
            _log.warning("preloading the ranking failed (each worker loads it itself): %s", self.error)
        self.seconds = time.perf_counter() - started

    def join(self) -> None:
        """Wait for the thread: call before forking (nothing may be half-loaded in the parent then)."""
        self._thread.join()


def preload(settings: Settings) -> Preload:
    """Start importing the ranking's modules and loading the packaged encoder in a background thread.

    Nothing here opens a store, a driver or a file that stays open except the encoder's mapped cache (read-only),
    so it is safe to do before gunicorn forks its workers; :meth:`Preload.join` before the fork.
    """
    return Preload(settings)


def _start_ranking(app: Flask) -> None:
    """Map (or build) the ranking index now, in the background: ``/readyz`` answers 503 until it is ready, and
    the first recommendation does not pay for it."""
    from web.extensions import get_state

    get_state(app).start_ranking()


def run_waitress(app: Flask, host: str, port: int, threads: int, *, on_listening: Callable[[], None]) -> None:
    """Serve ``app`` with waitress in this process until ``SIGTERM`` or ``Ctrl-C``.

    Raises
    ------
    OSError
        If the address cannot be bound (before anything is served).
    """
    from waitress import create_server

    server = create_server(app, host=host, port=port, threads=threads)
    _start_ranking(app)
    on_listening()

    def stop(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


def run_gunicorn(
    host: str,
    port: int,
    *,
    workers: int,
    threads: int,
    timeout: int = 120,
    graceful_timeout: int = 30,
    create_app: Callable[[], Flask] | None = None,
) -> int:
    """Run gunicorn's arbiter in this process with ``workers`` forked workers; returns its exit status.

    Parameters
    ----------
    create_app
        The app factory each worker calls after the fork (default :func:`web.create_app`).
    timeout
        Seconds a worker may stay silent before the arbiter replaces it (a worker building a large ranking
        projection still answers its heartbeat: the ``gthread`` worker's main loop does not run requests).
    graceful_timeout
        Seconds the requests in flight get after ``SIGTERM`` or a ``SIGHUP`` restart.
    """
    from gunicorn.app.base import BaseApplication

    threads_each = compute_threads(workers)

    def load() -> Flask:
        limit_compute_threads(threads_each)  # in the worker, after the fork
        if create_app is None:
            from web import create_app as default_factory

            app: Flask = default_factory()
        else:
            app = create_app()
        app.wsgi_app = worker_header(app.wsgi_app)  # type: ignore[method-assign,assignment]
        _start_ranking(app)
        return app

    def worker_exit(server: Any, worker: Any) -> None:
        # close this worker's store (the Neo4j driver, the embedded store's handle) before the process ends
        app = getattr(worker, "wsgi", None)
        if app is not None and hasattr(app, "extensions"):
            from web.extensions import get_state

            get_state(app).close()

    options: dict[str, Any] = {
        "bind": [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"],
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "preload_app": False,  # each worker opens its own store and driver after the fork
        "timeout": timeout,
        "graceful_timeout": graceful_timeout,
        "keepalive": 5,
        "worker_exit": worker_exit,
        "control_socket_disable": True,  # no socket under $HOME; signals are the control interface
        "errorlog": "-",
        "accesslog": None,
        "loglevel": "info",
        "proc_name": "jianglian",
    }

    class _Application(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Flask:
            return load()

    arbiter = os.getpid()
    # what the parent loaded (preload) is shared copy-on-write with the workers: a collection in a worker must not
    # write to those objects' headers, so they move to the permanent generation before the fork
    gc.freeze()
    try:
        _Application().run()
    except SystemExit as done:  # the arbiter exits through sys.exit once every worker has stopped
        if os.getpid() != arbiter:
            raise  # a forked worker leaving: its exit is gunicorn's business, not the caller's
        return int(done.code or 0) if not isinstance(done.code, str) else 1
    return 0
