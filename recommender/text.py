"""Text representations for ranking: TF-IDF (word 1-2 grams and character n-grams) and BM25 inputs.

Chinese has no spaces, so before word analysis every CJK character is set apart: the word
analyser then sees characters as tokens and character bigrams as word bigrams, while Latin words
stay whole. The character n-gram analyser works the same for both scripts.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer

# the text signals and the dense encoder compare the same text of a problem: one definition, in embeddings
from embeddings.texts import problem_text

__all__ = ["TextModel", "TextViews", "cjk_spaced", "problem_text", "profile_text"]

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")


def _space_run(match: re.Match[str]) -> str:
    return " " + " ".join(match.group(0)) + " "


def cjk_spaced(text: str) -> str:
    """Lower-case ``text`` and put spaces around CJK characters.

    Examples
    --------
    >>> cjk_spaced("PLC程序 Debug")
    'plc 程 序  debug'
    """
    return _CJK_RUN.sub(_space_run, text.lower())


def profile_text(row: Mapping[str, Any], skill_aliases: Mapping[str, Sequence[str]] | None = None) -> str:
    """A worker's profile text: skills (with aliases), service menu, honours, studio, level and role.

    Examples
    --------
    >>> profile_text({"skills": ["焊接"], "honours": ["全国劳模"]}, {"焊接": ["电焊"]})
    '焊接 电焊 全国劳模'
    """
    aliases = skill_aliases or {}
    parts: list[str] = []
    for skill in row.get("skills") or []:
        parts.append(str(skill))
        parts.extend(str(a) for a in aliases.get(skill, ()))
    for key in ("service_menu", "honours"):
        parts.extend(str(v) for v in row.get(key) or [])
    for key in ("studio", "level", "role"):
        if row.get(key):
            parts.append(str(row[key]))
    return " ".join(parts)


@dataclass
class TextViews:
    """The L2-normalised TF-IDF rows of some texts in each view."""

    word: sp.csr_matrix
    char: sp.csr_matrix
    counts: sp.csr_matrix  # raw word 1-2 gram counts, for BM25

    def __post_init__(self) -> None:
        # ``counts`` has the sparsity pattern of ``word`` (TF-IDF only rescales the counts): share its
        # index arrays instead of holding a second copy (half of the counts' memory)
        w, c = self.word, self.counts
        if (not np.may_share_memory(c.indices, w.indices) and c.shape == w.shape and c.nnz == w.nnz
                and np.array_equal(c.indptr, w.indptr) and np.array_equal(c.indices, w.indices)):
            self.counts = sp.csr_matrix((c.data, w.indices, w.indptr), shape=c.shape, copy=False)

    def __getitem__(self, rows: Any) -> TextViews:
        return TextViews(self.word[rows], self.char[rows], self.counts[rows])


class TextModel:
    """Word 1-2 gram and character 2-4 gram TF-IDF (sublinear tf), fitted on a corpus.

    Parameters
    ----------
    char_ngrams
        Character n-gram range of the second view.
    min_df_char
        Minimum document frequency of a character n-gram (keeps the vocabulary small).
    """

    def __init__(self, *, char_ngrams: tuple[int, int] = (2, 4), min_df_char: int = 2) -> None:
        self.char_ngrams = char_ngrams
        self.min_df_char = min_df_char

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_recent", "_recent_lock", "_fast"):
            state.pop(key, None)
        return state

    def fit(self, texts: Sequence[str]) -> TextModel:
        """Learn vocabularies and idf weights; returns ``self``."""
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: Sequence[str]) -> TextViews:
        """Fit on ``texts`` and return their views (one analysis pass per view)."""
        corpus = list(texts) or [""]
        self.counter_ = CountVectorizer(preprocessor=cjk_spaced, token_pattern=r"(?u)\b\w+\b", ngram_range=(1, 2),
                                        dtype=np.float32)
        try:
            counts = self.counter_.fit_transform(corpus)
        except ValueError:  # empty vocabulary: texts with no word characters at all
            counts = self.counter_.fit_transform(corpus + ["_"])[: len(corpus)]
        self.word_ = TfidfTransformer(sublinear_tf=True)
        word = self.word_.fit_transform(counts)
        self.char_ = TfidfVectorizer(analyzer="char_wb", preprocessor=str.lower, ngram_range=self.char_ngrams,
                                     min_df=min(self.min_df_char, len(corpus)), sublinear_tf=True,
                                     dtype=np.float32)
        try:
            char = self.char_.fit_transform(corpus)
        except ValueError:
            self.char_ = TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 1), dtype=np.float32)
            char = self.char_.fit_transform(corpus + ["_"])[: len(corpus)]
        views = TextViews(sp.csr_matrix(word, dtype=np.float32), sp.csr_matrix(char, dtype=np.float32),
                          sp.csr_matrix(counts, dtype=np.float32))
        return views if texts else views[:0]

    def transform(self, texts: Iterable[str]) -> TextViews:
        """TF-IDF rows of ``texts`` in both views plus raw word counts (treat the result as read-only)."""
        texts = list(texts)
        if len(texts) <= 8:
            key = tuple(texts)
            if "_recent" not in self.__dict__:
                self._recent: OrderedDict[tuple[str, ...], TextViews] = OrderedDict()
                self._recent_lock = threading.Lock()
            with self._recent_lock:
                hit = self._recent.get(key)
                if hit is not None:
                    self._recent.move_to_end(key)
                    return hit
            views = self._transform_few(texts)
            with self._recent_lock:
                self._recent[key] = views
                if len(self._recent) > 32:  # one request transforms the same query text several times
                    self._recent.popitem(last=False)
            return views
        counts = self.counter_.transform(texts)
        word = self.word_.transform(counts)
        char = self.char_.transform(texts)
        return TextViews(sp.csr_matrix(word, dtype=np.float32), sp.csr_matrix(char, dtype=np.float32),
                         sp.csr_matrix(counts, dtype=np.float32))

    def _transform_few(self, texts: list[str]) -> TextViews:
        """Same result as the vectorisers' ``transform`` without their per-call validation cost,
        which dominates when a single query is ranked."""
        if not hasattr(self, "_fast"):
            self._fast = (self.counter_.build_analyzer(), self.counter_.vocabulary_,
                          np.asarray(self.word_.idf_, dtype=np.float64),
                          self.char_.build_analyzer(), self.char_.vocabulary_,
                          np.asarray(self.char_.idf_, dtype=np.float64))
        w_an, w_voc, w_idf, c_an, c_voc, c_idf = self._fast

        def term_counts(analyse: Any, vocab: Mapping[str, int]) -> list[tuple[np.ndarray, np.ndarray]]:
            out = []
            for text in texts:
                counts: dict[int, int] = {}
                for token in analyse(text):
                    j = vocab.get(token)
                    if j is not None:
                        counts[j] = counts.get(j, 0) + 1
                cols = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
                tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
                order = np.argsort(cols)
                out.append((cols[order], tf[order]))
            return out

        def rows(per_text: list[tuple[np.ndarray, np.ndarray]], n_cols: int, idf: np.ndarray | None) -> sp.csr_matrix:
            indptr, indices, data = [0], [], []
            for cols, tf in per_text:
                if idf is not None and len(tf):
                    tf = (1.0 + np.log(tf)) * idf[cols]
                    tf /= np.linalg.norm(tf) or 1.0
                indices.append(cols)
                data.append(tf)
                indptr.append(indptr[-1] + len(cols))
            return sp.csr_matrix((np.concatenate(data).astype(np.float32) if data else np.zeros(0, np.float32),
                                  np.concatenate(indices) if indices else np.zeros(0, np.int64),
                                  np.asarray(indptr)), shape=(len(texts), n_cols))

        words = term_counts(w_an, w_voc)
        return TextViews(rows(words, len(w_voc), w_idf), rows(term_counts(c_an, c_voc), len(c_voc), c_idf),
                         rows(words, len(w_voc), None))
