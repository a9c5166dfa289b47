"""Retrieval quality of an encoder on solved history: does a held-out problem's nearest past problem share a solver?

The measure (``hit@k``): hold out a seeded fraction of the solved problems; for each held-out problem, find
its ``k`` nearest training problems by cosine similarity; it is a hit when one of its true solvers solved one
of those neighbours. This is what the ranking's "similar past problems" signal needs from an encoder, so it
is the number used to choose between encoders (``benchmarks/embeddings_bench.py``).

Everything here is plain Python and numpy/scikit-learn: datasets come in as ``{id: text}`` and
``{id: [solver ids]}`` mappings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

__all__ = [
    "Split",
    "hit_at_k",
    "holdout_split",
    "neighbour_hits",
    "tfidf_vectors",
    "top_k",
]


@dataclass(frozen=True)
class Split:
    """Problem ids of a train/held-out split."""

    train: list[str]
    held_out: list[str]


def holdout_split(ids: Sequence[str], *, fraction: float = 0.1, seed: int = 0) -> Split:
    """A seeded random holdout of ``fraction`` of ``ids`` (order of ``ids`` kept in both parts).

    Examples
    --------
    >>> s = holdout_split([f"p{i}" for i in range(10)], fraction=0.2, seed=0)
    >>> len(s.train), len(s.held_out), sorted(s.train + s.held_out) == sorted(f"p{i}" for i in range(10))
    (8, 2, True)
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError("fraction must be between 0 and 1")
    rng = np.random.default_rng(seed)
    n_out = max(1, round(len(ids) * fraction))
    out = set(rng.choice(len(ids), size=n_out, replace=False).tolist())
    return Split(
        train=[i for n, i in enumerate(ids) if n not in out],
        held_out=[i for n, i in enumerate(ids) if n in out],
    )


def top_k(
    queries: np.ndarray | sp.spmatrix,
    corpus: np.ndarray | sp.spmatrix,
    k: int,
    *,
    chunk: int = 1024,
) -> np.ndarray:
    """Indices of the ``k`` rows of ``corpus`` with the largest dot product with each query, best first.

    Rows should be L2-normalised (dense or sparse) so that the dot product is the cosine. Ties are broken
    by the lower index, so the result is deterministic.

    Examples
    --------
    >>> top_k(np.eye(3, dtype=np.float32)[:2], np.eye(3, dtype=np.float32), 2).tolist()
    [[0, 1], [1, 0]]
    """
    n_corpus = corpus.shape[0]
    k = min(k, n_corpus)
    out = np.empty((queries.shape[0], k), dtype=np.int64)
    corpus_t = sp.csr_matrix(corpus.T) if sp.issparse(corpus) else np.asarray(corpus).T
    for start in range(0, queries.shape[0], chunk):
        block = queries[start : start + chunk] @ corpus_t
        scores = block.toarray() if sp.issparse(block) else np.asarray(block)
        part = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < n_corpus else np.tile(
            np.arange(n_corpus), (len(scores), 1))
        part_scores = np.take_along_axis(scores, part, axis=1)
        # larger score first, then lower index: deterministic under ties
        order = np.lexsort((part, -part_scores), axis=1)
        out[start : start + len(scores)] = np.take_along_axis(part, order, axis=1)
    return out


def neighbour_hits(
    neighbours: np.ndarray,
    train_ids: Sequence[str],
    held_out_ids: Sequence[str],
    solved_by: Mapping[str, Sequence[str]],
) -> np.ndarray:
    """For each held-out problem, whether a solver of one of its neighbours is one of its own solvers."""
    hits = np.zeros(len(held_out_ids), dtype=bool)
    for row, problem in enumerate(held_out_ids):
        truth = set(solved_by.get(problem, ()))
        hits[row] = any(truth.intersection(solved_by.get(train_ids[j], ())) for j in neighbours[row])
    return hits


def hit_at_k(
    embed: Callable[[Sequence[str]], np.ndarray | sp.spmatrix],
    texts: Mapping[str, str],
    solved_by: Mapping[str, Sequence[str]],
    split: Split,
    *,
    k: int = 10,
) -> float:
    """Fraction of held-out problems whose ``k`` nearest training problems include one solved by a true solver.

    ``embed`` maps a list of texts to L2-normalised rows (a dense array or a sparse matrix). Held-out problems
    without a solver are skipped.
    """
    held_out = [p for p in split.held_out if solved_by.get(p)]
    if not held_out:
        raise ValueError("no held-out problem has a solver")
    train_vecs = embed([texts[p] for p in split.train])
    query_vecs = embed([texts[p] for p in held_out])
    neighbours = top_k(query_vecs, train_vecs, k)
    return float(neighbour_hits(neighbours, split.train, held_out, solved_by).mean())


def tfidf_vectors(
    train_texts: Sequence[str],
    *,
    analyzer: Literal["char", "word"] = "char",
) -> Callable[[Sequence[str]], sp.spmatrix]:
    """The plain TF-IDF baseline, fitted on ``train_texts``: character 1-3 grams (Chinese) or word 1-2 grams.

    Returns a function mapping texts to L2-normalised sparse rows.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if analyzer == "char":
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 3), sublinear_tf=True, min_df=1)
    else:
        vectorizer = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, min_df=1,
                                     token_pattern=r"(?u)\b\w+\b")
    vectorizer.fit(list(train_texts))

    def embed(texts: Sequence[str]) -> sp.spmatrix:
        return vectorizer.transform(list(texts))

    return embed
