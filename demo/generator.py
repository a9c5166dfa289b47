"""Deterministic demo data: Yancheng's model workers, enterprises and three years of solved problems.

Why this module is long: one deterministic pipeline (entities, then problems drawn from them with one
random stream); splitting it would pass the shared sampling state between modules for no reader's gain.

:func:`generate` writes a dataset directory in the interchange format (see :mod:`graph.dataset`):
``districts.jsonl``, ``chains.jsonl``, ``skills.jsonl``, ``enterprises.jsonl``, ``workers.jsonl`` and
``problems.jsonl``, UTF-8 JSON Lines with ``ensure_ascii=False``. The same ``(scale, seed)`` gives
byte-identical files (with the same numpy version: the bulk sampling uses ``numpy.random.PCG64``).

What is generated, at ``scale=1``
---------------------------------
* 11 districts (9 county-level plus 2 functional zones) with neighbour lists, 23 industry chains and
  about 115 skills with aliases, grouped by category (the grammar family of the problem texts).
* About 600 enterprises: ``246 * scale`` 专精特新 firms (about 8% of them also 小巨人) and
  ``350 * scale`` others (mostly 中小微); about 20% are not unionised. Chains follow each district's
  industry structure (光伏 in 东台, 风电 in 大丰, 汽车 in the development zone ...).
* About 300 workers in teams. ``city_team`` marks the city team (市劳模工匠技术服务队): 10 workers of
  city-level units (``team: "city"``, one of them its ``captain``) plus 5 from each district team.
  Each district team has at least 10 members; its ``captain`` is one of the district's 5 city-team
  members and is by that a vice-captain of the city team (``role: "captain"``, ``city_team: true``);
  each district team also has one ``vice_captain`` who is not on the city team. With 11 districts
  the city team has 65 members ("about 60"). This core structure is fixed, so at tiny scales there
  are at least 120 workers; extra workers join district teams as members.
* About 2,000 solved problems posted from 2023-11 to 2026-10 (more during the campaign months
  November to July, fewer around the Spring Festival and in late summer, growing year on year) and
  about 200 open problems posted in the last two months. ``problems.jsonl`` is ordered by
  ``posted_at``.

How solvers are chosen
----------------------
Problems are replayed in posting order. Each solved problem samples 1-3 solvers without replacement
with weight proportional to

``level * propensity * (0.1 + skill overlap)^2 * district * chain experience * prior work with this
enterprise * teaching (for 技能培训/名师带徒) * offered service * (0 when the month's capacity is used)``

where same district counts 5, a neighbour 2 (city-team members get 1.3 elsewhere), each earlier
problem solved in the same chain adds 0.6 (up to 5), prior work for the same enterprise multiplies by
5, and a worker is rarely sent to their own employer. About 15% of the solver slots are then filled
"loosely" from anyone with a skill in the same category. Candidates come from a skill index (by skill
and district), so a problem costs O(candidates), not O(workers).

Problem texts come from compositional grammars (:mod:`demo.vocab`): per skill equipment and
symptoms, per family causes, attempts, goals and metrics, shared synonym sets, random clause order
and optional clauses, so problems of one skill share meaning without sharing wording.
"""

from __future__ import annotations

import argparse
import bisect
import datetime as dt
import json
import math
import random
import re
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from demo import vocab as V
from graph.model import SERVICE_TYPES

__all__ = [
    "FILES",
    "DemoWorld",
    "Grammar",
    "credit_code_valid",
    "generate",
    "generate_rows",
    "main",
]

#: Files in write order (references point to earlier files).
FILES: tuple[str, ...] = (
    "districts.jsonl",
    "chains.jsonl",
    "skills.jsonl",
    "enterprises.jsonl",
    "workers.jsonl",
    "problems.jsonl",
)

START = dt.date(2023, 11, 1)
END = dt.date(2026, 10, 31)
OPEN_FROM = dt.date(2026, 9, 1)

_BASE_WORKERS = 300
_BASE_ZJTX = 246
_BASE_OTHER = 350
_BASE_SOLVED = 2000
_BASE_OPEN = 200
_CITY_UNIT = 10
_CITY_PER_DISTRICT = 5
_MIN_DISTRICT_TEAM = 10
_LOOSE = 0.15  # share of solver slots filled loosely

_TRAINING = frozenset({"技能培训", "名师带徒"})
_TECH = frozenset({"技术帮扶", "工艺改进", "研发攻关"})
_MGMT_CATEGORIES = frozenset({"管理", "质量管理"})

Alts: TypeAlias = tuple[tuple[str, ...], ...]
"""Alternatives of a grammar symbol; each is ``(template,)`` or ``(short, detail)``."""

_TOKEN = re.compile(r"\{([^{}]*)\}")
_NO_SECOND: tuple[tuple[str, ...], ...] = (("相关工艺",), ("设备",), ("现场管理",))
_ENT_KIND: tuple[tuple[tuple[str, ...], ...], ...] = (
    (("中小企业",), ("民营企业",), ("小微企业",)),
    (("专精特新企业",), ("省级专精特新中小企业",)),
    (("专精特新“小巨人”企业",), ("国家级专精特新“小巨人”企业",)),
)


def _alts(value: str) -> Alts:
    """Parse ``"a|b>detail|c"`` into alternatives.

    Examples
    --------
    >>> _alts("异响|振动大>振动速度{n:4-9}mm/s")
    (('异响',), ('振动大', '振动速度{n:4-9}mm/s'))
    """
    return tuple(tuple(alt.split(">", 1)) for alt in value.split("|"))


class Grammar:
    """Expands templates with placeholders (syntax in :mod:`demo.vocab`).

    Parameters
    ----------
    rng
        The random stream; expansion is deterministic given its state.

    Examples
    --------
    >>> g = Grammar(random.Random(1))
    >>> g.reset([{"equip": _alts("主轴|导轨"), "sym": _alts("{异响}>噪声{n:70-80}dB"),
    ...           "异响": _alts("异响|有杂音")}])
    >>> title = g.expand("{@equip}{@sym}")
    >>> title.startswith(("主轴", "导轨")) and g.expand("{@equip}") in title
    True
    >>> g.expand("{@sym.1}")[:2]
    '噪声'
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self._layers: Sequence[Mapping[str, Alts]] = ()
        self._sticky: dict[str, int] = {}
        self._sticky_text: dict[str, str] = {}
        self._compiled: dict[str, tuple[Any, ...] | str] = {}

    def reset(self, layers: Sequence[Mapping[str, Alts]]) -> None:
        """Start a new text: set the lookup layers (first wins) and forget sticky choices."""
        self._layers = layers
        self._sticky.clear()
        self._sticky_text.clear()

    def lookup(self, name: str) -> Alts:
        """The alternatives of symbol ``name``.

        Raises
        ------
        KeyError
            If no layer defines it.
        """
        for layer in self._layers:
            alts = layer.get(name)
            if alts:
                return alts
        raise KeyError(f"unknown grammar symbol {name!r}")

    def sticky_alt(self, name: str) -> tuple[str, ...]:
        """The alternative of ``name`` fixed for the current text (chosen now if not yet)."""
        alts = self.lookup(name)
        i = self._sticky.get(name)
        if i is None:
            i = self._sticky[name] = int(self.rng.random() * len(alts))
        return alts[i]

    def _compile(self, template: str) -> tuple[Any, ...] | str:
        if "{" not in template:
            self._compiled[template] = template
            return template
        parts: list[Any] = []
        pos = 0
        for m in _TOKEN.finditer(template):
            if m.start() > pos:
                parts.append(template[pos:m.start()])
            body = m.group(1)
            if body.startswith(("n:", "f:")):
                lo_s, hi_s = body[2:].split("-", 1)
                if body[0] == "n":
                    parts.append(("n", int(lo_s), int(hi_s)))
                else:
                    dec = max(len(lo_s.partition(".")[2]), len(hi_s.partition(".")[2]))
                    parts.append(("f", float(lo_s), float(hi_s), dec))
            else:
                mode = 2 if body.startswith("#") else 1 if body.startswith("@") else 0
                name = body.lstrip("@#")
                elem = 0
                if "." in name:
                    name, _, elem_s = name.partition(".")
                    elem = int(elem_s)
                    mode = mode or 1
                parts.append(("s", mode, name, elem))
            pos = m.end()
        if pos < len(template):
            parts.append(template[pos:])
        compiled = tuple(parts)
        self._compiled[template] = compiled
        return compiled

    def expand(self, template: str) -> str:
        """Expand every placeholder of ``template`` (recursively)."""
        parts = self._compiled.get(template)
        if parts is None:
            parts = self._compile(template)
        if isinstance(parts, str):
            return parts
        rng = self.rng
        random_ = rng.random
        out: list[str] = []
        for part in parts:
            if part.__class__ is str:
                out.append(part)
            elif part[0] == "s":
                _, mode, name, elem = part
                if mode == 2:
                    done = self._sticky_text.get(name)
                    if done is None:
                        alts = self.lookup(name)
                        done = self._sticky_text[name] = self.expand(alts[int(random_() * len(alts))][0])
                    out.append(done)
                    continue
                if mode == 1:
                    alt = self.sticky_alt(name)
                    text = alt[elem] if elem < len(alt) else ""
                else:
                    alts = self.lookup(name)
                    text = alts[int(random_() * len(alts))][0]
                if text:
                    out.append(self.expand(text))
            elif part[0] == "n":
                out.append(str(part[1] + int(random_() * (part[2] - part[1] + 1))))
            else:
                _, lo, hi, dec = part
                out.append(f"{lo + (hi - lo) * random_():.{dec}f}")
        return "".join(out)


# ---- small helpers ------------------------------------------------------------------------------

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _org_check(body: str) -> str:
    """GB 11714 check character of an 8-character organisation code body."""
    total = sum(int(c, 36) * w for c, w in zip(body, _ORG_WEIGHTS, strict=True))
    c = 11 - total % 11
    return "X" if c == 10 else "0" if c == 11 else str(c)


def _uscc_check(first17: str) -> str:
    """GB 32100 check character of a unified social credit code."""
    total = sum(_USCC_CHARS.index(c) * w for c, w in zip(first17, _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31]


def credit_code_valid(code: str) -> bool:
    """Whether ``code`` is an 18-character unified social credit code with valid check characters.

    Examples
    --------
    >>> credit_code_valid("91350100M000100Y43")
    True
    >>> credit_code_valid("91350100M000100Y44")
    False
    """
    if len(code) != 18 or any(c not in _USCC_CHARS for c in code):
        return False
    return _org_check(code[8:16]) == code[16] and _uscc_check(code[:17]) == code[17]


def _cum(weights: Sequence[float]) -> list[float]:
    out: list[float] = []
    total = 0.0
    for w in weights:
        total += w
        out.append(total)
    return out


def _pick(rng: random.Random, cum: Sequence[float]) -> int:
    """Index drawn with cumulative weights ``cum``."""
    return min(bisect.bisect_right(cum, rng.random() * cum[-1]), len(cum) - 1)


def _py_rng(seq: np.random.SeedSequence) -> random.Random:
    return random.Random(int.from_bytes(seq.generate_state(4, np.uint64).tobytes(), "little"))


def _width(n: int, minimum: int) -> int:
    return max(minimum, len(str(n)))


# ---- the world ----------------------------------------------------------------------------------


class DemoWorld:
    """The entities of one demo dataset, as compact arrays, plus row iterators per file.

    Building it samples districts, chains, skills, enterprises and workers (numpy arrays; about
    100k workers and 200k enterprises at ``scale=330``); :meth:`problems` then streams the problem
    history, choosing solvers as it goes. Each iterator uses its own random stream, so iterating
    one file never changes another.

    Parameters
    ----------
    scale
        Multiplies workers, enterprises and problems (districts, chains and skills are fixed).
    seed
        The random seed.

    Examples
    --------
    >>> world = DemoWorld(scale=0.2, seed=1)
    >>> next(iter(world.districts()))["name"]
    '亭湖区'
    >>> world.n_workers >= 120
    True
    """

    def __init__(self, scale: float = 1.0, seed: int = 7) -> None:
        if not (isinstance(scale, int | float) and math.isfinite(scale) and scale > 0):
            raise ValueError(f"scale must be a positive number, got {scale!r}")
        self.scale = float(scale)
        self.seed = int(seed)
        seqs = np.random.SeedSequence(self.seed).spawn(8)
        self._seq_ent, self._seq_wrk, self._seq_ent_rows, self._seq_wrk_rows = seqs[:4]
        self._seq_prob_np, self._seq_prob_py = seqs[4:6]
        self._seq_ent_contacts = seqs[6]  # its own stream: the older fields stay as they were
        self.stats: dict[str, int] = {}
        self._build_taxonomy()
        self._build_enterprises()
        self._build_workers()

    # ---- taxonomy --------------------------------------------------------------------------------

    def _build_taxonomy(self) -> None:
        self.district_ids = [d[0] for d in V.DISTRICTS]
        self.district_names = [d[1] for d in V.DISTRICTS]
        d_index = {name: i for i, name in enumerate(self.district_names)}
        nd = len(self.district_names)
        self.neighbours: list[list[int]] = [[] for _ in range(nd)]
        for a, b in V.DISTRICT_EDGES:
            self.neighbours[d_index[a]].append(d_index[b])
            self.neighbours[d_index[b]].append(d_index[a])
        for lst in self.neighbours:
            lst.sort()
        self.dist_fac = np.ones((nd, nd))
        for i in range(nd):
            self.dist_fac[i, self.neighbours[i]] = 2.0
            self.dist_fac[i, i] = 5.0

        self.chain_names = list(V.CHAINS)
        c_index = {name: i for i, name in enumerate(self.chain_names)}
        nc = len(self.chain_names)
        self.chain_products = [V.CHAIN_PRODUCTS[c].split("|") for c in self.chain_names]
        affinity = np.ones((nd, nc))
        for dname, row in V.DISTRICT_CHAIN_AFFINITY.items():
            for cname, w in row.items():
                affinity[d_index[dname], c_index[cname]] = w
        self.district_chain_cdf = np.cumsum(affinity / affinity.sum(axis=1, keepdims=True), axis=1)
        self.district_weight = np.array([d[3] for d in V.DISTRICTS])
        self.district_weight /= self.district_weight.sum()

        self.skill_names = [s[0] for s in V.SKILLS]
        self.skill_index = {name: i for i, name in enumerate(self.skill_names)}
        if len(self.skill_index) != len(self.skill_names):
            raise AssertionError("duplicate skill names in demo_vocab.SKILLS")
        self.skill_category = [s[1] for s in V.SKILLS]
        self.skill_chains = [[c_index[c] for c in s[2].split("|") if c] for s in V.SKILLS]
        self.skill_aliases = [[a for a in s[3].split("|") if a] for s in V.SKILLS]
        ns = len(self.skill_names)
        self.category_skills: dict[str, list[int]] = {}
        for i, cat in enumerate(self.skill_category):
            self.category_skills.setdefault(cat, []).append(i)
        generic = {self.skill_index[s] for s in V.GENERIC_SKILLS}
        self.generic_skills = sorted(generic)
        self.related = {self.skill_index[k]: [self.skill_index[x] for x in v.split("|")]
                        for k, v in V.RELATED_SKILLS.items()}
        self.mgmt_skills = [i for i, c in enumerate(self.skill_category) if c in _MGMT_CATEGORIES]
        self.mgmt_cum = _cum([0.7 if self.skill_category[i] == "管理" else 0.3 for i in self.mgmt_skills])

        # skill weights per chain (for problems and for workers' primary skills)
        self.chain_skill_cum: list[list[float]] = []
        for c in range(nc):
            weights = []
            for s in range(ns):
                chains = self.skill_chains[s]
                if c in chains:
                    w = 3.0 / math.sqrt(len(chains))
                elif not chains:
                    w = 0.12
                elif s in generic:
                    w = 0.15
                else:
                    w = 0.01
                weights.append(w)
            self.chain_skill_cum.append(_cum(weights))

        # grammar layers: common < family < skill, merged once per skill
        common = {k: _alts(v) for k, v in V.COMMON.items()}
        self.grammar_layers: list[dict[str, Alts]] = []
        for name, cat, _, _, overrides in V.SKILLS:
            layer = dict(common)
            layer.update({k: _alts(v) for k, v in V.FAMILIES[cat].items()})
            for key, value in overrides.items():
                alts = _alts(value)
                layer[key] = alts + alts + layer.get(key, ()) if key == "sym" else alts
            missing = {"equip", "sym", "metric", "proc", "staff", "cause", "tried", "rd", "innov"} - set(layer)
            if missing:
                raise AssertionError(f"skill {name}: grammar misses {sorted(missing)}")
            self.grammar_layers.append(layer)
        self.skill_word_alts: list[Alts] = [
            ((n,), (n,)) + tuple((a,) for a in al) for n, al in zip(self.skill_names, self.skill_aliases, strict=True)
        ]
        self.service_cum: list[list[float]] = [
            _cum(V.FAMILY_SERVICES.get(cat, V.FAMILY_SERVICES["default"])) for cat in self.skill_category
        ]

    # ---- enterprises -----------------------------------------------------------------------------

    def _build_enterprises(self) -> None:
        rng = np.random.Generator(np.random.PCG64(self._seq_ent))
        n_zjtx = max(round(_BASE_ZJTX * self.scale), 3)
        n_giant = max(1, round(n_zjtx * 0.08))
        n_other = max(round(_BASE_OTHER * self.scale), 3)
        n = n_zjtx + n_other
        self.n_enterprises = n
        # class: 0 other, 1 专精特新, 2 专精特新 + 小巨人
        cls = np.zeros(n, dtype=np.int8)
        cls[:n_zjtx] = 1
        cls[:n_giant] = 2
        self.e_class = cls[rng.permutation(n)]
        self.e_district = rng.choice(len(self.district_names), size=n, p=self.district_weight).astype(np.int16)
        u = rng.random(n)
        cdf = self.district_chain_cdf[self.e_district]
        self.e_chain = np.minimum((cdf < u[:, None]).sum(axis=1), len(self.chain_names) - 1).astype(np.int16)
        nprod = np.array([len(p) for p in self.chain_products])
        self.e_product = (rng.random(n) * nprod[self.e_chain]).astype(np.int16)
        p_union = np.array([0.72, 0.9, 0.97])[self.e_class]
        self.e_unionised = rng.random(n) < p_union
        self.e_hightech = rng.random(n) < np.array([0.15, 0.45, 0.7])[self.e_class]
        self.e_large = rng.random(n) < np.array([0.25, 0.0, 0.0])[self.e_class]
        activity = rng.lognormal(0.0, 0.9, n) * np.array([1.0, 1.6, 2.0])[self.e_class]
        activity *= np.where(self.e_unionised, 1.0, 0.6)
        self.e_activity_cum = np.cumsum(activity).tolist()
        self.e_width = _width(n, 4)
        buckets: dict[tuple[int, int], list[int]] = {}
        by_district: list[list[int]] = [[] for _ in self.district_names]
        for i, (d, c) in enumerate(zip(self.e_district.tolist(), self.e_chain.tolist(), strict=True)):
            buckets.setdefault((d, c), []).append(i)
            by_district[d].append(i)
        self._ent_by_dc = buckets
        self._ent_by_d = by_district

    def enterprise_id(self, i: int) -> str:
        """The id of enterprise number ``i`` (0-based)."""
        return f"E{i + 1:0{self.e_width}d}"

    # ---- workers ---------------------------------------------------------------------------------

    def _build_workers(self) -> None:
        rng = np.random.Generator(np.random.PCG64(self._seq_wrk))
        rt = _py_rng(self._seq_wrk.spawn(1)[0])
        nd = len(self.district_names)
        n = max(round(_BASE_WORKERS * self.scale), _CITY_UNIT + nd * _MIN_DISTRICT_TEAM)
        self.n_workers = n
        self.w_width = _width(n, 4)
        extra = n - _CITY_UNIT - nd * _MIN_DISTRICT_TEAM
        sizes = _MIN_DISTRICT_TEAM + rng.multinomial(extra, self.district_weight)

        team = np.empty(n, dtype=np.int16)  # -1 = city-level units
        role = np.zeros(n, dtype=np.int8)  # 0 member, 1 vice_captain, 2 captain
        city = np.zeros(n, dtype=bool)
        team[:_CITY_UNIT] = -1
        city[:_CITY_UNIT] = True
        role[0] = 2
        pos = _CITY_UNIT
        for d in range(nd):
            team[pos:pos + sizes[d]] = d
            role[pos] = 2
            city[pos:pos + _CITY_PER_DISTRICT] = True
            role[pos + _CITY_PER_DISTRICT] = 1
            pos += int(sizes[d])
        self.w_team, self.w_role, self.w_city = team, role, city

        urban = [self.district_names.index(x) for x in ("亭湖区", "盐都区", "盐城经济技术开发区", "盐南高新区")]
        district = team.copy()
        district[:_CITY_UNIT] = rng.choice(urban, size=_CITY_UNIT)
        self.w_district = district

        # level 0 national, 1 provincial, 2 city
        u = rng.random(n)
        p_nat = np.where(city, 0.2, 0.05)
        p_prov = np.where(city, 0.45, 0.26)
        level = np.where(u < p_nat, 0, np.where(u < p_nat + p_prov, 1, 2)).astype(np.int8)
        level[0] = 0
        level[role == 2] = np.minimum(level[role == 2], 1)
        self.w_level = level

        u = rng.random(n)
        cdf = self.district_chain_cdf[district]
        self.w_chain = np.minimum((cdf < u[:, None]).sum(axis=1), len(self.chain_names) - 1).astype(np.int16)
        self.w_capacity = rng.choice(np.array([1, 2, 3, 4], dtype=np.int16), size=n, p=[0.2, 0.35, 0.3, 0.15])
        self.w_active = rng.random(n) < 0.93
        self.w_prop = rng.lognormal(0.0, 0.35, n)
        self.w_studio = rng.random(n) < np.array([0.7, 0.45, 0.2])[level]

        # skills, employer, teaching and services: per-worker logic on a Python stream
        has_skill = np.zeros((n, len(self.skill_names)), dtype=bool)
        skills: list[tuple[int, ...]] = []
        employer = np.full(n, -1, dtype=np.int32)
        teaches = np.zeros(n, dtype=bool)
        services = np.zeros(n, dtype=np.uint8)
        k_cum = _cum([0.25, 0.35, 0.25, 0.15])
        training_skill = self.skill_index["职业技能培训"]
        bit = {st: 1 << i for i, st in enumerate(SERVICE_TYPES)}
        chain_list = self.w_chain.tolist()
        district_list = district.tolist()
        studio_list = self.w_studio.tolist()
        level_list = level.tolist()
        for i in range(n):
            ch = chain_list[i]
            own: list[int] = [_pick(rt, self.chain_skill_cum[ch])]
            want = 2 + _pick(rt, k_cum)
            tries = 0
            while len(own) < want and tries < 12:
                tries += 1
                r = rt.random()
                base = own[rt.randrange(len(own))]
                if r < 0.45:
                    pool = self.category_skills[self.skill_category[base]]
                    s = pool[rt.randrange(len(pool))]
                elif r < 0.62 and base in self.related:
                    pool = self.related[base]
                    s = pool[rt.randrange(len(pool))]
                elif r < 0.85:
                    s = _pick(rt, self.chain_skill_cum[ch])
                else:
                    s = self.generic_skills[rt.randrange(len(self.generic_skills))]
                if s not in own:
                    own.append(s)
            skills.append(tuple(own))
            has_skill[i, own] = True
            # employer: same district, same chain if possible
            if rt.random() < (0.4 if i < _CITY_UNIT else 0.72):
                d = district_list[i]
                pool = self._ent_by_dc.get((d, ch)) or self._ent_by_d[d]
                if pool:
                    employer[i] = pool[rt.randrange(len(pool))]
            has_training = training_skill in own
            t = rt.random() < 0.3 + 0.3 * studio_list[i] + 0.25 * has_training
            teaches[i] = t
            mgmt = any(self.skill_category[s] in _MGMT_CATEGORIES for s in own)
            m = 0
            if rt.random() < 0.9:
                m |= bit["技术帮扶"]
            if t and rt.random() < 0.95:
                m |= bit["技能培训"]
            if t and (studio_list[i] or rt.random() < 0.5):
                m |= bit["名师带徒"]
            if rt.random() < 0.25 + 0.25 * (level_list[i] == 0):
                m |= bit["研发攻关"]
            if rt.random() < 0.5:
                m |= bit["工艺改进"]
            if rt.random() < 0.15 + 0.3 * studio_list[i]:
                m |= bit["成果转化"]
            if rt.random() < 0.15 + 0.65 * mgmt:
                m |= bit["管理提升"]
            services[i] = m or bit["技术帮扶"]
        self.w_skills = skills
        self.w_has = has_skill
        self.w_has_t = np.ascontiguousarray(has_skill.T).view(np.uint8)
        self.w_employer = employer
        self.w_teaches = teaches
        self.w_services = services
        self.w_level_list = level_list
        weight = np.array([1.5, 1.2, 1.0])[level] * self.w_prop * np.where(self.w_active, 1.0, 0.25)
        # static solver weight per service type: level, propensity, activity, teaching, offered service
        self._static = np.empty((len(SERVICE_TYPES), n))
        for b, st in enumerate(SERVICE_TYPES):
            f = weight * np.where(services & (1 << b), 1.4, 1.0)
            if st in _TRAINING:
                f *= np.where(teaches, 2.5, 0.3)
            self._static[b] = f
        # district factor per problem district (city-team members travel more readily)
        df = self.dist_fac[:, district]
        self._dfac = np.where(city[None, :] & (df < 5.0), df * 1.3, df)
        self._ids = [f"W{i + 1:0{self.w_width}d}" for i in range(n)]

        # indexes: skill -> workers, (skill, district) -> workers, category -> workers
        owners = np.repeat(np.arange(n, dtype=np.int32), [len(s) for s in skills])
        flat = np.fromiter((s for own in skills for s in own), dtype=np.int32, count=len(owners))
        order = np.lexsort((owners, district[owners], flat))
        owners, flat = owners[order], flat[order]
        ns = len(self.skill_names)
        bounds = np.searchsorted(flat, np.arange(ns + 1))
        self.by_skill: list[np.ndarray] = [owners[bounds[s]:bounds[s + 1]] for s in range(ns)]
        self.by_skill_district: list[list[np.ndarray]] = []
        for s in range(ns):
            members = self.by_skill[s]
            dist = district[members]
            dbounds = np.searchsorted(dist, np.arange(nd + 1))
            self.by_skill_district.append([members[dbounds[d]:dbounds[d + 1]] for d in range(nd)])
        self.by_category: dict[str, np.ndarray] = {
            cat: np.unique(np.concatenate([self.by_skill[s] for s in idx]))
            for cat, idx in self.category_skills.items()
        }

    def worker_id(self, i: int) -> str:
        """The id of worker number ``i`` (0-based)."""
        return self._ids[i]

    # ---- small files -----------------------------------------------------------------------------

    def districts(self) -> Iterator[dict[str, Any]]:
        """Rows of ``districts.jsonl``."""
        for i, (did, name) in enumerate(zip(self.district_ids, self.district_names, strict=True)):
            yield {"id": did, "name": name, "neighbours": [self.district_ids[j] for j in self.neighbours[i]]}

    def chains(self) -> Iterator[dict[str, Any]]:
        """Rows of ``chains.jsonl``."""
        for i, name in enumerate(self.chain_names):
            yield {"id": f"C{i + 1:02d}", "name": name}

    def skills(self) -> Iterator[dict[str, Any]]:
        """Rows of ``skills.jsonl``."""
        for i, name in enumerate(self.skill_names):
            yield {
                "id": f"S{i + 1:03d}",
                "name": name,
                "category": self.skill_category[i],
                "chain_ids": [f"C{c + 1:02d}" for c in self.skill_chains[i]],
                "aliases": self.skill_aliases[i],
            }

    # ---- enterprise rows -------------------------------------------------------------------------

    def enterprises(self) -> Iterator[dict[str, Any]]:
        """Rows of ``enterprises.jsonl`` (names and credit codes are unique)."""
        rt = _py_rng(self._seq_ent_rows)
        rc = _py_rng(self._seq_ent_contacts)
        surname_cum = _cum([1.0 / (k + 4) for k in range(len(V.SURNAMES))])
        firm = V.FIRM_CHARS
        words = [V.CHAIN_WORDS[c].split("|") for c in self.chain_names]
        service_like = {self.chain_names.index(c) for c in ("大健康", "数字经济", "新一代信息技术", "生物医药")}
        seen_names: set[str] = set()
        seen_codes: set[str] = set()
        letters = _USCC_CHARS
        for i in range(self.n_enterprises):
            d = int(self.e_district[i])
            c = int(self.e_chain[i])
            short = V.DISTRICTS[d][2]
            region = short if d < 9 else "盐城"
            forms = V.ORG_FORMS[:4] if c in service_like else V.ORG_FORMS
            name = ""
            for _ in range(50):
                a = firm[rt.randrange(len(firm))]
                b = firm[rt.randrange(len(firm))]
                if a == b:
                    continue
                word = words[c][rt.randrange(len(words[c]))]
                form = forms[rt.randrange(len(forms))]
                r = rt.random()
                if r < 0.35:
                    name = f"江苏{a}{b}{word}{form}"
                elif r < 0.6:
                    name = f"盐城{a}{b}{word}{form}"
                elif r < 0.8:
                    name = f"{region}{a}{b}{word}{form}" if region != "盐城" else f"盐城市{a}{b}{word}{form}"
                elif r < 0.9:
                    name = f"{a}{b}{word}（盐城）{form}"
                else:
                    name = f"盐城市{a}{b}{word}{form}"
                if name not in seen_names:
                    break
            else:  # pragma: no cover - only at absurd scales
                name = f"{name[:-4]}{i}{name[-4:]}"
            seen_names.add(name)
            admin = V.DISTRICTS[d][4]
            while True:
                if rt.random() < 0.7:
                    body = "MA" + "".join(letters[rt.randrange(31)] for _ in range(6))
                else:
                    body = "".join(str(rt.randrange(10)) for _ in range(8))
                first17 = "91" + admin + body + _org_check(body)
                code = first17 + _uscc_check(first17)
                if code not in seen_codes:
                    seen_codes.add(code)
                    break
            cls = int(self.e_class[i])
            if cls:
                tags = ["专精特新", "小巨人"] if cls == 2 else ["专精特新"]
            else:
                tags = ["规上企业"] if self.e_large[i] else ["中小微"]
            if self.e_hightech[i]:
                tags.append("高新技术企业")
            yield {
                "id": self.enterprise_id(i),
                "name": name,
                "district": self.district_names[d],
                "industry_chain": self.chain_names[c],
                "tags": tags,
                "unionised": bool(self.e_unionised[i]),
                "credit_code": code,
                **self._enterprise_contact(rc, d, surname_cum),
            }

    def _enterprise_contact(self, rc: random.Random, d: int, surname_cum: Sequence[float]) -> dict[str, str]:
        """Address and the programme's contact person of one enterprise (shown to a worker once engaged)."""
        person = V.SURNAMES[_pick(rc, surname_cum)] + V.GIVEN_CHARS[rc.randrange(len(V.GIVEN_CHARS))]
        if rc.random() < 0.6:
            person += V.GIVEN_CHARS[rc.randrange(len(V.GIVEN_CHARS))]
        return {
            "address": f"盐城市{self.district_names[d]}{V.ROADS[rc.randrange(len(V.ROADS))]}{rc.randrange(1, 999)}号",
            "contact_person": f"{person}({V.CONTACT_TITLES[rc.randrange(len(V.CONTACT_TITLES))]})",
            "contact_phone": V.PHONE_PREFIXES[rc.randrange(len(V.PHONE_PREFIXES))] + f"{rc.randrange(10**8):08d}",
        }

    # ---- worker rows -----------------------------------------------------------------------------

    def workers(self) -> Iterator[dict[str, Any]]:
        """Rows of ``workers.jsonl``."""
        rt = _py_rng(self._seq_wrk_rows)
        surname_cum = _cum([1.0 / (k + 4) for k in range(len(V.SURNAMES))])
        given = V.GIVEN_CHARS
        honour_cum = {0: _cum([0.45, 0.45, 0.10]), 1: _cum([0.45, 0.35, 0.20]), 2: _cum([0.45, 0.30, 0.25])}
        level_names = ("national", "provincial", "city")
        role_names = ("member", "vice_captain", "captain")
        for i in range(self.n_workers):
            name = V.SURNAMES[_pick(rt, surname_cum)] + given[rt.randrange(len(given))]
            if rt.random() < 0.75:
                name += given[rt.randrange(len(given))]
            level = int(self.w_level[i])
            honours = [V.HONOURS[level_names[level]][_pick(rt, honour_cum[level])]]
            if level < 2 and rt.random() < 0.45:
                lower = V.HONOURS[level_names[level + 1]]
                honours.append(lower[rt.randrange(len(lower))])
            skill_names = [self.skill_names[s] for s in self.w_skills[i]]
            team = int(self.w_team[i])
            row: dict[str, Any] = {
                "id": self.worker_id(i),
                "name": name,
                "skills": skill_names,
                "district": self.district_names[int(self.w_district[i])],
                "honours": honours,
                "level": level_names[level],
                "team": "city" if team < 0 else self.district_names[team],
                "role": role_names[int(self.w_role[i])],
                "city_team": bool(self.w_city[i]),
                "capacity": int(self.w_capacity[i]),
                "active": bool(self.w_active[i]),
            }
            if self.w_employer[i] >= 0:
                row["employer_id"] = self.enterprise_id(int(self.w_employer[i]))
            if self.w_studio[i]:
                row["studio"] = name + V.STUDIO_KINDS[rt.randrange(len(V.STUDIO_KINDS))]
            menu: list[str] = []
            mask = int(self.w_services[i])
            for b, st in enumerate(SERVICE_TYPES):
                if mask >> b & 1:
                    options = V.SERVICE_MENU[st]
                    item = options[rt.randrange(len(options))].format(s=skill_names[rt.randrange(len(skill_names))])
                    if item not in menu:
                        menu.append(item)
            row["service_menu"] = menu[:4]
            row["teaches"] = bool(self.w_teaches[i])
            row["contact"] = V.PHONE_PREFIXES[rt.randrange(len(V.PHONE_PREFIXES))] + f"{rt.randrange(10**8):08d}"
            yield row

    # ---- problems --------------------------------------------------------------------------------

    def _dates(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Sorted posting days (ordinals) and whether each problem is solved."""
        n_solved = max(round(_BASE_SOLVED * self.scale), 20)
        n_open = max(round(_BASE_OPEN * self.scale), 2)
        month_w = {11: 1.0, 12: 1.1, 1: 0.9, 2: 0.55, 3: 1.15, 4: 1.15, 5: 1.1, 6: 1.05, 7: 0.95,
                   8: 0.45, 9: 0.5, 10: 0.55}
        first, last = START.toordinal(), END.toordinal() - 3
        days = np.arange(first, last + 1)
        weights = np.array([
            month_w[d.month] * (1.0 + 0.15 * (o - first) / 365.0) * (0.35 if d.weekday() >= 5 else 1.0)
            for o in days.tolist() for d in (dt.date.fromordinal(o),)
        ])
        solved = np.sort(rng.choice(days, size=n_solved, p=weights / weights.sum()))
        open_days = np.sort(rng.integers(OPEN_FROM.toordinal(), END.toordinal() + 1, size=n_open))
        allx = np.concatenate([solved, open_days])
        kind = np.concatenate([np.ones(n_solved, dtype=bool), np.zeros(n_open, dtype=bool)])
        order = np.argsort(allx, kind="stable")
        return allx[order], kind[order]

    def problems(self) -> Iterator[dict[str, Any]]:
        """Rows of ``problems.jsonl`` in posting order; solvers are chosen while replaying."""
        rng = np.random.Generator(np.random.PCG64(self._seq_prob_np))
        rt = _py_rng(self._seq_prob_py)
        days, solved_flags = self._dates(rng)
        width = _width(len(days), 5)
        grammar = Grammar(rt)
        replay = _Replay(self)
        ent_skills: dict[int, list[int]] = {}
        date_str: dict[int, str] = {}
        k_cum = {"研发攻关": _cum([0.3, 0.4, 0.3]), "名师带徒": _cum([0.7, 0.25, 0.05]),
                 "管理提升": _cum([0.6, 0.3, 0.1]), "技能培训": _cum([0.5, 0.35, 0.15])}
        k_default = _cum([0.55, 0.3, 0.15])
        durations = {"技术帮扶": (2, 30), "技能培训": (7, 60), "名师带徒": (30, 180), "研发攻关": (30, 240),
                     "工艺改进": (14, 120), "成果转化": (30, 180), "管理提升": (14, 90)}
        hours = {"技术帮扶": (4, 24), "技能培训": (8, 40), "名师带徒": (20, 120), "研发攻关": (16, 160),
                 "工艺改进": (8, 60), "成果转化": (8, 80), "管理提升": (6, 32)}
        service_index = {st: b for b, st in enumerate(SERVICE_TYPES)}
        e_chain = self.e_chain.tolist()
        e_district = self.e_district.tolist()
        e_ids = [self.enterprise_id(i) for i in range(self.n_enterprises)]
        activity_cum = self.e_activity_cum
        n_ent = self.n_enterprises
        end_ord = END.toordinal()
        month = -1
        for p_i, (day, is_solved) in enumerate(zip(days.tolist(), solved_flags.tolist(), strict=True)):
            posted_s = date_str.get(day)
            if posted_s is None:
                posted_s = date_str[day] = dt.date.fromordinal(day).isoformat()
            key = int(posted_s[:4]) * 12 + int(posted_s[5:7])
            if key != month:
                month = key
                replay.new_month()
            # enterprise, skills, service type
            e = min(bisect.bisect_right(activity_cum, rt.random() * activity_cum[-1]), n_ent - 1)
            ch = e_chain[e]
            d = e_district[e]
            history = ent_skills.setdefault(e, [])
            if history and rt.random() < 0.5:
                primary = history[rt.randrange(len(history))]
            else:
                primary = _pick(rt, self.chain_skill_cum[ch])
            service = SERVICE_TYPES[_pick(rt, self.service_cum[primary])]
            skills = [primary]
            if service == "管理提升" and self.skill_category[primary] not in _MGMT_CATEGORIES:
                primary = self.mgmt_skills[_pick(rt, self.mgmt_cum)]
                skills = [primary, skills[0]]
            if len(history) < 6 and primary not in history:
                history.append(primary)
            if len(skills) == 1 and rt.random() < 0.45:
                r = rt.random()
                if r < 0.4 and primary in self.related:
                    pool = self.related[primary]
                elif r < 0.75:
                    pool = self.category_skills[self.skill_category[primary]]
                else:
                    pool = [_pick(rt, self.chain_skill_cum[ch])]
                s = pool[rt.randrange(len(pool))]
                if s not in skills:
                    skills.append(s)
            if rt.random() < 0.12:
                s = self.generic_skills[rt.randrange(len(self.generic_skills))]
                if s not in skills:
                    skills.append(s)
            title, description = self._text(grammar, self._layers(skills, e), service, rt)
            row: dict[str, Any] = {
                "id": f"P{p_i + 1:0{width}d}",
                "title": title,
                "description": description,
                "skills": [self.skill_names[s] for s in skills],
                "enterprise_id": e_ids[e],
                "service_type": service,
                "district": self.district_names[d],
                "status": "solved" if is_solved else "open",
                "posted_at": posted_s,
            }
            if is_solved:
                k = 1 + _pick(rt, k_cum.get(service, k_default))
                chosen, overlaps, loose = replay.choose(rng, rt, e, ch, d, skills, service_index[service], k)
                lo, hi = durations[service]
                solved_day = min(day + lo + int((hi - lo) * rt.random() ** 2), end_ord)
                solved_s = date_str.get(solved_day)
                if solved_s is None:
                    solved_s = date_str[solved_day] = dt.date.fromordinal(solved_day).isoformat()
                outcomes = []
                h_lo, h_hi = hours[service]
                for w, ov, lz in zip(chosen, overlaps, loose, strict=True):
                    mean = 3.9 + 0.6 * ov + 0.2 * (self.w_level_list[w] == 0) - 0.3 * lz
                    rating = int(min(5, max(1, round(rt.gauss(mean, 0.6)))))
                    if service == "技能培训":
                        trainees = rt.randint(8, 60)
                    elif service == "名师带徒":
                        trainees = rt.randint(1, 4)
                    else:
                        trainees = rt.randint(1, 12) if rt.random() < 0.35 else 0
                    outcomes.append({"worker_id": self._ids[w], "rating": rating,
                                     "hours": rt.randint(h_lo, h_hi), "trainees": trainees})
                row["solved_at"] = solved_s
                row["solved_by"] = [self._ids[w] for w in chosen]
                row["outcomes"] = outcomes
            yield row
        self.stats = dict(replay.stats)

    def _layers(self, skills: Sequence[int], e: int) -> tuple[dict[str, Alts], dict[str, Alts]]:
        """Grammar layers of a problem of enterprise ``e`` needing ``skills`` (first is primary)."""
        ch = int(self.e_chain[e])
        primary = skills[0]
        return (
            {
                "skill": self.skill_word_alts[primary],
                "skill2": self.skill_word_alts[skills[1]] if len(skills) > 1 else _NO_SECOND,
                "product": ((self.chain_products[ch][int(self.e_product[e])],),),
                "chain": ((self.chain_names[ch],),),
                "district": ((self.district_names[int(self.e_district[e])],),),
                "ent_kind": _ENT_KIND[int(self.e_class[e])],
            },
            self.grammar_layers[primary],
        )

    def problem_text(self, skills: Sequence[str], service_type: str, *, enterprise: int = 0,
                     seed: int = 0) -> tuple[str, str]:
        """A title and description as the generator would write them (for demos and tests).

        Parameters
        ----------
        skills
            Skill names, the first one primary (it selects the grammar).
        service_type
            One of :data:`graph.model.SERVICE_TYPES`.
        enterprise
            Index of the posting enterprise (its product, chain and district appear in the text).
        seed
            Seed of the text's own random stream.

        Examples
        --------
        >>> world = DemoWorld(scale=0.2, seed=1)
        >>> title, text = world.problem_text(["焊接"], "技术帮扶", seed=3)
        >>> text.endswith("。") and "{" not in title + text
        True
        """
        if service_type not in SERVICE_TYPES:
            raise ValueError(f"unknown service type {service_type!r}")
        idx = [self.skill_index[s] for s in skills]
        rt = random.Random(seed)
        return self._text(Grammar(rt), self._layers(idx, enterprise), service_type, rt)

    @staticmethod
    def _text(grammar: Grammar, layers: Sequence[Mapping[str, Alts]], service: str,
              rt: random.Random) -> tuple[str, str]:
        """Title and description of one problem."""
        grammar.reset(layers)
        title = grammar.expand("{title_" + service + "}")
        clauses: list[str] = []
        if rt.random() < 0.55:
            clauses.append(grammar.expand("{ctx}"))
        clauses.append(grammar.expand("{core_" + service + "}"))
        sym = grammar.sticky_alt("sym")
        p_detail = 0.8 if service in _TECH else 0.6 if service == "管理提升" else 0.35
        if len(sym) > 1 and sym[1] and rt.random() < p_detail:
            clauses.append(grammar.expand("{detail}"))
        middle: list[str] = []
        tech = service in _TECH
        if rt.random() < (0.45 if tech else 0.15):
            middle.append(grammar.expand("{cause_s}"))
        if rt.random() < (0.4 if tech else 0.1):
            middle.append(grammar.expand("{tried_s}"))
        if rt.random() < (0.5 if tech else 0.1 if service in _TRAINING else 0.25):
            middle.append(grammar.expand("{impact}"))
        rt.shuffle(middle)
        tail = [grammar.expand("{ask_" + service + "}")]
        if service not in _TRAINING and rt.random() < 0.3:  # deadlines make no sense for mentoring
            tail.append(grammar.expand("{constraint}"))
        rt.shuffle(tail)
        clauses += middle + tail
        out: list[str] = []
        commas = 0
        last = len(clauses) - 1
        for i, clause in enumerate(clauses):
            out.append(clause)
            if i == last:
                out.append("。")
            elif commas < 2 and rt.random() < 0.55:
                out.append("，")
                commas += 1
            else:
                out.append("。")
                commas = 0
        return title, "".join(out)

    def _candidates(self, rng: np.random.Generator, skills: Sequence[int], d: int,
                    prior: Sequence[int] | None) -> np.ndarray:
        """Workers considered for a problem: every holder of a required skill while the skill is
        rare, else a sample weighted towards the problem's district and its neighbours; plus the
        enterprise's earlier solvers."""
        parts: list[np.ndarray] = []
        for s in skills:
            everyone = self.by_skill[s]
            if len(everyone) <= 200:
                parts.append(everyone)
                continue
            local = self.by_skill_district[s]
            for dd, cap in ((d, 48), *((nb, 16) for nb in self.neighbours[d])):
                bucket = local[dd]
                if len(bucket) > cap:
                    bucket = bucket[rng.integers(0, len(bucket), cap)]
                parts.append(bucket)
            parts.append(everyone[rng.integers(0, len(everyone), 16)])
        if prior:
            parts.append(np.asarray(prior, dtype=np.int32))
        if not parts:
            return np.empty(0, dtype=np.int32)
        cand = np.concatenate(parts) if len(parts) > 1 else parts[0].copy()
        if len(parts) > 1:
            cand.sort()
            keep = np.empty(cand.size, dtype=bool)
            keep[:1] = True
            np.not_equal(cand[1:], cand[:-1], out=keep[1:])
            cand = cand[keep]
        return cand

    # ---- all rows --------------------------------------------------------------------------------

    def rows(self, name: str) -> Iterator[dict[str, Any]]:
        """Rows of file ``name`` (one of :data:`FILES`)."""
        table = {
            "districts.jsonl": self.districts,
            "chains.jsonl": self.chains,
            "skills.jsonl": self.skills,
            "enterprises.jsonl": self.enterprises,
            "workers.jsonl": self.workers,
            "problems.jsonl": self.problems,
        }
        if name not in table:
            raise ValueError(f"unknown demo file {name!r}; expected one of {', '.join(FILES)}")
        return table[name]()




class _Replay:
    """Mutable state of the solver replay: monthly load, chain experience, enterprise history."""

    def __init__(self, world: DemoWorld) -> None:
        n = world.n_workers
        nc = len(world.chain_names)
        self.world = world
        self.load = np.zeros(n, dtype=np.int16)
        self.avail = np.ones(n)  # 1.0 while the month's capacity is not used up
        self.chain_exp = np.zeros((nc, n), dtype=np.int16)
        self.prim_chain = np.where(world.w_chain[None, :] == np.arange(nc)[:, None], 1.5, 1.0)
        self.chain_fac = self.prim_chain.copy()
        self.mark = np.zeros(n, dtype=bool)
        self.ent_prior: dict[int, list[int]] = {}
        self.capacity = world.w_capacity
        self.capacity_list = world.w_capacity.tolist()
        self.stats = {"solver_slots": 0, "loose_slots": 0}

    def new_month(self) -> None:
        self.load[:] = 0
        self.avail[:] = 1.0

    def choose(self, rng: np.random.Generator, rt: random.Random, e: int, ch: int, d: int,
               skills: Sequence[int], service: int, k: int) -> tuple[list[int], list[float], list[bool]]:
        """Pick the solvers of one problem and update the state."""
        world = self.world
        prior = self.ent_prior.get(e)
        cand = world._candidates(rng, skills, d, prior)
        chosen: list[int] = []
        overlaps: list[float] = []
        if cand.size:
            has = world.w_has_t[skills[0]][cand]
            for s in skills[1:]:
                has = has + world.w_has_t[s][cand]
            overlap = has / len(skills)
            w = world._static[service][cand]
            w *= (0.1 + overlap) ** 2
            w *= world._dfac[d][cand]
            w *= self.chain_fac[ch][cand]
            w *= self.avail[cand]
            if prior:
                self.mark[prior] = True
                w[self.mark[cand]] *= 5.0
                self.mark[prior] = False
            w[world.w_employer[cand] == e] *= 0.05
            # k draws without replacement, proportional to w
            for _ in range(k):
                cum = np.cumsum(w)
                total = cum[-1]
                if total <= 0.0:
                    break
                j = min(int(np.searchsorted(cum, rt.random() * total, side="right")), cum.size - 1)
                chosen.append(int(cand[j]))
                overlaps.append(float(overlap[j]))
                w[j] = 0.0
        loose = [False] * len(chosen)
        pool = world.by_category[world.skill_category[skills[0]]]
        load = self.load
        for slot in range(max(len(chosen), 1)):
            if slot < len(chosen) and rt.random() >= _LOOSE:
                continue
            for _ in range(6):
                w_i = int(pool[rt.randrange(len(pool))]) if len(pool) else rt.randrange(world.n_workers)
                if w_i not in chosen and load[w_i] < self.capacity_list[w_i]:
                    break
            else:
                continue
            ov = float(world.w_has[w_i, skills].sum()) / len(skills)
            if slot < len(chosen):
                chosen[slot], overlaps[slot], loose[slot] = w_i, ov, True
            else:
                chosen.append(w_i)
                overlaps.append(ov)
                loose.append(True)
        if not chosen:  # everyone relevant is at capacity: take anyone with capacity left
            w_i = rt.randrange(world.n_workers)
            for _ in range(50):
                if load[w_i] < self.capacity_list[w_i]:
                    break
                w_i = rt.randrange(world.n_workers)
            ov = float(world.w_has[w_i, skills].sum()) / len(skills)
            chosen, overlaps, loose = [w_i], [ov], [True]
        self.stats["solver_slots"] += len(chosen)
        self.stats["loose_slots"] += sum(loose)
        idx = np.asarray(chosen)
        load[idx] += 1
        self.avail[idx] = load[idx] < self.capacity[idx]
        exp = self.chain_exp[ch]
        exp[idx] += 1
        self.chain_fac[ch, idx] = self.prim_chain[ch, idx] * (1.0 + 0.6 * np.minimum(exp[idx], 5))
        history = self.ent_prior.setdefault(e, [])
        for w_i in chosen:
            if w_i in history:
                history.remove(w_i)
            history.append(w_i)
        del history[:-12]
        return chosen, overlaps, loose


def generate_rows(scale: float = 1.0, seed: int = 7) -> Iterator[tuple[str, dict[str, Any]]]:
    """Stream ``(file name, row)`` pairs of the demo dataset in :data:`FILES` order.

    Only the entity arrays are held in memory; problem rows are produced one at a time.

    Examples
    --------
    >>> first = next(generate_rows(scale=0.2, seed=3))
    >>> first[0], first[1]["id"]
    ('districts.jsonl', 'D01')
    """
    world = DemoWorld(scale=scale, seed=seed)
    for name in FILES:
        for row in world.rows(name):
            yield name, row


def generate(out_dir: str | Path, *, scale: float = 1.0, seed: int = 7, progress: bool = False) -> dict[str, int]:
    """Write the demo dataset into ``out_dir`` (created if needed) and return row counts per file.

    Parameters
    ----------
    out_dir
        Target directory; existing files of the same names are replaced (each atomically).
    scale
        Multiplies workers (300), enterprises (596) and problems (2,000 solved + 200 open).
    seed
        Same seed, same bytes.
    progress
        Print progress and timings to standard error.

    Returns
    -------
    dict
        ``{file name: rows written}``.
    """
    t0 = time.perf_counter()
    world = DemoWorld(scale=scale, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if progress:
        print(f"demo: built {world.n_workers} workers and {world.n_enterprises} enterprises "
              f"in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    counts: dict[str, int] = {}
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    for name in FILES:
        t1 = time.perf_counter()
        tmp = out / (name + ".tmp")
        n = 0
        with open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as fh:
            buf: list[str] = []
            for row in world.rows(name):
                buf.append(dumps(row))
                n += 1
                if len(buf) >= 4096:
                    buf.append("")
                    fh.write("\n".join(buf))
                    buf.clear()
                    if progress and n % (4096 * 25) == 0:
                        print(f"demo: {name} {n} rows", file=sys.stderr)
            if buf:
                buf.append("")
                fh.write("\n".join(buf))
        tmp.replace(out / name)
        counts[name] = n
        if progress:
            print(f"demo: wrote {name}: {n} rows in {time.perf_counter() - t1:.1f}s", file=sys.stderr)
    if progress:
        st = world.stats
        if st.get("solver_slots"):
            print(f"demo: {st['loose_slots'] / st['solver_slots']:.1%} of {st['solver_slots']} solver slots "
                  f"chosen loosely; total {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``python -m demo.generator OUT_DIR [--scale S] [--seed N] [--quiet]``."""
    parser = argparse.ArgumentParser(prog="python -m demo.generator", description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    if not args.scale > 0:
        parser.error("--scale must be positive")
    counts = generate(args.out_dir, scale=args.scale, seed=args.seed, progress=not args.quiet)
    print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
