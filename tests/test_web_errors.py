"""Domain errors of graph, embeddings and recommender become problem documents with their own status and type.

Each error type is raised from a route of a real app; the handler registered for it (web/errors.py, one per
type, no blanket ``Exception``) must answer with the status and the ``urn:jianglian:error:<slug>`` type below.
"""

from __future__ import annotations

from typing import Any

import pytest

from embeddings.errors import ModelNotFound as EncoderMissing
from graph.errors import DuplicateNode, NodeNotFound, StoreFull, StoreUnavailable
from graph.memory import MemoryStore
from recommender import errors as rec
from workflow import errors as wf_errors

pytest.register_assert_rewrite("tests.api_support")

from tests.api_support import assert_problem, make_app  # noqa: E402

CASES: list[tuple[Exception, int, str]] = [
    (NodeNotFound("Worker", "W9"), 404, "not-found"),
    (DuplicateNode("Worker", "W1"), 409, "duplicate"),
    (StoreUnavailable("down"), 503, "store-unavailable"),
    (StoreFull("no space"), 503, "store-full"),
    (rec.UnknownProblem("problem 'P9' not found"), 404, "not-found"),
    (rec.UnknownWorker("worker 'W9' not found"), 404, "not-found"),
    (rec.InvalidQuery("a problem needs a title or a description"), 422, "invalid-query"),
    (wf_errors.InvalidSelection("a decline needs a reason"), 422, "invalid-selection"),
    (wf_errors.WorkerUnavailable("W1 is inactive"), 409, "worker-unavailable"),
    (rec.ModelNotFound("no saved fusion"), 503, "model-unavailable"),
    (EncoderMissing("no encoder at data/models/x"), 503, "model-unavailable"),
    (wf_errors.MatchNotFound("match 'M9' not found"), 404, "not-found"),
    (wf_errors.DuplicateInvitation("already invited"), 409, "duplicate-invitation"),
    (wf_errors.IllegalTransition("no", current="declined", requested="completed"), 409, "illegal-transition"),
    (wf_errors.ConflictOfInterest("employer"), 409, "conflict-of-interest"),
    (wf_errors.CapacityExceeded("full"), 409, "capacity-exceeded"),
    (wf_errors.SelectionError("other"), 409, "conflict"),
    (wf_errors.AssignmentError("negative capacity"), 422, "assignment"),
]


@pytest.mark.parametrize(("error", "status", "slug"), CASES, ids=[type(c[0]).__name__ for c in CASES])
def test_a_domain_error_gets_its_status_and_type(error: Exception, status: int, slug: str) -> None:
    app = make_app(MemoryStore(), EMBEDDING_MODEL="none")

    def fail() -> Any:
        raise error

    app.add_url_rule("/api/v1/_test/fail", "test_fail", fail)
    body = assert_problem(app.test_client().get("/api/v1/_test/fail"), status, slug=slug)
    if isinstance(error, rec.RankingError | wf_errors.InvalidSelection | wf_errors.WorkerUnavailable | EncoderMissing):
        assert str(error) in body["detail"]  # these pass the error's own message on
