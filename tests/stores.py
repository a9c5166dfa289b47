"""A fresh store of the kind a parametrised fixture asks for (shared by the workflow tests)."""

from __future__ import annotations

import pytest

from graph.memory import MemoryStore
from graph.store import GraphStore

__all__ = ["fresh_store"]


def fresh_store(request: pytest.FixtureRequest) -> GraphStore:
    """An empty store with its schema: in memory for ``"memory"``, the session's Neo4j (cleared) for ``"neo4j"``."""
    s: GraphStore
    if request.param == "memory":
        s = MemoryStore()
    else:
        from graph.neo4j_store import Neo4jStore

        s = Neo4jStore(request.getfixturevalue("neo4j_driver"), "neo4j")
        s.clear()
    s.ensure_schema()
    return s
