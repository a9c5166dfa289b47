"""Shared fixtures. The Neo4j server fixtures live in ``tests/conftest_neo4j.py``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# --doctest-modules imports every module of tests/ while collecting, api_support.py before the test
# modules that register it: registered here, its asserts keep pytest's messages.
pytest.register_assert_rewrite("tests.api_support")

pytest_plugins = ["tests.conftest_neo4j"]

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"
GIS = SHARED / "benchmarks" / "gis-stackexchange"


@pytest.fixture(scope="session")
def gis_dir() -> Path:
    """The external gis-stackexchange benchmark (read-only)."""
    if not GIS.is_dir():
        pytest.fail(f"benchmark not found at {GIS}: ../shared must sit beside the repository")
    return GIS
