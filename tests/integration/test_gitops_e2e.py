"""`wharf gitops` end to end, as root, with real git repositories and real containers: first
deploy, no-op on the same head, a commit that changes env recreates, a bad commit is reported
and leaves the stack alone, --prune of a removed service, a file:// URL, and the watching loop
(new commits, drift, Ctrl-C)."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.unit.test_gitops import commit, free_port, git, git_daemon, post

pytestmark = [pytest.mark.root, pytest.mark.network]

REPO = Path(__file__).resolve().parents[2]
SVC = """  {name}:
    image: busybox:latest
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
    environment: {{MSG: "{msg}"}}
"""


def stack(*services: tuple[str, str], network: bool = False) -> str:
    text = "services:\n" + "".join(SVC.format(name=n, msg=m) for n, m in services)
    return text if network else text.replace("    image:", "    network_mode: none\n    image:")


def wharf(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler.cli.app", *args], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=timeout)


@contextmanager
def watcher(*args: str, log: Path | None = None, stop: int = signal.SIGTERM) -> Iterator[subprocess.Popen]:
    """`wharf gitops ARGS` running; stopped with `stop` afterwards (killed if it does not exit in 30 s)."""
    out = open(log, "w") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    p = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "gitops", *args], stdout=out,
                         stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        yield p
    finally:
        if p.poll() is None:
            p.send_signal(stop)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        if log:
            out.close()


def until(cond, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def engine(busybox_image, wharf_net):
    from reconciler.engine_guard import connect

    e = connect()
    yield e
    for c in e.containers.list(all=True):
        try:
            e.containers.remove(c.id, force=True, volumes=True)
        except Exception:  # already gone: best effort, the test's own assertions have run
            pass


def running(e, project: str) -> dict[str, tuple[str, str]]:
    """service -> (container id, MSG) of the project's running containers."""
    out = {}
    for c in e.containers.list(filters={"label": [f"io.wharf.project={project}"]}):
        env = dict(x.split("=", 1) for x in c.spec.env) if c.spec.env else {}
        if not env:
            env = dict(x.split("=", 1) for x in e.containers.inspect(c.id).spec.env)
        out[c.labels["io.wharf.service"]] = (c.id, env.get("MSG", ""))
    return out


def status(project: str) -> dict:
    r = wharf("gitops", "status", "--format", "json", "-p", project)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)
    assert len(rows) == 1, rows
    return rows[0]


def test_deploy_noop_change_bad_commit(engine, wharf_root: Path, tmp_path: Path) -> None:
    name = "gt" + secrets.token_hex(3)
    src = tmp_path / name  # the project is named after the repository, as after `git clone`
    first = commit(src, {"compose.yaml": stack(("web", "one"), network=True)}, "first")

    r = wharf("gitops", str(src), "--once", "--progress", "plain")
    assert r.returncode == 0, r.stderr
    assert f"deploying commit {first[:12]} ('first')" in r.stdout
    assert f"Project {name}: deployed {first[:12]}" in r.stdout
    web_id, msg = running(engine, name)["web"]
    assert msg == "one"
    labels = engine.containers.inspect(web_id).labels
    assert labels["io.wharf.project"] == name and labels["io.wharf.service"] == "web"
    st = status(name)
    assert (st["commit"], st["status"], st["head_error"]) == (first, "deployed", "")
    assert [(x["service"], x["state"], x["containers"]) for x in st["services"]] == [
        ("web", "running", [f"{name}-web-1"])]
    r = wharf("gitops", "status", "-p", name)
    assert r.returncode == 0 and f"project {name} at {first[:12]}" in r.stdout and "running" in r.stdout
    # what gitops applied is what `wharf apply` of a clone would: nothing to do
    assert wharf("diff", "-f", str(src / "compose.yaml")).returncode == 0

    r = wharf("gitops", str(src), "--once")
    assert r.returncode == 0 and f"Project {name} is up to date at {first[:12]}: nothing to do." in r.stdout
    assert running(engine, name)["web"] == (web_id, "one")
    shutil.rmtree(wharf_root / "reconciler" / "gitops" / st["id"] / "tree")  # a lost checkout is made again
    r = wharf("gitops", str(src), "--once")
    assert r.returncode == 0 and f"up to date at {first[:12]}" in r.stdout, r.stderr
    assert running(engine, name)["web"] == (web_id, "one")

    second = commit(src, {"compose.yaml": stack(("web", "two"), network=True)}, "say two")
    r = wharf("gitops", str(src), "--once", "--progress", "plain")
    assert r.returncode == 0, r.stderr
    assert "recreate container:web:1" in r.stdout and f"deployed {second[:12]}" in r.stdout
    new_id, msg = running(engine, name)["web"]
    assert msg == "two" and new_id != web_id
    assert status(name)["commit"] == second

    bad = commit(src, {"compose.yaml": stack(("web", "three"), network=True).replace("command:", "comand:")},
                 "typo")
    r = wharf("gitops", str(src), "--once")
    assert r.returncode == 1
    assert (f"wharf: error: commit {bad[:12]} ('typo') cannot be deployed, the stack is left at {second[:12]}: "
            "compose.yaml:4:") in r.stderr and "Traceback" not in r.stderr
    assert running(engine, name)["web"] == (new_id, "two")
    st = status(name)
    assert (st["commit"], st["head"], st["status"]) == (second, bad, "deployed") and "comand" in st["head_error"]

    fixed = commit(src, {"compose.yaml": stack(("web", "three"), network=True)}, "fixed")
    r = wharf("gitops", str(src), "--once")
    assert r.returncode == 0, r.stderr
    assert running(engine, name)["web"][1] == "three"
    st = status(name)
    assert (st["commit"], st["head_error"]) == (fixed, "")


def test_file_url_branch_path_prune(engine, tmp_path: Path) -> None:
    src = tmp_path / "infra"
    commit(src, {"README": "main branch: nothing deployable"}, "init")
    git(src, "checkout", "-q", "-b", "prod")
    name = "gp" + secrets.token_hex(3)
    files = {"deploy/compose.yaml": f"name: {name}\n" + stack(("a", "x"), ("b", "y")),
             "deploy/.env": "UNUSED=1\n"}
    first = commit(src, files, "two services")
    git(src, "checkout", "-q", "main")
    url = f"file://{src}"
    args = ("gitops", url, "--branch", "prod", "--path", "deploy", "--prune", "--once", "--progress", "plain")

    r = wharf(*args)
    assert r.returncode == 0, r.stderr
    assert sorted(running(engine, name)) == ["a", "b"]
    st = status(name)
    assert (st["repo"], st["branch"], st["path"], st["commit"]) == (url, "prod", "deploy", first)

    git(src, "checkout", "-q", "prod")
    second = commit(src, {"deploy/compose.yaml": f"name: {name}\n" + stack(("a", "x"))}, "drop b")
    git(src, "checkout", "-q", "main")
    r = wharf(*args)
    assert r.returncode == 0, r.stderr
    assert "remove container:" in r.stdout
    assert sorted(running(engine, name)) == ["a"]
    assert engine.containers.list(all=True, filters={"label": [f"io.wharf.project={name}"]})[0].name.endswith("-a-1")
    assert status(name)["commit"] == second

    # a rewind (force-push back to the first commit) deploys that commit again
    git(src, "branch", "-q", "-f", "prod", first)
    r = wharf(*args)
    assert r.returncode == 0, r.stderr
    assert sorted(running(engine, name)) == ["a", "b"] and status(name)["commit"] == first


def test_watch_loop_commits_drift_ctrl_c(engine, tmp_path: Path) -> None:
    name = "gw" + secrets.token_hex(3)
    src = tmp_path / "repo"
    commit(src, {"compose.yaml": f"name: {name}\n" + stack(("web", "one"))}, "one")
    log = tmp_path / "gitops.log"
    with watcher(str(src), "--interval", "0.2s", log=log, stop=signal.SIGINT) as p:
        until(lambda: running(engine, name).get("web", ("", ""))[1] == "one", what="first deploy")
        commit(src, {"compose.yaml": f"name: {name}\n" + stack(("web", "two"))}, "two")
        until(lambda: running(engine, name).get("web", ("", ""))[1] == "two", what="the new commit")
        before = running(engine, name)["web"][0]

        bad = commit(src, {"compose.yaml": f"name: {name}\nservices: {{web: {{image: [busybox]}}}}\n"}, "broken")
        until(lambda: f"commit {bad[:12]}" in log.read_text(), what="the error")
        engine.containers.remove(before, force=True)  # drift while the head is bad: healed from the last good one
        until(lambda: running(engine, name).get("web", (before, ""))[0] != before, what="drift healed")
        assert running(engine, name)["web"][1] == "two"
        assert p.poll() is None
    text = log.read_text()
    assert p.returncode == 0, text
    assert text.count(f"commit {bad[:12]}") == 1, text  # said once, not at every pass
    assert "drift: 1 to create" in text and "gitops stopped; the stack keeps running" in text
    assert "Traceback" not in text


def test_build_context_and_env_files_come_from_the_commit(engine, tmp_path: Path) -> None:
    name = "gb" + secrets.token_hex(3)
    src = tmp_path / "repo"
    compose = f"""name: {name}
services:
  app:
    build: ./img
    network_mode: none
    env_file: app.env
    environment: {{GREETING: "${{GREETING:-unset}}"}}
    command: ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
"""
    sha = commit(src, {"stack/compose.yaml": compose, "stack/app.env": "MSG=from-env-file\n",
                       "stack/vars.env": "GREETING=hello\n",
                       "stack/img/Dockerfile": "FROM busybox:latest\nCOPY motd /motd\n",
                       "stack/img/motd": "built from the commit\n"}, "with build")
    r = wharf("gitops", str(src), "--path", "stack", "--env-file", "vars.env", "--once", "--progress", "plain",
              timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "> build" in r.stdout and f"deployed {sha[:12]}" in r.stdout
    (c,) = engine.containers.list(filters={"label": [f"io.wharf.project={name}"]})
    env = dict(x.split("=", 1) for x in engine.containers.inspect(c.id).spec.env)
    assert env["MSG"] == "from-env-file" and env["GREETING"] == "hello"
    out = engine.containers.exec(c.id, ["cat", "/motd"])
    assert out.output == b"built from the commit\n"

    args = ("gitops", str(src), "--path", "stack", "--env-file", "vars.env", "--once", "--progress", "plain")
    commit(src, {"README": "outside the build context\n"}, "docs")  # the context is the same: nothing
    r = wharf(*args)
    assert r.returncode == 0 and "(nothing to do)" in r.stdout and "> build" not in r.stdout, r.stdout + r.stderr
    sha = commit(src, {"stack/img/motd": "the second version\n"}, "new motd")  # only the context changed
    r = wharf(*args, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"build inputs changed at {sha[:12]}: building {name}-app" in r.stdout and "recreate" in r.stdout
    (c2,) = engine.containers.list(filters={"label": [f"io.wharf.project={name}"]})
    assert c2.id != c.id and engine.containers.exec(c2.id, ["cat", "/motd"]).output == b"the second version\n"
    r = wharf(*args)
    assert r.returncode == 0 and "up to date" in r.stdout and "> build" not in r.stdout, r.stdout


def test_a_local_commit_wakes_the_watcher(engine, tmp_path: Path) -> None:
    """--interval 1h: only the ref watcher can deploy the second commit in time."""
    name = "gi" + secrets.token_hex(3)
    src = tmp_path / "repo"
    commit(src, {"compose.yaml": f"name: {name}\n" + stack(("web", "one"))}, "one")
    with watcher(f"file://{src}", "--interval", "1h") as p:
        until(lambda: running(engine, name).get("web", ("", ""))[1] == "one", what="first deploy")
        commit(src, {"compose.yaml": f"name: {name}\n" + stack(("web", "two"))}, "two")
        until(lambda: running(engine, name).get("web", ("", ""))[1] == "two", timeout=20, what="the woken pass")
    assert p.returncode == 0


def test_a_failed_apply_is_recorded_and_retried(engine, tmp_path: Path) -> None:
    name = "gf" + secrets.token_hex(3)
    src = tmp_path / "repo"
    unreachable = f"name: {name}\n" + stack(("web", "one")).replace("busybox:latest", "127.0.0.1:1/nope:latest")
    sha = commit(src, {"compose.yaml": unreachable}, "unreachable image")
    r = wharf("gitops", str(src), "--once", "--progress", "plain")
    assert r.returncode == 1 and f"apply of project {name} at {sha[:12]} did not complete" in r.stderr
    assert "connection refused" in r.stderr and "Traceback" not in r.stderr
    st = status(name)
    assert (st["commit"], st["status"]) == (sha, "failed") and "connection refused" in st["error"]
    fixed = commit(src, {"compose.yaml": f"name: {name}\n" + stack(("web", "one"))}, "fixed")
    r = wharf("gitops", str(src), "--once")
    assert r.returncode == 0, r.stderr
    st = status(name)
    assert (st["commit"], st["status"], st["error"]) == (fixed, "deployed", "")
    assert running(engine, name)["web"][1] == "one"


def test_a_push_webhook_wakes_the_watcher_of_a_remote(engine, tmp_path: Path) -> None:
    """git:// (polled, --interval 1h) + --listen: the POST after the push deploys it."""
    name = "gh" + secrets.token_hex(3)
    src = tmp_path / "srv" / "shop"
    commit(src, {"compose.yaml": f"name: {name}\n" + stack(("web", "one"))}, "one")
    port = free_port()
    secret = tmp_path / "hook.secret"
    secret.write_text("s3cret\n")
    with git_daemon(tmp_path / "srv") as base:
        with watcher(f"{base}/shop", "--interval", "1h", "--listen", f"127.0.0.1:{port}", "--hook-secret-file",
                     str(secret)) as p:
            until(lambda: running(engine, name).get("web", ("", ""))[1] == "one", what="first deploy")
            commit(src, {"compose.yaml": f"name: {name}\n" + stack(("web", "two"))}, "two")
            assert post(f"http://127.0.0.1:{port}/", b"{}") == 401  # unsigned: refused
            assert post(f"http://127.0.0.1:{port}/", b"{}", {"X-Gitlab-Token": "s3cret"}) == 202
            until(lambda: running(engine, name).get("web", ("", ""))[1] == "two", timeout=20, what="the hooked pass")
    assert p.returncode == 0


def test_through_wharf_serve(wharf_daemon, tmp_path: Path) -> None:
    """`wharf --host unix://... gitops`: the same passes through the Docker-API daemon."""
    from runtime.local_engine import LocalEngine

    name = "gd" + secrets.token_hex(3)
    src = tmp_path / "repo"
    first = commit(src, {"compose.yaml": f"name: {name}\n" + stack(("web", "one"), network=True)}, "one")
    host = ("--host", f"unix://{wharf_daemon}")
    r = wharf(*host, "gitops", str(src), "--once", "--progress", "plain")
    assert r.returncode == 0 and f"deployed {first[:12]}" in r.stdout, r.stdout + r.stderr
    flt = {"label": [f"io.wharf.project={name}"]}
    (c,) = LocalEngine().containers.list(filters=flt)
    r = wharf(*host, "gitops", str(src), "--once")
    assert r.returncode == 0 and f"up to date at {first[:12]}" in r.stdout, r.stdout + r.stderr
    commit(src, {"compose.yaml": f"name: {name}\n" + stack(("web", "two"), network=True)}, "two")
    r = wharf(*host, "gitops", str(src), "--once", "--progress", "plain")
    assert r.returncode == 0 and "recreate" in r.stdout, r.stdout + r.stderr
    (c2,) = LocalEngine().containers.list(filters=flt)
    assert c2.id != c.id and "MSG=two" in LocalEngine().containers.inspect(c2.id).spec.env
    assert wharf(*host, "down", "-p", name, "-t", "1").returncode == 0
