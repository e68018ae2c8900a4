"""How the reconciler's verbs show things: plans (terraform-like), progress, status."""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

from reconciler.plan import Operation, Plan

STYLE = {"+": "green", "-": "red", "~": "yellow", "-/+": "magenta", ">": "cyan"}


def console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_plan(plan: Plan, out: Any | None = None) -> None:
    out = out or console()
    for w in plan.warnings:
        out.print(f"[yellow]warning:[/] {w}")
    if plan.empty:
        out.print(f"[green]Project {plan.project} is up to date: nothing to do.[/]")
        return
    out.print(f"Wharf will perform these actions on project [bold]{plan.project}[/]:\n")
    width = max(len(op.resource) for op in plan.operations)
    for op in plan.operations:
        style = STYLE[op.symbol]
        out.print(f"  [{style}]{op.symbol:>3} {op.kind:<14}[/] {op.resource:<{width}}  [dim]{op.cause}[/]")
    out.print(f"\nPlan: {plan.summary()}.")


class ProgressReporter:
    """One line per operation: a spinner while it runs, then ✔/✗/- and its time."""

    def __init__(self, out: Any | None = None) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.out = out or console()
        self.progress = Progress(SpinnerColumn(finished_text=""), TextColumn("{task.description}"),
                                 TimeElapsedColumn(), console=self.out, transient=False)
        self.tasks: dict[int, Any] = {}
        self.lock = threading.Lock()
        self.t0: dict[int, float] = {}

    def __enter__(self) -> ProgressReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def _label(self, op: Operation) -> str:
        return f"[{STYLE[op.symbol]}]{op.symbol:>3} {op.kind:<14}[/] {op.resource}"

    def start(self, op: Operation) -> None:
        with self.lock:
            self.tasks[id(op)] = self.progress.add_task(self._label(op), total=1)

    def _finish(self, op: Operation, mark: str, extra: str = "") -> None:
        with self.lock:
            task = self.tasks.get(id(op))
            if task is None:
                task = self.tasks[id(op)] = self.progress.add_task(self._label(op), total=1)
            self.progress.update(task, description=f"{mark} {self._label(op)}{extra}", completed=1)
            self.progress.stop_task(task)

    def done(self, op: Operation, seconds: float) -> None:
        self._finish(op, "[green]✔[/]")

    def fail(self, op: Operation, error: str) -> None:
        self._finish(op, "[red]✗[/]", f"  [red]{error}[/]")

    def skip(self, op: Operation, reason: str) -> None:
        self._finish(op, "[dim]-[/]", f"  [dim]skipped: {reason}[/]")


class LineReporter:
    """Plain lines (not a terminal, or --progress plain)."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.t0 = time.monotonic()

    def _line(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)

    def start(self, op: Operation) -> None:
        pass

    def done(self, op: Operation, seconds: float) -> None:
        self._line(f"ok   {op.symbol} {op.kind} {op.resource} ({seconds:.2f}s)")

    def fail(self, op: Operation, error: str) -> None:
        self._line(f"FAIL {op.symbol} {op.kind} {op.resource}: {error}")

    def skip(self, op: Operation, reason: str) -> None:
        self._line(f"skip {op.symbol} {op.kind} {op.resource}: {reason}")


def status_rows(engine: Any, desired: Any) -> list[dict[str, Any]]:
    from reconciler import labels as L

    flt = L.project_filter(desired.project)
    by_service: dict[str, list[Any]] = {}
    for c in engine.containers.list(all=True, filters=flt):
        by_service.setdefault(c.labels.get(L.SERVICE, ""), []).append(c)
    rows = []
    for name in sorted(set(desired.services) | set(by_service)):
        cs = sorted(by_service.get(name, []), key=lambda c: c.labels.get(L.REPLICA, ""))
        svc = desired.services.get(name)
        running = sum(1 for c in cs if c.state.running)
        health = sorted({c.state.health.status for c in cs if c.state.health})
        exited = [c.state.exit_code for c in cs if c.state.status == "exited"]
        ports = sorted({f"{p.host_ip or '0.0.0.0'}:{p.host_port}->{p.container_port}/{p.protocol}"
                        for c in cs for p in (c.ports or []) if p.host_port})
        rows.append({
            "service": name, "desired": svc.replicas if svc else 0, "running": running,
            "containers": [c.name.lstrip("/") for c in cs], "health": ",".join(health),
            "state": ("orphan" if svc is None else "completed" if svc.oneshot() and exited and
                      all(x == 0 for x in exited) and not running else
                      "running" if running == (svc.replicas if svc else 0) else "degraded"),
            "exit_codes": exited, "ports": ports,
        })
    return rows


def print_status(rows: list[dict[str, Any]], project: str) -> None:
    from rich.table import Table

    t = Table(title=f"project {project}", title_justify="left", box=None, header_style="bold")
    for col in ("SERVICE", "REPLICAS", "STATE", "HEALTH", "PORTS"):
        t.add_column(col)
    for r in rows:
        style = {"running": "green", "completed": "cyan", "degraded": "red", "orphan": "yellow"}[r["state"]]
        count = len(r["exit_codes"]) if r["state"] == "completed" else r["running"]
        t.add_row(r["service"], f"{count}/{r['desired']}", f"[{style}]{r['state']}[/]", r["health"] or "-",
                  ", ".join(r["ports"]) or "-")
    console().print(t)
