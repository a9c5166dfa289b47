"""Data commands: ``load``, ``export``, ``demo``, ``neo4j``, ``stats``."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import click
from tqdm import tqdm

from cli.common import configured_store
from graph.dataset import export_dataset, load_dataset
from graph.errors import DatasetError, GraphError
from graph.store import GraphStore

__all__ = ["commands"]


@click.command("load")
@click.argument("directory", required=False, type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Load the good rows and report the bad ones.")
@click.option("--undo", is_flag=True,
              help="Neo4j: undo a load that did not finish (killed halfway), or finish one killed while committing.")
def load_cmd(directory: Path | None, skip_invalid: bool, undo: bool) -> None:
    """Validate and import a dataset directory into the configured store (idempotent, all or nothing).

    Into Neo4j a large dataset is written in chunks tagged with a load id and committed at the end; a load
    killed halfway is undone by the next load, or by ``jianglian load --undo``.
    """
    from graph.neo4j_load import LoadInProgress

    def say(message: str) -> None:
        click.echo(message, err=True)

    if undo == (directory is not None):
        raise click.UsageError("give a DIRECTORY to load, or --undo alone")
    with configured_store() as store:
        if undo:
            _undo_load(store, say)
            return
        assert directory is not None
        with tqdm(desc="loading", unit="row", disable=None) as bar:
            try:
                report = load_dataset(store, directory, skip_invalid=skip_invalid, progress=bar.update, log=say)
            except DatasetError as err:
                for row_error in err.errors:
                    click.echo(str(row_error), err=True)
                raise click.ClickException(
                    f"{len(err.errors)} invalid row(s); nothing was written (use --skip-invalid to load the rest)"
                ) from err
            except LoadInProgress as err:
                raise click.ClickException(str(err)) from err
            except GraphError as err:
                raise click.ClickException(f"{err}; nothing of this load was kept") from err
    for row_error in report.skipped:
        click.echo(f"skipped {row_error}", err=True)
    rows = ", ".join(f"{label} {n}" for label, n in report.rows.items())
    click.echo(f"loaded {rows}; {report.relationships} relationships; {len(report.skipped)} row(s) skipped")


def _undo_load(store: GraphStore, say: Callable[[str], None]) -> None:
    from graph.neo4j_load import recover
    from graph.neo4j_store import Neo4jStore

    if not isinstance(store, Neo4jStore):
        raise click.ClickException("--undo is for Neo4j; a load into the embedded store is one transaction")
    try:
        outcome = recover(store, log=say)
    except GraphError as err:
        raise click.ClickException(str(err)) from err
    click.echo("no unfinished load" if outcome is None else f"the unfinished load was {outcome}")


@click.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
def export_cmd(directory: Path) -> None:
    """Write the configured store to a dataset directory (the load format)."""
    with configured_store() as store:
        counts = export_dataset(store, directory)
    click.echo(", ".join(f"{name} {n}" for name, n in counts.items()))


@click.command("stats")
def stats_cmd() -> None:
    """Print node and relationship counts of the configured store."""
    with configured_store() as store:
        for name, n in sorted(store.counts().items()):
            click.echo(f"{name}\t{n}")


@click.command("demo")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write the dataset files here instead of loading them into the configured store.")
@click.option("--scale", type=float, default=1.0, show_default=True, help="Multiply workers, enterprises, problems.")
@click.option("--seed", type=int, default=7, show_default=True)
@click.option("--if-empty", is_flag=True,
              help="Do nothing when the configured store already holds workers (no data, no demo logins).")
def demo_cmd(out: Path | None, scale: float, seed: int, if_empty: bool) -> None:
    """Generate the deterministic Yancheng demo dataset (and load it unless --out is given).

    Loading it also creates the demo logins (password ``jianglian-demo``) that do not exist yet;
    with ``--if-empty`` on a store that already holds data, neither happens: a store loaded with a
    real dataset must not get logins whose password is published.
    """
    from demo.generator import generate

    if scale <= 0:
        raise click.BadParameter("must be positive", param_hint="--scale")
    if out is not None:
        counts = generate(out, scale=scale, seed=seed, progress=True)
        click.echo(f"wrote {out}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        return
    with configured_store() as store:
        if if_empty and store.count_nodes("Worker") > 0:
            click.echo("the store already holds data; demo data and demo logins not created")
            if store.count_nodes("User") == 0:
                click.echo("no users yet: create one with `jianglian user create NAME --role admin`", err=True)
            return
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp), scale=scale, seed=seed, progress=True)
            with tqdm(desc="loading demo", unit="row", disable=None) as bar:
                report = load_dataset(store, tmp, progress=bar.update)
        click.echo("loaded demo data: " + ", ".join(f"{k} {v}" for k, v in report.rows.items()))
        _ensure_demo_users(store)


def _ensure_demo_users(store: GraphStore) -> None:
    """Create the demo logins (printed by ``jianglian serve``); Flask is loaded only here, not for every command."""
    from web.auth import ensure_demo_users

    ensure_demo_users(store)


@click.command("neo4j")
@click.option("--port", type=int, default=7687, show_default=True)
@click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("data/neo4j"),
              show_default=True)
def neo4j_cmd(port: int, data_dir: Path) -> None:
    """Run the development Neo4j 5.26 server on 127.0.0.1 (Ctrl-C or closing stdin stops it)."""
    from ops.neo4j_server import serve_forever

    serve_forever(port, data_dir)


commands: list[click.Command] = [load_cmd, export_cmd, stats_cmd, demo_cmd, neo4j_cmd]
