"""Coordinator HTML pages (blueprint ``ui``)."""
from __future__ import annotations

from flask import Blueprint

__all__ = ["bp"]

bp = Blueprint("ui", __name__)
