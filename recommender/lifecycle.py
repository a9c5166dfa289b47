"""The ranking index's life cycle: build, store and map, follow the store's change feed, rebuild.

:class:`IndexLifecycle` keeps a :class:`~recommender.index.RankingIndex` and the
:class:`~graph.projection.Projection` it was fitted on current with the store; the
:class:`recommender.engine.Recommender` is one (it adds the queries). The ways to a current index:

- **build** (:meth:`IndexLifecycle.rebuild`): the projection read from the store, the index fitted on it,
  its files written (:mod:`recommender.index_files`, when ``RankConfig.index_dir`` is set) and mapped
  instead of the objects they were written from;
- **map** the stored files of another process (or an earlier start), then **replay** the changes since
  they were written;
- **refresh** (:meth:`IndexLifecycle.refresh`, before each request): nothing when the store's revision did
  not move, else the change feed's writes patched into the projection and the index refitted with
  ``reuse`` (only new or edited texts are analysed), or a full rebuild (in a background thread when
  configured) when the feed cannot list them or too much changed.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from graph.projection import Projection
from graph.store import Change, GraphStore
from recommender.config import RankConfig
from recommender.index import Encoder, RankingIndex
from recommender.index_files import build_lock, store_identity
from recommender.index_files import load as load_index_files
from recommender.index_files import save as save_index_files
from recommender.text import problem_text, profile_text

__all__ = ["IndexLifecycle"]

_NEED = ("none", "flags", "index")

_log = logging.getLogger("recommender.engine")


class _Rebuild(Exception):
    """Raised inside :meth:`IndexLifecycle.refresh` when only a full rebuild will do."""


class IndexLifecycle:
    """A ranking index kept current with a graph store (the base of :class:`recommender.engine.Recommender`).

    Subclasses set :attr:`store`, :attr:`encoder` and :attr:`config`, call :meth:`_start`, and are told
    through :meth:`_installed` and :meth:`_patched` when the index they read changed.
    """

    #: After a full build of a graph with at least this many nodes and relationships, everything the process
    #: holds is moved out of the garbage collector's generations (:func:`gc.freeze`): the projection, the
    #: index and the embedded store are millions of long-lived objects, and a full collection walking them
    #: stalled one request for 793 ms at 99k problems (``benchmarks/latency_bench.py``), seconds at 1M.
    #: Smaller graphs are left alone (a full collection there costs milliseconds).
    freeze_gc_above: int = 200_000

    store: GraphStore
    encoder: Encoder | None
    config: RankConfig
    projection: Projection
    index: RankingIndex
    last_refresh: str
    model_version: str

    def _start(self) -> None:
        """The first index: mapped from stored files when configured and usable, else built."""
        self._lock = threading.RLock()
        #: Where the current index came from (``"files"``, ``"build"``), its files and timings: :meth:`index_state`.
        self._state: dict[str, Any] = {}
        self._rebuilding: threading.Thread | None = None
        if self.config.index_dir is None:
            self._build()
        elif not self._load_files():
            self._build_once()

    def _installed(self) -> None:
        """Hook: a new index and projection are served (the lock is held)."""

    def _patched(self, *, index: bool, skills: bool) -> None:
        """Hook: :meth:`refresh` patched the projection in place; ``index``: the index was refitted,
        ``skills``: skill nodes (aliases) changed (the lock is held)."""

    def _fresh(self) -> tuple[int, Projection, RankingIndex, float]:
        """A full build from the store (no lock held: the store is safe to read from any thread)."""
        started = time.perf_counter()
        revision = self.store.revision
        projection = Projection.from_store(self.store)
        size = sum(projection.n(label) for label in projection.ids), sum(len(e) for e in projection.edges.values())
        _log.info("ranking index: read %d nodes and %d relationships at feed position %s in %.1f s", *size,
                  revision, time.perf_counter() - started)
        at = time.perf_counter()
        vectors = self._cached_vectors(projection)
        if self.encoder is not None:
            _log.info("ranking index: %d cached problem vectors in %.1f s", len(vectors or {}),
                      time.perf_counter() - at)
        at = time.perf_counter()
        index = RankingIndex(encoder=self.encoder).fit(projection, vectors=vectors)
        index.hub_worker_scores(self.config.damping)  # what the first query would compute: part of the build
        _log.info("ranking index: built over %d history problems and %d workers in %.1f s", len(index.hp),
                  index.n_workers, time.perf_counter() - at)
        return revision, projection, index, time.perf_counter() - started

    def _build(self) -> None:
        revision, projection, index, seconds = self._fresh()
        with self._lock:
            self._install(revision, projection, index, fitted=len(index.hp), added=0, source="build")
            self._state.update(build_seconds=round(seconds, 3))
            self._map_saved(self.save_index())

    def _build_once(self) -> None:
        """Build and write the index unless another process is doing so: then wait for its files and map them."""
        assert self.config.index_dir is not None
        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(build_lock(self.config.index_dir))
            except OSError as err:  # a read-only directory: build, and writing will fail with a log line
                _log.warning("ranking index: cannot lock %s: %s", self.config.index_dir, err)
            else:
                if self._load_files(quiet=True):  # written by another process while this one waited
                    return
            self._build()

    def _map_saved(self, path: Path | None) -> None:
        """Serve the files just written instead of the objects they were written from (caller holds the lock).

        The same numbers (files rank exactly like the build), but in mapped pages that every other process
        mapping the version shares, and node properties as a mapped table instead of one dictionary per node: the
        build's Python objects are freed. Also a check of the files: if they cannot be read back, the build keeps
        serving and the next start builds again.
        """
        if path is None or self.config.index_dir is None:
            return
        got = load_index_files(self.config.index_dir, store_id=store_identity(self.store), revision=self._revision,
                               encoder=self.encoder)
        if isinstance(got, str) or got.version != path or got.revision != self._revision:
            _log.warning("ranking index: the files just written are not served: %s", got if isinstance(got, str)
                         else f"another version is current ({got.version.name})")
            return
        state = dict(self._state)
        self._install(got.revision, got.projection, got.index, fitted=self._fitted_history, added=self._added_history,
                      source="build")
        self._state = {**state, "mapped": True}

    def _load_files(self, *, quiet: bool = False) -> bool:
        """Map the stored index and replay the changes since it was written; ``False``: build instead."""
        assert self.config.index_dir is not None
        started = time.perf_counter()
        got = load_index_files(self.config.index_dir, store_id=store_identity(self.store),
                               revision=self.store.revision, encoder=self.encoder)
        if isinstance(got, str):
            if not quiet:
                _log.warning("ranking index: building from the store, the stored files are not used: %s", got)
            return False
        extra = got.manifest.get("extra") or {}
        with self._lock:
            self._install(got.revision, got.projection, got.index, fitted=int(extra.get("fitted_history", 0)),
                          added=int(extra.get("added_history", 0)), source="files")
            self._state.update(version=str(got.version), files_revision=got.revision,
                               load_seconds=round(time.perf_counter() - started, 3))
            changes = _graph_changes(self.store.changes_since(got.revision))
            if changes is None or len(changes) > self.config.max_incremental:
                why = "the change feed cannot list the changes" if changes is None else f"{len(changes)} changes"
                if not self.config.background_rebuild:
                    _log.warning("ranking index: files at feed position %s are too far behind (%s): rebuilding",
                                 got.revision, why)
                    return False
                _log.warning("ranking index: files at feed position %s are too far behind (%s): serving them "
                             "while a rebuild runs in the background", got.revision, why)
                self._rebuild_async()
                return True
            replay = time.perf_counter()
            self.refresh()
            self._state.update(replayed=len(changes), replay_seconds=round(time.perf_counter() - replay, 3))
        _log.info("ranking index: mapped %s (feed position %s), replayed %d changes in %.2f s", got.version.name,
                  got.revision, len(changes), time.perf_counter() - started)
        return True

    def _full_rebuild(self) -> None:
        """A rebuild after changes the incremental update cannot follow: in the background when configured."""
        if self.config.background_rebuild:
            self._rebuild_async()
        else:
            self._build()

    def _rebuild_async(self) -> None:
        with self._lock:
            if self._rebuilding is not None and self._rebuilding.is_alive():
                return
            self._rebuilding = threading.Thread(target=self._background_build, name="ranking-index-rebuild",
                                                daemon=True)
            self._rebuilding.start()

    def _background_build(self) -> None:
        try:
            revision, projection, index, seconds = self._fresh()
            with self._lock:
                self._install(revision, projection, index, fitted=len(index.hp), added=0, source="build")
                self._state.update(build_seconds=round(seconds, 3), background=True)
                self._map_saved(self.save_index())
            _log.info("ranking index: rebuilt in the background in %.1f s (feed position %s)", seconds, revision)
            self.refresh()  # the writes made while it was built
        except Exception:  # noqa: BLE001 - the old index keeps serving; the next refresh tries again
            _log.exception("ranking index: the background rebuild failed")

    @property
    def rebuilding(self) -> bool:
        """Whether a background rebuild is running."""
        thread = self._rebuilding
        return thread is not None and thread.is_alive()

    def save_index(self) -> Path | None:
        """Write the current projection and index to :attr:`RankConfig.index_dir` (``None`` when not configured,
        or when the store has no ``store_id`` to tie the files to)."""
        if self.config.index_dir is None:
            return None
        store_id = store_identity(self.store)
        if store_id is None:
            _log.warning("ranking index: not stored, the store has no store_id")
            return None
        with self._lock:
            started = time.perf_counter()
            try:
                path = save_index_files(self.config.index_dir, self.projection, self.index, store_id=store_id,
                                        revision=self._revision, encoder=self.encoder,
                                        extra={"fitted_history": self._fitted_history,
                                               "added_history": self._added_history, "fusion": self.model_version})
            except OSError as err:  # a full or read-only disk: serve from memory, build again next start
                _log.warning("ranking index: cannot store the index in %s: %s", self.config.index_dir, err)
                return None
            self._state.update(version=str(path), files_revision=self._revision,
                               save_seconds=round(time.perf_counter() - started, 3))
            return path

    def index_state(self) -> dict[str, Any]:
        """Where the current index came from and what it cost (for ``/readyz`` and ``jianglian index status``)."""
        with self._lock:
            return {**self._state, "revision": self._revision, "rebuilding": self.rebuilding,
                    "last_refresh": self.last_refresh, **self.index.describe()}

    def _install(self, revision: int, projection: Projection, index: RankingIndex, *, fitted: int, added: int,
                 source: str) -> None:
        """Serve ``projection`` and ``index`` (at feed position ``revision``) from now on (caller holds the lock)."""
        with self._lock:
            self._revision = revision
            self.projection = projection
            self.index = index
            self._state = {"source": source}
            self._fitted_history = fitted
            self._added_history = added
            self._installed()
            self.last_refresh = source
            size = sum(self.projection.n(label) for label in self.projection.ids)
            size += sum(len(edges) for edges in self.projection.edges.values())
            if size >= self.freeze_gc_above:
                gc.collect()  # what is garbage now is collected, not frozen
                gc.freeze()

    def _cached_vectors(self, projection: Projection | None = None) -> dict[str, np.ndarray] | None:
        if self.encoder is None:
            return None
        proj = self.projection if projection is None else projection
        try:
            from embeddings.cache import EmbeddingCache

            cache = EmbeddingCache(self.store, cast(Any, self.encoder), "Problem", "embedding")
            texts = {pid: problem_text(p) for pid, p in zip(proj.ids["Problem"], proj.props["Problem"], strict=True)}
            ids, matrix = cache.vectors(texts)
            return dict(zip(ids, np.asarray(matrix, dtype=np.float32), strict=True))
        except Exception:  # noqa: BLE001 - the cache is an optimisation; encode directly instead
            return None

    def refresh(self) -> None:
        """Pick up writes to the matching graph: nothing to do unless the store's ``revision`` moved.

        Workflow state (matches: current load, declines) is not cached here; every request reads it.
        When the revision moved, the store's journal (:meth:`GraphStore.changes_since`) says what
        changed. New or edited problems and workers and new relationships patch the projection in
        place; what the index needs then follows from what changed: nothing for a newly posted
        problem (it is not evidence until solved), worker flags for an edited worker (activity,
        capacity, employer, district), and otherwise a new index built with ``reuse`` (only new or
        edited texts are analysed; the text model, hub vectors and fusion are kept). Everything is
        rebuilt from the store instead after a deletion, an unlisted write (a bulk load),
        more than ``RankConfig.max_incremental`` changes, or once the history has grown by
        ``RankConfig.refit_share`` since the last full build (to refit vocabulary, idf and hub vectors).
        :attr:`last_refresh` tells which happened.
        """
        with self._lock:
            revision = self.store.revision
            if revision == self._revision:
                return
            changes = _graph_changes(self.store.changes_since(self._revision))
            if changes is None or len(changes) > self.config.max_incremental:
                self._full_rebuild()
                return
            try:
                self.last_refresh = self._apply_changes(changes)
            except _Rebuild:
                self._full_rebuild()
                return
            self._revision = revision

    def _apply_changes(self, changes: Sequence[Change]) -> str:
        """Patch the projection and index with what ``changes`` touched; raise :class:`_Rebuild` when it cannot."""
        store, proj, idx = self.store, self.projection, self.index
        nodes: dict[tuple[str, str], dict[str, Any]] = {}
        for change in changes:
            if change.node is not None and not change.vectors and change.node not in nodes:
                row = store.get_node(*change.node)
                if row is None:
                    raise _Rebuild  # deleted
                nodes[change.node] = row
        rels: dict[tuple[str, str, str, str, str], dict[str, Any]] = {}
        for change in changes:
            if change.rel is not None and change.rel not in rels:
                rel_type, s_label, s_id, e_label, e_id = change.rel
                found = store.relationships(rel_type, start=(s_label, s_id), end=(e_label, e_id))
                if not found:
                    raise _Rebuild  # deleted
                rels[change.rel] = dict(found[0].props)
        solved = sum(1 for key in rels if key[0] == "SOLVED" and not proj.has_edge(*key))
        if self._added_history + solved > self.config.refit_share * max(self._fitted_history, 1):
            raise _Rebuild
        # what the index needs: "none" < "flags" < "index"
        need = "none"
        profiles = {i: t for i, t in enumerate(idx.profile_texts)}
        for (label, node_id), row in nodes.items():
            at = proj.index[label].get(node_id)
            if label == "Problem":
                if at is not None and at in idx.hp_pos and problem_text(row) != idx.problem_texts[idx.hp_pos[at]]:
                    need = "index"
            elif label == "Worker":
                need = "index" if at is None else max(need, "flags", key=_NEED.index)
            else:
                need = "index"  # skills (aliases), enterprises, chains, districts: rare
        for key in rels:
            rel_type, s_label, s_id, e_label, e_id = key
            problem = s_id if s_label == "Problem" else e_id if e_label == "Problem" else None
            at = proj.index["Problem"].get(problem) if problem is not None else None
            posted_only = rel_type in ("REQUIRES", "POSTED", "LOCATED_IN") and problem is not None
            if not (posted_only and (at is None or at not in idx.hp_pos)):
                need = "index"
        for (label, node_id), row in nodes.items():
            proj.set_node(label, node_id, row)
        for key, props in rels.items():
            proj.set_edge(*key, props)
        if need == "flags" and any(label == "Worker" for label, _ in nodes):
            before = [profiles.get(i) for i in range(proj.n("Worker"))]
            self._refresh_worker_flags()
            if before != self._profile_texts_now():
                need = "index"
        if need == "index":
            self.index = RankingIndex(encoder=self.encoder).fit(proj, vectors=self._cached_vectors(), reuse=idx,
                                                                changed={*nodes, *rels})
            self._added_history += solved
        self._patched(index=need == "index", skills=any(label == "Skill" for label, _ in nodes))
        return need

    def rebuild(self) -> None:
        """Rebuild everything from the store."""
        self._build()

    def _profile_texts_now(self) -> list[str]:
        aliases: dict[str, list[str]] = {}
        for sid, sprops in zip(self.projection.ids["Skill"], self.projection.props["Skill"], strict=True):
            if sprops.get("aliases"):
                aliases[sid] = list(sprops["aliases"])
        return [profile_text(self.index._worker_row(i), aliases) for i in range(self.projection.n("Worker"))]

    def _refresh_worker_flags(self) -> None:
        """Re-read activity, capacity, employer and district of the workers (no text involved)."""
        self.index.read_worker_flags()


def _graph_changes(changes: list[Change] | None) -> list[Change] | None:
    """``changes`` without vector writes (the embedding cache filling up: the index encodes the same texts)."""
    return None if changes is None else [c for c in changes if not c.vectors]
