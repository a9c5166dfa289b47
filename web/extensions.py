"""App-lifetime state: one store, one Recommender and one Selection per process.

The state lives in ``app.extensions["jianglian"]`` (Flask's extension pattern), never in a module
global. The store is opened lazily on first use from the app's settings, so an app can be created
while Neo4j is down: requests then answer 503 and the next request after Neo4j comes back opens it
(attempts are spaced by ``STORE_RETRY_SECONDS`` so a dead server is not hammered). Once opened,
the Neo4j driver reconnects by itself. The recommender and the selection are built on top of the
store the first time a request needs them.

Settings: one :class:`graph.config.Settings` per app (:attr:`AppState.settings`), read from the environment
once (:meth:`~graph.config.Settings.from_env`) and overridden by ``app.config`` (all optional; ``JIANGLIAN_*``
environment variables also reach ``app.config`` through ``from_prefixed_env`` in :func:`web.app.create_app`):

``STORE``
    a :class:`~graph.store.GraphStore` instance (tests inject one; it is not closed by the app) or
    ``"memory"`` / ``"neo4j"``.
``DATA_DIR``, ``NEO4J_URI``, ``NEO4J_USER``, ``NEO4J_PASSWORD``, ``NEO4J_DATABASE``
    where the store is; ``EMBEDDING_MODEL`` the dense encoder; ``TARGETS`` the targets file.
``RECOMMENDER``
    a ready recommender instance, or ``RECOMMENDER_FACTORY`` (called with the store once it is
    open), else a :class:`recommender.engine.Recommender` built with ``RECOMMENDER_OPTIONS``.
``INDEX_DIR``
    where that recommender keeps its ranking index files (:mod:`recommender.index_files`; ``"none"``: no
    files). Default: :attr:`graph.config.Settings.ranking_index_dir` when the app opens its own store, none
    for an injected store (tests).

``jianglian serve`` calls :meth:`AppState.start_ranking` in every worker: the ranking index is mapped from its
files (or built) at start, in a background thread, and ``/readyz`` answers 503 until it is ready.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import weakref
from pathlib import Path
from typing import Any

from flask import Flask, current_app

from graph.config import Settings, open_store
from graph.errors import GraphError, StoreUnavailable
from graph.store import GraphStore

__all__ = ["EXTENSION_KEY", "AppState", "get_state", "init_app"]

_log = logging.getLogger(__name__)

EXTENSION_KEY = "jianglian"


class AppState:
    """The process-wide collaborators of one app.

    Parameters
    ----------
    config
        The app's configuration (read once, at construction).
    """

    def __init__(self, config: dict[str, Any]) -> None:
        self._lock = threading.RLock()
        injected = config.get("STORE")
        self._owns_store = not isinstance(injected, GraphStore)
        self._store: GraphStore | None = None if self._owns_store else injected
        self.settings: Settings = _settings_from(config)
        self._retry_seconds = float(config.get("STORE_RETRY_SECONDS", 2.0))
        self._last_failure: tuple[float, str] | None = None
        self._recommender: Any = config.get("RECOMMENDER")
        self._recommender_options: dict[str, Any] = dict(config.get("RECOMMENDER_OPTIONS") or {})
        self._recommender_factory: Any = config.get("RECOMMENDER_FACTORY")
        self._ranking_lock = threading.Lock()  # not self._lock: building the index must not block the store
        self._ranking_start: dict[str, Any] | None = None  # set by start_ranking
        index_dir = config.get("INDEX_DIR")
        if isinstance(index_dir, str | Path) and str(index_dir).strip():
            self._index_dir: Path | None = None if str(index_dir).strip().lower() == "none" else Path(index_dir)
        else:
            self._index_dir = self.settings.ranking_index_dir if self._owns_store else None
        # the served ranking's dense encoder: JIANGLIAN_EMBEDDING_MODEL, else the packaged multilingual
        # encoder (docs/ranking.md, "The dense leg"); "none" switches the dense signals off
        from embeddings.encoder import NO_ENCODER, RANKING_DEFAULT

        named = self.settings.embedding_model or RANKING_DEFAULT
        self._embedding_model = None if named.lower() in NO_ENCODER else named
        if self._embedding_model and "encoder" not in self._recommender_options:
            from embeddings.encoder import resolve_model

            # a missing model fails at start-up, naming the setting
            resolve_model(self._embedding_model, data_dir=self.settings.data_dir)
        self._selection: Any = None
        self._closed = False

    # -- the store ------------------------------------------------------------------------------
    @property
    def store(self) -> GraphStore:
        """The store, opened on first use; raises :class:`StoreUnavailable` while it cannot be."""
        store = self._store
        if store is not None:
            return store
        with self._lock:
            if self._store is not None:
                return self._store
            if self._closed:
                raise StoreUnavailable("the application has shut down")
            now = time.monotonic()
            if self._last_failure is not None and now - self._last_failure[0] < self._retry_seconds:
                raise StoreUnavailable(f"store unavailable (retrying shortly): {self._last_failure[1]}")
            try:
                self._store = open_store(self.settings)
            except GraphError as err:  # StoreUnavailable, StoreLocked, ...
                self._last_failure = (now, str(err))
                raise StoreUnavailable(str(err)) from err
            self._last_failure = None
            return self._store

    @property
    def store_if_open(self) -> GraphStore | None:
        """The store if it has been opened (no connection attempt)."""
        return self._store

    @property
    def data_dir(self) -> Path:
        """Where the secret key, models and the embedded store live."""
        return self.settings.data_dir

    # -- recommender and selection --------------------------------------------------------------
    @property
    def recommender(self) -> Any:
        """The :class:`recommender.engine.Recommender` over the store (built once)."""
        if self._recommender is not None:
            return self._recommender
        with self._ranking_lock:
            if self._recommender is None:
                if self._recommender_factory is not None:
                    self._recommender = self._recommender_factory(self.store)
                else:
                    from recommender.engine import RankConfig, Recommender

                    options = dict(self._recommender_options)
                    if self._embedding_model and "encoder" not in options:
                        from embeddings.encoder import load_encoder

                        options["encoder"] = load_encoder(self._embedding_model, data_dir=self.settings.data_dir)
                    config = options.get("config") or RankConfig(index_dir=self._index_dir, background_rebuild=True)
                    if config.model_dir is None:  # the trained ranker lives beside the data
                        config = dataclasses.replace(config, model_dir=self.settings.models_dir)
                    options["config"] = config
                    self._recommender = Recommender(self.store, **options)
            return self._recommender

    def start_ranking(self) -> None:
        """Make the recommender now (map the index files or build), in a background thread, and warm the encoder.

        Until it is done :meth:`ranking_readiness` says so (``/readyz`` answers 503). Idempotent.
        """
        with self._lock:
            if self._ranking_start is not None and "error" not in self._ranking_start:
                return  # started (an attempt that failed is started again)
            self._ranking_start = {"ready": False, "started": time.monotonic()}
        threading.Thread(target=self._prepare_ranking, name="ranking-start", daemon=True).start()

    def _prepare_ranking(self) -> None:
        start = self._ranking_start
        assert start is not None
        try:
            rec = self.recommender
            start["index_seconds"] = round(time.monotonic() - start["started"], 3)
            encoder = getattr(rec, "encoder", None)
            if encoder is not None:
                encoder.encode(["预热"])  # the model's first call loads its weights: not on a user's request
            self._warm_ranking(rec)
        except Exception as err:  # noqa: BLE001 - reported by /readyz; a request retries through .recommender
            _log.exception("ranking: start-up failed")
            start.update(error=f"{type(err).__name__}: {err}")  # the next /readyz starts again
            return
        start.update(ready=True, seconds=round(time.monotonic() - start["started"], 3))
        _log.info("ranking: ready in %.2f s", start["seconds"])

    @staticmethod
    def _warm_ranking(rec: Any) -> None:
        """Answer one stored problem: a process's first recommendation loads the ranking's compiled loops
        (recommender/kernels.py; compiles them when their cache is missing), not on a user's request."""
        problems = rec.projection.ids["Problem"] if hasattr(rec, "projection") else []
        if not len(problems):
            return
        try:
            rec.recommend(problems[0], n=1)
        except Exception:  # noqa: BLE001 - a warm-up that fails leaves the first request to do it
            _log.warning("ranking: warm-up recommendation failed", exc_info=True)

    def ranking_readiness(self) -> dict[str, Any] | None:
        """``None`` when the ranking is made on first use (not started by :meth:`start_ranking`); else whether it is
        ready, with the index's state (where it came from, its feed position, timings) once it is."""
        start = self._ranking_start
        if start is None:
            if self._recommender is None:
                return None
            return {"ready": True}
        if not start.get("ready"):
            return {"ready": False, "seconds": round(time.monotonic() - start["started"], 1),
                    **({"error": start["error"]} if "error" in start else {})}
        rec = self._recommender
        state = rec.index_state() if hasattr(rec, "index_state") else {}
        keep = ("source", "revision", "files_revision", "replayed", "load_seconds", "build_seconds", "rebuilding")
        return {"ready": True, "seconds": start.get("seconds"), "index_seconds": start.get("index_seconds"),
                **{k: state[k] for k in keep if k in state}}

    @property
    def selection(self) -> Any:
        """The :class:`workflow.selection.Selection` (two-way selection and audit)."""
        if self._selection is not None:
            return self._selection
        with self._lock:
            if self._selection is None:
                from workflow.selection import Selection

                self._selection = Selection(self.store, on_change=self._on_change)
            return self._selection

    def _on_change(self) -> None:
        """Selection wrote to the graph (a SOLVED edge, a problem status): let the ranking see it."""
        rec = self._recommender
        if rec is not None and hasattr(rec, "refresh"):
            rec.refresh()

    # -- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Close the store if this state opened it. Idempotent."""
        with self._lock:
            self._closed = True
            store, self._store = self._store, None
            if store is not None and self._owns_store:
                store.close()


def _settings_from(config: dict[str, Any]) -> Settings:
    settings = Settings.from_env()
    base = settings.store
    overrides: dict[str, Any] = {}
    kind = config.get("STORE")
    if isinstance(kind, str) and kind:
        if kind not in ("memory", "neo4j"):
            raise ValueError(f"STORE must be 'memory' or 'neo4j', not {kind!r}")
        overrides["store"] = kind
    if config.get("DATA_DIR"):
        overrides["data_dir"] = Path(config["DATA_DIR"])
    for field in ("neo4j_uri", "neo4j_user", "neo4j_password", "neo4j_database"):
        value = config.get(field.upper())
        if value is not None:
            overrides[field] = str(value)
    extra: dict[str, Any] = {}
    if config.get("EMBEDDING_MODEL") is not None:
        extra["embedding_model"] = str(config["EMBEDDING_MODEL"]).strip() or None
    if isinstance(config.get("TARGETS"), str | Path):
        extra["targets_file"] = Path(config["TARGETS"]) if str(config["TARGETS"]).strip() else None
    return dataclasses.replace(settings, store=dataclasses.replace(base, **overrides), **extra)


def init_app(app: Flask) -> AppState:
    """Create the state of ``app`` (nothing is opened yet) and close it when the app goes away."""
    state = AppState(app.config)
    app.extensions[EXTENSION_KEY] = state
    weakref.finalize(app, state.close)
    return state


def get_state(app: Flask | None = None) -> AppState:
    """The state of ``app`` (default: the current app)."""
    target = app if app is not None else current_app
    state: AppState = target.extensions[EXTENSION_KEY]
    return state
