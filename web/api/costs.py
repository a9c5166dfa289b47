"""What one API call costs of its key's rate-limit budget (issue 16, finding 8).

``API_RATE_LIMIT`` (default ``600 per minute``) is a budget per API key (or user, or client address).
A call spends 1 of it, except the routes that rank, which spend their class's cost from
``API_RATE_COSTS`` (merged over :data:`DEFAULT_COSTS`): a key that only asks for rankings reaches the
limit after a fraction of the calls a key reading resources makes. The costs are set roughly in
proportion to the CPU time of one call at demo scale (``docs/api.md``, "Rate limits").
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

from flask import current_app, request

__all__ = ["DEFAULT_COSTS", "CostClass", "check_costs", "rate_cost", "request_cost"]

CostClass = Literal["recommend", "recommended_problems", "assignment_plan"]

#: Budget units per call: a ranking of workers for one problem (``POST /recommendations``,
#: ``GET /problems/{id}/recommendations``), the open problems for one worker, a campaign plan (every
#: open problem's candidates scored).
DEFAULT_COSTS: dict[str, int] = {"recommend": 10, "recommended_problems": 3, "assignment_plan": 60}

_View = TypeVar("_View", bound=Callable[..., Any])


def rate_cost(name: CostClass) -> Callable[[_View], _View]:
    """Mark a view as costing ``name``'s units (put it right under the route decorator)."""

    def mark(view: _View) -> _View:
        view.rate_cost = name  # type: ignore[attr-defined]
        return view

    return mark


def check_costs(costs: Mapping[str, Any] | None) -> dict[str, int]:
    """``API_RATE_COSTS`` merged over the defaults; raises ``ValueError`` for an unknown class or a cost < 1.

    Examples
    --------
    >>> check_costs({"recommend": 20})["recommend"], check_costs(None)["recommended_problems"]
    (20, 3)
    """
    merged = dict(DEFAULT_COSTS)
    for name, value in dict(costs or {}).items():
        if name not in DEFAULT_COSTS:
            raise ValueError(f"API_RATE_COSTS: unknown route class {name!r} (known: {', '.join(DEFAULT_COSTS)})")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"API_RATE_COSTS[{name!r}] must be a whole number >= 1, not {value!r}")
        merged[name] = value
    return merged


def request_cost() -> int:
    """The current request's cost (Flask-Limiter's ``cost`` callable): its route class's units, else 1."""
    view = current_app.view_functions.get(request.endpoint or "")
    name = getattr(view, "rate_cost", None)
    if name is None:
        return 1
    costs: dict[str, int] = current_app.extensions["jianglian_rate_costs"]
    return costs[name]
