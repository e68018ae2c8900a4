"""`wharf gitops REPO`: deploy the compose project of a git branch and keep it deployed;
`wharf gitops status`: which commit each gitops deployment runs.

typer is imported by `register` only: `wharf gitops REPO --once` with simple flags comes
through reconciler/cli/fast.py to `sync` without it."""

from __future__ import annotations

import json
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:  # on the `gitops --once` fast path: no typing import at run time
    from typing import Any


def _interval(text: str) -> float:
    from reconciler.spec.units import duration
    from runtime.errors import InvalidArgument

    try:
        seconds = duration(text)
    except ValueError as e:
        raise InvalidArgument(f"--interval: {e}") from None
    if not seconds or seconds <= 0:
        raise InvalidArgument("--interval must be more than 0", hint="e.g. 30s, 1m; or use --once")
    return seconds


def _secret(path: str | None) -> bytes | None:
    import os

    from runtime.errors import InvalidArgument

    if path:
        try:
            with open(path, "rb") as f:
                value = f.read().rstrip(b"\r\n")
        except OSError as e:
            raise InvalidArgument(f"--hook-secret-file {path}: {e.strerror}") from None
        if not value:
            raise InvalidArgument(f"--hook-secret-file {path} is empty")
        return value
    env = os.environ.get("WHARF_GITOPS_HOOK_SECRET")
    return env.encode() if env else None


def deployment_rows(project: str | None = None) -> list[dict[str, Any]]:
    """Every gitops deployment (of `project`) as a dict; with `project`, each current one also
    has "services": the live state of its services (as in `wharf status`)."""
    from dataclasses import asdict

    from reconciler.gitops import all_deployments

    deps = all_deployments()
    latest: dict[str, float] = {}
    for d in deps:
        if d.project:
            latest[d.project] = max(latest.get(d.project, 0.0), d.deployed_at)
    rows = []
    for d in deps:
        if project is None or d.project == project:
            row = asdict(d)
            # another deployment (other repo, branch or path) applied the same project later
            row["superseded"] = bool(d.project) and d.deployed_at < latest[d.project]
            if project is not None and d.commit and not row["superseded"]:
                row["services"] = _services(d)
            rows.append(row)
    return rows


def _services(dep: Any) -> list[dict[str, Any]] | str:
    from pathlib import Path

    from reconciler.engine_guard import connect
    from reconciler.gitops import Source
    from reconciler.gitops.sync import load_target
    from runtime.errors import WharfError

    from .render import status_rows

    try:
        target = load_target(Path(dep.project_dir), Source(**dep.source), quiet=True, cached=True)
        return status_rows(connect(), target.desired)
    except (WharfError, TypeError) as e:  # the checkout is gone, or a state file of an older Wharf
        return f"cannot read the deployed project: {e}"


def _ago(t: float) -> str:
    import time

    s = int(time.time() - t)
    for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= n:
            return f"{s // n}{unit} ago"
    return f"{s}s ago"


def print_deployments(rows: list[dict[str, Any]]) -> None:
    from rich.table import Table

    from reconciler.gitops.sync import esc

    from .render import console, print_status

    t = Table(box=None, header_style="bold")
    for col in ("PROJECT", "REPOSITORY", "BRANCH", "PATH", "COMMIT", "STATE", "DEPLOYED"):
        t.add_column(col)
    for r in rows:
        state = {"deployed": "[green]deployed[/]", "failed": "[red]failed[/]"}.get(r["status"], r["status"])
        if r["superseded"]:
            state = "[yellow]superseded[/]"
        if r["head_error"] and r["head"]:
            state += f"; [red]head {r['head'][:8]} invalid[/]"
        if r["fetch_error"]:
            state += "; [red]fetch failing[/]"
        ago = _ago(r["deployed_at"]) if r["deployed_at"] else "-"
        commit = r["commit"][:12] if r["commit"] else "-"
        t.add_row(r["project"] or "-", r["repo"], r["branch"] or "(default)", r["path"], commit, state, ago)
    out = console()
    out.print(t)
    for r in rows:
        services = r.get("services")
        if isinstance(services, list):
            out.print()
            print_status(services, f"{r['project']} at {r['commit'][:12]}")
        elif services:
            out.print(f"[red]{esc(r['project'])}: {esc(services)}[/]")
        for text in (r["error"], r["head_error"], r["fetch_error"]) if services is not None else ():
            if text:
                out.print(f"[red]{esc(text)}[/]")


def forget(project: str | None) -> int:
    from reconciler.gitops import state
    from runtime.errors import InvalidArgument, NotFound

    if not project:
        raise InvalidArgument("which deployment? `wharf gitops forget -p PROJECT` (or -p ID)")
    gone = [d for d in state.all_deployments() if project in (d.project, d.id)]
    if not gone:
        raise NotFound(f"no gitops deployment of project {project}", hint="see `wharf gitops status`")
    for d in gone:
        state.forget(d)
        print(f"forgot {d.repo} ({d.branch or 'default branch'}, path {d.path}); "
                   f"the containers of {d.project or project} are left as they are")
    return 0


def sync(repo: str, branch: str | None = None, path: str = ".", files: list[str] | None = None,
         project_name: str | None = None, profile: list[str] | None = None, ignore_unsupported: bool = False,
         env_file: str | None = None, interval: str = "30s", once: bool = False, prune: bool = False,
         timeout: float = 300.0, wait: bool = False, parallel: int = 4, progress: str = "auto",
         listen: str | None = None, hook_secret_file: str | None = None) -> int:
    """`wharf gitops REPO ...` (typer and the --once fast path): one pass, or the watcher."""
    from reconciler.engine_guard import connect
    from reconciler.gitops import GitOps, Source
    from runtime.errors import InvalidArgument

    every = _interval(interval)
    if once and listen:
        raise InvalidArgument("--listen needs a watcher", hint="drop --once")
    source = Source(repo, branch, path, list(files or []), project_name, list(profile or []),
                    ignore_unsupported, env_file)
    ops = GitOps(connect(), source, prune=prune, timeout=timeout, wait=wait, workers=parallel,
                 progress=progress if once else "plain")
    if not once:
        from reconciler.gitops.watcher import run

        return run(ops, every, listen=listen, secret=_secret(hook_secret_file))
    out = ops.sync()
    ops.report(out, once=True)
    for e in out.errors[:-1]:
        print(f"wharf: error: {e}", file=sys.stderr)
    if out.errors:
        raise out.errors[-1]
    return 0


def register(app) -> None:
    import typer

    from .options import ENV_FILE, FILES, IGNORE, PROFILES, PROJECT

    @app.command("gitops")
    def gitops_cmd(
        repo: str = typer.Argument(..., metavar="REPO|status|forget",
                                   help="A local path or a URL git can fetch (file://, ssh://, https://); "
                                        "`status [-p P]` lists the deployments, `forget -p P` drops one "
                                        "(its record and clone; the containers stay). A directory named "
                                        "status: ./status."),
        branch: str = typer.Option(None, "--branch", "-b", help="Branch to deploy (default: the remote's HEAD)."),
        path: str = typer.Option(".", "--path", help="Directory of the project inside the repository."),
        files: list[str] = FILES, project_name: str = PROJECT, profile: list[str] = PROFILES,
        ignore_unsupported: bool = IGNORE, env_file: str = ENV_FILE,
        interval: str = typer.Option("30s", "--interval", help="How often to fetch and heal drift (30s, 1m)."),
        once: bool = typer.Option(False, "--once", help="One pass, then exit (1 when the head cannot be deployed)."),
        prune: bool = typer.Option(False, "--prune", help="Remove project-labelled objects no longer in the spec."),
        timeout: float = typer.Option(300.0, "--timeout", help="Seconds to wait for dependencies and --wait."),
        wait: bool = typer.Option(False, "--wait", help="Wait until every service is running/healthy."),
        parallel: int = typer.Option(4, "--parallel", help="Operations run at the same time."),
        progress: str = typer.Option("auto", "--progress", help="auto, rich or plain (watching: plain)"),
        format: str = typer.Option("table", "--format", help="`gitops status`: table or json."),
        listen: str = typer.Option(None, "--listen", help="Also sync when a push webhook POSTs to HOST:PORT "
                                   "(:PORT is 127.0.0.1)."),
        hook_secret_file: str = typer.Option(None, "--hook-secret-file", help="Webhook secret (GitHub/Gitea "
                                             "signature or GitLab token); also WHARF_GITOPS_HOOK_SECRET."),
    ) -> int:
        """Deploy the compose project of a git branch, then keep it deployed: fetch every --interval,
        apply each new head (an invalid one is reported, the stack is left as it is) and heal drift."""
        if repo == "status":
            if format not in ("table", "json"):
                from runtime.errors import InvalidArgument

                raise InvalidArgument(f"unknown format {format!r}", hint="use table or json")
            rows = deployment_rows(project_name)
            if format == "json":
                typer.echo(json.dumps(rows, indent=2))
            else:
                print_deployments(rows)
            return 0
        if repo == "forget":
            return forget(project_name)
        return sync(repo, branch, path, files, project_name, profile, ignore_unsupported, env_file, interval, once,
                    prune, timeout, wait, parallel, progress, listen, hook_secret_file)
