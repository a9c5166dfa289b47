"""A recommendation's evidence as the pages show it: reasons in the user's language, path graphs with
localised labels, the problem itself in every graph, and a legend.

The recommender writes its reasons in Chinese (``recommender.explain``); in English mode each reason is
recognised by its pattern and rewritten through the catalogue. A reason no pattern knows is shown as
written (Chinese), never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from flask_babel import lazy_gettext as _l

from web.ui.i18n import ui_lang

__all__ = ["NODE_LABELS", "REL_LABELS", "localise_reason", "path_elements", "reason_known"]

NODE_LABELS: dict[str, Any] = {
    "Problem": _l("问题"), "Worker": _l("劳模工匠"), "Skill": _l("技能"), "Enterprise": _l("企业"),
    "IndustryChain": _l("产业链"), "District": _l("区县"),
}

#: relationship type -> how the edge reads, from its source to its target
REL_LABELS: dict[str, Any] = {
    "SOLVED": _l("解决过"), "HAS_SKILL": _l("掌握技能"), "REQUIRES": _l("需要技能"), "POSTED": _l("提出"),
    "IN_CHAIN": _l("属于产业链"), "LOCATED_IN": _l("位于"), "ADJACENT_TO": _l("相邻"), "EMPLOYED_BY": _l("就职于"),
    "MENTORS": _l("带徒"), "SIMILAR": _l("相似"),
}

_LIST = "、"

#: (pattern over the recommender's Chinese reason, message with the same named fields)
_REASONS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"^曾解决相似问题「(?P<title>.*)」（相似度 (?P<similarity>[\d.]+)）$"),
     _l("曾解决相似问题「%(title)s」(相似度 %(similarity)s)")),
    (re.compile(r"^具备所需技能：(?P<skills>.+)$"),
     _l("具备所需技能:%(skills)s")),
    (re.compile(r"^曾为该企业解决过 (?P<n>\d+) 个问题$"),
     _l("曾为该企业解决过 %(n)s 个问题")),
    (re.compile(r"^在(?P<chain>.+)产业链有 (?P<n>\d+) 次服务经历$"),
     _l("在%(chain)s产业链有 %(n)s 次服务经历")),
    (re.compile(r"^与问题同在(?P<district>.+)$"),
     _l("与问题同在%(district)s")),
    (re.compile(r"^所在(?P<here>.+)与(?P<district>.+)相邻，便于现场服务$"),
     _l("所在%(here)s与%(district)s相邻,便于现场服务")),
    (re.compile(r"^有培训/带徒记录，累计培训 (?P<n>\d+) 人次，适合(?P<service>.+)$"),
     _l("有培训/带徒记录,累计培训 %(n)s 人次,适合%(service)s")),
    (re.compile(r"^有培训/带徒记录，适合(?P<service>.+)$"),
     _l("有培训/带徒记录,适合%(service)s")),
    (re.compile(r"^在相关方向有 (?P<n>\d+) 项攻关经历，适合(?P<service>.+)$"),
     _l("在相关方向有 %(n)s 项攻关经历,适合%(service)s")),
    (re.compile(r"^注意：不在本地或相邻区县，现场服务需安排行程$"),
     _l("注意:不在本地或相邻区县,现场服务需安排行程")),
    (re.compile(r"^已解决 (?P<n>\d+) 个问题，平均评价约 (?P<rating>[\d.]+) 分$"),
     _l("已解决 %(n)s 个问题,平均评价约 %(rating)s 分")),
    (re.compile(r"^已解决 (?P<n>\d+) 个问题$"),
     _l("已解决 %(n)s 个问题")),
    (re.compile(r"^新入库的劳模工匠，依据技能与个人简介推荐$"),
     _l("新入库的劳模工匠,依据技能与个人简介推荐")),
    (re.compile(r"^荣誉：(?P<honours>.+)$"),
     _l("荣誉:%(honours)s")),
    (re.compile(r"^本月已承担 (?P<load>\d+) 项任务（月容量 不限）$"),
     _l("本月已承担 %(load)s 项任务(月容量不限)")),
    (re.compile(r"^本月已承担 (?P<load>\d+) 项任务（月容量 (?P<capacity>\d+)）$"),
     _l("本月已承担 %(load)s 项任务(月容量 %(capacity)s)")),
    (re.compile(r"^曾婉拒类似需求，排序已下调$"),
     _l("曾婉拒类似需求,排序已下调")),
)


def reason_known(reason: str) -> bool:
    """Whether a reason matches one of the recommender's known sentence patterns."""
    return any(pattern.match(reason) for pattern, _message in _REASONS)


def localise_reason(reason: str) -> str:
    """The reason in the page's language, a similarity as a percentage (as the list of similar problems
    shows it). Names inside (problem titles, skills, districts, honours) are data and stay as stored.
    """
    english = ui_lang() != "zh"
    for pattern, message in _REASONS:
        found = pattern.match(reason)
        if found:
            values = found.groupdict()
            if "similarity" in values:  # as the similar-problem list shows it
                values["similarity"] = f"{float(values['similarity']) * 100:.0f}%"
            if english:
                values = {k: v.replace(_LIST, ", ") if k in ("skills", "honours") else v for k, v in values.items()}
            return str(message) % values
    return reason


def _key(label: str | None, node_id: Any) -> str:
    return f"{label}:{node_id}"


def path_elements(paths: list[dict[str, Any]], problem: Mapping[str, Any] | None = None,
                  similar: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Cytoscape elements for an explanation's paths: nodes deduplicated, edges oriented and labelled in
    the page's language.

    With ``problem``, the problem being matched is always drawn (marked ``focus``) and tied to the nodes
    it really touches: the skills it requires, its district, the enterprise that posted it, and the
    similar solved problems (a dashed 相似 edge: text similarity, not a graph relationship).
    """
    nodes: dict[str, dict[str, Any]] = {}
    edges: dict[str, dict[str, Any]] = {}

    def edge(source: str, target: str, rel: str, **extra: Any) -> None:
        key = f"{source}|{rel}|{target}"
        edges[key] = {"data": {"id": key, "source": source, "target": target,
                               "label": str(REL_LABELS.get(rel, rel)), **extra}}

    for path in paths:
        ids = []
        for node in path.get("nodes", []):
            key = _key(node.get("label"), node.get("id"))
            nodes[key] = {"data": {"id": key, "label": str(node.get("name") or node.get("id")),
                                   "type": node.get("label")}}
            ids.append(key)
        for i, rel in enumerate(path.get("rels", [])):
            if i + 1 >= len(ids):
                break
            a, b = ids[i], ids[i + 1]
            source, target = (b, a) if rel.get("direction") == "<-" else (a, b)
            edge(source, target, str(rel.get("type")))
    if problem is not None and nodes:
        me = _key("Problem", problem.get("id"))
        nodes[me] = {"data": {"id": me, "label": str(problem.get("title") or problem.get("id")),
                              "type": "Problem"}, "classes": "focus"}
        skills = set(problem.get("skills") or [])
        similar_ids = {str(s.get("id")) for s in similar or []}
        for key in list(nodes):
            kind, _sep, node_id = key.partition(":")
            if key == me:
                continue
            if kind == "Skill" and node_id in skills:
                edge(me, key, "REQUIRES")
            elif kind == "District" and node_id == problem.get("district"):
                edge(me, key, "LOCATED_IN")
            elif kind == "Enterprise" and node_id == problem.get("enterprise_id"):
                edge(key, me, "POSTED")
            elif kind == "Problem" and node_id in similar_ids:
                edge(key, me, "SIMILAR", similar=True)
    return list(nodes.values()) + list(edges.values())
