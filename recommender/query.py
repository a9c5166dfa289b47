"""A problem to rank workers for, and its text analysed once: :class:`Query` and :func:`vectorise`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from recommender.text import TextViews, problem_text

if TYPE_CHECKING:
    from recommender.index import RankingIndex

__all__ = ["Query", "vectorise"]


@dataclass
class Query:
    """A problem to rank workers for (stored or new).

    ``skills`` are canonical skill ids (aliases already resolved). ``views`` and ``dense`` are the
    text's TF-IDF rows and dense vector once :func:`vectorise` has analysed it (``None`` before; not
    part of the query's identity).
    """

    text: str
    skills: tuple[str, ...] = ()
    enterprise_id: str | None = None
    district: str | None = None
    service_type: str | None = None
    posted_at: str | None = None
    problem_id: str | None = None
    title: str = ""
    views: TextViews | None = field(default=None, compare=False, repr=False)
    dense: np.ndarray | None = field(default=None, compare=False, repr=False)

    @classmethod
    def from_row(cls, row: Mapping[str, Any], *, skill_of: Mapping[str, str] | None = None) -> Query:
        """Build a query from a problem row (title, description, skills, enterprise_id, district, ...)."""
        aliases = skill_of or {}
        skills = tuple(dict.fromkeys(aliases.get(s, s) for s in row.get("skills") or [] if isinstance(s, str)))
        return cls(text=problem_text(row), skills=skills, enterprise_id=row.get("enterprise_id") or None,
                   district=row.get("district") or None, service_type=row.get("service_type") or None,
                   posted_at=row.get("posted_at") or None, problem_id=row.get("id") or None,
                   title=str(row.get("title") or row.get("description") or "")[:80])


def vectorise(index: RankingIndex, query: Query) -> Query:
    """``query`` with its text analysed once for every stage of a recommendation: its TF-IDF rows
    (:meth:`recommender.text.TextModel.transform` of the one text) and, when the index has an encoder,
    its dense vector. The vectors belong to ``index`` (its text model and encoder)."""
    if query.views is not None:
        return query
    views = index.text.transform([query.text])
    dense = None
    if index.encoder is not None and index.dense_docs is not None:
        dense = np.asarray(index.encoder.encode([query.text]), dtype=np.float32)[0]
    return replace(query, views=views, dense=dense)
