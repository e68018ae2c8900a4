"""The reconciler's verbs through typer, on the in-memory engine: diff exit codes and JSON,
saved plans, apply/up (second run says nothing to do), status, down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.unit.test_reconciler_apply import (
    STACK,
    FakeEngine,
    private_run,  # noqa: F401 - autouse
)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    from reconciler.cli import app as appmod
    from reconciler.cli import stack

    engine = FakeEngine()
    monkeypatch.setattr(stack, "_engine", lambda: engine)
    app = appmod.build_app()
    runner = CliRunner()
    (tmp_path / "compose.yaml").write_text(STACK)
    f = str(tmp_path / "compose.yaml")

    def run(*args: str):
        return runner.invoke(app, [args[0], "-f", f, *args[1:]] if args[0] not in ("stack",) else
                             [*args[:2], "-f", f, *args[2:]])

    run.engine = engine
    run.file = f
    return run


def test_diff_apply_noop(cli, tmp_path: Path) -> None:
    r = cli("diff")
    assert r.exit_code == 2 and "+ create" in r.output and "container:web:2" in r.output
    r = cli("diff", "--format", "json")
    ops = json.loads(r.output)["operations"]
    assert r.exit_code == 2 and {"kind": "pull", "resource": "image:busybox:latest"}.items() <= ops[0].items()
    r = cli("apply", "--progress", "plain")
    assert r.exit_code == 0, r.output
    assert "ok   + create container:web:1" in r.output and "applied 9 operation(s)" in r.output
    r = cli("apply")
    assert r.exit_code == 0 and "nothing to do" in r.output
    r = cli("up", "-d")
    assert r.exit_code == 0 and "nothing to do" in r.output
    r = cli("diff")
    assert r.exit_code == 0 and "nothing to do" in r.output
    r = cli("status", "--format", "json")
    rows = {row["service"]: row for row in json.loads(r.output)}
    assert rows["web"]["running"] == 2 and rows["init"]["state"] == "completed" and rows["db"]["health"] == "healthy"
    r = cli("stack", "ps")
    assert r.exit_code == 0 and "web" in r.output
    r = cli("down", "-v")
    assert r.exit_code == 0 and cli.engine.containers.items == {} and cli.engine.volumes.items == {}


def test_saved_plan(cli, tmp_path: Path) -> None:
    plan_file = str(tmp_path / "plan.json")
    r = cli("diff", "-o", plan_file)
    assert r.exit_code == 2 and "Saved the plan" in r.output
    cli.engine.images.pull("busybox:latest")  # the machine moved
    r = cli("apply", plan_file)
    assert r.exit_code == 1 and "changed since this plan was made" in str(r.exception)
    cli("diff", "-o", plan_file)
    r = cli("apply", plan_file, "--progress", "plain")
    assert r.exit_code == 0, r.output
    assert cli("diff").exit_code == 0


def test_failed_apply_says_what_failed(cli) -> None:
    cli.engine.images.fail.add("other:latest")
    r = cli("apply", "--progress", "plain")
    assert r.exit_code == 1
    msg = str(r.exception)
    assert "image:other:latest: pull failed" in msg and "container:side:1: create skipped" in msg


def test_down_by_project_name_without_file(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from reconciler.cli import app as appmod

    assert cli("apply").exit_code == 0
    empty = tmp_path / "elsewhere"
    empty.mkdir()
    monkeypatch.chdir(empty)
    r = CliRunner().invoke(appmod.build_app(), ["down", "-p", "t"])
    assert r.exit_code == 0, r.output
    assert cli.engine.containers.items == {} and cli.engine.networks.items == {}
