"""The TF-IDF fast path of :class:`recommender.text.TextModel` against scikit-learn, its oracle.

``TextModel.transform`` answers batches of up to eight texts (one query ranked) without the vectorisers'
per-call validation; these tests hold it equal to scikit-learn's own ``transform`` on fixed edge cases, on
the demo problems and on generated mixed-script texts.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from demo.generator import generate_rows
from recommender.text import TextModel, TextViews, problem_text

CORPUS = [
    "数控机床主轴异响，加工精度下降",
    "PLC 程序 调试 与 伺服 驱动 故障",
    "焊接 工艺 改进：不锈钢薄板变形",
    "Hydraulic press leaks oil under load; PLC alarm E-21",
    "注塑模具 冷却 不均 导致 产品 翘曲",
    "风电 叶片 表面 裂纹 检测 与 修复",
    "the spindle bearing overheats at 3000 rpm",
    "数控 数控 数控 重复 的 词",
]

EDGE_CASES = [
    "",
    "   ",
    "！？。，",
    "数控",
    "完全没见过的词汇组合",
    "PLC PLC PLC plc",
    "Ünïcödé café naïve",
    "数控机床主轴异响，加工精度下降",
    "x" * 500,
    "焊接\n\t焊接",
]


def _oracle(model: TextModel, texts: list[str]) -> TextViews:
    """scikit-learn's own transform, row by row through the fitted vectorisers."""
    counts = model.counter_.transform(texts)
    word = model.word_.transform(counts)
    char = model.char_.transform(texts)
    return TextViews(sp.csr_matrix(word, dtype=np.float32), sp.csr_matrix(char, dtype=np.float32),
                     sp.csr_matrix(counts, dtype=np.float32))


def _assert_same(fast: TextViews, oracle: TextViews) -> None:
    for name in ("word", "char", "counts"):
        a, b = getattr(fast, name), getattr(oracle, name)
        assert a.shape == b.shape, name
        np.testing.assert_allclose(a.toarray(), b.toarray(), rtol=0, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def model() -> TextModel:
    return TextModel().fit(CORPUS)


@pytest.mark.parametrize("text", EDGE_CASES)
def test_fast_path_equals_scikit_learn_on_edge_cases(model: TextModel, text: str) -> None:
    _assert_same(model.transform([text]), _oracle(model, [text]))


def test_fast_path_equals_scikit_learn_on_a_batch_of_eight(model: TextModel) -> None:
    batch = EDGE_CASES[:8]
    _assert_same(model.transform(batch), _oracle(model, batch))


def test_fast_path_equals_scikit_learn_on_the_demo_problems() -> None:
    texts = [problem_text(row) for name, row in generate_rows(scale=0.2, seed=3) if name.startswith("problems")]
    fitted = TextModel().fit(texts[: len(texts) // 2])
    unseen = texts[len(texts) // 2:]
    assert len(unseen) >= 50
    for start in range(0, 120, 6):  # ranked queries come one to a few at a time
        chunk = unseen[start:start + 6]
        _assert_same(fitted.transform(chunk), _oracle(fitted, chunk))


def test_cached_answers_are_the_same_as_fresh_ones(model: TextModel) -> None:
    first = model.transform([CORPUS[0]])
    again = model.transform([CORPUS[0]])
    _assert_same(again, first)
    _assert_same(again, _oracle(model, [CORPUS[0]]))


_WORDS = st.sampled_from(["数控", "机床", "焊接", "PLC", "伺服", "spindle", "oil", "故障", "，", " ", "新词", "z9"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(_WORDS, max_size=12).map("".join), min_size=1, max_size=8))
def test_fast_path_equals_scikit_learn_on_generated_texts(texts: list[str]) -> None:
    model = TextModel().fit(CORPUS)  # a fresh model: no cached answer may hide a difference
    _assert_same(model.transform(texts), _oracle(model, texts))


# -- the analysers and the vocabulary tables (what a process that maps the stored index uses) ---------
_ODD = ["a\x00", "x\x00\x00 数控", "\ud800 lone", "ß ǅ İ", "e\u0301", "A" * 70 + " 数控", "tab\tand  spaces\u3000全角",
        "数控" * 30, "中文English混合123abc", "🙂 emoji 🙂🙂"]


@pytest.mark.parametrize("text", EDGE_CASES + CORPUS + _ODD)
def test_analysers_equal_scikit_learn_s(model: TextModel, text: str) -> None:
    from recommender.text import char_wb_ngrams, word_ngrams

    assert word_ngrams(text) == model.counter_.build_analyzer()(text)
    assert char_wb_ngrams(text, model.char_.ngram_range) == model.char_.build_analyzer()(text)
    assert char_wb_ngrams(text, (1, 1)) == TfidfVectorizerOneGram().build_analyzer()(text)


def TfidfVectorizerOneGram():  # type: ignore[no-untyped-def]  # noqa: N802 - the fallback char_ of fit_transform
    from sklearn.feature_extraction.text import TfidfVectorizer

    return TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 1), dtype=np.float32)


def _exactly(a: TextViews, b: TextViews) -> None:
    for name in ("word", "char", "counts"):
        x, y = getattr(a, name), getattr(b, name)
        assert x.shape == y.shape and np.array_equal(x.indptr, y.indptr) and np.array_equal(x.indices, y.indices)
        assert np.array_equal(x.data, y.data), name


def test_a_model_read_from_its_tables_transforms_bit_for_bit_like_the_fitted_one(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import pickle

    corpus = CORPUS + _ODD + [problem_text(row) for name, row in generate_rows(scale=0.05, seed=5)
                              if name.startswith("problems")]
    fitted = TextModel().fit(corpus)
    arrays, settings_, vectorisers = fitted.tables()
    assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
    assert len(vectorisers) < 100_000 and b"\x8c\x0bvocabulary_" not in vectorisers  # idf_ kept, no vocabulary
    for key, arr in arrays.items():  # as the index files do: .npy files mapped read-only
        np.save(tmp_path / f"{key}.npy", arr, allow_pickle=False)
    mapped = {k: np.load(tmp_path / f"{k}.npy", mmap_mode="r") for k in arrays}
    loaded = TextModel.from_tables(mapped, settings_, vectorisers)
    assert "counter_" not in loaded.__dict__  # nothing of scikit-learn until a large batch
    queries = EDGE_CASES + _ODD + corpus[:40] + ["从没见过的 token", "a\x00 b"]
    for text in queries:
        _exactly(loaded.transform([text]), fitted.transform([text]))
    _exactly(loaded.transform(queries), fitted.transform(queries))  # > 8 texts: the vectorisers, rebuilt
    assert loaded.counter_.vocabulary_ == fitted.counter_.vocabulary_
    assert loaded.char_.vocabulary_ == fitted.char_.vocabulary_
    again = pickle.loads(pickle.dumps(loaded))
    _exactly(again.transform(queries[:3]), fitted.transform(queries[:3]))


def test_vocabulary_table_lookups_by_hand() -> None:
    from recommender.text import VocabTable

    vocab = {"b": 0, "a": 3, "数控": 1, "z\x00": 2, "long " * 10: 4}
    table = VocabTable.from_mapping(vocab)
    assert table.columns(["a", "b", "数控", "z\x00", "z", "long " * 10, "long", "", "a\x00"]).tolist() == \
        [3, 0, 1, 2, -1, 4, -1, -1, -1]
    assert table.mapping() == vocab
