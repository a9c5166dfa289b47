"""Data commands: ``load``, ``export``, ``demo``, ``neo4j``, ``stats``."""

from __future__ import annotations

from pathlib import Path

import click
from tqdm import tqdm

from cli.common import configured_store
from graph.dataset import export_dataset, load_dataset
from graph.errors import DatasetError, GraphError

__all__ = ["commands"]


@click.command("load")
@click.argument("directory", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--skip-invalid", is_flag=True, help="Load the good rows and report the bad ones.")
def load_cmd(directory: Path, skip_invalid: bool) -> None:
    """Validate and import a dataset directory into the configured store (idempotent)."""
    with configured_store() as store:
        with tqdm(desc="loading", unit="row", disable=None) as bar:
            try:
                report = load_dataset(store, directory, skip_invalid=skip_invalid, progress=bar.update)
            except DatasetError as err:
                for row_error in err.errors:
                    click.echo(str(row_error), err=True)
                raise click.ClickException(
                    f"{len(err.errors)} invalid row(s); nothing was written (use --skip-invalid to load the rest)"
                ) from err
            except GraphError as err:
                raise click.ClickException(str(err)) from err
    for row_error in report.skipped:
        click.echo(f"skipped {row_error}", err=True)
    rows = ", ".join(f"{label} {n}" for label, n in report.rows.items())
    click.echo(f"loaded {rows}; {report.relationships} relationships; {len(report.skipped)} row(s) skipped")


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


commands: list[click.Command] = [load_cmd, export_cmd, stats_cmd]
