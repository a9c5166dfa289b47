"""Helpers shared by the command modules: opening the configured store, progress bars, errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click

from graph.config import StoreSettings, open_store
from graph.errors import GraphError
from graph.store import GraphStore

__all__ = ["configured_store", "fail"]


def fail(message: str) -> None:
    """Exit with status 1 and a message on standard error (no traceback for user errors)."""
    raise click.ClickException(message)


@contextmanager
def configured_store() -> Iterator[GraphStore]:
    """Open the store chosen by the environment and close it afterwards, translating errors."""
    try:
        settings = StoreSettings.from_env()
        store = open_store(settings)
    except (ValueError, GraphError) as err:
        raise click.ClickException(str(err)) from err
    try:
        yield store
    finally:
        store.close()
