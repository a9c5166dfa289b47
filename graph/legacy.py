"""Read a data directory of the embedded store's old format, for its migration to SQLite.

Before the store moved to SQLite (see :mod:`graph.memory`), a data directory held a snapshot,
``graph.json``, an append-only journal beside it, ``graph.journal.jsonl`` (one line per committed write:
``<crc32 as 8 hex digits> <JSON>``, the JSON ``{"seq": n, "ops": [...]}``), the vectors in
``vectors/<label>__<key>.npz`` and a lock file, ``store.lock``. :func:`read_legacy` reads all of it as the old
store did when it opened the directory: the snapshot, then the journal entries above the snapshot's ``seq``;
a torn last line (a crash in the middle of an append, never acknowledged) is ignored, a damaged line followed
by valid ones or a gap in the sequence numbers is corruption and refuses
(:class:`~graph.errors.StoreUnavailable`). Nothing here writes.
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graph.errors import StoreUnavailable
from graph.model import check_label

__all__ = ["LEGACY_FILES", "LegacyData", "has_legacy", "journal_line", "parse_journal_line", "read_legacy"]

_log = logging.getLogger(__name__)

SNAPSHOT = "graph.json"
JOURNAL = "graph.journal.jsonl"
LOCK = "store.lock"
VECTORS = "vectors"
#: What the old store kept in its data directory (moved aside once migrated).
LEGACY_FILES = (SNAPSHOT, SNAPSHOT + ".tmp", JOURNAL, LOCK, VECTORS)

RelKey = tuple[str, str, str, str, str]


@dataclass
class LegacyData:
    """Everything an old data directory holds."""

    nodes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    rels: dict[RelKey, dict[str, Any]] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    vectors: dict[tuple[str, str], tuple[list[str], np.ndarray]] = field(default_factory=dict)
    seq: int = 0  # the sequence number of the last write it holds

    def n_rows(self) -> int:
        """Nodes plus relationships."""
        return len(self.rels) + sum(len(nodes) for nodes in self.nodes.values())


def has_legacy(data_dir: Path) -> bool:
    """Whether ``data_dir`` holds a snapshot or a journal of the old format."""
    return (data_dir / SNAPSHOT).exists() or (data_dir / JOURNAL).exists()


def journal_line(seq: int, ops: list[list[Any]]) -> bytes:
    """One journal line of the old format (tests write old directories with it).

    Examples
    --------
    >>> journal_line(3, [["M", "k", "v"]])
    b'61f12d78 {"seq":3,"ops":[["M","k","v"]]}\\n'
    """
    payload = json.dumps({"seq": seq, "ops": ops}, ensure_ascii=False, separators=(",", ":")).encode()
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def parse_journal_line(line: bytes) -> tuple[int, list[list[Any]]] | None:
    """The ``(seq, ops)`` of a journal line (without its newline), or ``None`` if it is damaged."""
    crc, sep, payload = line.partition(b" ")
    if not sep or len(crc) != 8:
        return None
    try:
        if int(crc, 16) != zlib.crc32(payload):
            return None
        doc = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("seq"), int) or not isinstance(doc.get("ops"), list):
        return None
    return doc["seq"], doc["ops"]


def _clean(props: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in props.items() if v is not None}


def _detach(data: LegacyData, label: str, node_id: str) -> None:
    for key in [k for k in data.rels if (k[1], k[2]) == (label, node_id) or (k[3], k[4]) == (label, node_id)]:
        del data.rels[key]
    data.nodes.get(label, {}).pop(node_id, None)


def _replay(data: LegacyData, op: list[Any]) -> None:
    kind = op[0]
    if kind == "N":  # a node's properties after the write
        _, label, node_id, props = op
        data.nodes.setdefault(check_label(label), {})[node_id] = _clean(props)
    elif kind == "R":  # a relationship's properties after the write
        data.rels[tuple(op[1:6])] = _clean(op[6])  # type: ignore[index]
    elif kind == "r":
        data.rels.pop(tuple(op[1:6]), None)  # type: ignore[arg-type]
    elif kind == "D":
        _detach(data, op[1], op[2])
    elif kind == "C":
        data.nodes.clear()
        data.rels.clear()
        data.meta.clear()
    elif kind == "M":
        if op[2] is None:
            data.meta.pop(op[1], None)
        else:
            data.meta[op[1]] = op[2]
    else:
        raise ValueError(f"unknown journal operation {kind!r}")


def read_legacy(data_dir: Path) -> LegacyData:
    """Read the snapshot, the journal and the vectors of an old data directory (see the module documentation)."""
    data = LegacyData()
    path = data_dir / SNAPSHOT
    if path.exists():
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as err:
            raise StoreUnavailable(f"cannot read {path}: {err}") from err
        for label, nodes in doc.get("nodes", {}).items():
            data.nodes[check_label(label)] = {i: _clean(p) for i, p in nodes.items()}
        for item in doc.get("rels", []):
            data.rels[tuple(item[:5])] = _clean(item[5])  # type: ignore[index]
        data.meta = dict(doc.get("meta", {}))
        data.seq = int(doc.get("seq", 0))
    snapshot_seq = data.seq
    path = data_dir / JOURNAL
    try:
        raw = path.read_bytes() if path.exists() else b""
    except OSError as err:
        raise StoreUnavailable(f"cannot read {path}: {err}") from err
    damaged: int | None = None
    line_no = pos = 0
    while pos < len(raw):
        newline = raw.find(b"\n", pos)
        stop = len(raw) if newline < 0 else newline
        line_no += 1
        parsed = parse_journal_line(raw[pos:stop]) if newline >= 0 else None  # no newline: torn
        pos = stop + 1
        if parsed is None:
            damaged = damaged or line_no
            continue
        if damaged is not None:
            raise StoreUnavailable(
                f"{path} is corrupt: line {damaged} is damaged but line {line_no} after it is valid; "
                "refusing to migrate the store (restore the data directory from a backup, or remove the "
                "damaged line by hand to accept losing that write)")
        seq, ops = parsed
        if seq <= snapshot_seq:
            continue  # already in the snapshot
        if seq != data.seq + 1:
            raise StoreUnavailable(f"{path} is corrupt: line {line_no} has sequence number {seq}, "
                                   f"expected {data.seq + 1}")
        try:
            for op in ops:
                _replay(data, op)
        except (KeyError, IndexError, TypeError, ValueError) as err:
            raise StoreUnavailable(f"{path} is corrupt: line {line_no} cannot be replayed: {err!r}") from err
        data.seq = seq
    if damaged is not None:
        _log.warning("%s: ignoring a torn last write (line %d): the process died while appending it, "
                     "before acknowledging it", path, damaged)
    vec_dir = data_dir / VECTORS
    if vec_dir.is_dir():
        for file in sorted(vec_dir.glob("*.npz")):
            label, _, key = file.stem.partition("__")
            try:
                with np.load(file, allow_pickle=False) as arrays:
                    ids = [str(i) for i in arrays["ids"]]
                    matrix = arrays["vectors"].astype(np.float32)
            except (OSError, ValueError, KeyError) as err:
                raise StoreUnavailable(f"cannot read {file}: {err}") from err
            data.vectors[(check_label(label), key)] = (ids, matrix)
    return data
