"""The match state machine of the two-way selection: states, allowed moves, audit kinds.

>>> sorted(TRANSITIONS["invited"])
['accepted', 'declined', 'withdrawn']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, Literal

from graph.rules import LIVE_STATES

__all__ = [
    "AUDIT_KINDS",
    "INVITED",
    "KIND_OF",
    "MATCH_STATES",
    "OPEN_PROBLEM_STATUSES",
    "PENDING_STATES",
    "TRANSITIONS",
    "VOLUNTEERED",
    "MatchState",
]

MatchState = Literal["suggested", "invited", "volunteered", "accepted", "declined", "completed", "withdrawn"]
MATCH_STATES: Final[tuple[str, ...]] = ("suggested", "invited", "volunteered", "accepted", "declined", "completed",
                                        "withdrawn")

#: Allowed moves: state -> states it may move to.
TRANSITIONS: Final[Mapping[str, frozenset[str]]] = {
    "suggested": frozenset({"invited", "volunteered"}),
    "invited": frozenset({"accepted", "declined", "withdrawn"}),
    "volunteered": frozenset({"accepted", "declined", "withdrawn"}),
    "accepted": frozenset({"completed", "withdrawn"}),
    "declined": frozenset(),
    "completed": frozenset(),
    "withdrawn": frozenset(),
}
AUDIT_KINDS: Final[tuple[str, ...]] = (
    "recommendations_shown",
    "suggest",
    "invite",
    "volunteer",
    "accept",
    "confirm",
    "decline",
    "complete",
    "withdraw",
)
#: The audit kind of a move to a state.
KIND_OF: Final[Mapping[str, str]] = {
    "suggested": "suggest",
    "invited": "invite",
    "volunteered": "volunteer",
    "accepted": "accept",
    "declined": "decline",
    "completed": "complete",
    "withdrawn": "withdraw",
}

#: Problem statuses that take new invitations, volunteers and confirmations.
OPEN_PROBLEM_STATUSES: Final = frozenset({"open", "matched"})
#: States in which a pair (problem, worker) is taken: no second invitation or volunteer of the pair.
PENDING_STATES: Final = LIVE_STATES | {"volunteered"}
#: The states an invitation is answered from, and a volunteer.
INVITED: Final = frozenset({"invited"})
VOLUNTEERED: Final = frozenset({"volunteered"})
