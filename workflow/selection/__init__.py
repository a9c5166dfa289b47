"""Two-way selection (双向选择): invitations moving through a state machine, with an audit trail.

A *match* pairs one worker with one problem and moves through these states::

    suggested ──> invited ──> accepted ──> completed (outcome)
        │            │            ^  │
        │            ├──> declined (a reason is required)
        │            └──────────-─┼──┴──> withdrawn
        └──> volunteered ─────────┘ (a coordinator confirms; or declines with a reason; or the worker withdraws)

Both sides choose (双向选择): a coordinator *invites* a worker, who accepts or declines; or a worker
*volunteers* (「我想接」) for an open problem and a coordinator of the problem's district *confirms*
(the same checks as an invitation: problem still open, worker active, no conflict of interest, capacity
recounted under the worker's lock) or declines with a reason. A volunteer does not occupy capacity
until it is confirmed.

Any other move raises :class:`~workflow.errors.IllegalTransition` (a declined invitation cannot
complete, a match cannot complete twice). Matches are ``Match`` nodes and every recommendation shown
and decision taken is an ``AuditEvent`` node (who, when, what was ranked, which model version), so a
result can be audited later. Each transition writes the match, the problem and the audit event in
one :class:`~graph.store.WriteBatch`, so they land together or not at all; ``on_change`` is then
called so the recommender refreshes its projection.

:class:`Selection` is the one object callers use; its steps live in one module per side:

- :mod:`~workflow.selection.states`: the states, the allowed moves and the audit kinds;
- :mod:`~workflow.selection.rows`: the match, audit event and outcome rows the steps write (pure functions);
- :mod:`~workflow.selection.reads`: matches, a worker's load and capacity, the audit trail;
- :mod:`~workflow.selection.steps`: what every step shares: conditional writes, retries, lost races, the
  checks of a new engagement and the capacity recount (concurrency is explained there);
- :mod:`~workflow.selection.invitations`: suggest, invite, accept, decline;
- :mod:`~workflow.selection.volunteering`: volunteer, confirm, decline a volunteer;
- :mod:`~workflow.selection.outcomes`: complete (the feedback loop) and withdraw.
"""

from __future__ import annotations

from workflow.selection.invitations import InvitationSteps
from workflow.selection.outcomes import OutcomeSteps
from workflow.selection.rows import problem_outcomes
from workflow.selection.states import AUDIT_KINDS, MATCH_STATES, TRANSITIONS, MatchState
from workflow.selection.steps import ATTEMPTS
from workflow.selection.volunteering import VolunteerSteps

__all__ = [
    "ATTEMPTS",
    "AUDIT_KINDS",
    "MATCH_STATES",
    "TRANSITIONS",
    "MatchState",
    "Selection",
    "problem_outcomes",
]


class Selection(InvitationSteps, VolunteerSteps, OutcomeSteps):
    """The two-way selection workflow over a store.

    Parameters
    ----------
    store
        The graph store holding workers, problems, matches and audit events.
    on_change
        Called after every write that changes matches or problems (e.g. ``Recommender.refresh``),
        so the next ranking sees the new load, declines and solved problems.
    clock
        Returns the current time (an aware datetime); tests inject a fixed clock.
    notify
        Write the step's notifications and outbox messages (:mod:`workflow.notifications`) in the
        step's own batch (default).

    Examples
    --------
    >>> from graph.memory import MemoryStore
    >>> store = MemoryStore()
    >>> _ = store.create_node("Worker", "w1", {"name": "王师傅", "capacity": 2})
    >>> _ = store.create_node("Problem", "p1", {"title": "主轴异响", "status": "open"})
    >>> sel = Selection(store)
    >>> m = sel.invite("p1", "w1", actor="coordinator")
    >>> sel.accept(m["id"], actor="w1")["state"]
    'accepted'
    >>> store.get_node("Problem", "p1")["status"]
    'matched'
    """
