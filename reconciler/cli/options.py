"""Options shared by the reconciler's verbs (-f, -p, --profile, ...) and project loading."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import typer

FILES = typer.Option(None, "--file", "-f", help="Compose file(s); later ones override earlier ones.")
PROJECT = typer.Option(None, "--project-name", "-p", help="Project name (default: `name:` or the directory).")
PROFILES = typer.Option(None, "--profile", help="Enable a profile (also WHARF_PROFILES=a,b).")
IGNORE = typer.Option(False, "--ignore-unsupported", help="Warn about unsupported keys instead of failing.")
ENV_FILE = typer.Option(None, "--env-file", help="Variables for interpolation (default: .env of the project).")


@dataclass
class ProjectOptions:
    files: list[str] | None = None
    project_name: str | None = None
    profiles: list[str] = field(default_factory=list)
    ignore_unsupported: bool = False
    env_file: str | None = None

    def load(self, quiet: bool = False) -> Any:
        from reconciler.spec import load_project
        from reconciler.spec.loader import print_warning

        return load_project(self.files or None, project_name=self.project_name, profiles=self.profiles,
                            ignore_unsupported=self.ignore_unsupported, env_file=self.env_file,
                            warn=None if quiet else print_warning)
