"""A learned expertise model per worker: what each worker solves, fitted on the history.

Every other text signal compares a new problem with past problems one by one (top-3, max, BM25) or
with a profile text. This one is discriminative: for each worker a linear scorer over the problem's
text, fitted so that it is high on the problems the worker solved and low on everyone else's. A
one-vs-rest logistic regression per worker does not scale to a province (136k workers), so the model
is shared and low-rank, a two-tower form with a closed-form fit:

1. the problem tower: a truncated SVD of the history's word TF-IDF (and, with ``skill_weight``, the
   idf-weighted skills) maps a problem to ``dim`` numbers, ``z = x @ components.T``;
2. the worker tower: one ``dim``-vector per worker, the ridge regression of "did this worker solve
   it" (0/1) on ``z`` over all history problems, ``W = (Z'Z + lam I)^-1 Z'Y``, solved for every worker
   at once (one ``dim x dim`` system).

A worker's score for a new problem is ``z @ W[w]``. The ridge penalty ``lam`` is ``alpha`` times the
mean eigenvalue of ``Z'Z``, so one setting fits histories of any size. The SVD is fitted on at most
``max_fit_docs`` problems and ``max_terms`` terms, which bounds its cost and the memory it keeps
(``dim x max_terms`` floats) at province scale; everything is pure numpy/scipy, deterministic for a
seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

__all__ = ["ExpertiseModel", "fit_expertise", "refit_workers"]


@dataclass(frozen=True)
class ExpertiseModel:
    """The fitted two towers (see the module docstring).

    Attributes
    ----------
    terms
        Columns of the word TF-IDF vocabulary the problem tower reads.
    components
        ``(dim, len(terms) + n_skills)`` float32: the problem tower.
    skill_weight
        Weight of the skill block in the problem tower's input (0: text only).
    skill_idf
        Idf of each skill (the skill block's weights).
    workers
        ``(n_workers, dim)`` float32: the worker tower.
    position
        Vocabulary column -> its place in ``terms`` (-1: not read), so a query row is mapped without a search.
    """

    terms: np.ndarray
    components: np.ndarray
    skill_weight: float
    skill_idf: np.ndarray
    workers: np.ndarray
    position: np.ndarray

    @property
    def dim(self) -> int:
        """Number of latent dimensions."""
        return int(self.components.shape[0])

    def embed(self, word: sp.csr_matrix, skills: sp.csr_matrix | None = None) -> np.ndarray:
        """Problem-tower vectors ``(n, dim)`` of word TF-IDF rows (and skill indicator rows)."""
        x = _design(sp.csr_matrix(word), skills, self.position, len(self.terms), self.skill_weight, self.skill_idf)
        # only the columns of the components the rows use: ``x @ components.T`` would first copy the whole
        # transposed matrix into C order (25 MB at 99k problems, a fifth of a query); the product over the
        # used columns sums the same products in the same order, so the vectors are the same to the bit
        used = np.unique(x.indices)
        x_used = sp.csr_matrix((x.data, np.searchsorted(used, x.indices).astype(x.indices.dtype), x.indptr),
                               shape=(x.shape[0], len(used)))
        return np.asarray(x_used @ np.ascontiguousarray(self.components[:, used].T), dtype=np.float32)

    def scores(self, z: np.ndarray, workers: np.ndarray) -> np.ndarray:
        """Scores of some workers for one problem-tower vector ``z``."""
        return np.asarray(self.workers[np.asarray(workers, dtype=np.int64)] @ z, dtype=np.float64)


def _positions(n_columns: int, terms: np.ndarray) -> np.ndarray:
    """Column -> place in ``terms`` (-1 for the columns left out)."""
    position = np.full(n_columns, -1, dtype=np.int32)
    position[terms] = np.arange(len(terms), dtype=np.int32)
    return position


def _select_terms(word: sp.csr_matrix, position: np.ndarray, n_terms: int) -> sp.csr_matrix:
    """``word[:, terms]`` by remapping the stored column indices through ``position`` (no scan of the columns)."""
    mapped = position[word.indices]
    keep = mapped >= 0
    counts = np.add.reduceat(keep.astype(np.int64), word.indptr[:-1]) if word.nnz else np.zeros(word.shape[0])
    counts[np.diff(word.indptr) == 0] = 0
    indptr = np.zeros(word.shape[0] + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return sp.csr_matrix((word.data[keep].astype(np.float32), mapped[keep], indptr), shape=(word.shape[0], n_terms))


def _design(word: sp.csr_matrix, skills: sp.csr_matrix | None, position: np.ndarray, n_terms: int,
            skill_weight: float, skill_idf: np.ndarray) -> sp.csr_matrix:
    x = _select_terms(word, position, n_terms)
    if skill_weight <= 0:
        return x
    n_skills = len(skill_idf)
    s = sp.csr_matrix((x.shape[0], n_skills), dtype=np.float32) if skills is None else sp.csr_matrix(
        skills, dtype=np.float32)
    s = sp.csr_matrix(s @ sp.diags(skill_idf.astype(np.float32)))
    norms = np.sqrt(np.asarray(s.multiply(s).sum(axis=1)).ravel())
    inv = np.divide(skill_weight, norms, out=np.zeros_like(norms), where=norms > 0)
    s = sp.csr_matrix(sp.diags(inv.astype(np.float32)) @ s)
    return sp.csr_matrix(sp.hstack([x, s], format="csr"))


def fit_expertise(
    docs_word: sp.csr_matrix,
    solved: sp.csr_matrix,
    *,
    skills: sp.csr_matrix | None = None,
    skill_idf: np.ndarray | None = None,
    skill_weight: float = 0.0,
    dim: int = 128,
    alpha: float = 2.0,
    max_terms: int = 50_000,
    max_fit_docs: int = 50_000,
    seed: int = 0,
    block: int = 65_536,
) -> ExpertiseModel | None:
    """Fit the expertise model on history problems.

    Parameters
    ----------
    docs_word
        ``(n problems, vocabulary)`` word TF-IDF rows of the history problems.
    solved
        ``(n workers, n problems)``: 1 where the worker solved the problem.
    skills, skill_idf, skill_weight
        ``(n problems, n skills)`` skill indicators, their idf, and the weight of that block
        (0 leaves skills out).
    dim
        Latent dimensions (fewer when the history is smaller).
    alpha
        Ridge penalty as a multiple of the mean eigenvalue of ``Z'Z``.
    max_terms
        The problem tower reads at most this many terms: the most frequent ones seen in at least two
        problems (a term of one problem cannot generalise).
    max_fit_docs
        The SVD is fitted on at most this many problems (a seeded sample); all of them enter the ridge.
    block
        Problems projected at a time when accumulating the ridge's ``Z'Z`` and ``Z'Y``.

    Returns
    -------
    ExpertiseModel or None
        ``None`` when the history is too small for a model (fewer than 3 problems or terms seen twice).

    Examples
    --------
    >>> docs = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]] * 3, dtype=float))
    >>> solved = sp.csr_matrix(np.array([[1, 1, 0, 0] * 3, [0, 0, 1, 1] * 3], dtype=float))
    >>> model = fit_expertise(docs, solved, dim=2)
    >>> z = model.embed(sp.csr_matrix(np.array([[1.0, 1.0, 0.0, 0.0]])))[0]
    >>> bool(model.scores(z, np.array([0, 1]))[0] > model.scores(z, np.array([0, 1]))[1])
    True
    """
    docs_word = sp.csr_matrix(docs_word)
    n_docs = docs_word.shape[0]
    df = np.bincount(docs_word.indices, minlength=docs_word.shape[1])
    common = np.flatnonzero(df >= 2)
    if len(common) > max_terms:
        common = np.sort(common[np.argsort(-df[common], kind="stable")[:max_terms]])
    idf = np.ones(0) if skill_idf is None else np.asarray(skill_idf, dtype=np.float64)
    weight = float(skill_weight) if skills is not None and len(idf) else 0.0
    position = _positions(docs_word.shape[1], common)
    x = _design(docs_word, skills, position, len(common), weight, idf)
    k = min(dim, n_docs - 1, x.shape[1] - 1)
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    fit_rows = x if n_docs <= max_fit_docs else x[np.sort(rng.choice(n_docs, max_fit_docs, replace=False))]
    from sklearn.decomposition import TruncatedSVD  # imported by a fit only: a mapped index does not need it

    svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=5, random_state=seed).fit(fit_rows)
    components = np.asarray(svd.components_, dtype=np.float32)
    workers = _worker_tower(x, components, solved, alpha=alpha, block=block)
    return ExpertiseModel(terms=common, components=components, skill_weight=weight,
                          skill_idf=idf.astype(np.float32), workers=workers, position=position)


def _worker_tower(x: sp.csr_matrix, components: np.ndarray, solved: sp.spmatrix, *, alpha: float,
                  block: int) -> np.ndarray:
    """The ridge solution for every worker; ``Z'Z`` and ``Z'Y`` are accumulated in blocks of problems, so the
    problem tower's output (problems x k) is never held whole."""
    k = components.shape[0]
    solved_csc = sp.csc_matrix(solved, dtype=np.float64)
    gram = np.zeros((k, k))
    target = np.zeros((solved_csc.shape[0], k))  # (workers, k) = (Z'Y)'
    for lo in range(0, x.shape[0], block):
        z = np.asarray(x[lo:lo + block] @ components.T, dtype=np.float64)
        gram += z.T @ z
        target += np.asarray(solved_csc[:, lo:lo + block] @ z)
    lam = alpha * float(np.trace(gram)) / k
    workers = np.linalg.solve(gram + max(lam, 1e-9) * np.eye(k), target.T).T
    return np.ascontiguousarray(workers, dtype=np.float32)


def refit_workers(model: ExpertiseModel, docs_word: sp.csr_matrix, solved: sp.csr_matrix, *,
                  skills: sp.csr_matrix | None = None, alpha: float = 2.0, block: int = 65_536) -> ExpertiseModel:
    """The same problem tower, the worker tower fitted again on a changed history (new solves, new workers).

    The cheap part of :func:`fit_expertise` (no SVD): what an incremental index update runs; the next full
    build refits both towers.
    """
    x = _design(sp.csr_matrix(docs_word), skills, model.position, len(model.terms), model.skill_weight,
                model.skill_idf)
    workers = _worker_tower(x, model.components, solved, alpha=alpha, block=block)
    return ExpertiseModel(terms=model.terms, components=model.components, skill_weight=model.skill_weight,
                          skill_idf=model.skill_idf, workers=workers, position=model.position)
