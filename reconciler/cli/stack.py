"""`wharf` verbs of the reconciler: config, diff, apply/up, down, status, stack ps/logs, watch.

`wharf ps` and `wharf logs` belong to the container verbs; the project views are
`wharf status` (= `wharf stack ps`) and `wharf stack logs SERVICE`.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from . import verbs
from .options import PARALLEL, PROGRESS, PRUNE, TIMEOUT, WAIT, ProjectOptions, project_command
from .project import load_target


def _target(opts: ProjectOptions) -> Any:
    return load_target(opts)


def _engine() -> Any:
    from reconciler.engine_guard import connect

    return connect()


def run_apply(opts: ProjectOptions, plan_file: str | None, prune: bool, timeout: float, wait: bool,
              parallel: int, progress: str) -> int:
    return verbs.run_apply(opts, lambda: _engine(), _target, plan_file, prune, timeout, wait, parallel, progress)


def register(app) -> None:
    """Add the reconciler's verbs to the `wharf` typer app."""

    @app.command("config")
    @project_command
    def config_cmd(
        opts: ProjectOptions,
        format: str = typer.Option("yaml", "--format", help="yaml or json"),
        services: bool = typer.Option(False, "--services", help="Print only the service names."),
    ) -> None:
        """Validate the compose file(s) and print the resolved spec."""
        loaded = opts.load()
        from reconciler.spec.render import render_project

        if services:
            typer.echo("\n".join(loaded.project.services))
            return
        typer.echo(render_project(loaded.project, format), nl=False)

    @app.command("diff")
    @project_command
    def diff_cmd(
        opts: ProjectOptions,
        container: str = typer.Argument(None, metavar="CONTAINER",
                                        help="docker diff: the changed files of this container instead."),
        prune: bool = PRUNE,
        format: str = typer.Option("text", "--format", help="text or json"),
        out: str = typer.Option(None, "--out", "-o", help="Save the plan to apply it later: wharf apply FILE."),
    ) -> None:
        """Show what apply would do (exit 0: nothing to do, 2: changes, 1: error); with a CONTAINER,
        its filesystem changes (A added, C changed, D deleted) as `container diff`."""
        if container:
            from runtime.cli.containers import print_diff

            return print_diff(container)
        raise typer.Exit(verbs.run_diff(opts, lambda: _engine(), _target, prune, format, out))

    @app.command("apply")
    @project_command
    def apply_cmd(
        opts: ProjectOptions,
        plan_file: str = typer.Argument(None, metavar="[PLAN.json]", help="A plan saved by `wharf diff -o`."),
        prune: bool = PRUNE,
        timeout: float = TIMEOUT, wait: bool = WAIT, parallel: int = PARALLEL, progress: str = PROGRESS,
    ) -> int:
        """Make the machine match the compose file (or exactly a saved plan)."""
        return run_apply(opts, plan_file, prune, timeout, wait, parallel, progress)

    @app.command("up")
    @project_command
    def up_cmd(
        opts: ProjectOptions,
        detach: bool = typer.Option(True, "--detach", "-d", help="Always detached (see `wharf stack logs`)."),
        remove_orphans: bool = typer.Option(False, "--remove-orphans", help="Same as apply --prune."),
        timeout: float = TIMEOUT, wait: bool = WAIT, parallel: int = PARALLEL, progress: str = PROGRESS,
    ) -> int:
        """compose-style alias of apply (`up -d`)."""
        return run_apply(opts, None, remove_orphans, timeout, wait, parallel, progress)

    @app.command("down")
    @project_command
    def down_cmd(
        opts: ProjectOptions,
        volumes: bool = typer.Option(False, "--volumes", "-v", help="Also remove the project's named volumes."),
        remove_orphans: bool = typer.Option(False, "--remove-orphans",
                                            help="Also remove containers of services not in the file."),
        timeout: int = typer.Option(10, "--timeout", "-t", help="Seconds to wait for each container to stop."),
        parallel: int = PARALLEL, progress: str = PROGRESS,
    ) -> None:
        """Stop and remove the project's containers and networks (-v: volumes too)."""
        verbs.run_down(opts, lambda: _engine(), _target, volumes, remove_orphans, timeout, parallel, progress)

    def status(opts: ProjectOptions, format: str) -> None:
        from .render import print_status, status_rows

        target = _target(opts)
        rows = status_rows(_engine(), target.desired)
        if format == "json":
            typer.echo(json.dumps(rows, indent=2))
        else:
            print_status(rows, target.desired.project)

    @app.command("status")
    @project_command
    def status_cmd(
        opts: ProjectOptions,
        format: str = typer.Option("table", "--format", help="table or json"),
    ) -> None:
        """Per service: replicas running/desired, health, published ports."""
        status(opts, format)

    stack = typer.Typer(help="Project views: ps, logs.", no_args_is_help=True)

    @stack.command("ps")
    @project_command
    def stack_ps(
        opts: ProjectOptions,
        format: str = typer.Option("table", "--format", help="table or json"),
    ) -> None:
        """Same as `wharf status`."""
        status(opts, format)

    @stack.command("logs")
    @project_command
    def stack_logs(
        opts: ProjectOptions,
        services: list[str] = typer.Argument(None, help="Services (default: all)."),
        follow: bool = typer.Option(False, "--follow", help="Keep following (-f is the compose file here)."),
        tail: int = typer.Option(None, "--tail", "-n", help="Lines from the end of each log."),
        timestamps: bool = typer.Option(False, "--timestamps", "-t"),
    ) -> None:
        """The logs of every replica of the services, each line prefixed `service-N |`."""
        from reconciler.logs import service_logs

        target = _target(opts)
        service_logs(_engine(), target.desired, services or [], follow=follow, tail=tail, timestamps=timestamps)

    app.add_typer(stack, name="stack")

    @app.command("watch")
    @project_command
    def watch_cmd(
        opts: ProjectOptions, prune: bool = PRUNE,
        interval: float = typer.Option(10.0, "--interval", help="Seconds between drift checks (0: never)."),
        debounce: float = typer.Option(0.3, "--debounce", help="Quiet time after a save before re-planning."),
        timeout: float = TIMEOUT, parallel: int = PARALLEL,
    ) -> None:
        """Apply, then keep the stack matched as the files (or the machine) change. Ctrl-C stops."""
        from reconciler.watch import watch

        watch(_engine(), opts, prune=prune, interval=interval, debounce=debounce, timeout=timeout,
              workers=parallel)
