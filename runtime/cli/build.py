"""`wharf` verbs for build (docker-like). Filled in by its issue."""

from __future__ import annotations


def register(app) -> None:
    """Add this module's verbs to the `wharf` typer app."""
