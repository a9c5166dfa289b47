"""The graph model: node labels, relationship types and the whitelist every store checks against.

Labels and relationship types cannot be Cypher parameters, so every store validates them against
these tables before use. Ids are our own strings, unique per label.

Domain labels (the matching graph):

============== ==========================================================================
Label          Properties
============== ==========================================================================
Worker         name, honours (list), level, district, team, role, capacity (per month),
               active, contact (private: never returned by the API without write scope)
Skill          name, category, chain, aliases (list)
Enterprise     name, district, industry_chain, tags (list: 专精特新 / 小巨人 / 中小微),
               unionised
IndustryChain  name
District       name
Problem        title, description, service_type, status, posted_at, solved_at,
               enterprise_id, district, skills (list)
============== ==========================================================================

Workflow labels (not part of the matching graph): ``Match`` (an invitation moving through the
two-way selection), ``AuditEvent``, ``User``, ``ApiKey``, ``Target``.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "DOMAIN_LABELS",
    "FULLTEXT_PROPERTIES",
    "LABELS",
    "PROBLEM_STATUSES",
    "REL_ENDPOINTS",
    "REL_TYPES",
    "SERVICE_TYPES",
    "Label",
    "RelType",
    "check_label",
    "check_rel",
]

Label = Literal[
    "Worker",
    "Skill",
    "Enterprise",
    "IndustryChain",
    "District",
    "Problem",
    "Match",
    "AuditEvent",
    "User",
    "ApiKey",
    "Target",
]

DOMAIN_LABELS: Final = ("Worker", "Skill", "Enterprise", "IndustryChain", "District", "Problem")
LABELS: Final[tuple[str, ...]] = DOMAIN_LABELS + ("Match", "AuditEvent", "User", "ApiKey", "Target")

RelType = Literal[
    "HAS_SKILL",
    "SOLVED",
    "POSTED",
    "REQUIRES",
    "IN_CHAIN",
    "LOCATED_IN",
    "EMPLOYED_BY",
    "MENTORS",
    "ADJACENT_TO",
]

#: Allowed (start label, end label) pairs per relationship type.
REL_ENDPOINTS: Final[dict[str, frozenset[tuple[str, str]]]] = {
    "HAS_SKILL": frozenset({("Worker", "Skill")}),
    "SOLVED": frozenset({("Worker", "Problem")}),
    "POSTED": frozenset({("Enterprise", "Problem")}),
    "REQUIRES": frozenset({("Problem", "Skill")}),
    "IN_CHAIN": frozenset({("Enterprise", "IndustryChain"), ("Skill", "IndustryChain")}),
    "LOCATED_IN": frozenset({("Worker", "District"), ("Enterprise", "District"), ("Problem", "District")}),
    "EMPLOYED_BY": frozenset({("Worker", "Enterprise")}),
    "MENTORS": frozenset({("Worker", "Worker")}),
    "ADJACENT_TO": frozenset({("District", "District")}),
}
REL_TYPES: Final[tuple[str, ...]] = tuple(REL_ENDPOINTS)

#: Properties covered by the full-text (cjk analyser) index, per label.
FULLTEXT_PROPERTIES: Final[dict[str, tuple[str, ...]]] = {
    "Worker": ("name",),
    "Enterprise": ("name",),
    "Skill": ("name",),
    "Problem": ("title", "description"),
}

SERVICE_TYPES: Final = (
    "技术帮扶",  # on-site technical help / guidance
    "技能培训",  # skills training
    "名师带徒",  # master-apprentice mentoring
    "研发攻关",  # joint R&D, tackling key problems
    "工艺改进",  # process improvement
    "成果转化",  # turning results into products
    "管理提升",  # management improvement
)
PROBLEM_STATUSES: Final = ("open", "matched", "solved", "closed")


def check_label(label: str) -> str:
    """Return ``label`` if it is in the model, else raise :class:`~graph.errors.UnknownLabel`.

    Examples
    --------
    >>> check_label("Worker")
    'Worker'
    """
    from graph.errors import UnknownLabel

    if label not in LABELS:
        raise UnknownLabel(f"unknown label {label!r}")
    return label


def check_rel(rel_type: str, start_label: str, end_label: str) -> str:
    """Return ``rel_type`` if the model allows it between the two labels, else raise.

    Examples
    --------
    >>> check_rel("SOLVED", "Worker", "Problem")
    'SOLVED'
    """
    from graph.errors import UnknownLabel

    allowed = REL_ENDPOINTS.get(rel_type)
    if allowed is None:
        raise UnknownLabel(f"unknown relationship type {rel_type!r}")
    if (start_label, end_label) not in allowed:
        raise UnknownLabel(f"{rel_type} is not allowed from {start_label} to {end_label}")
    return rel_type


def check_rel_filter(rel_type: str, start: tuple[str, str] | None, end: tuple[str, str] | None) -> str:
    """Validate a relationship query: a known type and, where given, known endpoint labels.

    Examples
    --------
    >>> check_rel_filter("SOLVED", ("Worker", "w1"), None)
    'SOLVED'
    """
    from graph.errors import UnknownLabel

    if rel_type not in REL_ENDPOINTS:
        raise UnknownLabel(f"unknown relationship type {rel_type!r}")
    for node in (start, end):
        if node is not None:
            check_label(node[0])
    return rel_type
