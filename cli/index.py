"""The stored ranking index: ``jianglian index build`` (a full build, written as files) and ``jianglian index status``.

``jianglian serve`` (and ``jianglian recommend``) map the files of :attr:`graph.config.Settings.ranking_index_dir`
at start and replay the store's changes since they were written (:mod:`recommender.index_files`); ``index build``
is what a nightly job runs so that a restart replays a day at most. It may run while the site is up: a new
version is written beside the mapped one and named current only once it is complete.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

import click

from cli.common import configured_store, fail, settings
from cli.rank import _load_encoder, _ranking_encoder_name

__all__ = ["commands"]

_ENCODER_HELP = ("Dense text encoder (name or path) [default: JIANGLIAN_EMBEDDING_MODEL, else use-multilingual-v3]; "
                 "'none' for TF-IDF only. Must be the one `serve` ranks with, or serve will not use the files.")


@click.group("index")
def index_group() -> None:
    """The ranking index files that `serve` maps at start (build, status)."""


@index_group.command("build")
@click.option("--encoder", "encoder_name", default=None, help=_ENCODER_HELP)
def index_build(encoder_name: str | None) -> None:
    """Build the ranking index from the store and write it as a new version of the index files."""
    from recommender.engine import RankConfig, Recommender

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    engine_log = logging.getLogger("recommender.engine")
    engine_log.addHandler(handler)
    engine_log.setLevel(logging.INFO)
    try:
        started = time.perf_counter()
        click.echo("loading the encoder ...", err=True)
        encoder = _load_encoder(_ranking_encoder_name(encoder_name))
        where = settings().ranking_index_dir
        with configured_store() as store:
            rec = Recommender(store, encoder=encoder, config=RankConfig(model_dir=settings().models_dir))
            click.echo(f"writing the files to {where} ...", err=True)
            rec.config.index_dir = where
            path = rec.save_index()
            if path is None:
                fail(f"the index was built but not written to {where} (see the message above)")
            state = rec.index_state()
    finally:
        engine_log.removeHandler(handler)
    click.echo(f"index at feed position {state['revision']} written to {path} "
               f"(build {state.get('build_seconds', 0):.1f} s, write {state.get('save_seconds', 0):.1f} s, "
               f"total {time.perf_counter() - started:.1f} s)")


@index_group.command("status")
@click.option("--encoder", "encoder_name", default=None, help=_ENCODER_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def index_status(encoder_name: str | None, as_json: bool) -> None:
    """Whether the index files can be used by `serve`, and how far behind the store they are."""
    from recommender.index_files import status

    encoder = _load_encoder(_ranking_encoder_name(encoder_name))
    with configured_store() as store:
        got = status(settings().ranking_index_dir, store, encoder=encoder)
    if as_json:
        click.echo(json.dumps(got.to_dict(), ensure_ascii=False, indent=1))
        return
    lines: list[tuple[str, Any]] = [
        ("directory", got.directory),
        ("version", got.version or "-"),
        ("written", got.created or "-"),
        ("feed position", f"{got.revision} (store: {got.store_revision})" if got.revision is not None else "-"),
        ("changes to replay", "-" if got.lag is None else got.lag),
        ("size", f"{got.bytes / 1e6:.1f} MB"),
        ("usable", "yes" if got.usable else f"no: {got.reason}"),
    ]
    for key in ("workers", "history_problems", "walk_nodes", "encoder"):
        if key in got.describe:
            lines.append((key.replace("_", " "), got.describe[key]))
    for key, value in lines:
        click.echo(f"{key:>18}: {value}")
    if got.usable and got.lag is None:
        click.echo("the change feed no longer lists the changes since: `serve` will rebuild (run `jianglian index "
                   "build`)")


commands: list[click.Command] = [index_group]
