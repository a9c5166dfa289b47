"""Ranking commands: ``recommend``, ``evaluate``, ``train-ranker``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

__all__ = ["commands"]


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _load_encoder(name: str | None) -> Any:
    if not name:
        return None
    try:
        from embeddings.encoder import load_encoder
    except ImportError as err:  # the embeddings package is optional for ranking
        raise click.ClickException(f"cannot load an encoder: {err}") from err
    try:
        return load_encoder(name)
    except Exception as err:  # noqa: BLE001 - any loading failure is a user-facing error here
        raise click.ClickException(f"cannot load encoder {name!r}: {err}") from err


@click.command("evaluate")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--queries", "queries_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Queries (JSON Lines): id, problem, candidates (optional), expected (optional).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write one ranking per query (JSON Lines).")
@click.option("--seed", default=0, show_default=True, help="Seed of the training pseudo-queries.")
@click.option("--fusion", type=click.Choice(["auto", "weights", "learned"]), default="auto", show_default=True,
              help="auto: the learned fusion only when it beats the weights on the validation slice.")
@click.option("--encoder", "encoder_name", default=None,
              help="Dense text encoder (name or path); TF-IDF only when absent.")
@click.option("--ablation", is_flag=True, help="Also print the metrics of every single signal.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate_cmd(dataset_dir: Path, queries_path: Path, out_path: Path, seed: int, fusion: str,
                 encoder_name: str | None, ablation: bool, as_json: bool) -> None:
    """Rank each query's candidates against DATASET_DIR loaded into a fresh store; print MRR, P@1, P@3, nDCG@10."""
    from graph.errors import GraphError
    from recommender.errors import RecommenderError
    from recommender.evaluate import evaluate_dataset

    encoder = _load_encoder(encoder_name or os.environ.get("JIANGLIAN_EVAL_ENCODER"))
    try:
        report = evaluate_dataset(dataset_dir, queries_path, out_path, seed=seed, encoder=encoder, fusion=fusion,
                                  ablation=ablation, log=_echo_err)
    except (RecommenderError, GraphError, OSError) as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        click.echo(json.dumps({"metrics": report.metrics, "chosen": report.chosen,
                               "model_version": report.model_version, "validation": report.validation,
                               "ablation": report.ablation, "timings": report.timings}, ensure_ascii=False))
        return
    m = report.metrics
    click.echo(f"queries {int(m['queries'])}  fusion {report.chosen} ({report.model_version})")
    click.echo(f"MRR {m['MRR']:.4f}  P@1 {m['P@1']:.4f}  P@3 {m['P@3']:.4f}  nDCG@10 {m['nDCG@10']:.4f}")
    if report.ablation:
        click.echo("signal            MRR     P@1     P@3     nDCG@10")
        for name, sm in report.ablation.items():
            click.echo(f"{name:16s}  {sm['MRR']:.4f}  {sm['P@1']:.4f}  {sm['P@3']:.4f}  {sm['nDCG@10']:.4f}")
    click.echo(f"time {report.timings.get('total', 0.0):.1f}s", err=True)
    sys.stdout.flush()


commands: list[click.Command] = [evaluate_cmd]
