"""Every verb of `wharf --help` (and of its groups) with `--host` at a `wharf serve`: each goes
through the Engine API, or says in one line why it cannot; none silently uses the embedded
engine. The client runs with an empty WHARF_ROOT of its own: a verb naming a remote object
would fail there, a listing must show the remote objects, what a verb creates must be seen by
the daemon, and afterwards the client's root holds no engine state.

A verb added to the CLI without a step here fails `test_the_steps_cover_every_verb`."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from runtime.errors import NotFound

WHARF = str(Path(sys.executable).with_name("wharf"))

# runtime/cli/fast.py's `ps` reads WHARF_HOST only: with DOCKER_HOST alone it lists the local
# containers (test_docker_host_selects_the_engine_for_ps); these steps name the engine otherwise
DOCKER_HOST_GAPS = {("ps",), ("container", "ls"), ("container", "list")}


def cli_verbs() -> set[tuple[str, ...]]:
    """Every leaf command of the `wharf` app, as (group, verb) or (verb,)."""
    import typer.main

    from reconciler.cli.app import build_app

    out: set[tuple[str, ...]] = set()

    def walk(cmd, path: tuple[str, ...]) -> None:
        subs = getattr(cmd, "commands", None)
        if subs is None:
            out.add(path)
            return
        for name, sub in subs.items():
            walk(sub, path + (name,))

    walk(typer.main.get_command(build_app()), ())
    return out


@dataclass
class Step:
    verb: tuple[str, ...]
    args: list  # str, or a function giving it when the step runs
    rc: int = 0
    out: list = field(default_factory=list)  # substrings of stdout (str, or a function giving it)
    err: str = ""  # a substring of stderr (the refusals)
    input: bytes | None = None
    then: Callable[[], None] | None = None  # what the daemon must see afterwards
    retry: bool = False  # output that comes a moment later (logs of a just-started container)
    check: Callable[[str], bool] | None = None  # a test of stdout
    custom: Callable[[dict[str, str], str], None] | None = None  # a long-running verb: its own runner


def _now(v):
    return v() if callable(v) else v


def steps(s: str, reg: str, d: Path, daemon_root: Path) -> list[Step]:
    c, c2, a = f"h9c{s}", f"h9d{s}", f"h9a{s}"
    vol, net, proj = f"h9v{s}", f"h9n{s}", f"h9p{s}"
    compose = str(d / "compose.yaml")
    eng = _engine()

    def has_container(name: str) -> Callable[[], None]:
        return lambda: eng.containers.inspect(name)

    def has_image(ref: str) -> Callable[[], None]:
        return lambda: eng.images.inspect(ref)

    def no_container(name: str) -> Callable[[], None]:
        return lambda: pytest.raises(NotFound, eng.containers.inspect, name)

    def project_up() -> None:
        assert any(x.name.startswith(proj) for x in eng.containers.list(all=True))

    def project_down() -> None:
        assert not any(x.name.startswith(proj) for x in eng.containers.list(all=True))

    return [
        Step(("version",), [], out=["Server: Wharf Engine"]),
        Step(("info",), [], out=[f"DockerRootDir: {daemon_root}"]),
        Step(("system", "info"), ["--format", "json"], out=[str(daemon_root)]),
        Step(("system", "df"), [], out=["Images"]),
        Step(("images",), [], out=["busybox"]),
        Step(("image", "ls"), ["-q"], out=[_bb_short]),
        Step(("image", "list"), ["busybox"], out=["busybox"]),
        Step(("run",), ["-d", "--name", c, "busybox", "sh", "-c", f"echo ready-{s}; sleep 120"],
             then=has_container(c)),
        Step(("ps",), [], out=[c]),
        Step(("container", "ls"), [], out=[c]),
        Step(("container", "list"), ["-q"], out=[lambda: _cid(c)[:12]]),
        Step(("logs",), [c], out=[f"ready-{s}"], retry=True),
        Step(("container", "logs"), ["--tail", "1", c], out=[f"ready-{s}"], retry=True),
        Step(("exec",), [c, "echo", f"ex-{s}"], out=[f"ex-{s}"]),
        Step(("container", "exec"), [c, "sh", "-c", "echo $((40+2))"], out=["42"]),
        Step(("top",), [c], out=["sleep"]),
        Step(("stats",), ["--no-stream", c], out=[c]),
        Step(("port",), [c]),
        Step(("inspect",), ["--format", "{{.Name}}", c], out=[f"/{c}"]),
        Step(("container", "inspect"), [c], out=[lambda: _cid(c)]),
        Step(("update",), ["--restart", "no", c]),
        Step(("pause",), [c]),
        Step(("unpause",), [c]),
        Step(("container", "diff"), [c]),
        Step(("cp",), [f"{c}:/etc/hostname", str(d / "hostname")],
             then=lambda: (d / "hostname").read_text().strip() or pytest.fail("empty copy")),
        Step(("commit",), [c, f"h9/commit{s}:1"], then=has_image(f"h9/commit{s}:1")),
        Step(("export",), [c, "-o", str(d / "c.tar")],
             then=lambda: (d / "c.tar").stat().st_size > 10_000 or pytest.fail("short export")),
        Step(("run",), ["-d", "-i", "--name", a, "busybox", "sh", "-c", "read x; echo got-$x"]),
        Step(("attach",), [a], input=f"{s}\n".encode(), out=[f"got-{s}"]),
        Step(("create",), ["--name", c2, "busybox", "sh", "-c", "exit 3"], then=has_container(c2)),
        Step(("start",), [c2]),
        Step(("wait",), [c2], out=["3"]),
        Step(("container", "start"), ["-a", c2], rc=3),
        Step(("rename",), [c2, c2 + "x"], then=has_container(c2 + "x")),
        Step(("rm",), [c2 + "x"], then=no_container(c2 + "x")),
        Step(("container", "create"), ["--name", c2, "busybox", "true"], then=has_container(c2)),
        Step(("container", "rm"), [c2], then=no_container(c2)),
        Step(("container", "run"), ["--rm", "busybox", "echo", f"hi-{s}"], out=[f"hi-{s}"]),
        Step(("stop",), ["-t", "0", c]),
        Step(("container", "stop"), ["-t", "0", c]),
        Step(("restart",), ["-t", "0", c]),
        Step(("container", "restart"), ["-t", "0", c]),
        Step(("kill",), [c]),
        Step(("container", "start"), [c]),
        Step(("container", "kill"), [c]),
        Step(("container", "prune"), ["-f"], out=["Total reclaimed"], then=no_container(c)),
        Step(("events",), ["--since", "0", "--until", _until], out=[f"name={c}"]),
        Step(("system", "events"), ["--since", "0", "--until", _until, "--format", "json"], out=[c2]),
        Step(("volume", "create"), [vol], then=lambda: eng.volumes.inspect(vol)),
        Step(("volume", "ls"), [], out=[vol]),
        Step(("volume", "inspect"), [vol], out=[f'"Name": "{vol}"']),
        Step(("volume", "rm"), [vol], then=lambda: pytest.raises(NotFound, eng.volumes.inspect, vol)),
        Step(("volume", "create"), [vol + "x"]),
        Step(("volume", "prune"), ["-f", "-a"], out=[vol + "x"]),
        Step(("network", "create"), [net], then=lambda: eng.networks.inspect(net)),
        Step(("network", "ls"), [], out=[net]),
        Step(("network", "inspect"), ["--format", "{{.Name}}", net], out=[net]),
        Step(("run",), ["-d", "--name", c, "busybox", "sleep", "120"]),
        Step(("network", "connect"), [net, c],
             then=lambda: net in eng.containers.inspect(c).networks or pytest.fail("not connected")),
        Step(("network", "disconnect"), [net, c]),
        Step(("network", "rm"), [net], then=lambda: pytest.raises(NotFound, eng.networks.inspect, net)),
        Step(("network", "create"), [net + "x"]),
        Step(("network", "prune"), ["-f"], out=[net + "x"]),
        Step(("rm",), ["-f", c]),
        # images
        Step(("tag",), ["busybox", f"h9/t{s}:1"], then=has_image(f"h9/t{s}:1")),
        Step(("image", "tag"), ["busybox", f"h9/t{s}:2"], then=has_image(f"h9/t{s}:2")),
        Step(("history",), ["busybox"], out=["bootstrap"]),
        Step(("image", "history"), ["-q", f"h9/t{s}:2"], out=[_bb_short]),
        Step(("image", "inspect"), ["--format", "{{.Id}}", f"h9/t{s}:1"], out=[_bb_id]),
        Step(("save",), ["-o", str(d / "t.tar"), f"h9/t{s}:1"]),
        Step(("rmi",), [f"h9/t{s}:1"], out=[f"Untagged: h9/t{s}:1"]),
        Step(("load",), ["-i", str(d / "t.tar")], out=[f"Loaded image: h9/t{s}:1"], then=has_image(f"h9/t{s}:1")),
        Step(("image", "save"), ["-o", str(d / "t2.tar"), f"h9/t{s}:2"]),
        Step(("image", "rm"), [f"h9/t{s}:2"]),
        Step(("image", "load"), ["-i", str(d / "t2.tar")], then=has_image(f"h9/t{s}:2")),
        Step(("import",), [str(d / "c.tar"), f"h9/i{s}:1"], out=["sha256:"], then=has_image(f"h9/i{s}:1")),
        Step(("image", "import"), [str(d / "c.tar"), f"h9/i{s}:2"], then=has_image(f"h9/i{s}:2")),
        Step(("push",), [f"{reg}/h9/p:1"], rc=1, err="not found"),  # the daemon's store was asked
        Step(("tag",), ["busybox", f"{reg}/h9/p:1"]),
        Step(("push",), [f"{reg}/h9/p:1"]),
        Step(("image", "push"), [f"{reg}/h9/p:1"]),
        Step(("rmi",), [f"{reg}/h9/p:1"]),
        Step(("pull",), [f"{reg}/h9/p:1"], out=[f"{reg}/h9/p:1"], then=has_image(f"{reg}/h9/p:1")),
        Step(("image", "pull"), ["-q", f"{reg}/h9/p:1"], out=[f"{reg}/h9/p:1"]),
        Step(("search",), [f"{reg}/h9"], out=[f"{reg}/h9/p"]),
        Step(("login",), ["-u", "h9", "--password-stdin", reg], input=b"x\n", out=["Login Succeeded"]),
        Step(("logout",), [reg], out=["Removing login credentials"]),
        Step(("image", "bootstrap"), ["busybox"], rc=1, err="embedded engine"),
        Step(("build",), ["-t", f"h9/b{s}", str(d / "ctx")], then=has_image(f"h9/b{s}")),
        Step(("builder", "prune"), ["-f"], check=lambda out: out.startswith("Deleted ") and out.split()[1] != "0"),
        # engine-free verbs and the daemon itself
        Step(("serve",), ["-H", f"unix://{d}/never.sock"], rc=1, err="`wharf serve` is the engine API itself"),
        Step(("registry", "gc"), ["--root", str(d / "emptyreg"), "--dry-run"], out=["would delete 0 blobs"]),
        # the reconciler
        Step(("config",), ["-f", compose, "--services"], out=["web"]),
        Step(("diff",), ["-f", compose, "-p", proj], rc=2, out=["web"]),  # 2: there are changes
        Step(("up",), ["-f", compose, "-p", proj], then=project_up),
        Step(("status",), ["-f", compose, "-p", proj], out=["web"]),
        Step(("stack", "ps"), ["-f", compose, "-p", proj], out=["web"]),
        Step(("stack", "logs"), ["-f", compose, "-p", proj], out=[f"up-{s}"], retry=True),
        Step(("down",), ["-t", "0", "-f", compose, "-p", proj], then=project_down),
        Step(("apply",), ["-f", compose, "-p", proj], then=project_up),
        Step(("down",), ["-t", "0", "-f", compose, "-p", proj], then=project_down),
        Step(("gitops",), [str(d / "repo"), "--once", "-p", proj + "g"],
             then=lambda: any(x.name.startswith(proj + "g") for x in eng.containers.list(all=True))
             or pytest.fail("gitops deployed nothing")),
        Step(("down",), ["-t", "0", "-f", compose, "-p", proj + "g"]),
        Step(("watch",), [], custom=lambda env, host: _watch(env, host, d, f"h9w{s}")),
        Step(("registry", "serve"), [], custom=_registry_serve),
        # last: the unused images go (busybox too), what the daemon keeps is seen through it
        Step(("image", "prune"), ["-a", "-f"], out=[f"untagged: h9/i{s}:1", "untagged: busybox:latest"],
             then=lambda: pytest.raises(NotFound, eng.images.inspect, f"h9/i{s}:1")),
    ]


def _until() -> str:
    return str(int(time.time()) + 1)


def _engine():
    from runtime.api.remote import RemoteEngine

    return RemoteEngine(os.environ["H9_TEST_HOST"])


def _bb_id() -> str:
    from runtime.images.store import ImageStore

    return ImageStore().resolve("busybox").id


def _bb_short() -> str:
    return _bb_id().removeprefix("sha256:")[:12]


def _cid(name: str) -> str:
    try:
        return _engine().containers.inspect(name).id
    except Exception:  # noqa: BLE001 - steps are built before the container exists: checked when run
        return name


def test_the_steps_cover_every_verb(tmp_path: Path) -> None:
    os.environ.setdefault("H9_TEST_HOST", "unix:///nonexistent")
    covered = {st.verb for st in steps("x", "127.0.0.1:9", tmp_path, tmp_path)}
    assert cli_verbs() - covered == set(), "a verb without a --host step: add one to steps()"
    assert covered - cli_verbs() == set()


@pytest.mark.root
@pytest.mark.network
def test_every_verb_goes_to_the_engine(wharf_daemon, wharf_root: Path, tmp_path: Path, monkeypatch) -> None:
    from runtime.registry.server import RegistryServer

    s = secrets.token_hex(3)
    host = f"unix://{wharf_daemon}"
    monkeypatch.setenv("H9_TEST_HOST", host)
    d = tmp_path / "w"
    (d / "ctx").mkdir(parents=True)
    (d / "ctx" / "Dockerfile").write_text("FROM busybox\nRUN echo built > /b\nCOPY Dockerfile /\n")
    (d / "emptyreg").mkdir()
    compose = (f"services:\n  web:\n    image: busybox\n    command: [\"sh\", \"-c\", \"echo up-{s}; sleep 120\"]\n")
    (d / "compose.yaml").write_text(compose)
    (d / "repo").mkdir()
    (d / "repo" / "compose.yaml").write_text(compose)
    git = ["git", "-C", str(d / "repo"), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", "-b", "main", str(d / "repo")], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "x"], check=True)
    client_root, client_run = tmp_path / "client-root", tmp_path / "client-run"
    env = {**os.environ, "WHARF_ROOT": str(client_root), "WHARF_RUN": str(client_run),
           "DOCKER_CONFIG": str(tmp_path / "client-docker")}
    env.pop("WHARF_HOST", None)
    env.pop("DOCKER_HOST", None)
    reg = RegistryServer(tmp_path / "reg", "127.0.0.1:0").start()
    try:
        ran: set[tuple[str, ...]] = set()
        failures: list[str] = []
        for i, st in enumerate(steps(s, reg.address, d, wharf_root)):
            how = i % 3  # alternate the three ways of naming the engine
            if how == 2 and st.verb in DOCKER_HOST_GAPS:
                how = 1
            try:
                st.custom(env, host) if st.custom else _run_step(st, how, host, env)
            except (Exception, pytest.fail.Exception) as e:  # go on: one run lists every verb that misbehaves
                failures.append(f"{' '.join(st.verb)}: {str(e).splitlines()[0] if str(e) else repr(e)}")
            ran.add(st.verb)
        assert not failures, "\n".join(failures)
        assert cli_verbs() - ran == set()
    finally:
        reg.stop()
        eng = _engine()
        for c in eng.containers.list(all=True):
            try:
                eng.containers.remove(c.id, force=True, volumes=True)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
    # what the client may keep of its own: the reconciler's (gitops clones, watch state); no engine state
    for d_ in (client_root, client_run):
        left = set(os.listdir(d_)) if d_.exists() else set()
        assert left <= {"reconciler"}, f"the client's own {d_.name} got engine state: {left}"


@pytest.mark.root
@pytest.mark.network
def test_docker_host_selects_the_engine_for_ps(wharf_daemon, tmp_path: Path) -> None:
    host = f"unix://{wharf_daemon}"
    _engine_at(host).containers.create(_spec(f"h9ps{secrets.token_hex(3)}"))
    env = {**os.environ, "WHARF_ROOT": str(tmp_path / "client-root"), "WHARF_RUN": str(tmp_path / "client-run"),
           "DOCKER_HOST": host}
    env.pop("WHARF_HOST", None)
    out = subprocess.run([WHARF, "ps", "-a", "-q"], env=env, capture_output=True, check=True).stdout
    assert out.strip(), "DOCKER_HOST=... wharf ps listed the embedded engine's containers"


def _engine_at(host: str):
    from runtime.api.remote import RemoteEngine

    return RemoteEngine(host)


def _spec(name: str):
    from runtime.engine import ContainerSpec

    return ContainerSpec(name=name, image="busybox", command=["true"])


def _run_step(st: Step, how: int, host: str, env: dict[str, str]) -> None:
    """Run one step with the engine named by --host (how 0), WHARF_HOST (1) or DOCKER_HOST (2)."""
    args = [_now(a) for a in st.args]
    argv = [WHARF, "--host", host, *st.verb, *args] if how == 0 else [WHARF, *st.verb, *args]
    step_env = env if how == 0 else {**env, ("WHARF_HOST" if how == 1 else "DOCKER_HOST"): host}
    if st.verb == ("serve",) and how == 2:  # serve ignores DOCKER_HOST (dockerd does too)
        argv = [WHARF, "--host", host, *st.verb, *args]
    deadline = time.monotonic() + 10
    while True:
        r = subprocess.run(argv, env=step_env, input=st.input, capture_output=True, timeout=60,
                           stdin=None if st.input is not None else subprocess.DEVNULL)
        out, err = r.stdout.decode(errors="replace"), r.stderr.decode(errors="replace")
        want = [_now(x) for x in st.out]
        if r.returncode == st.rc and all(x in out for x in want) and st.err in err or not st.retry \
                or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    what = f"wharf {' '.join(st.verb + tuple(args))} (engine by {['--host', 'WHARF_HOST', 'DOCKER_HOST'][how]})"
    assert r.returncode == st.rc, f"{what} -> {r.returncode}: {err!r}"
    if st.check:
        assert st.check(out), f"{what}: unexpected output {out!r}"
    for x in want:
        assert x in out, f"{what}: {x!r} not in {out!r}"
    assert st.err in err, f"{what}: {st.err!r} not in {err!r}"
    if st.rc:
        assert len(err.strip().splitlines()) <= 2, f"{what}: not one clear line: {err!r}"
    if st.then:
        st.then()


def _watch(env: dict[str, str], host: str, d: Path, proj: str) -> None:
    """`wharf --host URL watch` applies the project through the daemon until it is interrupted."""
    eng = _engine()
    p = subprocess.Popen([WHARF, "--host", host, "watch", "-f", str(d / "compose.yaml"), "-p", proj,
                          "--interval", "0"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                         stdin=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while not any(c.name.startswith(proj) and c.state.running for c in eng.containers.list()):
            assert p.poll() is None, p.stderr.read().decode()
            assert time.monotonic() < deadline, "watch applied nothing through the daemon"
            time.sleep(0.1)
    finally:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    subprocess.run([WHARF, "--host", host, "down", "-t", "0", "-f", str(d / "compose.yaml"), "-p", proj], env=env,
                   check=True, capture_output=True)


def _registry_serve(env: dict[str, str], host: str) -> None:
    """`wharf registry serve` runs a registry: it is no engine client, --host changes nothing."""
    p = subprocess.Popen([WHARF, "--host", host, "registry", "serve", "--addr", "127.0.0.1:0", "--root",
                          str(Path(env["WHARF_ROOT"]).parent / "reg2")], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    try:
        line = p.stdout.readline().decode()
        assert "listening on http://127.0.0.1:" in line, p.stderr.read().decode()
    finally:
        p.terminate()
        p.wait(10)
        p.stdout.close()
        p.stderr.close()
