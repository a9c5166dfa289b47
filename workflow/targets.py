"""Programme targets and phase dates of 劳模工匠助企行, configurable per deployment.

The defaults follow the Yancheng implementation plan (``../shared/context/DOMAIN.md``): at least
200 person-visits, 200 on-site problems solved and 800 person-times trained, city-wide, over a
campaign that starts on 10 November and runs to the end of July in four phases, tracked for the
eleven county-level districts and functional zones.

The plan does not say how the city targets are split, so the defaults split them evenly across the
districts and across the phases in proportion to each phase's length (largest-remainder rounding,
so the integer parts add up to the city figure). A deployment that knows better names a JSON or
TOML file in ``JIANGLIAN_TARGETS``::

    # targets.toml
    margin = 0.15
    districts = ["亭湖区", "盐都区"]
    [city]
    visits = 200
    problems_solved = 200
    people_trained = 800
    [[phases]]
    name = "动员部署"
    start = 2026-11-10
    end = 2026-12-31
    weight = 1
    [district_targets."亭湖区"]   # overrides the even split for one district
    visits = 30

Phase ``weight`` is optional: give it for every phase or for none (then each phase's length in days
is its weight).
"""

from __future__ import annotations

import json
import math
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final, Literal

__all__ = [
    "DEFAULT_DISTRICTS",
    "DEFAULT_PHASES",
    "METRICS",
    "Metric",
    "Phase",
    "Targets",
    "apportion",
    "load_targets",
]

Metric = Literal["visits", "problems_solved", "people_trained"]
METRICS: Final[tuple[Metric, ...]] = ("visits", "problems_solved", "people_trained")

DEFAULT_DISTRICTS: Final[tuple[str, ...]] = (
    "亭湖区",
    "盐都区",
    "大丰区",
    "东台市",
    "建湖县",
    "射阳县",
    "阜宁县",
    "滨海县",
    "响水县",
    "盐城经济技术开发区",
    "盐南高新区",
)


@dataclass(frozen=True)
class Phase:
    """One phase of the campaign, both dates inclusive."""

    name: str
    start: date
    end: date
    weight: float | None = None

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"phase {self.name!r} ends before it starts")
        if self.weight is not None and not (self.weight >= 0 and math.isfinite(self.weight)):
            raise ValueError(f"phase {self.name!r} needs a non-negative weight")

    @property
    def days(self) -> int:
        """Length in days, both ends included."""
        return (self.end - self.start).days + 1

    def share_weight(self) -> float:
        """The weight used to split targets across phases (its length unless configured)."""
        return float(self.days if self.weight is None else self.weight)

    def elapsed(self, today: date) -> float:
        """Fraction of the phase elapsed by the end of ``today`` (0 before, 1 after).

        Examples
        --------
        >>> Phase("p", date(2027, 1, 1), date(2027, 1, 10)).elapsed(date(2027, 1, 5))
        0.5
        """
        if today < self.start:
            return 0.0
        if today >= self.end:
            return 1.0
        return ((today - self.start).days + 1) / self.days

    def contains(self, day: date) -> bool:
        """Whether ``day`` falls inside the phase."""
        return self.start <= day <= self.end


#: Four phases from the launch on 10 November 2026 to the end of July 2027. The plan names no
#: dates inside the campaign; these follow the usual 动员部署 / 组织实施 / 深化推进 / 总结提升 pattern.
DEFAULT_PHASES: Final[tuple[Phase, ...]] = (
    Phase("动员部署", date(2026, 11, 10), date(2026, 12, 31)),
    Phase("组织实施", date(2027, 1, 1), date(2027, 3, 31)),
    Phase("深化推进", date(2027, 4, 1), date(2027, 6, 15)),
    Phase("总结提升", date(2027, 6, 16), date(2027, 7, 31)),
)


def apportion(total: int, weights: Sequence[float]) -> list[int]:
    """Split an integer total in proportion to ``weights`` (largest remainder, ties to the first).

    Examples
    --------
    >>> apportion(200, [1] * 11)
    [19, 19, 18, 18, 18, 18, 18, 18, 18, 18, 18]
    >>> apportion(10, [0, 0])
    [5, 5]
    """
    if total < 0:
        raise ValueError("total must be non-negative")
    if not weights:
        return []
    if any(w < 0 or not math.isfinite(w) for w in weights):
        raise ValueError("weights must be finite and non-negative")
    weight_sum = float(sum(weights))
    shares = [total * w / weight_sum for w in weights] if weight_sum > 0 else [total / len(weights)] * len(weights)
    parts = [math.floor(s) for s in shares]
    order = sorted(range(len(shares)), key=lambda i: (-(shares[i] - parts[i]), i))
    for i in order[: total - sum(parts)]:
        parts[i] += 1
    return parts


@dataclass(frozen=True)
class Targets:
    """City targets, districts, phases and the at-risk margin.

    Parameters
    ----------
    city
        City-wide target per metric for the whole campaign.
    districts
        The districts targets are split across (and progress is reported for).
    phases
        The campaign phases, in order and not overlapping.
    district_targets
        Per-district campaign targets that replace the even split for the metrics given.
    margin
        A district is *at risk* in a phase when it is behind the pro-rata expectation by more than
        ``margin`` times its phase target.
    """

    city: Mapping[str, int] = field(
        default_factory=lambda: {"visits": 200, "problems_solved": 200, "people_trained": 800}
    )
    districts: tuple[str, ...] = DEFAULT_DISTRICTS
    phases: tuple[Phase, ...] = DEFAULT_PHASES
    district_targets: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    margin: float = 0.1

    def __post_init__(self) -> None:
        missing = [m for m in METRICS if m not in self.city]
        if missing:
            raise ValueError(f"city targets lack {', '.join(missing)}")
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in self.city.values()):
            raise ValueError("targets must be non-negative integers")
        if not self.districts or len(set(self.districts)) != len(self.districts):
            raise ValueError("districts must be a non-empty list without repeats")
        if not self.phases:
            raise ValueError("at least one phase is needed")
        if len({p.weight is None for p in self.phases}) > 1:
            raise ValueError("give every phase a weight, or none (then targets follow the phases' lengths)")
        for before, after in zip(self.phases, self.phases[1:], strict=False):
            if after.start <= before.end:
                raise ValueError(f"phases {before.name!r} and {after.name!r} overlap or are out of order")
        unknown = set(self.district_targets) - set(self.districts)
        if unknown:
            raise ValueError(f"district targets for unknown district(s): {', '.join(sorted(unknown))}")
        if not 0 <= self.margin <= 1:
            raise ValueError("margin must be between 0 and 1")

    @property
    def start(self) -> date:
        """First day of the campaign."""
        return self.phases[0].start

    @property
    def end(self) -> date:
        """Last day of the campaign."""
        return self.phases[-1].end

    def phase_of(self, day: date) -> int | None:
        """Index of the phase containing ``day``, or ``None`` outside the campaign."""
        for i, phase in enumerate(self.phases):
            if phase.contains(day):
                return i
        return None

    def district_target(self, district: str, metric: str) -> int:
        """Campaign target of one district: its override, else its part of the even split.

        Overridden districts keep their figure; the rest of the city target is split evenly over the
        others (never below zero).
        """
        if district not in self.districts:
            raise KeyError(district)
        override = self.district_targets.get(district, {})
        if metric in override:
            return int(override[metric])
        free = [d for d in self.districts if metric not in self.district_targets.get(d, {})]
        fixed = sum(int(self.district_targets[d][metric]) for d in self.districts if d not in free)
        parts = apportion(max(0, self.city[metric] - fixed), [1.0] * len(free))
        return parts[free.index(district)]

    def phase_targets(self, district: str, metric: str) -> list[int]:
        """One district's campaign target split across the phases (sums to :meth:`district_target`)."""
        return apportion(self.district_target(district, metric), [p.share_weight() for p in self.phases])

    # -- configuration ----------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, doc: Mapping[str, Any]) -> Targets:
        """Build from a parsed JSON/TOML document (see the module docstring); omitted keys keep defaults."""
        default = cls()
        city = dict(default.city)
        city.update({str(k): v for k, v in (doc.get("city") or {}).items()})
        phases = default.phases
        if doc.get("phases"):
            phases = tuple(
                Phase(
                    name=str(p["name"]),
                    start=_as_date(p["start"]),
                    end=_as_date(p["end"]),
                    weight=None if p.get("weight") is None else float(p["weight"]),
                )
                for p in doc["phases"]
            )
        districts = tuple(str(d) for d in doc["districts"]) if doc.get("districts") else default.districts
        overrides = {str(d): {str(m): v for m, v in t.items()} for d, t in (doc.get("district_targets") or {}).items()}
        return cls(
            city=city,
            districts=districts,
            phases=phases,
            district_targets=overrides,
            margin=float(doc.get("margin", default.margin)),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the inverse of :meth:`from_mapping`)."""
        return {
            "city": dict(self.city),
            "districts": list(self.districts),
            "phases": [
                {"name": p.name, "start": p.start.isoformat(), "end": p.end.isoformat(), "weight": p.weight}
                for p in self.phases
            ],
            "district_targets": {d: dict(t) for d, t in self.district_targets.items()},
            "margin": self.margin,
        }


def _as_date(value: Any) -> date:
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value))


def load_targets(path: str | os.PathLike[str] | None = None) -> Targets:
    """Targets from the file ``path`` (the setting ``JIANGLIAN_TARGETS``, :attr:`graph.config.Settings.targets_file`),
    else the built-in defaults.

    Raises
    ------
    ValueError
        If the file cannot be read or parsed, or describes inconsistent targets.
    """
    if path is None or not str(path).strip():
        return Targets()
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        doc = tomllib.loads(text) if file.suffix.lower() == ".toml" else json.loads(text)
    except (OSError, ValueError) as err:
        raise ValueError(f"cannot read targets from {file}: {err}") from err
    if not isinstance(doc, Mapping):
        raise ValueError(f"{file}: the targets file must hold an object")
    try:
        return Targets.from_mapping(doc)
    except (KeyError, TypeError) as err:
        raise ValueError(f"{file}: bad targets: {err}") from err
