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

Workflow labels (not part of the matching graph): ``Match`` (an invitation or a volunteer moving through
the two-way selection), ``AuditEvent``, ``User``, ``ApiKey``, ``Target``, ``Notification`` (what a user is
told in the app) and ``OutboxMessage`` (a message to send by e-mail or another channel, and its record).
"""

from __future__ import annotations

import re
from typing import Final, Literal

__all__ = [
    "DOMAIN_LABELS",
    "ID_MAX_LENGTH",
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
    "is_safe_id",
    "is_safe_name_id",
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
    "Notification",
    "OutboxMessage",
]

DOMAIN_LABELS: Final = ("Worker", "Skill", "Enterprise", "IndustryChain", "District", "Problem")
LABELS: Final[tuple[str, ...]] = DOMAIN_LABELS + ("Match", "AuditEvent", "User", "ApiKey", "Target", "Notification",
                                                  "OutboxMessage")

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

#: Longest id of any node.
ID_MAX_LENGTH: Final = 128
#: Ids of workers, enterprises and problems that we create or import: letters of any script (CJK
#: included), digits, ``_``, ``-`` and ``.``, starting with a letter, digit or ``_``. So no path
#: separators, quotes, blanks, control or bidirectional-override characters, and never ``.`` or ``..``.
_SAFE_ID: Final = re.compile(r"\w[\w.\-]*")
#: Names that are ids too (skills, industry chains, districts): any text but path separators, quotes,
#: C0/C1 control characters, Unicode format characters (bidirectional overrides, zero-width joiners...),
#: lone surrogates and surrounding blanks.
_UNSAFE_NAME: Final = re.compile(
    r"[/\\'\"`\x00-\x1f\x7f-\x9f\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff"
    r"\ufff9-\ufffb\ud800-\udfff]|^\s|\s$")


def is_safe_id(value: object) -> bool:
    """Whether ``value`` is an acceptable new id of a worker, enterprise or problem.

    Examples
    --------
    >>> [is_safe_id(v) for v in ("W0001", "P20261204-1a2b", "盐城.机械_01", "工匠-王")]
    [True, True, True, True]
    >>> [is_safe_id(v) for v in ("..\\\\..\\\\win", "P'; DROP", "W1\\u202egnp", "a/b", "..", "W 1", "")]
    [False, False, False, False, False, False, False]
    """
    return isinstance(value, str) and len(value) <= ID_MAX_LENGTH and _SAFE_ID.fullmatch(value) is not None


def is_safe_name_id(value: object) -> bool:
    """Whether ``value`` is an acceptable name of a skill, chain or district (names are their ids).

    Examples
    --------
    >>> [is_safe_name_id(v) for v in ("数控编程", "C++", "PLC 编程", "数控车床(CNC)")]
    [True, True, True, True]
    >>> [is_safe_name_id(v) for v in ("a/b", "a\\\\b", "P'; DROP", "焊接\\u202e", " 焊接", "")]
    [False, False, False, False, False, False]
    """
    return (isinstance(value, str) and 0 < len(value) <= ID_MAX_LENGTH
            and _UNSAFE_NAME.search(value) is None)


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
