"""Encoders (real weights), the encoder builder, the vector index and the embedding cache."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from embeddings.builder import _batches, build_encoder, mine_grouped_pairs, mine_pairs
from embeddings.cache import EmbeddingCache, meta_key
from embeddings.encoder import ENV_MODEL, clear_loaded, load_encoder, resolve_model
from embeddings.errors import EmbeddingMismatch, ModelNotFound
from embeddings.index import VectorIndex, exact_top_k
from embeddings.quality import Split, hit_at_k, holdout_split
from embeddings.texts import problem_text, worker_text
from graph.config import Settings
from graph.memory import MemoryStore
from graph.store import NodeRow, WriteBatch


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


# -- the packaged English model ----------------------------------------------------------------


def test_minilm_orders_english_sentences_sensibly() -> None:
    encoder = load_encoder("all-MiniLM-L6-v2")
    assert load_encoder("all-MiniLM-L6-v2") is encoder  # loaded once per process
    hydraulic, oil, software = encoder.encode([
        "The hydraulic press loses pressure when the pump is running",
        "Oil temperature in the hydraulic unit rises too high after an hour",
        "The web application crashes with a null pointer exception on login",
    ])
    assert encoder.dim == 384 and hydraulic.dtype == np.float32
    assert np.allclose(np.linalg.norm([hydraulic, oil, software], axis=1), 1.0, atol=1e-5)
    assert _cos(hydraulic, oil) > _cos(hydraulic, software) + 0.1
    assert _cos(hydraulic, oil) > _cos(oil, software) + 0.1
    assert encoder.identity.startswith("all-MiniLM-L6-v2@sha256:")
    assert encoder.encode([]).shape == (0, 384)


# -- the built Chinese encoder -------------------------------------------------------------------

# Five fields of expertise; sentences of one field share meaning, rarely characters.
_FIELDS = {
    "hydraulics": "液压站 油缸 柱塞泵 溢流阀 保压 油温 密封圈 内泄 换向阀 蓄能器".split(),
    "controls": "PLC程序 变频器 伺服驱动 触摸屏 继电器 编码器 通讯中断 接线端子 梯形图 电机过载".split(),
    "welding": "焊缝 气孔 焊丝 氩弧焊 熔深 飞溅 焊接电流 坡口 咬边 夹渣".split(),
    "it": "ERP系统 数据库 报表导出 服务器宕机 网络延迟 账号权限 接口调用 备份恢复 病毒查杀 网页卡顿".split(),
    "moulding": "注塑机 模具 缩痕 飞边 浇口 顶针 熔胶温度 脱模 冷却水路 料筒".split(),
}
_FILLERS = "出现异常 需要排查 影响生产 请专家指导 反复发生 急需解决 效率下降 故障频发".split()


def _corpus(n_per_field: int = 60, seed: int = 3) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    """Problems solved by one worker per field, each mixing three terms of its field and filler phrases."""
    rng = random.Random(seed)
    problems: dict[str, str] = {}
    solved_by: dict[str, list[str]] = {}
    profiles: dict[str, str] = {}
    for f, (field, terms) in enumerate(_FIELDS.items()):
        for w in range(2):
            profiles[f"w{f}{w}"] = " ".join(rng.sample(terms, 4)) + " 技术服务"
        for i in range(n_per_field):
            words = rng.sample(terms, 3) + rng.sample(_FILLERS, 2)
            rng.shuffle(words)
            pid = f"p{field}{i}"
            problems[pid] = "，".join(words)
            solved_by[pid] = [f"w{f}{rng.randrange(2)}"]
    return problems, solved_by, profiles


@pytest.fixture(scope="module")
def zh_corpus() -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    return _corpus()


def _build(out: Path, corpus: tuple[dict[str, str], dict[str, list[str]], dict[str, str]], seed: int) -> Path:
    problems, solved_by, profiles = corpus
    pairs, groups = mine_grouped_pairs(problems, solved_by, profiles, seed=seed)
    return build_encoder([*problems.values(), *profiles.values()], pairs, out, seed=seed, dim=32, epochs=4,
                         groups=groups, show_progress=False)


@pytest.fixture(scope="module")
def zh_model(tmp_path_factory: pytest.TempPathFactory, zh_corpus) -> Path:  # type: ignore[no-untyped-def]
    return _build(tmp_path_factory.mktemp("zh") / "model", zh_corpus, seed=0)


def test_built_encoder_is_a_plain_sentence_transformer(zh_model: Path) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(zh_model), device="cpu")  # no project code, no trust_remote_code
    vec = model.encode(["液压站油温过高"])
    assert vec.shape == (1, 32)
    info = json.loads((zh_model / "jianglian_build.json").read_text(encoding="utf-8"))
    assert info["pairs"] > 0 and info["steps"] > 0


def test_built_chinese_encoder_relates_meaning_across_characters(zh_model: Path) -> None:
    encoder = load_encoder(str(zh_model))
    triples = [
        # (a, b sharing meaning but no characters with a, c unrelated)
        ("液压站油温过高", "柱塞泵内泄，换向阀卡滞", "ERP系统报表导出失败"),
        ("焊缝气孔多", "氩弧焊咬边，坡口夹渣", "触摸屏通讯中断"),
        ("变频器报警", "伺服驱动编码器故障，继电器烧毁", "注塑件缩痕明显"),
        ("服务器宕机", "数据库备份恢复失败，账号权限混乱", "密封圈老化漏油"),
    ]
    for a, b, c in triples:
        assert len(set(a) & set(b)) <= 1  # the pair shares (almost) no characters ...
        va, vb, vc = encoder.encode([a, b, c])
        assert _cos(va, vb) > _cos(va, vc) + 0.2, (a, b, c)  # ... yet is closer than the unrelated one
        assert _cos(va, vb) > _cos(vb, vc) + 0.2, (a, b, c)


def test_built_encoder_is_deterministic_for_a_seed(tmp_path: Path, zh_model: Path, zh_corpus) -> None:  # type: ignore[no-untyped-def]
    again = _build(tmp_path / "again", zh_corpus, seed=0)
    other = _build(tmp_path / "other", zh_corpus, seed=1)
    texts = ["液压站油温过高", "PLC程序丢失", "焊缝气孔多"]
    first, second, third = (load_encoder(str(p)) for p in (zh_model, again, other))
    assert np.array_equal(first.encode(texts), second.encode(texts))
    assert first.identity.split("@")[1] == second.identity.split("@")[1]
    assert first.identity.split("@")[1] != third.identity.split("@")[1]


def test_mine_pairs_and_batches() -> None:
    problems = {"p1": "a", "p2": "b", "p3": "c", "p4": "d"}
    solved_by = {"p1": ["w1"], "p2": ["w1", "w2"], "p3": ["w2"], "p4": ["w3"], "gone": ["w1"]}
    pairs, groups = mine_grouped_pairs(problems, solved_by, {"w1": "skills one", "w3": "skills three"})
    assert mine_pairs(problems, solved_by, {"w1": "skills one", "w3": "skills three"}) == pairs
    by_group: dict[str, set[tuple[str, str]]] = {}
    for pair, group in zip(pairs, groups, strict=True):
        by_group.setdefault(group, set()).add(pair)
    assert by_group["w1"] == {("a", "b"), ("b", "a"), ("a", "skills one"), ("b", "skills one")}
    assert by_group["w2"] == {("b", "c"), ("c", "b")}
    assert by_group["w3"] == {("d", "skills three")}  # one problem: no problem pair, the profile pair only
    # batches: no group and no text twice, every pair kept unless alone
    many = [(f"q{i}", f"r{i % 40}") for i in range(2000)]
    labels = [f"g{i % 13}" for i in range(2000)]
    batches = _batches(many, labels, 8, np.random.default_rng(0))
    for batch in batches:
        assert len({labels[i] for i in batch}) == len(batch)
        texts = [t for i in batch for t in many[i]]
        assert len(set(texts)) == len(texts)
        assert 2 <= len(batch) <= 8
    assert sum(len(b) for b in batches) >= 1990


def test_hit_at_k_by_hand() -> None:
    # 2-d "embeddings" given by hand; held-out h1 is nearest to t1 (solved by w1 = its solver): a hit at k=1;
    # h2 is nearest to t3 (w3) but solved by w2, whose problem t2 is its second neighbour: a hit only at k=2
    vec = {"t1": [1, 0], "t2": [0.6, 0.8], "t3": [0, 1], "h1": [0.9, 0.1], "h2": [0.1, 1.0]}
    solved_by = {"t1": ["w1"], "t2": ["w2"], "t3": ["w3"], "h1": ["w1"], "h2": ["w2"]}

    def embed(texts: Sequence[str]) -> np.ndarray:
        m = np.array([vec[t] for t in texts], dtype=np.float32)
        return m / np.linalg.norm(m, axis=1, keepdims=True)

    split = Split(train=["t1", "t2", "t3"], held_out=["h1", "h2"])
    texts = {p: p for p in vec}
    assert hit_at_k(embed, texts, solved_by, split, k=1) == 0.5
    assert hit_at_k(embed, texts, solved_by, split, k=2) == 1.0
    halves = holdout_split([f"p{i}" for i in range(50)], fraction=0.1, seed=4)
    assert len(halves.held_out) == 5 and halves == holdout_split([f"p{i}" for i in range(50)], fraction=0.1, seed=4)


# -- loading errors --------------------------------------------------------------------------------


def test_model_not_found_names_the_setting_and_the_build_command(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelNotFound) as default_missing:
        load_encoder(data_dir=tmp_path)
    message = str(default_missing.value)
    assert ENV_MODEL in message and "jianglian build-encoder" in message
    assert str(tmp_path / "models" / "jianglian-zh") in message

    with pytest.raises(ModelNotFound) as setting_missing:
        load_encoder(str(tmp_path / "nowhere" / "bge-small-zh-v1.5"))
    assert ENV_MODEL in str(setting_missing.value) and "jianglian build-encoder" in str(setting_missing.value)

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(ModelNotFound) as hub_missing:
        load_encoder("BAAI/bge-small-zh-v1.5")  # a hub name not in the (empty) local cache
    assert ENV_MODEL in str(hub_missing.value)


def test_setting_selects_the_model(zh_model: Path) -> None:
    settings = Settings.from_env({ENV_MODEL: str(zh_model)})
    assert resolve_model(settings.embedding_model) == str(zh_model.resolve())
    assert load_encoder(settings.embedding_model) is load_encoder(str(zh_model))
    clear_loaded()
    assert load_encoder(settings.embedding_model).dim == 32


def test_the_default_model_is_the_one_built_under_the_data_directory(zh_model: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(zh_model, tmp_path / "models" / "jianglian-zh")
    assert resolve_model(data_dir=tmp_path) == str((tmp_path / "models" / "jianglian-zh").resolve())


# -- vector index ----------------------------------------------------------------------------------


def _clustered(n: int, dim: int, seed: int, clusters: int = 50) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32)
    x = centres[rng.integers(clusters, size=n)] + 0.8 * rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_exact_search_matches_a_full_sort() -> None:
    corpus, queries = _clustered(3000, 24, 0), _clustered(40, 24, 1)
    idx, scores = exact_top_k(queries, corpus, 25, query_chunk=7, corpus_chunk=500)
    full = queries @ corpus.T
    expected = np.argsort(-full, axis=1, kind="stable")[:, :25]
    assert np.array_equal(idx, expected)
    assert np.allclose(scores, np.take_along_axis(full, expected, axis=1), atol=1e-6)


def test_ann_index_against_brute_force_oracle() -> None:
    both = _clustered(6100, 32, 2)  # queries from the same distribution as the data, not in the index
    vectors, queries = both[:6000], both[6000:]
    ids = [f"v{i}" for i in range(len(vectors))]
    ann = VectorIndex(vectors[:2500], ids[:2500], ann_threshold=4000)
    assert not ann.uses_ann
    ann.add(ids[2500:], vectors[2500:])  # crossing the threshold switches to HNSW
    assert ann.uses_ann and len(ann) == 6000
    exact = VectorIndex(vectors, ids, backend="exact")
    got_ids, got_scores = ann.search(queries, 50)
    want_ids, want_scores = exact.search(queries, 50)
    recall = np.mean([len(set(g) & set(w)) / 50 for g, w in zip(got_ids, want_ids, strict=True)])
    assert recall >= 0.95
    assert np.all(np.diff(got_scores, axis=1) <= 1e-6)  # best first
    # the scores are true cosines of the returned ids
    for row in range(5):
        for node_id, score in zip(got_ids[row], got_scores[row], strict=True):
            assert score == pytest.approx(float(vectors[int(node_id[1:])] @ queries[row]), abs=1e-5)
    # re-adding an id replaces its vector in both backends
    target = queries[0]
    ann.add(["v7"], target[None, :])
    exact.add(["v7"], target[None, :])
    for index in (ann, exact):
        top, score = index.search(target, 1)
        assert top == [["v7"]] and score[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert len(ann) == 6000


def test_index_edge_cases() -> None:
    empty = VectorIndex(np.zeros((0, 8), dtype=np.float32), [])
    ids, scores = empty.search(np.ones(8, dtype=np.float32), 5)
    assert ids == [[]] and scores.shape == (1, 0)
    small = VectorIndex(np.eye(3, dtype=np.float32), ["a", "b", "c"])
    ids, scores = small.search(np.eye(3, dtype=np.float32)[:1], 10)
    assert ids == [["a", "b", "c"]] and scores.shape == (1, 3)
    with pytest.raises(ValueError):
        small.search(np.ones((1, 4), dtype=np.float32), 1)
    with pytest.raises(ValueError):
        small.add(["d"], np.ones((2, 3), dtype=np.float32))


# -- cache ------------------------------------------------------------------------------------------


class FakeEncoder:
    """A deterministic stand-in: vectors from a hash of (model name, text); counts what it embeds."""

    def __init__(self, name: str = "fake-a", dim: int = 8) -> None:
        self.dim = dim
        self.identity = f"{name}@sha256:{hashlib.sha256(name.encode()).hexdigest()[:16]}"
        self.calls: list[str] = []

    def encode(self, texts: Sequence[str], *, batch_size: int = 64, show_progress: bool | None = None) -> np.ndarray:
        self.calls.extend(texts)
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(f"{self.identity}|{text}".encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).standard_normal(self.dim).astype(np.float32)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)


def _store_with_problems(path: Path | None, n: int) -> MemoryStore:
    store = MemoryStore(path)
    store.apply(WriteBatch(nodes=[NodeRow("Problem", f"p{i}", {"title": f"问题{i}"}) for i in range(n)]))
    return store


def test_cache_embeds_incrementally_and_survives_reopening(tmp_path: Path) -> None:
    store = _store_with_problems(tmp_path / "store", 5)
    encoder = FakeEncoder()
    texts = {f"p{i}": f"问题{i}" for i in range(4)}
    cache = EmbeddingCache(store, encoder)
    ids, matrix = cache.vectors(texts)
    assert ids == list(texts) and matrix.shape == (4, 8)
    assert cache.last_report.embedded == 4 and cache.last_report.reset is None
    assert json.loads(store.get_meta(meta_key("Problem", "embedding")) or "{}") == {
        "dim": 8, "identity": encoder.identity}
    cache.vectors(texts)
    assert len(encoder.calls) == 4  # nothing embedded twice
    texts["p4"] = "问题4"
    _, grown = cache.vectors(texts)
    assert encoder.calls[4:] == ["问题4"] and np.array_equal(grown[:4], matrix)
    # an edited problem is embedded once, on update
    edited = cache.update({"p1": "问题1（已修改）"})
    assert encoder.calls[5:] == ["问题1（已修改）"] and not np.allclose(edited[0], matrix[1])
    store.close()
    reopened = MemoryStore(tmp_path / "store")
    again = EmbeddingCache(reopened, FakeEncoder())
    _, after = again.vectors(texts)
    assert again.last_report.embedded == 0 and again.last_report.reused == 5
    assert np.array_equal(after[1], edited[0])
    reopened.close()


def test_cache_reembeds_on_model_change_and_detects_dimension_mismatch(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = _store_with_problems(None, 3)
    texts = {f"p{i}": f"问题{i}" for i in range(3)}
    first = FakeEncoder("model-a")
    _, old = EmbeddingCache(store, first).vectors(texts)

    second = FakeEncoder("model-b")  # same dimension, other weights
    with pytest.raises(EmbeddingMismatch, match="model-a"):
        EmbeddingCache(store, second, on_mismatch="raise").vectors(texts)
    cache = EmbeddingCache(store, second)
    with caplog.at_level("WARNING", logger="embeddings.cache"):
        _, new = cache.vectors(texts)
    assert "model-a" in (cache.last_report.reset or "") and "model-a" in caplog.text
    assert cache.last_report.embedded == 3 and second.calls == list(texts.values())
    assert not np.allclose(old, new)
    assert json.loads(store.get_meta(meta_key("Problem", "embedding")) or "{}")["identity"] == second.identity

    wider = FakeEncoder("model-b", dim=16)  # the identity text alone would not tell
    wider.identity = second.identity
    with pytest.raises(EmbeddingMismatch, match="dimensions"):
        EmbeddingCache(store, wider, on_mismatch="raise").vectors(texts)
    cache = EmbeddingCache(store, wider)
    _, widened = cache.vectors(texts)
    assert widened.shape == (3, 16) and "dimensions" in (cache.last_report.reset or "")

    # vectors without a model record are never trusted
    store.set_meta(meta_key("Problem", "embedding"), None)
    cache = EmbeddingCache(store, wider)
    cache.vectors(texts)
    assert "no model record" in (cache.last_report.reset or "")


def test_texts_of_nodes() -> None:
    assert problem_text({"title": "标题", "description": None, "skills": ["焊接"]}) == "标题 焊接"
    assert worker_text({"name": "李四", "skills": ["焊接"], "honours": [], "service_menu": ["焊接培训"],
                        "studio": "李四劳模创新工作室"}) == "焊接 焊接培训 劳模创新工作室"


def test_the_ranking_and_the_encoders_read_one_problem_text() -> None:
    from recommender import text as ranking_text

    assert ranking_text.problem_text is problem_text  # one definition (embeddings.texts), imported by the ranking
    row = {"title": " 主轴异响 ", "description": "", "skills": ["数控", None, " "], "district": "亭湖区"}
    assert ranking_text.problem_text(row) == problem_text(row) == "主轴异响 数控"


# -- the packaged multilingual encoder's cached model -------------------------------------------
def test_the_multilingual_model_is_cached_mapped_and_never_trusted_when_damaged(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from embeddings.multilingual import MultilingualEncoder

    texts = ["注塑件缩痕严重，怎么调保压", "PLC program debug 2024", "焊接变形"]
    reference = MultilingualEncoder().encode(texts)  # no cache: the package's own loading
    first = MultilingualEncoder(cache_dir=tmp_path)
    assert np.array_equal(first.encode(texts), reference)
    assert first.load_source == "package, cache written"
    (written,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    second = MultilingualEncoder(cache_dir=tmp_path)
    assert second.identity == first.identity == MultilingualEncoder().identity  # from the manifest, no hashing
    assert np.array_equal(second.preload().encode(texts), reference)
    assert second.load_source == "cache"
    big = second._model._backend.table
    assert not big.flags.writeable and big.base is not None  # mapped from arrays.bin, not a private copy
    maps = Path("/proc/self/maps").read_text()
    assert str(written / "arrays.bin") in maps
    # a cut file, then a zeroed layer in the middle of the arrays (same size, same first and last 64 KB: only the
    # probe text's vector sees it) -> the package is loaded again, with a log line, and the cache rewritten
    arrays = written / "arrays.bin"
    data = arrays.read_bytes()
    arrays.write_bytes(data[: len(data) // 2])
    with caplog.at_level("WARNING", logger="embeddings.multilingual"):
        third = MultilingualEncoder(cache_dir=tmp_path)
        assert np.array_equal(third.encode(texts), reference)
    assert third.load_source == "package, cache written" and "is not used" in caplog.text
    manifest = json.loads((written / "manifest.json").read_text())
    start, size = max(manifest["buffers"][1:], key=lambda span: span[1])  # the largest dense layer
    damaged = bytearray(arrays.read_bytes())
    damaged[start: start + size] = bytes(size)
    arrays.write_bytes(bytes(damaged))
    caplog.clear()
    with caplog.at_level("WARNING", logger="embeddings.multilingual"):
        fourth = MultilingualEncoder(cache_dir=tmp_path)
        assert np.array_equal(fourth.encode(texts), reference)
    assert fourth.load_source == "package, cache written" and "probe" in caplog.text
    assert MultilingualEncoder(cache_dir=tmp_path).preload().load_source == "cache"
