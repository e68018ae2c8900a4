"""`wharf` verbs of the reconciler: config, diff, apply/up, down, status, stack logs/ps, watch."""

from __future__ import annotations

import typer

from .options import ENV_FILE, FILES, IGNORE, PROFILES, PROJECT, ProjectOptions


def register(app) -> None:
    """Add the reconciler's verbs to the `wharf` typer app."""

    @app.command("config")
    def config_cmd(
        files: list[str] = FILES, project_name: str = PROJECT, profile: list[str] = PROFILES,
        ignore_unsupported: bool = IGNORE, env_file: str = ENV_FILE,
        format: str = typer.Option("yaml", "--format", help="yaml or json"),
        services: bool = typer.Option(False, "--services", help="Print only the service names."),
    ) -> None:
        """Validate the compose file(s) and print the resolved spec."""
        loaded = ProjectOptions(files, project_name, profile or [], ignore_unsupported, env_file).load()
        from reconciler.spec.render import render_project

        if services:
            typer.echo("\n".join(loaded.project.services))
            return
        typer.echo(render_project(loaded.project, format), nl=False)
