"""A recreate (create-new -> stop-old -> remove-old -> rename -> start) interrupted after each
of its steps, with real containers: then `down` removes every project container whatever its
name, and `apply` adopts or replaces the leftovers and converges. Also: apply/down of one
project wait for each other (the project lock) and a name held by a foreign container is a
clear conflict that leaves that container alone."""

from __future__ import annotations

import secrets
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.integration.test_reconciler_e2e import REPO, base_engine, project_objects, until, wharf  # noqa: F401

pytestmark = [pytest.mark.root, pytest.mark.network]

STACK = """
name: {name}
services:
  clock:
    image: busybox:latest
    env_file: message.env
    command: ["sh", "-c", "while true; do sleep 1; done"]
    stop_grace_period: 0s
  other:
    image: busybox:latest
    command: ["sleep", "100000"]
    stop_grace_period: 0s
"""


@pytest.fixture
def eng(base_engine):  # noqa: F811 - base_engine is the e2e module's fixture
    return base_engine


STEPS = ("create", "stop", "remove", "rename", "start")


class Killed(BaseException):
    """The process dies here: not an error the executor handles."""


class _Containers:
    def __init__(self, inner, die_after: str) -> None:
        self._inner, self._die_after = inner, die_after
        self.armed = True

    def __getattr__(self, name: str):
        fn = getattr(self._inner, name)
        if name not in STEPS:
            return fn

        def step(*a, **kw):
            out = fn(*a, **kw)
            if self.armed and name == self._die_after:
                self.armed = False
                raise Killed(name)
            return out
        return step


class DyingEngine:
    """The real engine whose `containers.<step>` completes, then the process 'dies'."""

    def __init__(self, engine, die_after: str) -> None:
        self._engine = engine
        self.containers = _Containers(engine.containers, die_after)

    def __getattr__(self, name: str):
        return getattr(self._engine, name)


def _target(f: Path):
    from reconciler.cli.project import ProjectOptions, load_target

    return load_target(ProjectOptions([str(f)]))


def _interrupted_recreate(engine, f: Path, step: str) -> None:
    from reconciler import reconcile as R

    (f.parent / "message.env").write_text(f"MESSAGE={secrets.token_hex(4)}\n")
    with pytest.raises(Killed):
        R.apply(DyingEngine(engine, step), _target(f))


def _converged(engine, name: str, f: Path) -> None:
    cs = project_objects(engine, name)[0]
    assert sorted(c.name for c in cs) == [f"{name}-clock-1", f"{name}-other-1"], [c.name for c in cs]
    until(lambda: all(c.state.running for c in project_objects(engine, name)[0]), what="running")
    assert wharf("diff", "-f", str(f)).returncode == 0


@pytest.mark.parametrize("step", STEPS[:4])
def test_recreate_interrupted_then_apply_and_down_converge(eng, tmp_path: Path, step: str) -> None:
    engine = eng
    name = "ir" + secrets.token_hex(3)
    f = tmp_path / "compose.yaml"
    f.write_text(STACK.format(name=name))
    (tmp_path / "message.env").write_text("MESSAGE=one\n")
    try:
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        # interrupted, then apply: the leftover (temp name, stopped or missing old) is adopted or replaced
        _interrupted_recreate(engine, f, step)
        left = sorted(c.name for c in project_objects(engine, name)[0])
        assert left and left != [f"{name}-clock-1", f"{name}-other-1"] or step == "rename", left
        r = wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        assert "FAIL" not in r.stdout, r.stdout
        _converged(engine, name, f)
        # interrupted again, then down -v: every container carrying the project label is gone
        _interrupted_recreate(engine, f, step)
        wharf("down", "-v", "-f", str(f), "-t", "0", check=True)
        assert project_objects(engine, name) == ([], [], [])
        # and apply from there creates the stack under its names (no stale name reservation)
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        _converged(engine, name, f)
    finally:
        wharf("down", "-v", "-f", str(f), "-t", "0")
    assert project_objects(engine, name) == ([], [], [])


def test_down_waits_for_a_running_apply(eng, tmp_path: Path) -> None:
    from reconciler.lock import project_lock

    engine = eng
    name = "lk" + secrets.token_hex(3)
    f = tmp_path / "compose.yaml"
    f.write_text(STACK.format(name=name))
    (tmp_path / "message.env").write_text("MESSAGE=one\n")
    try:
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        held, release = threading.Event(), threading.Event()

        def holder() -> None:  # another apply/watch in the middle of a step
            with project_lock(name):
                held.set()
                release.wait(30)

        t = threading.Thread(target=holder)
        t.start()
        held.wait(10)
        p = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "down", "-f", str(f), "-t", "0"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**__import__("os").environ, "PYTHONPATH": str(REPO)})
        try:
            first = p.stderr.readline()
            assert "waiting for another apply/down/watch of project " + name in first, first
            assert len(project_objects(engine, name)[0]) == 2  # nothing removed while it waits
        finally:
            release.set()
            t.join()
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert project_objects(engine, name) == ([], [], [])
    finally:
        wharf("down", "-v", "-f", str(f), "-t", "0")


def test_wanted_name_held_by_a_foreign_container_is_a_clear_conflict(eng, tmp_path: Path) -> None:
    from runtime.engine import ContainerSpec

    engine = eng
    name = "fc" + secrets.token_hex(3)
    f = tmp_path / "compose.yaml"
    f.write_text(STACK.format(name=name))
    (tmp_path / "message.env").write_text("MESSAGE=one\n")
    foreign = engine.containers.create(ContainerSpec(image="busybox:latest", name=f"{name}-clock-1",
                                                     command=["true"], network_mode="none"))
    try:
        r = wharf("apply", "-f", str(f), "--progress", "plain")
        assert r.returncode == 1
        assert f"container name {name}-clock-1 is taken by container {foreign.id[:12]}" in r.stdout + r.stderr
        assert "Traceback" not in r.stderr
        assert engine.containers.inspect(foreign.id).name.lstrip("/") == f"{name}-clock-1"  # left alone
    finally:
        wharf("down", "-v", "-f", str(f), "-t", "0")
        engine.containers.remove(foreign.id, force=True)


@pytest.mark.parametrize("verb", ["watch", "apply"])
def test_ctrl_c_mid_recreate_finishes_the_step(eng, tmp_path: Path, verb: str) -> None:
    """SIGINT while a recreate is under way (the new container exists under its temporary name):
    the command finishes that operation and stops; down and apply then converge."""
    import os
    import signal

    engine = eng
    name = "cc" + secrets.token_hex(3)
    f = tmp_path / "compose.yaml"
    f.write_text(STACK.format(name=name).replace("stop_grace_period: 0s\n  other", "stop_grace_period: 1s\n  other"))
    (tmp_path / "message.env").write_text("MESSAGE=one\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    try:
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        old = engine.containers.inspect(f"{name}-clock-1").id
        log = tmp_path / f"{verb}.log"
        with open(log, "w") as out:
            if verb == "watch":
                p = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "watch", "-f", str(f),
                                      "--interval", "0"], env=env, stdout=out, stderr=subprocess.STDOUT)
                until(lambda: "watching" in log.read_text() or p.poll() is not None, what="watch started")
                (tmp_path / "message.env").write_text("MESSAGE=two\n")
            else:
                (tmp_path / "message.env").write_text("MESSAGE=two\n")
                p = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "apply", "-f", str(f),
                                      "--progress", "plain"], env=env, stdout=out, stderr=subprocess.STDOUT)
            temp = f"{name}-clock-1-wharf-new"
            until(lambda: any(c.name.lstrip("/") == temp for c in project_objects(engine, name)[0])
                  or p.poll() is not None, what="the recreate under way")
            p.send_signal(signal.SIGINT)  # old one is being stopped (1 s grace period)
            rc = p.wait(60)
        assert rc == (0 if verb == "watch" else 130), log.read_text()
        assert "Traceback" not in log.read_text(), log.read_text()
        if verb == "watch":
            assert "interrupted; the operations under way were finished" in log.read_text(), log.read_text()
        cs = {c.name.lstrip("/"): c for c in project_objects(engine, name)[0]}
        assert sorted(cs) == [f"{name}-clock-1", f"{name}-other-1"], (sorted(cs), log.read_text())
        assert cs[f"{name}-clock-1"].id != old and cs[f"{name}-clock-1"].state.running  # the step was finished
        assert wharf("diff", "-f", str(f)).returncode == 0
        wharf("down", "-v", "-f", str(f), "-t", "0", check=True)
        assert project_objects(engine, name) == ([], [], [])
        wharf("apply", "-f", str(f), "--progress", "plain", check=True)
        _converged(engine, name, f)
    finally:
        wharf("down", "-v", "-f", str(f), "-t", "0")


def test_a_stale_name_reservation_is_a_clear_error(eng, wharf_root: Path, tmp_path: Path) -> None:
    """What the engine's rename/remove race leaves (a name whose container is gone): one clear line."""
    import os

    name = "sn" + secrets.token_hex(3)
    f = tmp_path / "compose.yaml"
    f.write_text(STACK.format(name=name))
    (tmp_path / "message.env").write_text("MESSAGE=one\n")
    names = wharf_root / "containers" / "names"
    names.mkdir(parents=True, exist_ok=True)
    os.symlink("f" * 64, names / f"{name}-clock-1")
    try:
        r = wharf("apply", "-f", str(f), "--progress", "plain")
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert f"container name {name}-clock-1 is still reserved by the engine" in r.stdout + r.stderr
        assert f"containers/names/{name}-clock-1" in r.stdout + r.stderr
    finally:
        (names / f"{name}-clock-1").unlink(missing_ok=True)
        wharf("down", "-v", "-f", str(f), "-t", "0")
