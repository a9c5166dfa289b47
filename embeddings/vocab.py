"""The tokenizer of the built encoder: a character n-gram vocabulary in a Hugging Face ``tokenizers`` Unigram model.

Why this shape
--------------
The built encoder must load with plain ``SentenceTransformer(path)``, and sentence-transformers 6 refuses
module classes outside its own namespace without ``trust_remote_code``. So the tokenizer has to be an ordinary
serialised ``tokenizers`` pipeline, which cannot emit *overlapping* n-grams. Instead it segments:

- normalise with NFKC (full-width -> half-width) and lower-case;
- split on whitespace, punctuation, script changes (汉字 vs Latin) and digit runs;
- segment each piece with a Unigram model whose vocabulary is every character seen, plus the most frequent
  Chinese character bigrams (default ``han_max_n=2``) and, for Latin text, frequent whole words and their
  character 2-4 grams (so an unseen English word falls back to sub-word pieces).

Unigram scores are log corpus frequencies, so Viterbi segmentation prefers one frequent piece over two rare
ones: Chinese runs fall into bigrams aligned on frequent words (``液压|系统|压力|不足``), English words stay
whole when known. The vocabulary is computed by counting in Python, so it is exactly reproducible.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence

from tokenizers import Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import Unigram

__all__ = ["UNK", "build_tokenizer", "is_han", "pre_tokenize"]

UNK = "<unk>"
_MAX_WORD = 24  # longer Latin runs (hashes, URLs) are never whole-word pieces


def is_han(piece: str) -> bool:
    """Whether every character of ``piece`` is a CJK ideograph.

    Examples
    --------
    >>> is_han("液压"), is_han("plc"), is_han("液压plc")
    (True, False, False)
    """
    return bool(piece) and all(
        "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf" or "\uf900" <= c <= "\ufaff" for c in piece
    )


def _empty_tokenizer(model: Unigram) -> Tokenizer:
    tokenizer = Tokenizer(model)
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.WhitespaceSplit(),
            pre_tokenizers.Punctuation(),
            pre_tokenizers.UnicodeScripts(),
            pre_tokenizers.Digits(individual_digits=False),
        ]
    )
    return tokenizer


_SPLITTER = _empty_tokenizer(Unigram([(UNK, 0.0)], 0, False))


def pre_tokenize(text: str) -> list[str]:
    """Normalise and split ``text`` the way the built tokenizer does before segmentation.

    Examples
    --------
    >>> pre_tokenize("数控机床PLC控制柜 伺服电机过热，报警E-302")
    ['数控机床', 'plc', '控制柜', '伺服电机过热', ',', '报警', 'e', '-', '302']
    """
    normalised = _SPLITTER.normalizer.normalize_str(text)  # type: ignore[union-attr]
    return [piece for piece, _ in _SPLITTER.pre_tokenizer.pre_tokenize_str(normalised)]  # type: ignore[union-attr]


def _candidates(piece: str, han_max_n: int, latin_max_n: int) -> Iterable[str]:
    """Every vocabulary candidate contained in one pre-token (characters included)."""
    yield from piece
    if is_han(piece):
        max_n = han_max_n
    else:
        if 1 < len(piece) <= _MAX_WORD:
            yield piece
        max_n = latin_max_n if len(piece) <= _MAX_WORD else 1
    for n in range(2, max_n + 1):
        for i in range(len(piece) - n + 1):
            yield piece[i : i + n]


def build_tokenizer(
    texts: Sequence[str],
    *,
    max_vocab: int = 60_000,
    min_df: int = 2,
    han_max_n: int = 2,
    latin_max_n: int = 4,
) -> Tokenizer:
    """Count character n-grams and words in ``texts`` and return a Unigram tokenizer over them.

    Parameters
    ----------
    texts
        The corpus (problem and profile texts).
    max_vocab
        Upper bound on the vocabulary size; every character seen is always kept.
    min_df
        Multi-character pieces must occur in at least this many texts.
    han_max_n, latin_max_n
        Longest character n-gram taken from Chinese runs and from Latin words.

    Examples
    --------
    >>> tok = build_tokenizer(["液压系统压力不足", "液压系统油温过高", "hydraulic pressure low"] * 2)
    >>> tok.encode("液压系统压力过高", add_special_tokens=False).tokens
    ['液压', '系统', '压力', '过高']
    """
    if max_vocab < 2 or min_df < 1 or han_max_n < 1 or latin_max_n < 1:
        raise ValueError("max_vocab >= 2, min_df >= 1, han_max_n >= 1 and latin_max_n >= 1 are required")
    freq: Counter[str] = Counter()
    df: Counter[str] = Counter()
    for text in texts:
        seen: set[str] = set()
        for piece in pre_tokenize(text):
            for cand in _candidates(piece, han_max_n, latin_max_n):
                freq[cand] += 1
                seen.add(cand)
        df.update(seen)
    chars = sorted(c for c in freq if len(c) == 1)
    multi = sorted((p for p in freq if len(p) > 1 and df[p] >= min_df), key=lambda p: (-df[p], p))
    multi = multi[: max(0, max_vocab - 1 - len(chars))]
    pieces = chars + sorted(multi)
    total = sum(freq[p] for p in pieces) or 1
    scored = [(p, math.log(freq[p] / total)) for p in pieces]
    floor = min((s for _, s in scored), default=0.0)
    vocab = [(UNK, floor - 10.0), *scored]
    return _empty_tokenizer(Unigram(vocab, 0, False))
