"""typer options shared by the reconciler's verbs (-f, -p, --profile, ...); ProjectOptions is in project.py."""

from __future__ import annotations

import typer

from .project import ProjectOptions

FILES = typer.Option(None, "--file", "-f", help="Compose file(s); later ones override earlier ones.")
PROJECT = typer.Option(None, "--project-name", "-p", help="Project name (default: `name:` or the directory).")
PROFILES = typer.Option(None, "--profile", help="Enable a profile (also WHARF_PROFILES=a,b).")
IGNORE = typer.Option(False, "--ignore-unsupported", help="Warn about unsupported keys instead of failing.")
ENV_FILE = typer.Option(None, "--env-file", help="Variables for interpolation (default: .env of the project).")

__all__ = ["ENV_FILE", "FILES", "IGNORE", "PROFILES", "PROJECT", "ProjectOptions"]
