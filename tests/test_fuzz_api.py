"""Property-based fuzzing of the JSON API from its own OpenAPI document (schemathesis).

Every operation under ``/api/v1`` gets up to 25 generated requests (valid and invalid bodies, query
strings and path ids) with a write-scoped API key; the property is that the app never answers 5xx.
The app is built when the module is collected (schemathesis needs the schema to parametrize; its
lazy fixture loader does not work with this pytest), over an in-memory store with demo data.
"""

from __future__ import annotations

import tempfile
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from demo.generator import generate
from graph.dataset import load_dataset
from graph.memory import MemoryStore
from web.auth import create_api_key

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import make_app  # noqa: E402


def _fuzz_target() -> tuple[Any, dict[str, str]]:
    store = MemoryStore()
    with tempfile.TemporaryDirectory() as data:
        generate(data, scale=0.05, seed=11)
        load_dataset(store, data)
    app = make_app(store)
    return app, {"X-API-Key": create_api_key(store, name="fuzzer", scope="write").key}


APP, HEADERS = _fuzz_target()
schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", APP).include(path_regex=r"^/api/v1/")


@schema.parametrize()
@settings(max_examples=25, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_api_never_answers_5xx(case: Any) -> None:
    case.call_and_validate(headers=HEADERS, checks=[not_a_server_error])


def test_the_fuzzed_document_covers_every_route() -> None:
    spec = APP.test_client().get("/api/v1/openapi.json").get_json()
    operations = {(m, p) for p, ops in spec["paths"].items() for m in ops if p.startswith("/api/v1/")}
    assert len(operations) >= 30
    assert ("post", "/api/v1/recommendations") in operations and ("post", "/api/v1/matches") in operations
