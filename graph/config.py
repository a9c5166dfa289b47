"""Store selection from settings (environment variables, see the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from graph.store import GraphStore

__all__ = ["StoreSettings", "open_store"]


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


def open_store(settings: StoreSettings) -> GraphStore:
    """Open the configured store and make sure its schema exists.

    The embedded store persists under ``<data_dir>/store``; the Neo4j store creates one driver,
    which the store owns and closes.
    """
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
