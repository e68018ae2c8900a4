"""The bodies of `wharf diff`, `apply`/`up` and `down`, without typer: the typer commands
(stack.py) and the fast path (fast.py) both call these. rich is imported only when there
is something to show besides "nothing to do"."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any

from .project import ProjectOptions

LoadTarget = Callable[[ProjectOptions], Any]


def _reporter(kind: str) -> Any:
    from .render import LineReporter, ProgressReporter

    if kind == "plain" or (kind == "auto" and not sys.stdout.isatty()):
        import contextlib

        return contextlib.nullcontext(LineReporter())
    return ProgressReporter()


def say_up_to_date(project: str) -> None:
    """The no-op line, as rich would print `[green]...[/]`, without importing rich."""
    text = f"Project {project} is up to date: nothing to do."
    if sys.stdout.isatty() and not os.environ.get("NO_COLOR") and os.environ.get("TERM") != "dumb":
        text = f"\x1b[32m{text}\x1b[0m"
    print(text, flush=True)


def run_diff(opts: ProjectOptions, engine: Callable[[], Any], load_target: LoadTarget, prune: bool = False,
             format: str = "text", out: str | None = None) -> int:
    """Print the plan; 0 when there is nothing to do, 2 when there are changes."""
    from reconciler import reconcile as R
    from runtime.errors import InvalidArgument

    if format not in ("text", "json"):
        raise InvalidArgument(f"unknown format {format!r}", hint="use text or json")
    target = load_target(opts)
    the_plan, _ = R.diff(engine(), target, prune)
    if out:
        R.save_plan(out, the_plan, target)
    if format == "json":
        print(json.dumps(the_plan.to_dict(), indent=2))
    elif the_plan.empty and not the_plan.warnings:
        say_up_to_date(the_plan.project)
    else:
        from .render import print_plan

        print_plan(the_plan)
    if out and format == "text":
        print(f"Saved the plan to {out}; apply it with: wharf apply {out}")
    return 0 if the_plan.empty else 2


def run_apply(opts: ProjectOptions, engine: Callable[[], Any], load_target: LoadTarget, plan_file: str | None,
              prune: bool, timeout: float, wait: bool, parallel: int, progress: str) -> int:
    from reconciler import reconcile as R

    eng = engine()
    saved = None
    if plan_file:
        saved, target = R.load_plan(plan_file)
    else:
        target = load_target(opts)
    with _reporter(progress) as reporter:
        the_plan, result = R.apply(eng, target, prune=prune, timeout=timeout, wait=False, reporter=reporter,
                                   workers=parallel, saved=saved)
    if the_plan.empty and not the_plan.warnings and result.ok and not wait:
        say_up_to_date(the_plan.project)
        return 0
    from .render import console, print_plan

    out = console()
    for w in the_plan.warnings:
        out.print(f"[yellow]warning:[/] {w}")
    if the_plan.empty:
        print_plan(the_plan, out) if not the_plan.warnings else out.print(
            f"[green]Project {the_plan.project} is up to date: nothing to do.[/]")
    if not result.ok:
        from runtime.errors import RuntimeFailure

        raise RuntimeFailure(f"apply of project {the_plan.project} did not complete "
                             f"({len(result.done)} done, {len(result.failed)} failed, {len(result.skipped)} "
                             f"skipped):\n  {result.error_summary()}",
                             hint="fix the cause and run apply again: it continues from where it stopped")
    if wait:
        from reconciler.apply import Executor, wait_converged

        with out.status("waiting for services to be running/healthy..."):
            wait_converged(Executor(eng, target.desired, target.project_dir, timeout))
    if not the_plan.empty:
        out.print(f"[green]Project {the_plan.project}: applied {len(result.done)} operation(s).[/]")
    return 0


def run_down(opts: ProjectOptions, engine: Callable[[], Any], load_target: LoadTarget, volumes: bool,
             remove_orphans: bool, timeout: int | None, parallel: int, progress: str) -> None:
    from reconciler import reconcile as R
    from reconciler.desired import Desired
    from reconciler.spec.files import find_files
    from runtime.errors import RuntimeFailure, WharfError

    files = opts.files
    if not files and opts.project_name:
        try:
            find_files(None)
        except WharfError:  # `down -p NAME` without a compose file: everything labelled with NAME
            files = []
    if files == [] and opts.project_name:
        desired, remove_orphans = Desired(opts.project_name, {}, {}, {}, {}, []), True
    else:
        desired = load_target(opts).desired
    with _reporter(progress) as reporter:
        result = R.down(engine(), desired, volumes=volumes, remove_orphans=remove_orphans,
                        timeout=timeout, reporter=reporter, workers=parallel)
    if not result.ok:
        raise RuntimeFailure(f"down of project {desired.project} did not complete:\n  "
                             + result.error_summary())
    print(f"Project {desired.project}: removed {len(result.done)} object(s).", flush=True)
