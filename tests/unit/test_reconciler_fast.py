"""The typer-free path of diff/apply/up/down: its flag parser (anything unusual goes to
typer) and the cache of loaded projects (a hit only while every file read is unchanged)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.cli.fast import parse
from reconciler.cli.project import ProjectOptions, load_target

COMPOSE = "name: fastt\nservices:\n  web:\n    image: busybox\n    environment: {A: '${A_VAR:-x}'}\n"


def test_parse_simple_flags() -> None:
    verb, v, pos = parse(["apply", "-f", "a.yaml", "--file=b.yaml", "--progress", "plain", "--parallel", "8"])
    assert verb == "apply" and v["files"] == ["a.yaml", "b.yaml"] and v["progress"] == "plain"
    assert v["parallel"] == 8 and pos == []
    verb, v, _ = parse(["down", "-p", "x", "-t", "0", "-v", "--remove-orphans"])
    assert (v["project_name"], v["timeout"], v["volumes"], v["remove_orphans"]) == ("x", 0, True, True)
    assert parse(["diff", "--format", "json", "-o", "p.json"])[1]["out"] == "p.json"
    assert parse(["apply", "plan.json"])[2] == ["plan.json"]
    assert parse(["up", "-d", "--remove-orphans"])[1]["prune"] is True


@pytest.mark.parametrize("args", [["apply", "-h"], ["diff", "--bogus"], ["down", "-vt", "0"], ["down", "-t", "x"],
                                  ["diff", "--format", "yaml"], ["apply", "-f"], ["config", "-f", "a"], [],
                                  ["apply", "a.json", "b.json"], ["diff", "x.json"]])
def test_parse_leaves_the_rest_to_typer(args: list[str]) -> None:
    assert parse(args) is None


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WHARF_ROOT", str(tmp_path / "root"))
    (tmp_path / "root").mkdir()
    monkeypatch.delenv("A_VAR", raising=False)
    monkeypatch.chdir(tmp_path)
    f = tmp_path / "compose.yaml"
    f.write_text(COMPOSE)
    old = f.stat().st_mtime - 10
    os.utime(f, (old, old))
    loads: list[int] = []
    real = ProjectOptions.load

    def counting(self, quiet: bool = False):
        loads.append(1)
        return real(self, quiet)

    monkeypatch.setattr(ProjectOptions, "load", counting)

    def target(**kw):
        return load_target(ProjectOptions([str(f)], **kw), cached=True)

    target.loads = loads
    target.file = f
    return target


def env_of(t) -> list[str]:
    return t.desired.services["web"].template.env


def test_cache_hit_while_files_unchanged(project) -> None:
    assert env_of(project()) == ["A=x"] and len(project.loads) == 1
    assert env_of(project()) == ["A=x"] and len(project.loads) == 1  # from the cache


def test_cache_misses_on_changes(project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    project()
    monkeypatch.setenv("A_VAR", "y")  # the environment
    assert env_of(project()) == ["A=y"] and len(project.loads) == 2
    (tmp_path / ".env").write_text("B=1\n")  # a file that was absent (.env)
    project()
    assert len(project.loads) == 3
    project.file.write_text(COMPOSE.replace("busybox", "busybox:1"))  # the compose file
    assert project().desired.services["web"].image == "busybox:1" and len(project.loads) == 4
    project(project_name="other")  # the options
    assert len(project.loads) == 5


def test_files_changed_during_the_load_are_not_cached(project) -> None:
    os.utime(project.file)  # modified "now": it may change again within the clock's granularity
    project()
    project()
    assert len(project.loads) == 2


def test_broken_entry_is_a_miss(project, tmp_path: Path) -> None:
    project()
    for p in (tmp_path / "root" / "reconciler" / "cache").glob("*.pickle"):
        p.write_bytes(b"not a pickle")
    assert env_of(project()) == ["A=x"] and len(project.loads) == 2


def test_no_cache_without_the_engine_state_dir(project, tmp_path: Path) -> None:
    (tmp_path / "root").rmdir()
    project()
    project()
    assert len(project.loads) == 2 and not (tmp_path / "root").exists()
