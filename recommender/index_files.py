"""The ranking index on disk: built once, stored as versioned files, memory-mapped by every process.

Why this module is long: it is one file format, its writer and its reader (manifest, fingerprints, checks,
mapped tables); the two must change together, and the tests hold them to each other.

A full build (:class:`graph.projection.Projection` read from the store, then :class:`~recommender.index.RankingIndex`)
costs seconds at demo scale and many minutes at a province's. :func:`save` writes both as files a later process
maps instead of rebuilding (:func:`load`), then brings up to date by replaying the store's change feed
(:meth:`graph.store.GraphStore.changes_since`) through the engine's incremental update.

Layout of an index directory (``JIANGLIAN_INDEX_DIR``, default ``<data dir>/index``:
:attr:`graph.config.Settings.ranking_index_dir`)::

    index/
      CURRENT                  the name of the version to load (replaced atomically)
      v1-r<revision>-<stamp>/  one version, written under a temporary name and renamed when complete
        manifest.json          format, store id, feed position, fingerprints, every file's size and digest
        <name>.npy             one numpy array per file (sparse matrices as data/indices/indptr)
        <name>.pkl             the fitted text model (scikit-learn vectorisers)

Arrays are loaded with ``np.load(mmap_mode="r")``: pages are read on first use and shared by every process that
maps the same files (the kernel's page cache), so a second web worker costs its own Python objects, not the
matrices again. Node ids, their lookup and their properties are mapped tables (:mod:`recommender.tables`:
:class:`StrTable`, :class:`IdIndex`, :class:`PropTable`) decoded on access, not lists and dictionaries; an edge
is found by binary search in its kind's sorted ``(start, end)`` codes, not in a dictionary of every edge.

Trust: :func:`load` refuses (returns ``None`` and says why; the caller rebuilds) a directory whose manifest is
missing or unreadable, of another format, another store (``store_id``), a feed position ahead of the store's,
other fingerprints (encoder identity, text model settings, index parameters, library versions, a digest of
the code that builds the index), or any file missing, of another size or another digest (whole files up to
:data:`FULL_DIGEST_BYTES`, the first and last :data:`SAMPLE_BYTES` of larger ones). A truncated ``.npy`` is
also refused by numpy itself when mapped. A wrong ranking is never served from files that do not match.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import logging
import os
import pickle
import shutil
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import scipy
import scipy.sparse as sp

from graph.projection import EdgeList, IntColumn, Projection, pair_codes
from recommender.expertise import ExpertiseModel
from recommender.index import ACTIVITY_HALF_LIFE, RankingIndex, _Edges
from recommender.lookups import DeclaredSkills, HistoryPositions
from recommender.sparse_rows import BM25Rows, HalfRows, SolvedCounts, TermPostings
from recommender.tables import IdIndex, PropTable, StrTable, id_hashes, pack
from recommender.text import TextModel, TextViews

__all__ = [
    "FORMAT_VERSION",
    "IndexStatus",
    "Loaded",
    "build_lock",
    "PropTable",
    "StrTable",
    "fingerprints",
    "load",
    "read_manifest",
    "save",
    "status",
    "store_identity",
]

_log = logging.getLogger(__name__)

#: Version of the file layout; a directory of another version is rebuilt. 2: the text model as mapped vocabulary
#: tables (``text.*.npy``) and its vectorisers' settings (``text.vectorisers.pkl``) instead of one pickle. 3: per
#: label the ids' sorted CRC-32s (``proj.<label>.id_hashes``/``id_at``), per edge kind its sorted pair codes
#: (``proj.edge<i>.codes``/``codes_at``), so a loaded projection keeps no dictionary of ids or edges. 4: the BM25
#: weights as their counts (``bm25.counts.*``, one or two bytes each) with per-term idf and per-worker norms. 5: the
#: word postings with the rarer terms' first (``docs_word_t.stored.*``, each term's row in ``docs_word_t.row_of``); the
#: character view's values a query reads in half precision (``char_rows.data``; its indices are ``docs.char``'s). 6:
#: the BM25 counts recovered from the solved problems' word rows where that is exact (``bm25.counts`` a
#: ``SolvedCounts``: ``bm25.counts.scale`` per problem; its other arrays are ``solved``'s and ``word_rows``'). 7: the
#: word values a query reads in half precision (``word_rows.data``, its indices ``docs.word``'s; the postings'
#: ``docs_word_t.stored`` a ``HalfRows``).
FORMAT_VERSION = 7
#: Labels with at least this many nodes keep their ids and id lookup in the mapped files when loaded (a list and
#: a dictionary of a million problem ids cost ~150 MB in every process); smaller ones are decoded into both (the
#: workers of a province, 136.5k at 1M problems: ~20 MB, and a query looks up hundreds of them).
MAPPED_IDS = 1 << 18
#: Files up to this size are verified by their full sha256 on load.
FULL_DIGEST_BYTES = 1 << 22
#: Larger files: the sha256 of their first and last this many bytes (plus the exact size).
SAMPLE_BYTES = 1 << 16
#: Versions kept beside the current one (a process may still map an older one; on Linux a removed file's
#: pages stay valid for whoever maps them).
KEEP_VERSIONS = 2
CURRENT = "CURRENT"
MANIFEST = "manifest.json"

#: Sources whose code decides what the index holds: any change to them makes earlier files untrusted.
_CODE = ("graph/projection.py", "recommender/index.py", "recommender/walk.py", "recommender/dates.py",
         "recommender/text.py", "recommender/expertise.py", "recommender/signals.py", "recommender/index_files.py",
         "recommender/tables.py", "recommender/lookups.py", "recommender/sparse_rows.py",
         "embeddings/texts.py")

#: RankingIndex attributes recomputed on load from the saved ones (derived, Python objects, or not data).
_DERIVED = frozenset({"projection", "encoder", "hp_pos", "declared_sets", "worker_district", "worker_employer",
                      "worker_active", "worker_capacity", "teaches", "honours", "district_workers"})


def store_identity(store: Any) -> str | None:
    """The store's stable id (``store_id``), or ``None`` when it has none (files cannot be trusted then)."""
    value = getattr(store, "store_id", None)
    if not value:
        try:
            value = store.get_meta("store_id")
        except Exception:  # noqa: BLE001 - a store that cannot say who it is: no trust
            value = None
    return str(value) if value else None


@functools.cache
def _version(distribution: str) -> str:
    """An installed distribution's version without importing it (scikit-learn costs a second to import)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return "?"


def _code_digest() -> str:
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for rel in _CODE:
        path = root / rel
        h.update(rel.encode())
        h.update(path.read_bytes() if path.is_file() else b"-")
    return h.hexdigest()[:16]


def fingerprints(encoder: Any) -> dict[str, Any]:
    """What the saved index depends on besides the data: files with other fingerprints are rebuilt."""
    text = TextModel()
    return {
        "format": FORMAT_VERSION,
        "encoder": getattr(encoder, "identity", None) if encoder is not None else None,
        "text_model": {"char_ngrams": list(text.char_ngrams), "min_df_char": text.min_df_char},
        "index": {"hub_degree": RankingIndex.hub_degree, "max_hubs": RankingIndex.max_hubs,
                  "expertise_skill_weight": RankingIndex.expertise_skill_weight,
                  "activity_half_life": ACTIVITY_HALF_LIFE},
        "libraries": {"numpy": np.__version__, "scipy": scipy.__version__, "sklearn": _version("scikit-learn")},
        "code": _code_digest(),
    }


# -- writing ----------------------------------------------------------------------------------
class _Writer:
    """Encodes objects into a JSON spec plus one ``.npy`` file per array."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.files: dict[str, int] = {}  # name -> bytes
        self._by_id: dict[Any, str] = {}
        self._keep: list[Any] = []  # the arrays written, so their memory is not reused during the save

    def array(self, name: str, arr: np.ndarray) -> str:
        # the same memory under another array object (TextViews.counts shares word's index arrays) is one file
        key = (arr.__array_interface__["data"][0], arr.shape, arr.dtype.str, arr.strides) if arr.size else id(arr)
        known = self._by_id.get(key)
        if known is not None:
            return known
        self._keep.append(arr)
        data = np.ascontiguousarray(arr)
        if data.dtype == object:
            raise TypeError(f"{name}: object arrays are not stored")
        fname = f"{name}.npy"
        with open(self.dir / fname, "wb") as fh:
            np.save(fh, data, allow_pickle=False)
            fh.flush()
            os.fsync(fh.fileno())
        self.files[fname] = (self.dir / fname).stat().st_size
        self._by_id[key] = fname
        return fname

    def drop(self, fname: str) -> None:
        """Remove a file written by :meth:`array` (no longer referenced)."""
        (self.dir / fname).unlink()
        del self.files[fname]
        self._by_id = {key: name for key, name in self._by_id.items() if name != fname}

    def blob(self, name: str, data: bytes) -> str:
        fname = name
        with open(self.dir / fname, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        self.files[fname] = len(data)
        return fname

    def sparse(self, name: str, m: sp.spmatrix) -> dict[str, Any]:
        kind = "csc" if sp.issparse(m) and m.format == "csc" else "csr"
        m = sp.csc_matrix(m) if kind == "csc" else sp.csr_matrix(m)
        # the layout is kept as it is (unsorted rows too): a sum over a row in another order rounds differently
        indices, indptr = m.indices, m.indptr
        if indices.dtype != np.int32 and max(m.shape) < 2**31 - 1 and m.nnz < 2**31 - 1:
            # what scipy would make of them on load anyway (a copy): int32 on disk is mapped as it is
            indices, indptr = indices.astype(np.int32), indptr.astype(np.int32)
        return {"t": kind, "shape": list(m.shape), "sorted": bool(m.has_sorted_indices),
                "data": self.array(f"{name}.data", m.data),
                "indices": self.array(f"{name}.indices", indices), "indptr": self.array(f"{name}.indptr", indptr)}

    def rows(self, name: str, rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """A table of JSON rows, read back as a :class:`StrTable`; streamed into its file row by row.

        The same bytes as ``strings`` of the rows' JSON, without holding them: a list of one ``bytes`` per row
        costs about 4 KB each however short the row, which took a 1M-problem save past 16 GB (issue 13).
        """
        dumps = orjson.dumps
        offsets = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum([len(dumps(dict(row))) for row in rows], out=offsets[1:])
        fname = f"{name}.blob.npy"
        with open(self.dir / fname, "wb") as fh:
            np.lib.format.write_array_header_1_0(fh, {"descr": "|u1", "fortran_order": False,
                                                      "shape": (int(offsets[-1]),)})
            for row in rows:
                fh.write(dumps(dict(row)))
            fh.flush()
            os.fsync(fh.fileno())
        self.files[fname] = (self.dir / fname).stat().st_size
        return {"t": "strs", "blob": fname, "offsets": self.array(f"{name}.offsets", offsets)}

    def strings(self, name: str, items: Sequence[str]) -> dict[str, Any]:
        blob, offsets = pack([s.encode("utf-8") for s in items])
        return {"t": "strs", "blob": self.array(f"{name}.blob", blob),
                "offsets": self.array(f"{name}.offsets", offsets)}

    def encode(self, name: str, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float | str):
            return {"t": "json", "v": value}
        if isinstance(value, np.generic):
            return {"t": "json", "v": value.item()}
        if isinstance(value, np.ndarray):
            return {"t": "a", "f": self.array(name, value)}
        if sp.issparse(value):
            return self.sparse(name, value)
        if isinstance(value, TextViews):
            spec: dict[str, Any] = {"t": "views", **{k: self.sparse(f"{name}.{k}", getattr(value, k))
                                                     for k in ("word", "char")}}
            counts = self.sparse(f"{name}.counts", value.counts)
            word, c = value.word, value.counts
            if (counts["indices"] != spec["word"]["indices"] and c.shape == word.shape and c.nnz == word.nnz
                    and np.array_equal(c.indptr, word.indptr) and np.array_equal(c.indices, word.indices)):
                # the same pattern (TF-IDF rescales the counts): one file, so the loaded views share it as the
                # built ones do and TextViews does not compare them again
                for key in ("indices", "indptr"):
                    if counts[key] != spec["word"][key]:
                        self.drop(counts[key])
                        counts[key] = spec["word"][key]
            spec["counts"] = counts
            return spec
        if isinstance(value, _Edges | ExpertiseModel | BM25Rows | HalfRows | SolvedCounts | TermPostings):
            return {"t": "dc", "cls": type(value).__name__,
                    "fields": {f.name: self.encode(f"{name}.{f.name}", getattr(value, f.name))
                               for f in dataclasses.fields(value)}}
        if isinstance(value, TextModel):
            # the vocabularies as mapped arrays, not a pickled dictionary (text.VocabTable); the vectorisers'
            # settings pickled without them, unpickled (with scikit-learn) only when a large batch needs them
            arrays, settings, vectorisers = value.tables()
            return {"t": "textmodel", "settings": settings,
                    "arrays": {k: self.array(f"{name}.{k}", v) for k, v in arrays.items()},
                    "vectorisers": self.blob(f"{name}.vectorisers.pkl", vectorisers)}
        if isinstance(value, list | StrTable) and all(isinstance(v, str) for v in value):
            return self.strings(name, value)
        if isinstance(value, dict):
            keys = list(value)
            if all(isinstance(k, str) for k in keys) and all(isinstance(v, int | float | str) for v in value.values()):
                return {"t": "json", "v": value}
            if all(isinstance(k, float) for k in keys):
                return {"t": "fdict", "items": [[k, self.encode(f"{name}.{i}", value[k])] for i, k in enumerate(keys)]}
        raise TypeError(f"RankingIndex.{name}: no file format for {type(value).__name__}")


def _fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _digest(path: Path, size: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        if size <= FULL_DIGEST_BYTES:
            h.update(fh.read())
        else:
            h.update(fh.read(SAMPLE_BYTES))
            fh.seek(size - SAMPLE_BYTES)
            h.update(fh.read(SAMPLE_BYTES))
    return h.hexdigest()


def _encode_projection(w: _Writer, proj: Projection) -> dict[str, Any]:
    spec: dict[str, Any] = {"labels": {}, "edges": [], "revision": proj.revision}
    for label, ids in proj.ids.items():
        hashes, at = id_hashes(ids)
        spec["labels"][label] = {"ids": w.strings(f"proj.{label}.ids", ids),
                                 "lookup": {"hashes": w.array(f"proj.{label}.id_hashes", hashes),
                                            "at": w.array(f"proj.{label}.id_at", at)},
                                 "props": w.rows(f"proj.{label}.props", proj.props[label])}
    for i, ((rel_type, s_label, e_label), edges) in enumerate(proj.edges.items()):
        packed = bytearray()  # one buffer, not one bytes object per edge (see _Writer.rows)
        offsets = np.zeros(len(edges.props) + 1, dtype=np.int64)
        for j, row in enumerate(edges.props):
            if row:  # an edge without properties stores nothing
                packed += orjson.dumps(dict(row))
            offsets[j + 1] = len(packed)
        blob = np.frombuffer(bytes(packed), dtype=np.uint8) if packed else np.zeros(0, dtype=np.uint8)
        del packed
        start = np.asarray(edges.start, dtype=np.int64)
        end = np.asarray(edges.end, dtype=np.int64)
        codes = pair_codes(start, end)
        order = np.argsort(codes, kind="stable")
        spec["edges"].append({
            "key": [rel_type, s_label, e_label],
            "start": w.array(f"proj.edge{i}.start", start),
            "end": w.array(f"proj.edge{i}.end", end),
            # the edges' (start, end) codes sorted, and where each is: an edge is found by binary search in
            # the mapped arrays (a dictionary of every edge cost ~50 bytes an edge in each process)
            "codes": w.array(f"proj.edge{i}.codes", codes[order]),
            "codes_at": w.array(f"proj.edge{i}.codes_at", order.astype(np.int64)),
            "props_blob": w.array(f"proj.edge{i}.props.blob", blob),
            "props_offsets": w.array(f"proj.edge{i}.props.offsets", offsets),
        })
    return spec


def save(directory: Path | str, projection: Projection, index: RankingIndex, *, store_id: str, revision: int,
         encoder: Any = None, extra: Mapping[str, Any] | None = None) -> Path:
    """Write ``projection`` and ``index`` (their state at feed position ``revision``) as a new version.

    The version is written into a temporary directory, fsynced, renamed into place and only then named in
    ``CURRENT`` (replaced atomically), so a reader sees the previous version or this one, never a part.
    Older versions beyond :data:`KEEP_VERSIONS` are removed. Returns the version's directory.

    Call it while nothing changes ``projection`` or ``index`` (the engine holds its lock).
    """
    if not bool(np.all(index.history_mask)):
        raise ValueError("only an index over the whole history (the product's) is stored")
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    name = f"v{FORMAT_VERSION}-r{revision}-{time.strftime('%Y%m%dT%H%M%S', time.gmtime())}-{uuid.uuid4().hex[:6]}"
    tmp = root / f".tmp-{name}"
    tmp.mkdir()
    try:
        w = _Writer(tmp)
        started = time.perf_counter()
        fields = {key: w.encode(key, value) for key, value in vars(index).items() if key not in _DERIVED}
        spec = {"projection": _encode_projection(w, projection), "index": fields}
        (tmp / "spec.json").write_text(json.dumps(spec, ensure_ascii=False))
        w.files["spec.json"] = (tmp / "spec.json").stat().st_size
        files = {f: {"bytes": size, "sha256": _digest(tmp / f, size),
                     "digest": "full" if size <= FULL_DIGEST_BYTES else "sampled"} for f, size in w.files.items()}
        manifest = {"format": FORMAT_VERSION, "store_id": store_id, "revision": int(revision),
                    "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "fingerprints": fingerprints(encoder), "describe": index.describe(),
                    "extra": dict(extra or {}), "files": files,
                    "write_seconds": round(time.perf_counter() - started, 3)}
        (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
        with open(tmp / MANIFEST, "rb") as fh:
            os.fsync(fh.fileno())
        _fsync_dir(tmp)
        final = root / name
        os.rename(tmp, final)
        _fsync_dir(root)
        pointer = root / f".{CURRENT}.{uuid.uuid4().hex[:6]}"
        pointer.write_text(name + "\n")
        with open(pointer, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(pointer, root / CURRENT)
        _fsync_dir(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _prune(root, keep=name)
    return final


@contextlib.contextmanager
def build_lock(directory: Path | str) -> Iterator[None]:
    """Held while one process builds and writes an index into ``directory``: processes starting together (the
    workers of ``serve --workers N`` on a first start) wait for the first one's files and map them instead of
    each building the same index. An advisory ``flock``, released when the holder exits, even killed."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".build.lock", "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _prune(root: Path, *, keep: str) -> None:
    versions = sorted((p for p in root.iterdir() if p.is_dir() and p.name.startswith("v") and p.name != keep),
                      key=lambda p: p.stat().st_mtime, reverse=True)
    for old in versions[KEEP_VERSIONS - 1:]:
        shutil.rmtree(old, ignore_errors=True)
    for stale in root.glob(".tmp-*"):  # a writer killed half-way
        if time.time() - stale.stat().st_mtime > 3600:
            shutil.rmtree(stale, ignore_errors=True)


# -- reading -----------------------------------------------------------------------------------
def current_version(directory: Path | str) -> Path | None:
    """The directory ``CURRENT`` names, or ``None``."""
    root = Path(directory)
    try:
        name = (root / CURRENT).read_text().strip()
    except OSError:
        return None
    if not name or "/" in name or name.startswith("."):
        return None
    path = root / name
    return path if path.is_dir() else None


def read_manifest(version: Path) -> dict[str, Any] | None:
    """The manifest of a version directory, or ``None`` when missing or unreadable."""
    try:
        manifest: dict[str, Any] = json.loads((version / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _verify(version: Path, manifest: Mapping[str, Any], *, store_id: str | None, revision: int,
            encoder: Any) -> str | None:
    """Why the files cannot be used (``None``: they can)."""
    if manifest.get("format") != FORMAT_VERSION:
        return f"format {manifest.get('format')!r}, this code reads {FORMAT_VERSION}"
    if not store_id:
        return "the store has no store_id, so files cannot be matched to it"
    if manifest.get("store_id") != store_id:
        return f"built for store {manifest.get('store_id')!r}, this is {store_id!r}"
    built_at = manifest.get("revision")
    if not isinstance(built_at, int) or built_at > revision:
        return f"built at feed position {built_at!r}, ahead of the store's {revision}"
    want = fingerprints(encoder)
    have = manifest.get("fingerprints") or {}
    for key in want:
        if have.get(key) != want[key]:
            return f"fingerprint {key!r} differs: files {have.get(key)!r}, now {want[key]!r}"
    files = manifest.get("files")
    if not isinstance(files, dict) or "spec.json" not in files:
        return "the manifest lists no files"
    for fname, info in files.items():
        path = version / fname
        try:
            size = path.stat().st_size
        except OSError:
            return f"{fname} is missing"
        if size != info.get("bytes"):
            return f"{fname} has {size} bytes, the manifest says {info.get('bytes')}"
        if _digest(path, size) != info.get("sha256"):
            return f"{fname} does not match its digest"
    return None


class _Reader:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self._arrays: dict[str, np.ndarray] = {}

    def array(self, fname: str) -> np.ndarray:
        arr = self._arrays.get(fname)
        if arr is None:
            # a plain ndarray over the mapping (its base is the np.memmap): np.memmap's own __getitem__ and
            # __array_finalize__ run on every slice and every result of an operation, ~5% of a query
            arr = np.load(self.dir / fname, mmap_mode="r", allow_pickle=False).view(np.ndarray)
            self._arrays[fname] = arr
        return arr

    def sparse(self, spec: Mapping[str, Any]) -> sp.spmatrix:
        cls = sp.csc_matrix if spec["t"] == "csc" else sp.csr_matrix
        m = cls((self.array(spec["data"]), self.array(spec["indices"]), self.array(spec["indptr"])),
                shape=tuple(spec["shape"]))
        m.has_sorted_indices = bool(spec["sorted"])
        return m

    def decode(self, spec: Mapping[str, Any]) -> Any:
        kind = spec["t"]
        if kind == "json":
            return spec["v"]
        if kind == "a":
            return self.array(spec["f"])
        if kind in ("csr", "csc"):
            return self.sparse(spec)
        if kind == "views":
            return TextViews(self.sparse(spec["word"]), self.sparse(spec["char"]), self.sparse(spec["counts"]))
        if kind == "dc":
            cls = {"_Edges": _Edges, "ExpertiseModel": ExpertiseModel, "BM25Rows": BM25Rows,
                   "HalfRows": HalfRows, "SolvedCounts": SolvedCounts, "TermPostings": TermPostings}[spec["cls"]]
            return cls(**{k: self.decode(v) for k, v in spec["fields"].items()})
        if kind == "textmodel":
            return TextModel.from_tables({k: self.array(v) for k, v in spec["arrays"].items()}, spec["settings"],
                                         (self.dir / spec["vectorisers"]).read_bytes())
        if kind == "pickle":
            with open(self.dir / spec["f"], "rb") as fh:
                return pickle.load(fh)  # noqa: S301 - our own file, verified against the manifest's digest
        if kind == "strs":
            return StrTable(self.array(spec["blob"]), self.array(spec["offsets"]))
        if kind == "fdict":
            return {float(k): self.decode(v) for k, v in spec["items"]}
        raise ValueError(f"unknown entry kind {kind!r}")


def _decode_projection(r: _Reader, spec: Mapping[str, Any]) -> Projection:
    proj = Projection()
    for label, part in spec["labels"].items():
        ids = r.decode(part["ids"])
        if len(ids) < MAPPED_IDS:  # a few thousand skills or districts: a list and a dictionary cost nothing
            proj.ids[label] = list(ids)
            proj.index[label] = dict(zip(proj.ids[label], range(len(ids)), strict=True))
        else:
            proj.ids[label] = ids
            proj.index[label] = IdIndex(ids, r.array(part["lookup"]["hashes"]), r.array(part["lookup"]["at"]))
        table = part["props"]
        proj.props[label] = PropTable(r.array(table["blob"]), r.array(table["offsets"]))  # type: ignore[assignment]
    for part in spec["edges"]:
        edges = EdgeList(start=IntColumn(r.array(part["start"])), end=IntColumn(r.array(part["end"])),
                         props=PropTable(r.array(part["props_blob"]), r.array(part["props_offsets"]),  # type: ignore[arg-type]
                                         shared_empty=True),
                         sorted_codes=r.array(part["codes"]), sorted_at=r.array(part["codes_at"]))
        proj.edges[tuple(part["key"])] = edges  # type: ignore[index]
    proj.revision = int(spec["revision"])
    return proj


@dataclass
class Loaded:
    """What :func:`load` gives back."""

    projection: Projection
    index: RankingIndex
    revision: int
    manifest: dict[str, Any]
    version: Path


def load(directory: Path | str, *, store_id: str | None, revision: int, encoder: Any = None) -> Loaded | str:
    """Map the current version of ``directory``: a :class:`Loaded`, or the reason it cannot be used.

    ``revision`` is the store's current feed position (files built ahead of it are from another life of the
    store); ``encoder`` the dense encoder the caller ranks with (its identity must be the files').
    """
    version = current_version(directory)
    if version is None:
        return f"no index files in {directory}"
    manifest = read_manifest(version)
    if manifest is None:
        return f"{version.name}: manifest missing or unreadable"
    why = _verify(version, manifest, store_id=store_id, revision=revision, encoder=encoder)
    if why is not None:
        return f"{version.name}: {why}"
    try:
        r = _Reader(version)
        spec = json.loads((version / "spec.json").read_text())
        proj = _decode_projection(r, spec["projection"])
        index = RankingIndex.__new__(RankingIndex)
        for key, value in spec["index"].items():
            setattr(index, key, r.decode(value))
        index.projection = proj
        index.encoder = encoder
        index.hp_pos = HistoryPositions(index.hp, proj.n("Problem"))
        index.declared_sets = DeclaredSkills(index.declared, proj.ids["Skill"])
        index.read_worker_flags()
    except Exception as err:  # noqa: BLE001 - any damage the digests did not catch: rebuild, never serve it
        return f"{version.name}: cannot be read ({type(err).__name__}: {err})"
    return Loaded(proj, index, int(manifest["revision"]), manifest, version)


# -- status ------------------------------------------------------------------------------------
@dataclass
class IndexStatus:
    """What ``jianglian index status`` reports."""

    directory: Path
    version: str | None
    revision: int | None
    store_revision: int
    lag: int | None  # changes to replay (None: the feed cannot list them)
    usable: bool
    reason: str | None
    bytes: int
    created: str | None
    describe: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["directory"] = str(self.directory)
        return out


def status(directory: Path | str, store: Any, *, encoder: Any = None) -> IndexStatus:
    """The current version of ``directory`` against ``store`` (verifies the files as :func:`load` would)."""
    root = Path(directory)
    store_revision = int(store.revision)
    version = current_version(root)
    manifest = read_manifest(version) if version is not None else None
    if version is None or manifest is None:
        return IndexStatus(root, None if version is None else version.name, None, store_revision, None, False,
                           "no index files" if version is None else "manifest missing or unreadable", 0, None, {})
    why = _verify(version, manifest, store_id=store_identity(store), revision=store_revision, encoder=encoder)
    built_at = manifest.get("revision")
    lag: int | None = None
    if why is None and isinstance(built_at, int):
        changes = store.changes_since(built_at)
        lag = None if changes is None else len(changes)
    size = sum(int(f.get("bytes", 0)) for f in (manifest.get("files") or {}).values())
    return IndexStatus(root, version.name, built_at if isinstance(built_at, int) else None, store_revision, lag,
                       why is None, why, size, manifest.get("created"), dict(manifest.get("describe") or {}))
