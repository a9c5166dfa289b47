"""Scores as a coordinator reads them: a 0–100 match level per suggestion and the factors behind it.

The recommender returns a fused score in the units of its model (13.998, 6.413, ...) and one
component per feature (``text_top3``, ``bm25``, ``text_top3@fused`` ...). The pages show instead:

- ``points``: the score on a 0–100 scale where 100 is the best suggestion in the same list and 0 is
  a fused score of zero (or the weakest suggestion, when some scores are negative). It compares the
  people suggested for one problem; it is not a probability, and it is not comparable across
  problems (a calibration on held-out history belongs to the recommender).
- a plain-language level (很高 / 较高 / 一般) from those points;
- the fused score's parts grouped into a few factors with Chinese names (English in English mode),
  in the same points, so that the factors of a suggestion add up to its match level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from flask_babel import lazy_gettext as _l

__all__ = ["FACTORS", "FEATURE_FACTOR", "Factor", "MatchScore", "level", "match_points", "match_scores"]

#: factor key -> (name, what it measures), in display order
FACTORS: dict[str, tuple[Any, Any]] = {
    "similar": (_l("相似问题经验"),
                _l("解决过的问题与本问题在文字上的相似程度、相似问题的数量,以及从解决记录中学到的专长")),
    "skills": (_l("技能匹配"), _l("登记的技能、个人简介和解决过的问题所用技能与本问题所需技能的吻合程度")),
    "graph": (_l("图谱关联"), _l("在关系图谱上与本问题的技能、企业、区县相连的紧密程度")),
    "enterprise": (_l("企业与产业链经历"), _l("曾为同一企业或同一产业链的企业解决过问题")),
    "place": (_l("地域便利"), _l("与问题同区县或相邻区县,在本区县有服务经历,便于现场服务")),
    "record": (_l("服务经历与口碑"), _l("解决过的问题数量、近期是否活跃、服务评价和荣誉")),
    "fit": (_l("服务类型适配"), _l("培训带徒记录(培训类需求)或攻关经历(研发、工艺类需求)")),
    "load": (_l("本月任务量"), _l("本月已承担的任务占月服务容量的比例越高,排序越靠后")),
    "declined": (_l("曾婉拒类似需求"), _l("婉拒过相似的需求,排序下调")),
    "other": (_l("其他因素"), _l("模型中的其他信号")),
}

#: recommender feature (and penalty) name -> factor key; unknown names count as "other"
FEATURE_FACTOR: dict[str, str] = {
    **dict.fromkeys(("text_top3", "text_max", "text_hits", "char_top3", "char_max", "bm25", "dense_top3",
                     "dense_max", "expertise"), "similar"),
    **dict.fromkeys(("profile", "skill_hist", "skill_count", "skill_declared", "dense_profile"), "skills"),
    "ppr": "graph",
    **dict.fromkeys(("enterprise", "chain"), "enterprise"),
    **dict.fromkeys(("district_work", "district", "onsite_fit"), "place"),
    **dict.fromkeys(("popularity", "activity", "quality", "honours"), "record"),
    **dict.fromkeys(("teach_fit", "depth_fit"), "fit"),
    "load_penalty": "load",
    "decline_penalty": "declined",
}

#: (lowest points, level key, label), highest first
LEVELS: tuple[tuple[int, str, Any], ...] = (
    (80, "high", _l("很高")),
    (55, "good", _l("较高")),
    (0, "fair", _l("一般")),
)


@dataclass(frozen=True)
class Factor:
    """One named part of a suggestion's match level, in points of the 0–100 scale (negative lowers it)."""

    key: str
    name: str
    help: str
    points: int


@dataclass(frozen=True)
class MatchScore:
    """How well one suggestion matches, for display."""

    points: int
    level: str
    label: str
    factors: list[Factor] = field(default_factory=list)


def match_points(scores: Sequence[float]) -> list[int]:
    """Scores of one suggestion list on 0–100: the best is 100, a score of 0 (or the lowest, if lower) is 0.

    Examples
    --------
    >>> match_points([12.0, 9.0, 3.0])
    [100, 75, 25]
    >>> match_points([2.0, 0.0, -2.0])
    [100, 50, 0]
    >>> match_points([-1.0, -1.0])
    [100, 100]
    """
    if not scores:
        return []
    top, floor = max(scores), min(0.0, min(scores))
    if top <= floor:
        return [100] * len(scores)
    return [int(round(100 * (s - floor) / (top - floor))) for s in scores]


def level(points: int) -> tuple[str, str]:
    """The level key and label of a 0–100 match level.

    Examples
    --------
    >>> level(92)[0], level(60)[0], level(10)[0]
    ('high', 'good', 'fair')
    """
    for lowest, key, label in LEVELS:
        if points >= lowest:
            return key, str(label)
    return LEVELS[-1][1], str(LEVELS[-1][2])


def _factors(components: Mapping[str, float], scale: float) -> list[Factor]:
    """The components grouped into factors, in points; the model's own contributions (``name@fused``)
    when it reports them, else nothing is shown in points (raw features have no common unit)."""
    parts = {k[: -len("@fused")]: v for k, v in components.items() if k.endswith("@fused")}
    if not parts:
        return []
    for penalty in ("load_penalty", "decline_penalty"):
        if penalty in components:
            parts[penalty] = components[penalty]
    sums: dict[str, float] = {}
    for name, value in parts.items():
        key = FEATURE_FACTOR.get(name, "other")
        sums[key] = sums.get(key, 0.0) + float(value)
    out = []
    for key, (name, help_text) in FACTORS.items():
        points = int(round(100 * sums.get(key, 0.0) / scale)) if key in sums else 0
        if points:
            out.append(Factor(key, str(name), str(help_text), points))
    return out


def match_scores(recs: Sequence[Any]) -> list[MatchScore]:
    """A :class:`MatchScore` for each item of one ranked list (objects with ``score`` and ``components``)."""
    scores = [float(r.score) for r in recs]
    points = match_points(scores)
    scale = (max(scores) - min(0.0, min(scores))) if scores else 1.0
    out = []
    for rec, p in zip(recs, points, strict=True):
        key, label = level(p)
        factors = _factors(getattr(rec, "components", None) or {}, scale) if scale > 0 else []
        out.append(MatchScore(p, key, label, factors))
    return out
