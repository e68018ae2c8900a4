"""`wharf version` and `wharf info`-like system verbs."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def version() -> None:
        """Show the Wharf version."""
        import platform

        from runtime import __version__

        typer.echo(f"Wharf {__version__} (python {platform.python_version()}, {platform.machine()})")
