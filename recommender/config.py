"""The ranking's settings: :class:`RankConfig` (``from recommender.engine import RankConfig`` works too)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

__all__ = ["RankConfig"]


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
