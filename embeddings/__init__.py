"""Text encoders, the encoder builder, vector search and the embedding cache.

Modules (import what you need; nothing here loads a model or imports torch at import time):

- :mod:`embeddings.encoder`: the :class:`~embeddings.encoder.Encoder` interface and
  :func:`~embeddings.encoder.load_encoder` (any sentence-transformers model, once per process);
- :mod:`embeddings.builder`: :func:`~embeddings.builder.build_encoder` builds the project's own Chinese
  encoder from its corpus; :func:`~embeddings.builder.mine_pairs` mines training pairs from solved history;
- :mod:`embeddings.vocab`: the character n-gram tokenizer of the built encoder;
- :mod:`embeddings.index`: :class:`~embeddings.index.VectorIndex`, exact search and HNSW above a threshold;
- :mod:`embeddings.cache`: :class:`~embeddings.cache.EmbeddingCache`, vectors kept with the store;
- :mod:`embeddings.texts`: the text of a problem and of a worker profile;
- :mod:`embeddings.quality`: hit@k of an encoder on held-out solved problems;
- :mod:`embeddings.errors`: the exceptions.

This package does not import :mod:`graph` (nor Flask): stores are duck-typed.
"""

from __future__ import annotations

from embeddings.errors import BuildError, EmbeddingError, EmbeddingMismatch, ModelNotFound

__all__ = ["BuildError", "EmbeddingError", "EmbeddingMismatch", "ModelNotFound"]
