"""Ranking commands: ``recommend``, ``evaluate``, ``train-ranker``."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from cli.common import configured_store, settings

__all__ = ["commands"]


def _echo_err(message: str) -> None:
    click.echo(message, err=True)


def _load_encoder(name: str | None) -> Any:
    from embeddings.encoder import NO_ENCODER, load_encoder

    if not name or name.strip().lower() in NO_ENCODER:
        return None

    try:
        return load_encoder(name, data_dir=settings().data_dir)
    except Exception as err:  # noqa: BLE001 - any loading failure is a user-facing error here
        raise click.ClickException(f"cannot load encoder {name!r}: {err}") from err


def _ranking_encoder_name(option: str | None) -> str:
    """The option, else ``JIANGLIAN_EMBEDDING_MODEL``, else the ranking's default encoder."""
    from embeddings.encoder import RANKING_DEFAULT

    return option or settings().embedding_model or RANKING_DEFAULT


@click.command("evaluate")
@click.argument("dataset_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--queries", "queries_path", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Queries (JSON Lines): id, problem, candidates (optional), expected (optional).")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write one ranking per query (JSON Lines).")
@click.option("--seed", default=0, show_default=True, help="Seed of the training pseudo-queries.")
@click.option("--fusion", type=click.Choice(["auto", "default", "weights", "learned"]), default="auto",
              show_default=True, help="auto: the learned correction only when it beats the default fusion with "
              "confidence (paired bootstrap on pseudo-queries); weights is an alias of default.")
@click.option("--encoder", "encoder_name", default=None,
              help="Dense text encoder (name or path) [default: JIANGLIAN_EVAL_ENCODER, else use-multilingual-v3]; "
                   "'none' for TF-IDF only.")
@click.option("--ablation", is_flag=True, help="Also print the metrics of every single signal.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def evaluate_cmd(dataset_dir: Path, queries_path: Path, out_path: Path, seed: int, fusion: str,
                 encoder_name: str | None, ablation: bool, as_json: bool) -> None:
    """Rank each query's candidates against DATASET_DIR loaded into a fresh store; print MRR, P@1, P@3, nDCG@10."""
    from embeddings.encoder import RANKING_DEFAULT
    from graph.errors import GraphError
    from recommender.errors import RecommenderError
    from recommender.evaluate import evaluate_dataset

    encoder = _load_encoder(encoder_name or settings().eval_encoder or RANKING_DEFAULT)
    try:
        report = evaluate_dataset(dataset_dir, queries_path, out_path, seed=seed, encoder=encoder, fusion=fusion,
                                  ablation=ablation, log=_echo_err)
    except (RecommenderError, GraphError, OSError) as err:
        raise click.ClickException(str(err)) from err
    if as_json:
        click.echo(json.dumps({"metrics": report.metrics, "chosen": report.chosen, "why": report.why,
                               "model_version": report.model_version, "validation": report.validation,
                               "ablation": report.ablation, "timings": report.timings}, ensure_ascii=False))
        return
    m = report.metrics
    click.echo(f"queries {int(m['queries'])}  fusion {report.chosen} ({report.model_version})")
    click.echo(f"why: {report.why}")
    click.echo(f"MRR {m['MRR']:.4f}  P@1 {m['P@1']:.4f}  P@3 {m['P@3']:.4f}  nDCG@10 {m['nDCG@10']:.4f}")
    if report.ablation:
        click.echo("signal            MRR     P@1     P@3     nDCG@10")
        for name, sm in report.ablation.items():
            click.echo(f"{name:16s}  {sm['MRR']:.4f}  {sm['P@1']:.4f}  {sm['P@3']:.4f}  {sm['nDCG@10']:.4f}")
    click.echo(f"time {report.timings.get('total', 0.0):.1f}s", err=True)
    sys.stdout.flush()


def _models_dir() -> Path:
    return settings().models_dir


@click.command("train-ranker")
@click.option("--seed", default=0, show_default=True, help="Seed of the training pseudo-queries.")
@click.option("--holdout", default=0.1, show_default=True, help="Share of the newest solved problems used as queries.")
@click.option("--encoder", "encoder_name", default=None,
              help="Dense text encoder (name or path) [default: JIANGLIAN_EMBEDDING_MODEL, else "
                   "use-multilingual-v3]; 'none' for TF-IDF only.")
@click.option("--if-missing", is_flag=True, help="Do nothing when a ranking model is already saved.")
def train_ranker_cmd(seed: int, holdout: float, encoder_name: str | None, if_missing: bool) -> None:
    """Choose the fusion on the configured store's history (the default, or a learned correction that beats it
    with confidence); save it under JIANGLIAN_DATA_DIR/models, where `serve` picks it up."""
    from graph.projection import Projection
    from recommender.training import train_ranker

    if if_missing and (_models_dir() / "ranker.json").is_file():
        click.echo(f"ranking model already saved at {_models_dir() / 'ranker.json'}")
        return

    encoder = _load_encoder(_ranking_encoder_name(encoder_name))
    with configured_store() as store:
        proj = Projection.from_store(store)
    trained = train_ranker(proj, encoder=encoder, holdout=holdout, seed=seed, log=_echo_err)
    path = trained.save(_models_dir())
    click.echo(f"chosen {trained.chosen}; model {trained.version}; saved to {path}")
    click.echo(f"why: {trained.meta.get('why', '')}")


@click.command("recommend")
@click.argument("problem", required=False)
@click.option("--title", default=None, help="Title of a new problem (instead of a stored PROBLEM id).")
@click.option("--description", default="", help="Description of a new problem.")
@click.option("--skill", "skills", multiple=True, help="Required skill (repeatable).")
@click.option("--enterprise", "enterprise_id", default=None, help="Enterprise id of a new problem.")
@click.option("--district", default=None, help="District of a new problem.")
@click.option("--service-type", default=None, help="Service type (技术帮扶, 技能培训, ...).")
@click.option("-n", "n", default=10, show_default=True, help="How many workers.")
@click.option("--encoder", "encoder_name", default=None,
              help="Dense text encoder (name or path) [default: JIANGLIAN_EMBEDDING_MODEL, else "
                   "use-multilingual-v3]; 'none' for TF-IDF only.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (with explanations).")
def recommend_cmd(problem: str | None, title: str | None, description: str, skills: tuple[str, ...],
                  enterprise_id: str | None, district: str | None, service_type: str | None, n: int,
                  encoder_name: str | None, as_json: bool) -> None:
    """Rank workers for a stored PROBLEM id or a new problem given by --title."""
    from recommender.engine import RankConfig, Recommender
    from recommender.errors import RecommenderError

    if (problem is None) == (title is None):
        raise click.UsageError("give either a stored PROBLEM id or --title for a new problem")
    query: Any = problem
    if title is not None:
        query = {"title": title, "description": description, "skills": list(skills), "enterprise_id": enterprise_id,
                 "district": district, "service_type": service_type}
    encoder = _load_encoder(_ranking_encoder_name(encoder_name))
    with configured_store() as store:
        try:
            rec = Recommender(store, encoder=encoder, config=RankConfig(model_dir=_models_dir(),
                                                                        index_dir=settings().ranking_index_dir))
            recs = rec.recommend(query, n=n)
        except (RecommenderError, ValueError) as err:
            raise click.ClickException(str(err)) from err
    if as_json:
        click.echo(json.dumps({"model_version": rec.model_version, "results": [r.to_dict() for r in recs]},
                              ensure_ascii=False, indent=1))
        return
    click.echo(f"model {rec.model_version}")
    for i, r in enumerate(recs, 1):
        click.echo(f"{i:2d}. {r.worker_id}  {r.score:.3f}")
        if r.explanation is not None:
            for reason in r.explanation.reasons[:4]:
                click.echo(f"      {reason}")


commands: list[click.Command] = [recommend_cmd, evaluate_cmd, train_ranker_cmd]
