"""The text each node contributes to embedding: one definition shared by the builder, the cache and the ranking.

Worker profile texts leave out the name on purpose, also where it is part of a studio's name
(``张三劳模创新工作室``): a name carries no skill, and it would only add noise (and personal data) to the vectors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["problem_text", "worker_text"]


def _parts(value: Any) -> Iterable[str]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, Iterable):
        return (str(v) for v in value if v is not None and str(v).strip())
    return (str(value),)


def _join(row: Mapping[str, Any], fields: Iterable[str]) -> str:
    return " ".join(part.strip() for field in fields for part in _parts(row.get(field)) if part.strip())


def problem_text(row: Mapping[str, Any]) -> str:
    """Title, description and required skills of a problem row, joined by spaces.

    Examples
    --------
    >>> problem_text({"title": "液压站压力不稳", "description": "保压时掉压", "skills": ["液压系统", "故障诊断"]})
    '液压站压力不稳 保压时掉压 液压系统 故障诊断'
    """
    return _join(row, ("title", "description", "skills"))


def worker_text(row: Mapping[str, Any]) -> str:
    """A worker's profile without the name: skills, honours, service menu and studio.

    Examples
    --------
    >>> worker_text({"name": "张三", "skills": ["PLC编程"], "honours": ["江苏工匠"], "studio": "张三创新工作室"})
    'PLC编程 江苏工匠 创新工作室'
    """
    text = _join(row, ("skills", "honours", "service_menu", "studio"))
    name = str(row.get("name") or "").strip()
    if name:
        text = " ".join(text.replace(name, " ").split())
    return text
