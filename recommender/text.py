"""Text representations for ranking: TF-IDF (word 1-2 grams and character n-grams) and BM25 inputs.

Chinese has no spaces, so before word analysis every CJK character is set apart: the word
analyser then sees characters as tokens and character bigrams as word bigrams, while Latin words
stay whole. The character n-gram analyser works the same for both scripts.

A fitted model answers a few texts (a ranked query) from :class:`VocabTable` s: the vocabulary as sorted UTF-8
byte strings in a numpy array (looked up with ``np.searchsorted``) plus the idf weights, analysed by
:func:`word_ngrams` / :func:`char_wb_ngrams` (scikit-learn's analysers, re-implemented and tested equal). The
stored ranking index keeps these arrays as mapped files (:meth:`TextModel.tables`, :meth:`TextModel.from_tables`)
instead of pickled dictionaries, so a process that maps the index holds no vocabulary dictionary (48 MB of
Python objects at 99k problems) and does not import scikit-learn until something needs the vectorisers
themselves (a batch of more than eight texts: a replay, the open problems), when they are rebuilt from the
arrays.
"""

from __future__ import annotations

import pickle
import re
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

# the text signals and the dense encoder compare the same text of a problem: one definition, in embeddings
from embeddings.texts import problem_text

__all__ = ["TextModel", "TextViews", "VocabTable", "char_wb_ngrams", "cjk_spaced", "problem_text", "profile_text",
           "word_ngrams"]

_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
#: The word view's token pattern (scikit-learn's default keeps tokens of two or more characters; one CJK
#: character is a word here).
TOKEN_PATTERN = r"(?u)\b\w+\b"
_TOKEN = re.compile(TOKEN_PATTERN)
_WHITE_SPACES = re.compile(r"\s\s+")  # what scikit-learn's char_wb analyser collapses


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


def word_ngrams(text: str, ngram_range: tuple[int, int] = (1, 2)) -> list[str]:
    """The word view's terms of ``text``, as scikit-learn's ``CountVectorizer(preprocessor=cjk_spaced,
    token_pattern=TOKEN_PATTERN, ngram_range=...)`` analyser gives them (same terms, same order).

    Examples
    --------
    >>> word_ngrams("PLC程序")
    ['plc', '程', '序', 'plc 程', '程 序']
    """
    tokens = _TOKEN.findall(cjk_spaced(text))
    min_n, max_n = ngram_range
    if max_n == 1:
        return tokens
    original = tokens
    if min_n == 1:
        tokens = list(original)
        min_n += 1
    else:
        tokens = []
    n_original = len(original)
    for n in range(min_n, min(max_n + 1, n_original + 1)):
        for i in range(n_original - n + 1):
            tokens.append(" ".join(original[i:i + n]))
    return tokens


def char_wb_ngrams(text: str, ngram_range: tuple[int, int] = (2, 4)) -> list[str]:
    """The character view's terms of ``text``: scikit-learn's ``analyzer="char_wb"`` after ``str.lower``
    (n-grams inside words padded with a space; a word shorter than ``n`` counted once).

    Examples
    --------
    >>> char_wb_ngrams("Ab c", (2, 3))
    [' a', 'ab', 'b ', ' ab', 'ab ', ' c', 'c ', ' c ']
    """
    text = _WHITE_SPACES.sub(" ", text.lower())
    min_n, max_n = ngram_range
    out: list[str] = []
    append = out.append
    for w in text.split():
        w = " " + w + " "
        w_len = len(w)
        for n in range(min_n, max_n + 1):
            offset = 0
            append(w[offset:offset + n])
            while offset + n < w_len:
                offset += 1
                append(w[offset:offset + n])
            if offset == 0:  # a short word (w_len < n) counts once
                break
    return out


def _utf8(term: str) -> bytes:
    return term.encode("utf-8", "surrogatepass")  # the byte order of UTF-8 is the code points' order


class VocabTable:
    """A fitted vocabulary as arrays: sorted UTF-8 terms (fixed width; terms longer than :attr:`SHORT` bytes in a
    second array of their own width), the column of each, and the terms ending in a NUL byte (which a numpy byte
    string cannot hold) in a small dictionary.

    Parameters
    ----------
    short, short_cols, long, long_cols
        Sorted ``S`` arrays of the terms and their columns (``int32``).
    odd
        Terms ending in ``"\\0"`` and their columns.
    size
        Number of columns (terms).
    """

    #: Terms up to this many UTF-8 bytes are in the short array.
    SHORT = 32

    def __init__(self, short: np.ndarray, short_cols: np.ndarray, long: np.ndarray, long_cols: np.ndarray,
                 odd: Mapping[str, int], size: int) -> None:
        self.short, self.short_cols, self.long, self.long_cols = short, short_cols, long, long_cols
        self.odd = dict(odd)
        self.size = int(size)

    @classmethod
    def from_mapping(cls, vocabulary: Mapping[str, int]) -> VocabTable:
        """The table of a ``term -> column`` mapping (a fitted vectoriser's ``vocabulary_``)."""
        short: list[bytes] = []
        short_cols: list[int] = []
        long: list[bytes] = []
        long_cols: list[int] = []
        odd: dict[str, int] = {}
        for term, col in vocabulary.items():
            raw = _utf8(term)
            if raw.endswith(b"\0"):
                odd[term] = int(col)
            elif len(raw) <= cls.SHORT:
                short.append(raw)
                short_cols.append(int(col))
            else:
                long.append(raw)
                long_cols.append(int(col))

        def table(terms: list[bytes], cols: list[int]) -> tuple[np.ndarray, np.ndarray]:
            arr = np.array(terms, dtype=f"S{max(1, max(map(len, terms), default=1))}")
            order = np.argsort(arr, kind="stable")
            return arr[order], np.asarray(cols, dtype=np.int32)[order]

        return cls(*table(short, short_cols), *table(long, long_cols), odd, len(vocabulary))

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays to store (:meth:`from_arrays` takes them back, mapped or not)."""
        return {"short": self.short, "short_cols": self.short_cols, "long": self.long, "long_cols": self.long_cols}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray], odd: Mapping[str, int], size: int) -> VocabTable:
        return cls(arrays["short"], arrays["short_cols"], arrays["long"], arrays["long_cols"], odd, size)

    def mapping(self) -> dict[str, int]:
        """``term -> column`` as a dictionary (for rebuilding a scikit-learn vectoriser)."""
        out = {bytes(t).decode("utf-8", "surrogatepass"): int(c) for t, c in zip(self.short, self.short_cols,
                                                                                 strict=True)}
        out.update((bytes(t).decode("utf-8", "surrogatepass"), int(c))
                   for t, c in zip(self.long, self.long_cols, strict=True))
        out.update(self.odd)
        return out

    def columns(self, terms: Sequence[str]) -> np.ndarray:
        """The column of each term, ``-1`` for a term not in the vocabulary."""
        out = np.full(len(terms), -1, dtype=np.int64)
        raw = [_utf8(t) for t in terms]
        short_at: list[int] = []
        long_at: list[int] = []
        for i, b in enumerate(raw):
            if b.endswith(b"\0"):
                out[i] = self.odd.get(terms[i], -1)
            elif len(b) <= self.short.itemsize:
                short_at.append(i)
            elif len(b) <= self.long.itemsize:
                long_at.append(i)
        for at, table, cols in ((short_at, self.short, self.short_cols), (long_at, self.long, self.long_cols)):
            if not at or not len(table):
                continue
            wanted = np.array([raw[i] for i in at], dtype=table.dtype)
            pos = np.minimum(np.searchsorted(table, wanted), len(table) - 1)
            hit = table[pos] == wanted
            out[np.asarray(at)[hit]] = cols[pos[hit]]
        return out


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

    #: The fitted vectorisers pickled without their vocabularies (a model made by :meth:`from_tables`).
    _vectorisers: bytes

    def __init__(self, *, char_ngrams: tuple[int, int] = (2, 4), min_df_char: int = 2) -> None:
        self.char_ngrams = char_ngrams
        self.min_df_char = min_df_char

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        for key in ("_recent", "_recent_lock", "_sk_lock"):
            state.pop(key, None)
        if "counter_" in state:
            state.pop("_fast", None)  # made again from the vectorisers
        return state

    def fit(self, texts: Sequence[str]) -> TextModel:
        """Learn vocabularies and idf weights; returns ``self``."""
        self.fit_transform(texts)
        return self

    def fit_transform(self, texts: Sequence[str]) -> TextViews:
        """Fit on ``texts`` and return their views (one analysis pass per view)."""
        from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer

        self.__dict__.pop("_fast", None)
        self.__dict__.pop("_recent", None)
        corpus = list(texts) or [""]
        self.counter_ = CountVectorizer(preprocessor=cjk_spaced, token_pattern=TOKEN_PATTERN, ngram_range=(1, 2),
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
        with_stop = getattr(self.char_, "stop_words_", None)
        if with_stop is not None:  # the terms cut by min_df: only for inspection (scikit-learn's docs say so)
            del self.char_.stop_words_
        views = TextViews(sp.csr_matrix(word, dtype=np.float32), sp.csr_matrix(char, dtype=np.float32),
                          sp.csr_matrix(counts, dtype=np.float32))
        return views if texts else views[:0]

    # -- the arrays the stored index keeps ----------------------------------------------------------------
    def _tables(self) -> tuple[VocabTable, np.ndarray, VocabTable, np.ndarray, tuple[int, int]]:
        """(word vocabulary, word idf, char vocabulary, char idf, char n-gram range) of the fitted model."""
        fast = self.__dict__.get("_fast")
        if fast is None:
            if "counter_" not in self.__dict__:
                raise ValueError("the text model is not fitted")
            fast = (VocabTable.from_mapping(self.counter_.vocabulary_), np.asarray(self.word_.idf_, dtype=np.float64),
                    VocabTable.from_mapping(self.char_.vocabulary_), np.asarray(self.char_.idf_, dtype=np.float64),
                    tuple(self.char_.ngram_range))
            self._fast = fast
        return fast  # type: ignore[no-any-return]

    @property
    def word_idf(self) -> np.ndarray:
        """The word view's idf weights, one per term (float64)."""
        return self._tables()[1]

    def tables(self) -> tuple[dict[str, np.ndarray], dict[str, Any], bytes]:
        """What :meth:`from_tables` needs: the arrays (vocabularies and idf weights), small JSON-able settings,
        and the fitted vectorisers pickled without their vocabularies (a few KB; unpickled only when needed)."""
        word, word_idf, char, char_idf, char_range = self._tables()
        arrays = {**{f"word_{k}": v for k, v in word.arrays().items()},
                  **{f"char_{k}": v for k, v in char.arrays().items()},
                  "word_idf": word_idf, "char_idf": char_idf}
        settings = {"char_ngrams": list(self.char_ngrams), "min_df_char": self.min_df_char,
                    "char_range": list(char_range), "word_size": word.size, "char_size": char.size,
                    "word_odd": word.odd, "char_odd": char.odd}
        if "counter_" not in self.__dict__:  # read from tables itself: its pickled vectorisers are the same bytes
            return arrays, settings, self._vectorisers
        stripped = []
        for vec in (self.counter_, self.word_, self.char_):
            state = dict(vec.__dict__)
            for key in ("vocabulary_", "stop_words_"):
                state.pop(key, None)
            stripped.append((type(vec), state))
        return arrays, settings, pickle.dumps(stripped, protocol=5)

    @classmethod
    def from_tables(cls, arrays: Mapping[str, np.ndarray], settings: Mapping[str, Any], vectorisers: bytes
                    ) -> TextModel:
        """A fitted model over :meth:`tables`' output (the arrays may be memory-mapped, read-only)."""
        model = cls(char_ngrams=tuple(settings["char_ngrams"]), min_df_char=int(settings["min_df_char"]))

        def table(view: str) -> VocabTable:
            return VocabTable.from_arrays({k: arrays[f"{view}_{k}"] for k in ("short", "short_cols", "long",
                                                                               "long_cols")},
                                          settings[f"{view}_odd"], settings[f"{view}_size"])

        model._fast = (table("word"), arrays["word_idf"], table("char"), arrays["char_idf"],
                       tuple(settings["char_range"]))
        model._vectorisers = vectorisers
        return model

    def _sklearn(self) -> tuple[Any, Any, Any]:
        """The fitted scikit-learn vectorisers (rebuilt from the tables on first use by a model read from them)."""
        if "counter_" not in self.__dict__:
            if "_sk_lock" not in self.__dict__:
                self._sk_lock = threading.Lock()
            with self._sk_lock:
                if "counter_" not in self.__dict__:
                    word, _, char, _, _ = self._tables()
                    made = []
                    for klass, state in pickle.loads(self._vectorisers):  # noqa: S301 - our own index file
                        vec = klass.__new__(klass)
                        vec.__dict__.update(state)
                        made.append(vec)
                    counter, word_tfidf, char_tfidf = made
                    counter.vocabulary_ = word.mapping()
                    char_tfidf.vocabulary_ = char.mapping()
                    self.word_, self.char_ = word_tfidf, char_tfidf
                    self.counter_ = counter  # last: its presence says the three are ready
        return self.counter_, self.word_, self.char_

    # -- transforming ---------------------------------------------------------------------------------------
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
        counter, word_tfidf, char_tfidf = self._sklearn()
        counts = counter.transform(texts)
        word = word_tfidf.transform(counts)
        char = char_tfidf.transform(texts)
        return TextViews(sp.csr_matrix(word, dtype=np.float32), sp.csr_matrix(char, dtype=np.float32),
                         sp.csr_matrix(counts, dtype=np.float32))

    def _transform_few(self, texts: list[str]) -> TextViews:
        """Same result as the vectorisers' ``transform`` (within float rounding) without their per-call
        validation cost, which dominates when a single query is ranked; no scikit-learn needed."""
        w_voc, w_idf, c_voc, c_idf, c_range = self._tables()

        def term_counts(analyse: Callable[[str], list[str]], vocab: VocabTable
                        ) -> list[tuple[np.ndarray, np.ndarray]]:
            out = []
            for text in texts:
                counted = Counter(analyse(text))
                terms = list(counted)
                cols = vocab.columns(terms)
                known = cols >= 0
                tf = np.fromiter(counted.values(), dtype=np.float64, count=len(terms))[known]
                cols = cols[known]
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

        words = term_counts(word_ngrams, w_voc)
        chars = term_counts(lambda text: char_wb_ngrams(text, (int(c_range[0]), int(c_range[1]))), c_voc)
        return TextViews(rows(words, w_voc.size, w_idf), rows(chars, c_voc.size, c_idf),
                         rows(words, w_voc.size, None))
