"""Commands of this theme (filled in by its owner)."""

from __future__ import annotations

import click

__all__ = ["commands"]

commands: list[click.Command] = []
