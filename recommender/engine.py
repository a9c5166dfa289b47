"""The product ranker: :class:`Recommender` (interface in ``docs/interfaces.md``).

A recommendation runs in three steps over a :class:`~recommender.index.RankingIndex` built once
from the store's projection:

1. **candidate generation** (when no candidates are given and there are more workers than
   ``RankConfig.max_candidates``): solvers of the most similar past problems, workers whose
   profile text is closest (cold start), workers declaring or having solved the required skills,
   and workers of the problem's district for on-site help;
2. **hard filters**: inactive workers, workers at capacity (the rule of
   :func:`graph.rules.counts_against_capacity`, shared with invitations and assignment),
   conflicts of interest (a worker is not suggested to their own employer);
3. **full scoring** of the survivors (every signal of :mod:`recommender.features`), fusion, then
   adjustments for declines of similar requests and current load, and explanations for the top n.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from graph.projection import Projection
from graph.rules import counts_against_capacity, current_month
from graph.store import Change, GraphStore
from recommender.errors import InvalidQuery, ModelNotFound, UnknownProblem, UnknownWorker
from recommender.explain import Explanation
from recommender.explain import explain as build_explanation
from recommender.features import FEATURES, ONSITE_TYPES, Query, compute_features
from recommender.fusion import Fusion, PairwiseLogisticFusion, QueryNormFusion, WeightedFusion, fingerprint
from recommender.index import Encoder, RankingIndex
from recommender.index_files import build_lock, store_identity
from recommender.index_files import load as load_index_files
from recommender.index_files import save as save_index_files
from recommender.open_problems import OpenProblems
from recommender.text import problem_text
from recommender.training import N_NEGATIVES, TrainedRanker, make_pseudo_queries, skill_aliases, time_order

__all__ = ["Explanation", "ProblemSuggestion", "RankConfig", "Recommendation", "Recommender"]

_NEED = ("none", "flags", "index")

_log = logging.getLogger(__name__)


class _Rebuild(Exception):
    """Raised inside :meth:`Recommender.refresh` when only a full rebuild will do."""


@dataclass
class RankConfig:
    """Ranking settings.

    Attributes
    ----------
    weights
        Feature weights of the default fusion over within-query z-scores (``None``: the signal families,
        :func:`recommender.fusion.family_weights`); campaign assignment applies them to globally
        calibrated features (``None`` there: :data:`recommender.fusion.DEFAULT_WEIGHTS`).
    use_learned
        Use a model saved by ``jianglian train-ranker`` when one is present in ``model_dir``.
    model_dir
        Where ``ranker.json`` lives; ``None``: beside the embedded store's data directory (``<data_dir>/models``),
        and no saved model for a store without one (Neo4j: the caller passes ``Settings.models_dir``).
    max_candidates
        Above this many workers, candidates are generated instead of scoring everybody.
    similar_problems
        How many most similar past problems contribute their solvers as candidates.
    profile_candidates, declared_candidates, skill_candidates, district_candidates
        The other candidate sources' budgets: the workers whose profile text is closest, those declaring a
        required skill (the most experienced first), those with most solved problems in the required skills,
        and local workers for on-site services.
    allow_conflicts
        Suggest workers to their own employer too.
    decline_weight, load_weight
        Score subtracted per unit of similarity to a declined request, and per unit of load/capacity.
    damping
        Continuation probability of the personalised PageRank.
    auto_refresh
        Pick up store writes automatically before each request (one integer comparison when the
        matching graph did not change; workflow writes never change it).
    max_incremental
        Above this many changed nodes and relationships since the last refresh, rebuild from scratch.
    refit_share
        Rebuild from scratch (refitting the text model and hub vectors) once incremental updates
        have added this share of the history of the last full build.
    index_dir
        Where the built index is stored (:mod:`recommender.index_files`): a new recommender maps the files
        there and replays the store's changes since they were written instead of building, and every full
        build writes a new version. ``None``: nothing is stored or read.
    background_rebuild
        Run full rebuilds (the change feed cannot list what changed, or too much did) in a background
        thread and keep serving the current index until the new one is swapped in. Without a current index
        (the first build) the build always runs in the caller.
    """

    weights: dict[str, float] | None = None
    use_learned: bool = True
    model_dir: Path | None = None
    max_candidates: int = 400
    similar_problems: int = 100
    profile_candidates: int = 100
    declared_candidates: int = 200
    skill_candidates: int = 100
    district_candidates: int = 100
    allow_conflicts: bool = False
    decline_weight: float = 1.0
    load_weight: float = 0.5
    damping: float = 0.5
    auto_refresh: bool = True
    max_incremental: int = 1000
    refit_share: float = 0.02
    index_dir: Path | None = None
    background_rebuild: bool = False


@dataclass
class Recommendation:
    """One ranked worker."""

    worker_id: str
    score: float
    components: dict[str, float]
    explanation: Explanation | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"worker_id": self.worker_id, "score": round(float(self.score), 6),
                "components": {k: round(float(v), 6) for k, v in self.components.items()},
                "explanation": None if self.explanation is None else self.explanation.to_dict()}


@dataclass
class ProblemSuggestion:
    """One open problem suggested to a worker."""

    problem_id: str
    title: str
    score: float
    components: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class _Workflow:
    """Match state read from the store: current load and declined problems per worker."""

    load: Counter[str] = field(default_factory=Counter)
    declined: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))


class Recommender:
    """Rank workers for problems (and open problems for workers) over a graph store.

    Parameters
    ----------
    store
        The graph store (embedded or Neo4j).
    encoder
        Optional dense text encoder; without one the text signals are TF-IDF only.
    config
        Ranking settings.
    """

    #: After a full build of a graph with at least this many nodes and relationships, everything the process
    #: holds is moved out of the garbage collector's generations (:func:`gc.freeze`): the projection, the
    #: index and the embedded store are millions of long-lived objects, and a full collection walking them
    #: stalled one request for 793 ms at 99k problems (``benchmarks/latency_bench.py``), seconds at 1M.
    #: Smaller graphs are left alone (a full collection there costs milliseconds).
    freeze_gc_above: int = 200_000

    def __init__(self, store: GraphStore, *, encoder: Encoder | None = None, config: RankConfig | None = None) -> None:
        self.store = store
        self.encoder = encoder
        self.config = config or RankConfig()
        self._lock = threading.RLock()
        self.model_version = ""
        #: Where the current index came from (``"files"``, ``"build"``), its files and timings: :meth:`index_state`.
        self._state: dict[str, Any] = {}
        self._rebuilding: threading.Thread | None = None
        if self.config.index_dir is None:
            self._build()
        elif not self._load_files():
            self._build_once()

    # -- life cycle -------------------------------------------------------------------------
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
        index = RankingIndex(projection, encoder=self.encoder, vectors=vectors)
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
            self._aliases = skill_aliases(self.projection)
            self._workflow_key: tuple[int | None, str] = (None, "")
            self._declined_cache: tuple[Any, dict[str, int]] | None = None
            self._open: OpenProblems | None = None  # a new text model: nothing of the old rows is reusable
            self._current_workflow()
            self._set_fusion()
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

    def _model_dir(self) -> Path | None:
        if self.config.model_dir is not None:
            return Path(self.config.model_dir)
        data_dir = getattr(self.store, "data_dir", None)
        return Path(data_dir).parent / "models" if data_dir is not None else None

    def _set_fusion(self) -> None:
        """Use the saved model when present and compatible, else the query-normalised default fusion.

        Campaign assignment (:meth:`score_pairs`) needs scores comparable across problems: it uses
        the configured weights over globally calibrated features instead (or a saved pairwise model).
        """
        self._linear_fusion: WeightedFusion | PairwiseLogisticFusion | None = None
        default = QueryNormFusion(weights=self.config.weights).fit()
        fusion: Fusion = default
        version = f"fused-default@{fingerprint(default.to_dict())}"
        model_dir = self._model_dir()
        if self.config.use_learned and model_dir is not None and (model_dir / "ranker.json").is_file():
            try:
                trained = TrainedRanker.load(model_dir)
                same_encoder = trained.meta.get("encoder") == getattr(self.encoder, "identity", None)
                if same_encoder:
                    fusion, version = trained.fusion, trained.version
            except ModelNotFound:
                pass
        self.fusion = fusion
        self.model_version = version
        if isinstance(fusion, WeightedFusion | PairwiseLogisticFusion):
            self._linear_fusion = fusion

    @property
    def _linear(self) -> WeightedFusion | PairwiseLogisticFusion:
        """The fusion whose scores compare across problems (campaign assignment), calibrated on first use."""
        if self._linear_fusion is None:
            self._linear_fusion = self._calibrated_weights()
        return self._linear_fusion

    def _calibrated_weights(self, sample: int = 200, seed: int = 0) -> WeightedFusion:
        """The configured weights with a feature scaler fitted on recent solved problems (self excluded)."""
        proj = self.projection
        order = time_order(proj)
        solved = self.index.solved
        recent = order[np.isin(order, self.index.hp)][-sample:]
        rows: list[np.ndarray] = []
        if len(recent) and solved.nnz:
            pseudo = make_pseudo_queries(proj, recent, np.ones(proj.n("Problem"), dtype=bool), n_negatives=N_NEGATIVES,
                                         seed=seed)
            if len(pseudo):
                rows, _ = compute_features(self.index, pseudo.queries, pseudo.candidates, damping=self.config.damping)
        x = np.vstack(rows) if rows else np.zeros((2, len(FEATURES)))
        return WeightedFusion(weights=self.config.weights).fit(x)

    def _read_workflow(self) -> _Workflow:
        wf = _Workflow()
        month = current_month()
        for m in self.store.iter_nodes("Match"):
            if counts_against_capacity(m, month):
                wf.load[str(m.get("worker_id"))] += 1
            elif m.get("state") == "declined" and m.get("problem_id"):
                wf.declined[str(m.get("worker_id"))].append(str(m["problem_id"]))
        return wf

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
            self.index = RankingIndex(proj, encoder=self.encoder, vectors=self._cached_vectors(), reuse=idx,
                                      changed={*nodes, *rels})
            self._declined_cache = None
            self._added_history += solved
        if any(label == "Skill" for label, _ in nodes):
            self._aliases = skill_aliases(proj)
        return need

    def rebuild(self) -> None:
        """Rebuild everything from the store."""
        self._build()

    def _profile_texts_now(self) -> list[str]:
        from recommender.text import profile_text

        aliases: dict[str, list[str]] = {}
        for sid, sprops in zip(self.projection.ids["Skill"], self.projection.props["Skill"], strict=True):
            if sprops.get("aliases"):
                aliases[sid] = list(sprops["aliases"])
        return [profile_text(self.index._worker_row(i), aliases) for i in range(self.projection.n("Worker"))]

    def _refresh_worker_flags(self) -> None:
        """Re-read activity, capacity, employer and district of the workers (no text involved)."""
        self.index.read_worker_flags()

    # -- queries ----------------------------------------------------------------------------
    def _query(self, problem: Mapping[str, Any] | str) -> Query:
        if isinstance(problem, str):
            at = self.projection.index["Problem"].get(problem)
            if at is None:
                raise UnknownProblem(f"problem {problem!r} not found")
            row = dict(self.projection.props["Problem"][at])
            row["id"] = problem
            return Query.from_row(row, skill_of=self._aliases)
        if not isinstance(problem, Mapping):
            raise InvalidQuery("problem must be a stored problem id or a mapping")
        if not str(problem.get("title") or "").strip() and not str(problem.get("description") or "").strip():
            raise InvalidQuery("a problem needs a title or a description")
        skills = problem.get("skills") or []
        if isinstance(skills, str) or not all(isinstance(s, str) for s in skills):
            raise InvalidQuery("skills must be a list of strings")
        st = problem.get("service_type")
        if st is not None and not isinstance(st, str):
            raise InvalidQuery("service_type must be a string")
        row = dict(problem)
        if row.get("enterprise_id") and not row.get("district"):
            row["district"] = self.projection.prop("Enterprise", str(row["enterprise_id"]), "district")
        return Query.from_row(row, skill_of=self._aliases)

    def _similar(self, query: Query) -> tuple[np.ndarray, np.ndarray]:
        """The query's best-matching history problems (positions, word cosines), itself left out."""
        idx = self.index
        pid = self.projection.index["Problem"].get(query.problem_id or "")
        own = idx.hp_pos.get(pid, -1) if pid is not None else -1
        return idx.similar_problems(idx.text.transform([query.text]).word, max(self.config.similar_problems, 10),
                                    exclude=own)

    def _generate(self, query: Query, similar: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Candidate workers for a query (indices); ``similar`` are its best-matching history problems."""
        idx = self.index
        n = idx.n_workers
        cfg = self.config
        if n <= cfg.max_candidates:
            return np.arange(n)
        picked: list[np.ndarray] = []
        top, sims = similar if similar is not None else self._similar(query)
        top = top[sims > 0][:cfg.similar_problems]
        if len(top):
            picked.append(_solvers(idx, top))
        prof = idx.profile_similarities(idx.text.transform([query.text]).word)
        k = min(cfg.profile_candidates, int(np.count_nonzero(prof > 0)))
        if k:
            picked.append(np.argpartition(-prof, k - 1)[:k])
        sk = [self.projection.index["Skill"][s] for s in query.skills if s in self.projection.index["Skill"]]
        if sk:
            declared = idx.declared_csc
            who = np.unique(np.concatenate([declared.indices[declared.indptr[s]:declared.indptr[s + 1]] for s in sk]))
            if len(who) > cfg.declared_candidates:
                who = who[np.argsort(-idx.n_solved[who], kind="stable")[:cfg.declared_candidates]]
            picked.append(who)
            counts = np.asarray(idx.skill_counts_csc[:, sk].sum(axis=1)).ravel()
            k = min(cfg.skill_candidates, int(np.count_nonzero(counts > 0)))
            if k:
                picked.append(np.argpartition(-counts, k - 1)[:k])
        if query.service_type in ONSITE_TYPES and query.district:
            local = idx.district_workers.get(query.district, np.zeros(0, dtype=np.int64))
            picked.append(local[:cfg.district_candidates])
        if not picked:
            return np.argsort(-idx.n_solved, kind="stable")[:cfg.max_candidates]
        return np.unique(np.concatenate([p.astype(np.int64) for p in picked]))

    def _eligible(self, query: Query, cand: np.ndarray) -> np.ndarray:
        idx = self.index
        keep = idx.worker_active[cand].copy()
        ids = self.projection.ids["Worker"]
        load = np.array([self._workflow.load.get(ids[w], 0) for w in cand], dtype=np.float64)
        keep &= load < idx.worker_capacity[cand]
        if not self.config.allow_conflicts and query.enterprise_id:
            keep &= np.array([idx.worker_employer[w] != query.enterprise_id for w in cand], dtype=bool)
        return cand[keep]

    def _declined_similarity(self, query: Query, cand: np.ndarray) -> np.ndarray:
        """Per candidate, the highest word cosine of the query to a problem the worker declined (1 for this one)."""
        ids = self.projection.ids["Worker"]
        out = np.zeros(len(cand))
        declined = self._workflow.declined
        if not declined:
            return out
        rows, problems = self._declined_vectors()
        if not problems:
            return out
        sims = np.asarray(rows @ self.index.text.transform([query.text]).word.T.toarray()).ravel()
        for i, w in enumerate(cand):
            mine = declined.get(ids[w])
            if not mine:
                continue
            if query.problem_id in mine:
                out[i] = 1.0
                continue
            at = [problems[p] for p in mine if p in problems]
            if at:
                out[i] = float(sims[at].max())
        return out

    def _declined_vectors(self) -> tuple[Any, dict[str, int]]:
        """Word TF-IDF rows of every declined problem (cached until the matches or the index change)."""
        if self._declined_cache is None:
            pids = sorted({p for ps in self._workflow.declined.values() for p in ps
                           if p in self.projection.index["Problem"]})
            texts = [problem_text(self.projection.props["Problem"][self.projection.index["Problem"][p]])
                     for p in pids]
            rows = self.index.text.transform(texts).word if texts else None
            self._declined_cache = (rows, {p: i for i, p in enumerate(pids)})
        return self._declined_cache

    def _current_workflow(self) -> _Workflow:
        """Match state, re-read only when the store says matches were written (or cannot tell) or a month began."""
        key = (self.store.label_revision("Match"), current_month())
        if key[0] is None or key != self._workflow_key:
            self._workflow = self._read_workflow()
            self._workflow_key = key
            self._declined_cache = None
        return self._workflow

    def _score(self, query: Query, cand: np.ndarray, *, keep_evidence: bool,
               similar: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray, Any]:
        feats, evidence = compute_features(self.index, [query], [cand], keep_evidence=keep_evidence,
                                           damping=self.config.damping, similar=[similar or self._similar(query)])
        f = feats[0]
        fused = self.fusion.decision_function(f, np.zeros(len(f), dtype=np.int64)) if len(f) else np.zeros(0)
        return f, fused, evidence[0]

    def recommend(self, problem: Mapping[str, Any] | str, n: int = 10, *, candidates: Sequence[str] | None = None,
                  exclude: Sequence[str] | None = None, explain: bool = True) -> list[Recommendation]:
        """The ``n`` best eligible workers for a stored problem id or a new problem mapping.

        Raises
        ------
        UnknownProblem
            For an unknown problem id.
        InvalidQuery
            For a malformed problem, ``n < 1``, or a worker both in ``candidates`` and ``exclude``.
        """
        if n < 1:
            raise InvalidQuery("n must be at least 1")
        if candidates is not None and exclude is not None and set(candidates) & set(exclude):
            raise InvalidQuery("a worker cannot be both a candidate and excluded")
        if self.config.auto_refresh:
            self.refresh()
        with self._lock:
            self._current_workflow()  # matches do not move the store's revision
            query = self._query(problem)
            wpos = self.projection.index["Worker"]
            similar = self._similar(query)
            if candidates is not None:
                unknown = [c for c in candidates if c not in wpos]
                if unknown:
                    raise UnknownWorker(f"unknown worker(s): {', '.join(unknown[:5])}")
                cand = np.array(sorted({wpos[c] for c in candidates}), dtype=np.int64)
            else:
                cand = self._generate(query, similar)
            if exclude:
                drop = {wpos[e] for e in exclude if e in wpos}
                cand = np.array([c for c in cand if c not in drop], dtype=np.int64)
            cand = self._eligible(query, cand)
            if not len(cand):
                return []
            return self._rank(query, cand, n, explain=explain, similar=similar)

    def _rank(self, query: Query, cand: np.ndarray, n: int, *, explain: bool,
              similar: tuple[np.ndarray, np.ndarray] | None = None) -> list[Recommendation]:
        f, fused, ev = self._score(query, cand, keep_evidence=explain, similar=similar)
        ids = self.projection.ids["Worker"]
        cfg = self.config
        declined = self._declined_similarity(query, cand)
        load = np.array([self._workflow.load.get(ids[w], 0) for w in cand], dtype=np.float64)
        cap = self.index.worker_capacity[cand]
        load_share = np.divide(load, cap, out=np.zeros_like(load), where=np.isfinite(cap) & (cap > 0))
        score = fused - cfg.decline_weight * declined - cfg.load_weight * load_share
        order = np.lexsort((cand, -score))[:n]
        contrib = self.fusion.contributions(f[order]) if hasattr(self.fusion, "contributions") else None
        out: list[Recommendation] = []
        for rank, j in enumerate(order):
            comps = {name: float(f[j, k]) for k, name in enumerate(FEATURES) if f[j, k] != 0.0}
            if contrib is not None:
                comps.update({f"{name}@fused": float(contrib[rank, k]) for k, name in enumerate(FEATURES)
                              if contrib[rank, k] != 0.0})
            comps["fused"] = float(fused[j])
            if declined[j]:
                comps["decline_penalty"] = -cfg.decline_weight * float(declined[j])
            if load_share[j]:
                comps["load_penalty"] = -cfg.load_weight * float(load_share[j])
            expl = None
            if explain:
                expl = build_explanation(self.index, query, int(cand[j]), f[j], ev.word_sims,
                                          load=int(load[j]), capacity=float(cap[j]),
                                          declined_similar=float(declined[j]))
            out.append(Recommendation(ids[int(cand[j])], float(score[j]), comps, expl))
        return out

    def recommended_problems(self, worker_id: str, n: int = 10) -> list[ProblemSuggestion]:
        """Open problems ranked for a worker (conflicts of interest left out).

        The open problems' query rows are kept between calls (:class:`recommender.open_problems.OpenProblems`,
        rebuilt when the store's revision moves), so a call costs a few products over the worker's own
        rows; :meth:`_recommended_problems_direct` computes the same from scratch.
        """
        if n < 1:
            raise InvalidQuery("n must be at least 1")
        if self.config.auto_refresh:
            self.refresh()
        with self._lock:
            w = self.projection.index["Worker"].get(worker_id)
            if w is None:
                raise UnknownWorker(f"worker {worker_id!r} not found")
            opened = self._open_problems()
            keep = np.ones(len(opened), dtype=bool)
            employer = self.index.worker_employer[w]
            if not self.config.allow_conflicts and employer:
                keep = opened.enterprises != employer
            if not keep.any():
                return []
            f = opened.features(self.index, w)[keep]
            ids = [pid for pid, k in zip(opened.ids, keep, strict=True) if k]
            return self._suggestions(ids, f, n)

    def _open_problems(self) -> OpenProblems:
        """The open problems' query rows for the current index and store revision (rebuilt when stale)."""
        opened = self._open
        if opened is not None and opened.describes(self.index, self._revision):
            return opened
        ids = [pid for pid, p in zip(self.projection.ids["Problem"], self.projection.props["Problem"], strict=True)
               if p.get("status") == "open"]
        queries = [self._query(pid) for pid in ids]
        enterprises = [self.projection.prop("Problem", pid, "enterprise_id") for pid in ids]
        self._open = None  # the rows of an older index are dropped before the new ones are made
        self._open = OpenProblems(self.index, ids, queries, enterprises, revision=self._revision, reuse=opened)
        return self._open

    def _suggestions(self, ids: Sequence[str], f: np.ndarray, n: int) -> list[ProblemSuggestion]:
        scores = self._linear.decision_function(f)
        order = np.lexsort((np.arange(len(scores)), -scores))[:n]
        return [ProblemSuggestion(ids[j], str(self.projection.prop("Problem", ids[j], "title") or ""),
                                  float(scores[j]), {name: float(f[j, k]) for k, name in enumerate(FEATURES)
                                                     if f[j, k] != 0.0}) for j in order]

    def _recommended_problems_direct(self, worker_id: str, n: int = 10) -> list[ProblemSuggestion]:
        """:meth:`recommended_problems` computed from scratch: every open problem's features for the worker
        by :func:`compute_features` (the oracle of the kept rows, in tests and ``benchmarks/``)."""
        with self._lock:
            w = self.projection.index["Worker"].get(worker_id)
            if w is None:
                raise UnknownWorker(f"worker {worker_id!r} not found")
            open_ids = [pid for pid, p in zip(self.projection.ids["Problem"], self.projection.props["Problem"],
                                              strict=True) if p.get("status") == "open"]
            employer = self.index.worker_employer[w]
            if not self.config.allow_conflicts and employer:
                open_ids = [p for p in open_ids if self.projection.prop("Problem", p, "enterprise_id") != employer]
            if not open_ids:
                return []
            queries = [self._query(pid) for pid in open_ids]
            feats, _ = compute_features(self.index, queries, [np.array([w])] * len(queries), ppr=False)
            return self._suggestions(open_ids, np.vstack(feats), n)

    def score_pairs(self, problem_ids: Sequence[str]) -> dict[str, dict[str, float]]:
        """Fused scores of the eligible workers per problem (campaign assignment input).

        Scores come from the linear fusion, so they are comparable across problems.
        """
        if self.config.auto_refresh:
            self.refresh()
        out: dict[str, dict[str, float]] = {}
        with self._lock:
            self._current_workflow()
            for pid in problem_ids:
                query = self._query(pid)
                similar = self._similar(query)
                cand = self._eligible(query, self._generate(query, similar))
                if not len(cand):
                    out[pid] = {}
                    continue
                feats, _ = compute_features(self.index, [query], [cand], damping=self.config.damping,
                                            similar=[similar])
                scores = self._linear.decision_function(feats[0])
                declined = self._declined_similarity(query, cand)
                scores = scores - self.config.decline_weight * declined
                ids = self.projection.ids["Worker"]
                out[pid] = {ids[int(w)]: float(s) for w, s in zip(cand, scores, strict=True)}
        return out


def _graph_changes(changes: list[Change] | None) -> list[Change] | None:
    """``changes`` without vector writes (the embedding cache filling up: the index encodes the same texts)."""
    return None if changes is None else [c for c in changes if not c.vectors]


def _solvers(index: RankingIndex, history_cols: np.ndarray) -> np.ndarray:
    """Workers who solved any of the given history problems."""
    csc = index.solved_csc
    parts = [csc.indices[csc.indptr[c]:csc.indptr[c + 1]] for c in history_cols]
    return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)
