"""Embedding commands: ``build-encoder`` (the project's own text encoder) and ``embed`` (fill the vector cache)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import click

from cli.common import configured_store, settings

__all__ = ["commands", "corpus_from_store"]


def corpus_from_store(
    store: Any,
) -> tuple[dict[str, str], dict[str, list[str]], dict[str, str]]:
    """Problem texts, solvers per problem (from ``SOLVED``) and worker profile texts of a store."""
    from embeddings.texts import problem_text, worker_text

    problems = {row["id"]: problem_text(row) for row in store.iter_nodes("Problem")}
    profiles = {row["id"]: worker_text(row) for row in store.iter_nodes("Worker")}
    solved_by: dict[str, list[str]] = {}
    for rel in store.relationships("SOLVED"):
        solved_by.setdefault(rel.end_id, []).append(rel.start_id)
    return problems, solved_by, profiles


def _nonempty(texts: Iterable[str]) -> list[str]:
    return [t for t in texts if t.strip()]


@click.command("build-encoder")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Model directory [default: <JIANGLIAN_DATA_DIR>/models/jianglian-zh].")
@click.option("--if-missing", is_flag=True, help="Do nothing when a model already exists there.")
@click.option("--seed", default=0, show_default=True, help="Same seed and data give the same model.")
@click.option("--epochs", default=None, type=click.IntRange(min=0),
              help="Fine-tuning epochs [default: the builder's].")
def build_encoder_cmd(out_dir: Path | None, if_missing: bool, seed: int, epochs: int | None) -> None:
    """Build the project's own Chinese text encoder from the problems and workers in the configured store.

    The result is a sentence-transformers model; point JIANGLIAN_EMBEDDING_MODEL at another model
    (e.g. a local copy of BAAI/bge-small-zh-v1.5) to use that instead.
    """
    from embeddings.builder import BuildConfig, build_encoder, mine_grouped_pairs
    from embeddings.encoder import clear_loaded, default_model_dir
    from embeddings.errors import BuildError

    target = out_dir if out_dir is not None else default_model_dir(settings().data_dir)
    if if_missing and (target / "modules.json").is_file():
        click.echo(f"text encoder already built at {target}")
        return
    started = time.perf_counter()
    with configured_store() as store:
        problems, solved_by, profiles = corpus_from_store(store)
    pairs, groups = mine_grouped_pairs(problems, solved_by, profiles, seed=seed)
    n_solved = sum(1 for p in problems if solved_by.get(p))
    click.echo(f"corpus: {len(problems)} problems ({n_solved} solved), {len(profiles)} workers; "
               f"{len(pairs)} training pairs")
    config = BuildConfig()
    try:
        build_encoder(
            _nonempty([*problems.values(), *profiles.values()]),
            pairs,
            target,
            seed=seed,
            dim=config.dim,
            epochs=config.epochs if epochs is None else epochs,
            groups=groups,
            config=config,
            progress=click.echo,
        )
    except BuildError as err:
        raise click.ClickException(str(err)) from err
    clear_loaded()
    click.echo(f"text encoder saved to {target} in {time.perf_counter() - started:.1f} s "
               f"(use it with JIANGLIAN_EMBEDDING_MODEL={target} or leave the setting unset)")


@click.command("embed")
@click.option("--model", "model", default=None,
              help="Encoder name or path [default: JIANGLIAN_EMBEDDING_MODEL, else the ranking's use-multilingual-v3].")
def embed_cmd(model: str | None) -> None:
    """Embed every problem and worker profile not yet cached in the configured store (the vectors the served
    ranking reads: the same encoder by default, so the two never replace each other's vectors)."""

    from embeddings.cache import EmbeddingCache
    from embeddings.encoder import RANKING_DEFAULT, load_encoder
    from embeddings.errors import EmbeddingError
    from embeddings.texts import problem_text, worker_text

    try:
        encoder = load_encoder(model or settings().embedding_model or RANKING_DEFAULT, data_dir=settings().data_dir)
    except EmbeddingError as err:
        raise click.ClickException(str(err)) from err
    with configured_store() as store:
        for label, text_of in (("Problem", problem_text), ("Worker", worker_text)):
            texts = {row["id"]: text_of(row) for row in store.iter_nodes(label)}
            cache = EmbeddingCache(store, encoder, label=label)
            cache.vectors(texts)
            report = cache.last_report
            if report.reset:
                click.echo(f"{label}: {report.reset}; embedded again", err=True)
            click.echo(f"{label}: {report.embedded} embedded, {report.reused} already cached ({encoder.identity})")


commands: list[click.Command] = [build_encoder_cmd, embed_cmd]
