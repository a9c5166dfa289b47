"""Build the project's own text encoder from its corpus, offline, in well under a minute on two CPU cores.

No pretrained Chinese model can be downloaded where Jianglian runs, so :func:`build_encoder` makes one from
the problems and worker profiles already in the store, and saves it as an ordinary sentence-transformers
model (``SentenceTransformer(path)`` loads it, no project code needed): ``StaticEmbedding -> Normalize``.

1. **Tokenizer** (:mod:`embeddings.vocab`): a Unigram model over characters, frequent Chinese character
   bigrams and Latin words/sub-words, counted from the corpus.
2. **Initialisation by LSA**: TF-IDF over those tokens, then truncated SVD to ``dim``. Row ``t`` of the
   embedding table is ``idf[t] * V[t] * sigma ** sv_power``, so the mean of a text's token vectors is the text's
   LSA projection (weighted by the singular values, which lets co-occurrence, not rare noise directions, decide
   how close two texts with different words are). Before any training the encoder is a dense TF-IDF.
3. **Fine-tuning** with ``MultipleNegativesRankingLoss`` (symmetric) on pairs mined from solved history
   (:func:`mine_pairs`): two problems solved by the same worker, a problem and its solver's profile. In-batch
   negatives never come from the anchor's own worker (``groups``), so they are true negatives. Stage one learns
   a weight per token over the fixed LSA vectors (which tokens tell solvers apart; few parameters, so it
   generalises from a few thousand pairs); stage two tunes the vectors with a small learning rate.

Why these choices, with the measurements: docs/embeddings.md. Training runs its own small loop over
pre-tokenised ids with the sentence-transformers loss: ``SentenceTransformerTrainer`` needs ``datasets`` and
``accelerate``, which the project does not install, and the loop is what makes the build exactly reproducible.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from embeddings.errors import BuildError

__all__ = [
    "BUILD_INFO",
    "BuildConfig",
    "build_encoder",
    "mine_grouped_pairs",
    "mine_pairs",
]

log = logging.getLogger(__name__)

#: File written beside the model with what it was built from (read by ``jianglian build-encoder``).
BUILD_INFO = "jianglian_build.json"

Progress = Callable[[str], None]


@dataclass(frozen=True)
class BuildConfig:
    """Hyper-parameters of :func:`build_encoder` (defaults chosen by measurement, see docs/embeddings.md).

    Fine-tuning has two stages, both with ``MultipleNegativesRankingLoss``: ``epochs`` of learning one weight
    per token over the fixed LSA vectors (a learned IDF: which tokens tell solvers apart; few parameters, so it
    generalises from a few thousand pairs), then ``table_epochs`` of tuning the vectors themselves.
    """

    dim: int = 256
    epochs: int = 5
    lr: float = 0.05
    table_epochs: int = 3
    table_lr: float = 0.002
    sv_power: float = 1.0
    batch_size: int = 256
    scale: float = 20.0
    symmetric: bool = True
    max_vocab: int = 60_000
    min_df: int = 2
    han_max_n: int = 2
    latin_max_n: int = 4
    seed: int = 0


# -- pairs ------------------------------------------------------------------------------------


def mine_grouped_pairs(
    problems: Mapping[str, str],
    solved_by: Mapping[str, Sequence[str]],
    profiles: Mapping[str, str] | None = None,
    *,
    max_per_worker: int = 200,
    seed: int = 0,
) -> tuple[list[tuple[str, str]], list[str]]:
    """Training pairs from solved history, each with the worker that makes it a pair.

    For every worker, each solved problem (at most ``max_per_worker`` of them, sampled, so that a few
    prolific solvers do not dominate) is paired with another problem the same worker solved, and with the
    worker's profile text when there is one.

    Parameters
    ----------
    problems
        ``{problem id: text}``; problems missing here are ignored.
    solved_by
        ``{problem id: [worker ids]}``.
    profiles
        ``{worker id: profile text}`` (see :func:`embeddings.texts.worker_text`).

    Returns
    -------
    pairs, groups
        ``pairs[i]`` is ``(anchor text, positive text)``; ``groups[i]`` is the worker id behind it.

    Examples
    --------
    >>> pairs, groups = mine_grouped_pairs({"p1": "a", "p2": "b"}, {"p1": ["w"], "p2": ["w"]}, {"w": "skills"})
    >>> sorted(pairs), groups
    ([('a', 'b'), ('a', 'skills'), ('b', 'a'), ('b', 'skills')], ['w', 'w', 'w', 'w'])
    """
    rng = np.random.default_rng(seed)
    by_worker: dict[str, list[str]] = {}
    for problem in sorted(solved_by):
        if problem not in problems:
            continue
        for worker in solved_by[problem]:
            by_worker.setdefault(worker, []).append(problem)
    profiles = profiles or {}
    pairs: list[tuple[str, str]] = []
    groups: list[str] = []
    for worker in sorted(by_worker):
        solved = sorted(set(by_worker[worker]))
        if len(solved) > max_per_worker:
            solved = sorted(rng.choice(solved, size=max_per_worker, replace=False).tolist())
        profile = profiles.get(worker, "").strip()
        for i, problem in enumerate(solved):
            if len(solved) > 1:
                j = int(rng.integers(len(solved) - 1))
                other = solved[j if j < i else j + 1]
                if problems[problem] != problems[other]:
                    pairs.append((problems[problem], problems[other]))
                    groups.append(worker)
            if profile:
                pairs.append((problems[problem], profile))
                groups.append(worker)
    return pairs, groups


def mine_pairs(
    problems: Mapping[str, str],
    solved_by: Mapping[str, Sequence[str]],
    profiles: Mapping[str, str] | None = None,
    *,
    max_per_worker: int = 200,
    seed: int = 0,
) -> list[tuple[str, str]]:
    """Training pairs from solved history (see :func:`mine_grouped_pairs`, which also says whose pair it is)."""
    return mine_grouped_pairs(problems, solved_by, profiles, max_per_worker=max_per_worker, seed=seed)[0]


# -- batches ----------------------------------------------------------------------------------


def _batches(
    pairs: Sequence[tuple[str, str]],
    groups: Sequence[str],
    batch_size: int,
    rng: np.random.Generator,
) -> list[list[int]]:
    """Shuffled batches in which no group and no text occurs twice (so every in-batch negative is one).

    Each pair goes to the first batch that is not full and comes after every batch already holding its
    group or one of its texts: linear time, and a prolific worker's pairs spread over successive batches.
    Batches left with a single pair (the tail of the most prolific groups) are dropped.
    """
    batches: list[list[int]] = []
    last: dict[str, int] = {}
    next_open: list[int] = []  # next_open[b]: a batch index >= b that may have room (path-compressed)

    def open_from(b: int) -> int:
        root = b
        while root < len(batches) and len(batches[root]) >= batch_size:
            root = next_open[root]
        while b < len(batches) and b != root:  # compress the path just walked
            b, next_open[b] = next_open[b], root
        return root

    for idx in rng.permutation(len(pairs)).tolist():
        anchor, positive = pairs[idx]
        keys = ("g:" + groups[idx], "t:" + anchor, "t:" + positive)
        b = open_from(max(last.get(k, -1) for k in keys) + 1)
        if b == len(batches):
            batches.append([])
            next_open.append(b + 1)
        batches[b].append(idx)
        if len(batches[b]) >= batch_size:
            next_open[b] = b + 1
        for k in keys:
            last[k] = b
    return [batch for batch in batches if len(batch) >= 2]


# -- build ------------------------------------------------------------------------------------


def _lsa_embeddings(
    token_ids: Sequence[Sequence[int]], vocab_size: int, dim: int, seed: int, sv_power: float = 0.0
) -> np.ndarray:
    """Token table whose mean over a text equals the text's LSA (TF-IDF + truncated SVD) projection."""
    import scipy.sparse as sp
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfTransformer

    indptr = np.zeros(len(token_ids) + 1, dtype=np.int64)
    indptr[1:] = np.cumsum([len(ids) for ids in token_ids])
    indices = np.fromiter((i for ids in token_ids for i in ids), dtype=np.int64, count=int(indptr[-1]))
    counts = sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr),
                           shape=(len(token_ids), vocab_size))
    counts.sum_duplicates()
    tfidf = TfidfTransformer(sublinear_tf=False)
    weighted = tfidf.fit_transform(counts)
    rank = min(dim, weighted.shape[0] - 1, vocab_size - 1)
    rng = np.random.default_rng(seed)
    table = np.zeros((vocab_size, dim), dtype=np.float32)
    if rank >= 1:
        svd = TruncatedSVD(n_components=rank, algorithm="randomized", n_iter=5, random_state=seed)
        svd.fit(weighted)
        scale = svd.singular_values_ ** sv_power if sv_power else 1.0
        table[:, :rank] = (svd.components_.T * scale * tfidf.idf_[:, None]).astype(np.float32)
    seen = np.asarray(counts.sum(axis=0)).ravel() > 0
    norms = np.linalg.norm(table[seen], axis=1)
    unit = float(np.median(norms[norms > 0])) if np.any(norms > 0) else 1.0
    table /= unit
    if rank < dim:
        # a tiny corpus leaves spare dimensions: small noise lets fine-tuning use them
        table[:, rank:] = rng.normal(0.0, 0.01, size=(vocab_size, dim - rank)).astype(np.float32)
    table[0] = 0.0  # <unk> carries no meaning
    return table


class _Trainer:
    """The fine-tuning loop shared by both stages: batches of pre-tokenised pairs, in-batch negatives."""

    def __init__(self, *, loss: Any, ids_of: Mapping[str, Sequence[int]], pairs: Sequence[tuple[str, str]],
                 groups: Sequence[str], batch_size: int, rng: np.random.Generator, show_progress: bool | None,
                 say: Progress) -> None:
        self.loss = loss
        self.ids_of = ids_of
        self.pairs = pairs
        self.groups = groups
        self.batch_size = batch_size
        self.rng = rng
        self.show_progress = show_progress
        self.say = say
        self.steps = 0
        self.losses: list[float] = []

    def _column(self, embed: Callable[[Any, Any], Any], batch: Sequence[int], side: int) -> Any:
        import torch

        seqs = [self.ids_of[self.pairs[i][side]] for i in batch]
        offsets = torch.tensor([0, *np.cumsum([len(s) for s in seqs[:-1]])], dtype=torch.long)
        flat = torch.tensor([t for s in seqs for t in s], dtype=torch.long)
        return embed(flat, offsets)

    def run(self, stage: str, embed: Callable[[Any, Any], Any], optimizer: Any, epochs: int) -> None:
        """``epochs`` passes of ``optimizer``; ``embed(flat_ids, offsets)`` gives a batch's vectors."""
        import torch
        from tqdm.auto import tqdm

        schedule = [_batches(self.pairs, self.groups, self.batch_size, self.rng) for _ in range(epochs)]
        if not any(schedule):
            self.say(f"{stage}: no batch with an in-batch negative can be formed, skipped")
            return
        disable = None if self.show_progress is None else not self.show_progress
        with tqdm(total=sum(len(b) for b in schedule), desc=stage, unit="step", disable=disable) as bar:
            for epoch, batches in enumerate(schedule, 1):
                total = 0.0
                for batch in batches:
                    columns = [self._column(embed, batch, side) for side in (0, 1)]
                    loss = self.loss.compute_loss_from_embeddings(columns, torch.arange(len(batch)))  # labels unused
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
                    total += loss.item()
                    self.steps += 1
                    bar.update(1)
                self.losses.append(total / len(batches))
                self.say(f"{stage} epoch {epoch}/{epochs}: mean loss {self.losses[-1]:.4f} over {len(batches)} batches")


def _save_atomically(model: Any, out_dir: Path, info: dict[str, Any]) -> None:
    """Save into a sibling temporary directory, then swap it in, so a crash never leaves half a model."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save(str(tmp), create_model_card=False)
    (tmp / BUILD_INFO).write_text(json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
    old = out_dir.with_name(out_dir.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out_dir.exists():
        out_dir.rename(old)
    tmp.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def build_encoder(
    texts: Sequence[str],
    pairs: Sequence[tuple[str, str]],
    out_dir: Path,
    *,
    seed: int = 0,
    dim: int = 256,
    epochs: int = 5,
    groups: Sequence[str] | None = None,
    config: BuildConfig | None = None,
    show_progress: bool | None = None,
    progress: Progress | None = None,
) -> Path:
    """Build the domain encoder from a corpus and save it as a sentence-transformers model in ``out_dir``.

    Parameters
    ----------
    texts
        The unlabelled corpus: problem texts and worker profile texts (the vocabulary and LSA come from it).
        Pair texts are added to it.
    pairs
        ``(anchor, positive)`` texts for fine-tuning, e.g. from :func:`mine_grouped_pairs`. May be empty: the
        result is then the LSA encoder alone.
    out_dir
        Where to save; replaced atomically if it exists.
    seed, dim, epochs
        Same seed and data give the same model, bit for bit.
    groups
        Optional label per pair (the worker); pairs with the same label are never in-batch negatives.
    config
        Further hyper-parameters; ``seed``, ``dim`` and ``epochs`` given here override its fields.
    show_progress
        Show a tqdm bar over the training steps (``None``: only on a terminal).
    progress
        Called with a one-line message after each stage (the CLI prints them).

    Returns
    -------
    Path
        ``out_dir``.

    Raises
    ------
    BuildError
        If the corpus is empty or ``groups`` does not match ``pairs``.
    """
    import torch
    import torch.nn.functional as F
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss
    from sentence_transformers.sentence_transformer.modules import Normalize, StaticEmbedding

    from embeddings.vocab import build_tokenizer

    cfg = config or BuildConfig()
    cfg = BuildConfig(**{**asdict(cfg), "seed": seed, "dim": dim, "epochs": epochs})
    if groups is not None and len(groups) != len(pairs):
        raise BuildError(f"{len(groups)} groups for {len(pairs)} pairs")
    if cfg.dim < 2:
        raise BuildError("dim must be at least 2")
    say = progress or (lambda message: log.info("%s", message))
    started = time.perf_counter()

    corpus = list(dict.fromkeys(t for t in [*texts, *(s for pair in pairs for s in pair)] if t and t.strip()))
    if not corpus:
        raise BuildError("the corpus is empty: load problems and workers first")

    tokenizer = build_tokenizer(corpus, max_vocab=cfg.max_vocab, min_df=cfg.min_df,
                                han_max_n=cfg.han_max_n, latin_max_n=cfg.latin_max_n)
    encoded = tokenizer.encode_batch(corpus, add_special_tokens=False)
    token_ids = [e.ids for e in encoded]
    vocab_size = tokenizer.get_vocab_size()
    say(f"vocabulary: {vocab_size} pieces from {len(corpus)} texts")

    table = _lsa_embeddings(token_ids, vocab_size, cfg.dim, cfg.seed, cfg.sv_power)
    say(f"LSA initialisation: {cfg.dim} dimensions ({time.perf_counter() - started:.1f} s)")

    torch_state = torch.random.get_rng_state()
    torch_threads = torch.get_num_threads()
    # one thread: the steps are small (more threads only add spin-waiting, badly so on a busy machine),
    # and a fixed reduction order keeps the result identical across machines with different core counts
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    try:
        static = StaticEmbedding(tokenizer, embedding_weights=torch.from_numpy(table))
        model = SentenceTransformer(modules=[static, Normalize()], device="cpu")
        trainer = _Trainer(
            loss=MultipleNegativesRankingLoss(
                model,
                scale=cfg.scale,
                directions=("query_to_doc", "doc_to_query") if cfg.symmetric else ("query_to_doc",),
                partition_mode="per_direction" if cfg.symmetric else "joint",
            ),
            ids_of=dict(zip(corpus, token_ids, strict=True)),
            pairs=pairs,
            groups=list(groups) if groups is not None else [f"#{i}" for i in range(len(pairs))],
            batch_size=cfg.batch_size,
            rng=np.random.default_rng(cfg.seed),
            show_progress=show_progress,
            say=lambda message: say(f"{message} ({time.perf_counter() - started:.1f} s)"),
        )
        # The loss compares cosines, so a sum of token vectors trains exactly like the module's mean, and
        # costs only the tokens of the batch (per-sample weights, sparse gradients) instead of the whole table.
        if pairs and cfg.epochs > 0:
            base = static.embedding.weight.detach().clone()
            token_weight = torch.nn.Parameter(torch.ones(vocab_size))
            trainer.run("token weights", lambda flat, offsets: F.embedding_bag(
                flat, base, offsets, mode="sum", per_sample_weights=token_weight[flat]),
                torch.optim.Adam([token_weight], lr=cfg.lr), cfg.epochs)
            with torch.no_grad():
                static.embedding.weight.copy_(base * token_weight[:, None])
        if pairs and cfg.table_epochs > 0:
            vectors = torch.nn.Parameter(static.embedding.weight.detach().clone())
            trainer.run("token vectors", lambda flat, offsets: F.embedding_bag(
                flat, vectors, offsets, mode="sum", sparse=True),
                torch.optim.SparseAdam([vectors], lr=cfg.table_lr), cfg.table_epochs)
            with torch.no_grad():
                static.embedding.weight.copy_(vectors)
        with torch.no_grad():
            static.embedding.weight[0].zero_()  # <unk> carries no meaning
        model.eval()
    finally:
        torch.random.set_rng_state(torch_state)
        torch.set_num_threads(torch_threads)

    weights = static.embedding.weight.detach().numpy()
    info = {
        "format": 1,
        "method": "char n-gram StaticEmbedding, LSA init, MultipleNegativesRankingLoss on token weights (+ vectors)",
        "config": asdict(cfg),
        "texts": len(corpus),
        "pairs": len(pairs),
        "vocab_size": vocab_size,
        "steps": trainer.steps,
        "epoch_losses": trainer.losses,
        "seconds": round(time.perf_counter() - started, 2),
        "weights_sha256": hashlib.sha256(np.ascontiguousarray(weights).tobytes()).hexdigest(),
    }
    out_dir = Path(out_dir)
    _save_atomically(model, out_dir, info)
    say(f"saved {out_dir} ({info['seconds']} s)")
    return out_dir
