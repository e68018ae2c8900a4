"""`wharf` verbs of the reconciler: config, diff, apply, down, ps/status, logs, watch, gitops."""

from __future__ import annotations


def register(app) -> None:
    """Add the reconciler's verbs to the `wharf` typer app."""
