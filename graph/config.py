"""The product's settings, read once, and the store they select.

:meth:`Settings.from_env` is the one place the product reads its environment variables (the README lists
them); the command line and the web app build one :class:`Settings` at start and pass what each part needs
down as arguments, so library code never reads ``os.environ``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from graph.store import GraphStore

__all__ = ["Settings", "StoreSettings", "open_store"]


@dataclass(frozen=True)
class StoreSettings:
    """Which store to open and how to reach it."""

    store: Literal["memory", "neo4j"] = "memory"
    data_dir: Path = Path("data")
    neo4j_uri: str = "bolt://127.0.0.1:7687"
    neo4j_user: str = "neo4j"
    neo4j_password: str = ""
    neo4j_database: str = "neo4j"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> StoreSettings:
        """Read ``JIANGLIAN_STORE``, ``JIANGLIAN_DATA_DIR`` and the ``NEO4J_*`` variables.

        Raises
        ------
        ValueError
            If ``JIANGLIAN_STORE`` is neither ``memory`` nor ``neo4j``.
        """
        env = os.environ if env is None else env
        kind = env.get("JIANGLIAN_STORE", "memory").strip().lower() or "memory"
        if kind not in ("memory", "neo4j"):
            raise ValueError(f"JIANGLIAN_STORE must be 'memory' or 'neo4j', not {kind!r}")
        return cls(
            store=kind,  # type: ignore[arg-type]
            data_dir=Path(env.get("JIANGLIAN_DATA_DIR", "data")),
            neo4j_uri=env.get("NEO4J_URI", cls.neo4j_uri),
            neo4j_user=env.get("NEO4J_USER", cls.neo4j_user),
            neo4j_password=env.get("NEO4J_PASSWORD", cls.neo4j_password),
            neo4j_database=env.get("NEO4J_DATABASE", cls.neo4j_database),
        )


@dataclass(frozen=True)
class Settings:
    """Every setting of the product (``JIANGLIAN_*`` and ``NEO4J_*`` environment variables).

    Attributes
    ----------
    store
        Which store, where (``JIANGLIAN_STORE``, ``JIANGLIAN_DATA_DIR``, ``NEO4J_*``).
    embedding_model
        ``JIANGLIAN_EMBEDDING_MODEL``: the dense encoder's name or path (``None``: the ranking's default;
        ``"none"`` switches the dense signals off).
    eval_encoder
        ``JIANGLIAN_EVAL_ENCODER``: the encoder ``jianglian evaluate`` uses by default.
    targets_file
        ``JIANGLIAN_TARGETS``: a JSON or TOML file of programme targets (``None``: the built-in ones).
    research_cache
        ``JIANGLIAN_RESEARCH_CACHE``: where the notebooks cache generated demo datasets.
    index_dir
        ``JIANGLIAN_INDEX_DIR``: where the ranking index files are kept (``None``: ``<data_dir>/index``, see
        :attr:`ranking_index_dir`; for Neo4j a local cache directory of the web host).
    """

    store: StoreSettings = StoreSettings()
    embedding_model: str | None = None
    eval_encoder: str | None = None
    targets_file: Path | None = None
    research_cache: Path | None = None
    index_dir: Path | None = None

    @property
    def data_dir(self) -> Path:
        """The data directory (the embedded store, models and caches live under it)."""
        return self.store.data_dir

    @property
    def models_dir(self) -> Path:
        """Where the text encoder and the trained ranker are saved: ``<data_dir>/models``."""
        return self.store.data_dir / "models"

    @property
    def ranking_index_dir(self) -> Path:
        """Where the stored ranking index lives (:mod:`recommender.index_files`): ``JIANGLIAN_INDEX_DIR``, else
        ``<data_dir>/index``.

        Examples
        --------
        >>> str(Settings.from_env({"JIANGLIAN_DATA_DIR": "/srv/jl"}).ranking_index_dir)
        '/srv/jl/index'
        """
        return self.index_dir if self.index_dir is not None else self.store.data_dir / "index"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read every setting from ``env`` (default: the process environment); empty values are unset.

        Raises
        ------
        ValueError
            If a setting has a value it cannot take (see :meth:`StoreSettings.from_env`).

        Examples
        --------
        >>> s = Settings.from_env({"JIANGLIAN_DATA_DIR": "/srv/jl", "JIANGLIAN_TARGETS": ""})
        >>> str(s.models_dir), s.targets_file, s.store.store
        ('/srv/jl/models', None, 'memory')
        """
        env = os.environ if env is None else env

        def text(name: str) -> str | None:
            return (env.get(name) or "").strip() or None

        def path(name: str) -> Path | None:
            value = text(name)
            return Path(value) if value else None

        return cls(
            store=StoreSettings.from_env(env),
            embedding_model=text("JIANGLIAN_EMBEDDING_MODEL"),
            eval_encoder=text("JIANGLIAN_EVAL_ENCODER"),
            targets_file=path("JIANGLIAN_TARGETS"),
            research_cache=path("JIANGLIAN_RESEARCH_CACHE"),
            index_dir=path("JIANGLIAN_INDEX_DIR"),
        )


def open_store(settings: StoreSettings | Settings) -> GraphStore:
    """Open the configured store (``settings`` or ``settings.store``) and make sure its schema exists.

    The embedded store persists under ``<data_dir>/store``; the Neo4j store creates one driver,
    which the store owns and closes.
    """
    if isinstance(settings, Settings):
        settings = settings.store
    store: GraphStore
    if settings.store == "memory":
        from graph.memory import MemoryStore

        store = MemoryStore(settings.data_dir / "store")
    else:
        from graph.neo4j_store import Neo4jStore

        store = Neo4jStore.connect(
            settings.neo4j_uri,
            user=settings.neo4j_user,
            password=settings.neo4j_password,
            database=settings.neo4j_database,
        )
    store.ensure_schema()
    return store
