"""Entry point of the ``jianglian`` console script.

Each themed module (``cli.data``, ``cli.embed``, ``cli.rank``, ``cli.web``) exposes a list
``commands`` that is registered here, so a newcomer finds a command next to its theme.
"""

from __future__ import annotations

import importlib

import click

__all__ = ["main"]

_MODULES = ("cli.data", "cli.embed", "cli.index", "cli.rank", "cli.web", "cli.workflow")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Jianglian (匠联): match model workers and craftsmen to enterprise problems."""


for _name in _MODULES:
    for _command in importlib.import_module(_name).commands:
        main.add_command(_command)
