"""typer options shared by the reconciler's verbs (-f, -p, --profile, ...); ProjectOptions is in project.py.

`project_command` adds the five project options to a command once, instead of repeating
them in every signature: the command takes `opts: ProjectOptions` and its own options."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import typer

from .project import ProjectOptions

FILES = typer.Option(None, "--file", "-f", help="Compose file(s); later ones override earlier ones.")
PROJECT = typer.Option(None, "--project-name", "-p", help="Project name (default: `name:` or the directory).")
PROFILES = typer.Option(None, "--profile", help="Enable a profile (also WHARF_PROFILES=a,b).")
IGNORE = typer.Option(False, "--ignore-unsupported", help="Warn about unsupported keys instead of failing.")
ENV_FILE = typer.Option(None, "--env-file", help="Variables for interpolation (default: .env of the project).")

# Options of more than one verb
PRUNE = typer.Option(False, "--prune", help="Remove project-labelled objects that are no longer in the spec.")
TIMEOUT = typer.Option(300.0, "--timeout", help="Seconds to wait for dependencies and --wait.")
WAIT = typer.Option(False, "--wait", help="Wait until every service is running/healthy (one-shots: exited 0).")
PARALLEL = typer.Option(4, "--parallel", help="Operations run at the same time.")
PROGRESS = typer.Option("auto", "--progress", help="auto, rich or plain")

_PROJECT_PARAMS = (("files", list[str], FILES), ("project_name", str, PROJECT), ("profile", list[str], PROFILES),
                   ("ignore_unsupported", bool, IGNORE), ("env_file", str, ENV_FILE))


def project_command(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a typer command the project options; it is called with `opts=ProjectOptions(...)`."""
    own = [p for p in inspect.signature(fn).parameters.values() if p.name != "opts"]
    hints = {p.name: fn.__annotations__.get(p.name) for p in own}

    @functools.wraps(fn)
    def command(**kw: Any) -> Any:
        opts = ProjectOptions(kw.pop("files"), kw.pop("project_name"), kw.pop("profile") or [],
                              kw.pop("ignore_unsupported"), kw.pop("env_file"))
        return fn(opts=opts, **kw)

    params = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=kind)
              for name, kind, default in _PROJECT_PARAMS]
    command.__signature__ = inspect.Signature(params + [p.replace(kind=inspect.Parameter.KEYWORD_ONLY)
                                                        for p in own])
    command.__annotations__ = {**{name: kind for name, kind, _ in _PROJECT_PARAMS}, **hints}
    del command.__wrapped__  # typer reads the signature above, not fn's
    return command


__all__ = ["ENV_FILE", "FILES", "IGNORE", "PARALLEL", "PRUNE", "PROFILES", "PROGRESS", "PROJECT", "TIMEOUT",
          "WAIT", "ProjectOptions", "project_command"]
