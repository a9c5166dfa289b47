"""Embeddings computed once and kept with the store, tied to the model that made them.

:class:`EmbeddingCache` embeds only what the store does not hold yet, and records which encoder produced
the stored vectors (identity and dimension) in the store's metadata under ``embedding:<label>:<key>``.
When the configured encoder differs (another model, retrained weights, another dimension) the stored
vectors are dropped and everything is embedded again: vectors of two models are never mixed in one
search. The change is logged and reported in :attr:`EmbeddingCache.last_report` (or raised, with
``on_mismatch="raise"``).

The store is duck-typed (``write_vectors``, ``read_vectors``, ``delete_vectors``, ``get_meta``,
``set_meta``; optionally ``revision``) so this package does not import :mod:`graph`: both the embedded
store (vectors beside its data) and the Neo4j store (a ``LIST<FLOAT>`` property under a vector index
sized from the model) fit.

Write order keeps a crash safe: stale vectors are deleted, then the new model is recorded, then vectors
are written in chunks; an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np

from embeddings.encoder import Encoder
from embeddings.errors import EmbeddingMismatch

__all__ = ["CacheReport", "EmbeddingCache", "VectorStore", "meta_key"]

log = logging.getLogger(__name__)


class VectorStore(Protocol):
    """The part of :class:`graph.store.GraphStore` the cache uses."""

    def write_vectors(self, label: str, key: str, ids: Sequence[str], vectors: np.ndarray) -> None: ...

    def read_vectors(self, label: str, key: str) -> tuple[list[str], np.ndarray]: ...

    def delete_vectors(self, label: str, key: str) -> None: ...

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str | None) -> None: ...


def meta_key(label: str, key: str) -> str:
    """The metadata key recording the model behind ``label``/``key`` vectors.

    Examples
    --------
    >>> meta_key("Problem", "embedding")
    'embedding:Problem:embedding'
    """
    return f"embedding:{label}:{key}"


@dataclass(frozen=True)
class CacheReport:
    """What the last :meth:`EmbeddingCache.vectors` or :meth:`EmbeddingCache.update` call did."""

    embedded: int = 0
    reused: int = 0
    #: Why the stored vectors were dropped (model or dimension change), or ``None``.
    reset: str | None = None


class EmbeddingCache:
    """Vectors of one label's texts, cached in the store and invalidated by a model change.

    Parameters
    ----------
    store
        A graph store (duck-typed, see :class:`VectorStore`).
    encoder
        The encoder whose vectors are wanted.
    label, key
        Node label (``"Problem"`` or ``"Worker"``) and the vector key (property) to store under.
    texts
        Optional callable returning ``{id: text}`` for :meth:`vectors` called without texts.
    on_mismatch
        ``"reembed"`` (default): drop vectors of another model and embed again, with a warning;
        ``"raise"``: raise :class:`~embeddings.errors.EmbeddingMismatch` instead.
    batch_size, write_chunk
        Encoder batch size, and how many vectors are written to the store at a time.
    show_progress
        Passed to the encoder (``None``: a bar for long runs on a terminal).
    """

    def __init__(
        self,
        store: VectorStore,
        encoder: Encoder,
        label: str = "Problem",
        key: str = "embedding",
        *,
        texts: Callable[[], Mapping[str, str]] | None = None,
        on_mismatch: Literal["reembed", "raise"] = "reembed",
        batch_size: int = 64,
        write_chunk: int = 20_000,
        show_progress: bool | None = None,
    ) -> None:
        if on_mismatch not in ("reembed", "raise"):
            raise ValueError("on_mismatch must be 'reembed' or 'raise'")
        self.store = store
        self.encoder = encoder
        self.label = label
        self.key = key
        self.meta_key = meta_key(label, key)
        self._texts = texts
        self.on_mismatch = on_mismatch
        self.batch_size = batch_size
        self.write_chunk = max(1, write_chunk)
        self.show_progress = show_progress
        self.last_report = CacheReport()
        self._lock = threading.RLock()
        self._rows: dict[str, np.ndarray] = {}
        self._synced_revision: Any = None
        self._checked_identity: str | None = None

    # -- model record ---------------------------------------------------------------------
    def stored_model(self) -> dict[str, Any] | None:
        """The model recorded with the stored vectors: ``{"identity", "dim"}``, or ``None``."""
        raw = self.store.get_meta(self.meta_key)
        if not raw:
            return None
        try:
            record = json.loads(raw)
        except ValueError:
            return {"identity": None, "dim": None, "unreadable": raw}
        return record if isinstance(record, dict) else {"identity": None, "dim": None}

    def _mismatch(self, stored_ids: Sequence[str], matrix: np.ndarray) -> str | None:
        """Why the stored vectors cannot be used with this encoder, or ``None`` when they can."""
        record = self.stored_model()
        dim = self.encoder.dim
        identity = self.encoder.identity
        what = f"stored {self.label}.{self.key} vectors"
        made_by = f"made by {record.get('identity')}" if record else "with no model record"
        if stored_ids and matrix.ndim == 2 and matrix.shape[1] != dim:
            return f"{what} have {matrix.shape[1]} dimensions ({made_by}), the encoder {identity} makes {dim}"
        if record is None:
            return f"{len(stored_ids)} {what} have no model record" if stored_ids else None
        if record.get("dim") != dim:
            return f"{what} were {made_by} with {record.get('dim')} dimensions, the encoder {identity} makes {dim}"
        if record.get("identity") != identity:
            return f"{what} were {made_by}, not by {identity}"
        return None

    def _sync(self) -> str | None:
        """Load the stored vectors (when the store changed) after checking their model; returns a reset reason."""
        revision = getattr(self.store, "revision", None)
        identity = self.encoder.identity
        if (revision is not None and revision == self._synced_revision and self._checked_identity == identity):
            return None
        stored_ids, matrix = self.store.read_vectors(self.label, self.key)
        reason = self._mismatch(stored_ids, matrix)
        if reason is not None:
            if self.on_mismatch == "raise":
                raise EmbeddingMismatch(reason + "; embed again (EmbeddingCache(on_mismatch='reembed'))")
            log.warning("%s: dropping them and embedding again", reason)
            self.store.delete_vectors(self.label, self.key)
            stored_ids, matrix = [], np.zeros((0, self.encoder.dim), dtype=np.float32)
        if reason is not None or self.stored_model() is None:
            self.store.set_meta(self.meta_key, json.dumps(
                {"identity": identity, "dim": self.encoder.dim}, ensure_ascii=False, sort_keys=True))
        self._rows = {node_id: matrix[i] for i, node_id in enumerate(stored_ids)}
        self._checked_identity = identity
        self._synced_revision = getattr(self.store, "revision", None)
        return reason

    # -- public API -----------------------------------------------------------------------
    def vectors(self, texts: Mapping[str, str] | None = None) -> tuple[list[str], np.ndarray]:
        """Vectors of ``texts`` (``{id: text}``), embedding only the ids the store does not hold.

        Returns
        -------
        ids, matrix
            The ids in the order of ``texts`` and a float32 ``(len(ids), dim)`` matrix.
        """
        if texts is None:
            if self._texts is None:
                raise ValueError("no texts given and no texts callable configured")
            texts = self._texts()
        with self._lock:
            reason = self._sync()
            missing = {node_id: text for node_id, text in texts.items() if node_id not in self._rows}
            self._embed_and_write(missing)
            self.last_report = CacheReport(embedded=len(missing), reused=len(texts) - len(missing), reset=reason)
            ids = list(texts)
            matrix = (np.stack([self._rows[i] for i in ids]).astype(np.float32, copy=False) if ids
                      else np.zeros((0, self.encoder.dim), dtype=np.float32))
            return ids, matrix

    def update(self, ids_texts: Mapping[str, str]) -> np.ndarray:
        """Embed new or edited nodes now (once) and store their vectors; returns them in the given order.

        The nodes must already exist in the store.
        """
        with self._lock:
            reason = self._sync()
            self._embed_and_write(dict(ids_texts))
            self.last_report = CacheReport(embedded=len(ids_texts), reused=0, reset=reason)
            if not ids_texts:
                return np.zeros((0, self.encoder.dim), dtype=np.float32)
            return np.stack([self._rows[i] for i in ids_texts]).astype(np.float32, copy=False)

    def invalidate(self) -> None:
        """Forget every stored vector and the model record (the next call embeds everything)."""
        with self._lock:
            self.store.delete_vectors(self.label, self.key)
            self.store.set_meta(self.meta_key, None)
            self._rows = {}
            self._synced_revision = None
            self._checked_identity = None

    def _embed_and_write(self, texts: Mapping[str, str]) -> None:
        if not texts:
            return
        ids = list(texts)
        for start in range(0, len(ids), self.write_chunk):
            chunk = ids[start : start + self.write_chunk]
            vecs = self.encoder.encode([texts[i] for i in chunk], batch_size=self.batch_size,
                                       show_progress=self.show_progress)
            vecs = np.asarray(vecs, dtype=np.float32)
            if vecs.shape != (len(chunk), self.encoder.dim):
                raise EmbeddingMismatch(
                    f"the encoder {self.encoder.identity} returned shape {vecs.shape}, "
                    f"expected {(len(chunk), self.encoder.dim)}"
                )
            self.store.write_vectors(self.label, self.key, chunk, vecs)
            for node_id, vec in zip(chunk, vecs, strict=True):
                self._rows[node_id] = vec
        self._synced_revision = getattr(self.store, "revision", None)
