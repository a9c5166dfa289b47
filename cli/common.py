"""Helpers shared by the command modules: the settings, opening the configured store, errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from graph.config import Settings, open_store
from graph.errors import GraphError
from graph.store import GraphStore

__all__ = ["configured_store", "fail", "settings"]


def fail(message: str) -> None:
    """Exit with status 1 and a message on standard error (no traceback for user errors)."""
    raise click.ClickException(message)


def settings() -> Settings:
    """The settings of this command, read from the environment (:meth:`graph.config.Settings.from_env`).

    Not cached: one process may run several commands (tests drive the CLI in-process with different
    environments).

    Raises
    ------
    click.ClickException
        If a setting has a value it cannot take.
    """
    try:
        return Settings.from_env()
    except ValueError as err:
        raise click.ClickException(str(err)) from err


@contextmanager
def configured_store() -> Iterator[GraphStore]:
    """Open the store chosen by the environment and close it afterwards, translating errors."""
    try:
        store = open_store(settings())
    except (ValueError, GraphError) as err:
        raise click.ClickException(str(err)) from err
    try:
        yield store
    finally:
        store.close()
