"""The Jianglian graph: the data model, the stores (embedded and Neo4j) and dataset interchange."""

from __future__ import annotations

from graph.errors import (
    ConstraintViolation,
    DatasetError,
    DuplicateNode,
    GraphError,
    NodeNotFound,
    StoreLocked,
    StoreUnavailable,
)
from graph.store import GraphStore, NodeRow, RelRow, WriteBatch

__all__ = [
    "ConstraintViolation",
    "DatasetError",
    "DuplicateNode",
    "GraphError",
    "GraphStore",
    "NodeNotFound",
    "NodeRow",
    "RelRow",
    "StoreLocked",
    "StoreUnavailable",
    "WriteBatch",
]
