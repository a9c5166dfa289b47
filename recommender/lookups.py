"""Lookups the ranking index answers from arrays instead of Python dictionaries and sets.

At a million problems a dictionary of every history position, or a set of skill names per worker, costs
hundreds of megabytes in each process, rebuilt at every start; these read the index's own arrays (mapped
from the index files and shared by every process) and cost nothing until asked.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import numpy as np
import scipy.sparse as sp

from recommender.tables import FoundMapping

__all__ = ["DeclaredSkills", "HistoryPositions"]


class HistoryPositions(FoundMapping, Mapping[int, int]):
    """``problem position -> history column`` for the history problems ``hp`` (a read-only mapping).

    Examples
    --------
    >>> pos = HistoryPositions(np.array([4, 1]), n_problems=6)
    >>> pos[4], pos.get(1), pos.get(2, -1), 5 in pos, 9 in pos, len(pos), list(pos)
    (0, 1, -1, False, False, 2, [4, 1])
    >>> pos.columns(np.array([1, 2, 4])).tolist()
    [1, -1, 0]
    """

    def __init__(self, hp: np.ndarray, n_problems: int) -> None:
        self._hp = np.asarray(hp, dtype=np.int64)
        self._column = np.full(max(n_problems, int(self._hp.max()) + 1 if len(self._hp) else 0), -1, dtype=np.int32)
        self._column[self._hp] = np.arange(len(self._hp), dtype=np.int32)

    def _find(self, position: Any) -> int:
        if isinstance(position, bool | np.bool_) or not isinstance(position, int | np.integer):
            return -1
        p = int(position)
        return int(self._column[p]) if 0 <= p < len(self._column) else -1

    def columns(self, positions: np.ndarray) -> np.ndarray:
        """The history column of each of ``positions`` (``-1``: not in the history), as an int64 array."""
        return self._column[np.asarray(positions, dtype=np.int64)].astype(np.int64)

    def __len__(self) -> int:
        return len(self._hp)

    def __iter__(self) -> Iterator[int]:
        return (int(p) for p in self._hp)


class DeclaredSkills(Sequence[set[str]]):
    """Per worker, the names of its declared skills: row ``w`` of ``declared`` (workers x skills) as a set.

    ``names`` are the skills' ids in column order (the projection's list: it only grows, so a column
    of ``declared`` always has its name). A set is made when asked, from the row's stored columns.

    Examples
    --------
    >>> declared = sp.csr_matrix(np.array([[1, 0, 1], [0, 0, 0]], dtype=np.float32))
    >>> skills = DeclaredSkills(declared, ["焊接", "数控", "电气"])
    >>> sorted(skills[0]), skills[1], len(skills), [len(s) for s in skills[:2]]
    (['焊接', '电气'], set(), 2, [2, 0])
    """

    def __init__(self, declared: sp.csr_matrix, names: Sequence[str]) -> None:
        self._indptr = np.ascontiguousarray(declared.indptr).data  # no copy: the mapped array
        self._indices = np.ascontiguousarray(declared.indices).data
        self._names = names

    def __len__(self) -> int:
        return len(self._indptr) - 1

    @overload
    def __getitem__(self, w: int) -> set[str]: ...

    @overload
    def __getitem__(self, w: slice) -> list[set[str]]: ...

    def __getitem__(self, w: int | slice) -> set[str] | list[set[str]]:
        if isinstance(w, slice):
            return [self[i] for i in range(*w.indices(len(self)))]
        w = range(len(self))[w]
        names = self._names
        return {names[j] for j in self._indices[self._indptr[w]:self._indptr[w + 1]]}
