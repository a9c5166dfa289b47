"""Exceptions raised by the embeddings package.

Errors from sentence-transformers, Hugging Face and the ANN libraries are translated into these at
the package boundary, so callers (the recommender, the CLI) never depend on a third-party exception type.
"""

from __future__ import annotations

__all__ = [
    "BuildError",
    "EmbeddingError",
    "EmbeddingMismatch",
    "ModelNotFound",
]


class EmbeddingError(Exception):
    """Base class of every error raised by :mod:`embeddings`."""


class ModelNotFound(EmbeddingError, FileNotFoundError):
    """The configured encoder is not on disk (and cannot be downloaded offline)."""


class EmbeddingMismatch(EmbeddingError, ValueError):
    """Vectors from different models or of different dimensions would be mixed."""


class BuildError(EmbeddingError, ValueError):
    """The corpus given to the encoder builder cannot produce a model (too small, no pairs)."""
