"""Tables over the index files' mapped arrays: strings, JSON rows, and an id lookup.

What a projection read from the index files keeps instead of Python lists and dictionaries of its
nodes: the bytes stay in the mapped files (one copy in memory for every process that maps them) and are
decoded when a row is asked for. Each table also takes rows added after the load (a replayed change,
a problem posted since), which only the process that added them holds.

:class:`StrTable` and :class:`PropTable` are written by :mod:`recommender.index_files` (:func:`pack`,
``_Writer.rows``); :class:`IdIndex` finds an id's position by its CRC-32 in a sorted array
(:func:`id_hashes`), checking the id itself, so a collision costs a second comparison, never a wrong row.
"""

from __future__ import annotations

import bisect
import os
import threading
import zlib
from collections.abc import Iterator, MutableMapping, Sequence
from typing import Any

import numpy as np
import orjson

__all__ = ["FoundMapping", "IdIndex", "PropTable", "StrTable", "id_hashes", "pack"]


class FoundMapping:
    """What a read-only mapping answers from one ``_find(key) -> int`` (``-1``: no such key), mixed in before
    :class:`~collections.abc.Mapping`: ``[]``, ``get`` and ``in`` without a second lookup or an exception."""

    def _find(self, key: Any) -> int:
        raise NotImplementedError

    def __getitem__(self, key: Any) -> int:
        at = self._find(key)
        if at < 0:
            raise KeyError(key)
        return at

    def get(self, key: Any, default: Any = None) -> Any:
        at = self._find(key)
        return default if at < 0 else at

    def __contains__(self, key: object) -> bool:
        return self._find(key) >= 0


def pack(items: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """The bytes of ``items`` end to end, and the offsets of each (``len(items) + 1``)."""
    offsets = np.zeros(len(items) + 1, dtype=np.int64)
    np.cumsum([len(b) for b in items], out=offsets[1:])
    blob = np.frombuffer(b"".join(items), dtype=np.uint8) if offsets[-1] else np.zeros(0, dtype=np.uint8)
    return blob, offsets


class StrTable(Sequence[str]):
    """A sequence of strings over a mapped UTF-8 blob and its offsets (decoded on access), plus appended ones.

    Examples
    --------
    >>> blob, offsets = pack([s.encode() for s in ["张工", "w2"]])
    >>> t = StrTable(blob, offsets)
    >>> t.append("w3")
    >>> len(t), t[0], t[-1], list(t), t == ["张工", "w2", "w3"], t.raw(1)
    (3, '张工', 'w3', ['张工', 'w2', 'w3'], True, b'w2')
    """

    def __init__(self, blob: np.ndarray, offsets: np.ndarray) -> None:
        # memoryviews (each keeps its array alive): an element of one is a Python int and a slice needs no array
        # object (3x faster than numpy indexing, which matters for the ids a query reads: hundreds per
        # recommendation)
        self._bytes = np.ascontiguousarray(blob, dtype=np.uint8).data
        self._at = np.ascontiguousarray(offsets, dtype=np.int64).data
        self._n = len(offsets) - 1
        self._added: list[str] = []

    def __len__(self) -> int:
        return self._n + len(self._added)

    def raw(self, i: int) -> bytes:
        """The UTF-8 bytes of stored row ``i`` (``0 <= i <`` the stored rows)."""
        return self._bytes[self._at[i]:self._at[i + 1]].tobytes()

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        i = range(self._n + len(self._added))[i]  # a negative i from the end; IndexError outside
        return str(self._bytes[self._at[i]:self._at[i + 1]], "utf-8") if i < self._n else self._added[i - self._n]

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self)):
            yield self[i]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.array(list(self), dtype=dtype)

    def append(self, value: str) -> None:
        self._added.append(value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(other) == len(self) and all(
            a == b for a, b in zip(self, other, strict=True))

    __hash__ = None  # type: ignore[assignment]


def id_hashes(ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """What :class:`IdIndex` searches: the CRC-32 of every id, sorted, and each one's position.

    Examples
    --------
    >>> hashes, at = id_hashes(["b", "a"])
    >>> bool((np.diff(hashes.astype(np.int64)) >= 0).all()), sorted(at.tolist())
    (True, [0, 1])
    """
    raw = np.fromiter((zlib.crc32(s.encode("utf-8")) for s in ids), dtype=np.uint32, count=len(ids))
    order = np.argsort(raw, kind="stable")
    return raw[order], order.astype(np.int64)


class IdIndex(FoundMapping, MutableMapping[str, int]):
    """``id -> position`` of a :class:`StrTable`'s rows by binary search in their sorted CRC-32s.

    ``hashes`` and ``at`` are :func:`id_hashes` of the stored rows (mapped arrays); ids added after the
    load (``index[id] = position``) are kept in a dictionary. Ids are unique: an id is never moved or
    removed once stored.

    Examples
    --------
    >>> ids = ["P1", "P2", "张工"]
    >>> blob, offsets = pack([s.encode() for s in ids])
    >>> index = IdIndex(StrTable(blob, offsets), *id_hashes(ids))
    >>> index["张工"], index.get("P9"), "P2" in index, 3 in index
    (2, None, True, False)
    >>> index["P9"] = 3
    >>> index.get("P9"), len(index), sorted(index)
    (3, 4, ['P1', 'P2', 'P9', '张工'])
    """

    def __init__(self, ids: StrTable, hashes: np.ndarray, at: np.ndarray) -> None:
        self._ids = ids
        # bisect over a memoryview compares Python ints: 0.5 us a lookup (numpy's searchsorted with a Python int
        # casts the whole array first)
        self._sorted = np.ascontiguousarray(hashes, dtype=np.uint32).data
        self._at = np.ascontiguousarray(at, dtype=np.int64).data
        self._added: dict[str, int] = {}

    def _find(self, key: object) -> int:
        if not isinstance(key, str):
            return -1
        hit = self._added.get(key)
        if hit is not None:
            return hit
        raw = key.encode("utf-8")
        h = zlib.crc32(raw)
        hashes = self._sorted
        i = bisect.bisect_left(hashes, h)
        while i < len(hashes) and hashes[i] == h:
            at = self._at[i]
            if self._ids.raw(at) == raw:
                return at
            i += 1
        return -1

    def __setitem__(self, key: str, position: int) -> None:
        if self._find(key) >= 0:
            raise ValueError(f"{key!r} is already indexed (ids are never moved)")
        self._added[key] = position

    def __delitem__(self, key: str) -> None:
        raise TypeError("ids are never removed from an IdIndex (a projection is rebuilt instead)")

    def __len__(self) -> int:
        return len(self._sorted) + len(self._added)

    def __iter__(self) -> Iterator[str]:
        for i in range(len(self._sorted)):
            yield self._ids[i]
        yield from self._added


_NO_PROPS: dict[str, Any] = {}


class PropTable:
    """The properties of a projection's nodes (or edges) as a mapped table of JSON rows, decoded on access.

    Behaves as the list of dictionaries it replaces for what :class:`~graph.projection.Projection` and its
    readers do: indexing (a fresh dictionary each time: change rows by assigning them, never in place),
    slicing, iteration, ``len``, ``append`` and item assignment (kept in memory beside the mapped rows).
    ``shared_empty`` rows (edge properties) decode an empty row to one shared, read-only empty dictionary.
    """

    def __init__(self, blob: np.ndarray, offsets: np.ndarray, *, shared_empty: bool = False) -> None:
        self._blob = blob
        self._offsets = offsets
        self._n = len(offsets) - 1
        self._changed: dict[int, dict[str, Any]] = {}
        self._added: list[dict[str, Any]] = []
        self._shared_empty = shared_empty
        self._file = _mapped_file(blob)
        self._fd = -1
        self._fd_lock = threading.Lock()

    def __del__(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)

    def _read(self, a: int, b: int) -> bytes:
        """Bytes ``a:b`` of the blob: read from its file when it is a mapped file's (one row, not the pages the
        kernel maps around a faulted one: at a million problems the explanations' few rows a recommendation
        made 190 MB of a process's RSS after a hundred), else from the array."""
        if self._file is None:
            return self._blob[a:b].tobytes()
        if self._fd < 0:
            with self._fd_lock:
                if self._fd < 0:
                    fd = os.open(self._file[0], os.O_RDONLY | os.O_CLOEXEC)
                    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # one row: no read-ahead
                    self._fd = fd
        data = os.pread(self._fd, b - a, self._file[1] + a)
        if len(data) != b - a:
            raise OSError(f"{self._file[0]}: {b - a} bytes asked at {self._file[1] + a}, {len(data)} read")
        return data

    def __len__(self) -> int:
        return self._n + len(self._added)

    def _at(self, i: int, *, scan: bool = False) -> dict[str, Any]:
        """Row ``i``; ``scan``: one of many rows read in turn, from the mapped array (a scan reads every page
        anyway) rather than with :meth:`_read`."""
        if i >= self._n:
            return self._added[i - self._n]
        hit = self._changed.get(i)
        if hit is not None:
            return hit
        a, b = int(self._offsets[i]), int(self._offsets[i + 1])
        if a == b:
            return _NO_PROPS if self._shared_empty else {}
        out: dict[str, Any] = orjson.loads(self._blob[a:b].tobytes() if scan else self._read(a, b))
        return out

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            return [self._at(j, scan=True) for j in range(*i.indices(len(self)))]
        return self._at(range(len(self))[i])

    def __setitem__(self, i: int, value: dict[str, Any]) -> None:
        i = range(len(self))[i]
        if i >= self._n:
            self._added[i - self._n] = value
        else:
            self._changed[i] = value

    def append(self, value: dict[str, Any]) -> None:
        self._added.append(value)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self._at(i, scan=True)


def _mapped_file(arr: np.ndarray) -> tuple[str, int] | None:
    """``(path, offset)`` of ``arr``'s first byte when it lies in a file mapped by ``np.load(mmap_mode=...)``."""
    base: Any = arr
    while base is not None and not isinstance(base, np.memmap):
        base = getattr(base, "base", None)
    if base is None or not getattr(base, "filename", None) or not arr.flags.c_contiguous:
        return None
    start = arr.__array_interface__["data"][0] - base.__array_interface__["data"][0]
    return str(base.filename), int(base.offset) + int(start)
