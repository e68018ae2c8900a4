"""`wharf --host URL` hot verbs without typer (runtime/cli/remote_fast.py, runtime/api/remote_http.py):
the same output and exit code as the typer path for ps, inspect, logs, rm, stop, start and run
against a `wharf serve`, none of typer/http.client/dataclasses/pydantic/rich/httpx imported on
the way; the lean HTTP client against a scripted engine (chunked answers, pipelining, keep-alive,
version step-down); the fast run's create body and ps rows equal to what the typer path builds."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_remote_client import Engine, response

HEAVY = ("typer", "click", "http.client", "dataclasses", "pydantic", "rich", "httpx", "runtime.engine")
# main() with its fast paths (argv given: it exits through sys.exit, so atexit reports the modules)
FAST = ("import atexit, os, sys\n"
        "atexit.register(lambda: open(os.environ['MODS_OUT'], 'w').write("
        "' '.join(m for m in os.environ['HEAVY'].split() if m in sys.modules)))\n"
        "from reconciler.cli.app import main\nmain(sys.argv[1:])\n")
# main() with both fast dispatchers switched off: the typer verbs
TYPER = ("import sys\nimport runtime.cli.fast as f\nimport reconciler.cli.fast as r\n"
         "f.dispatch = r.dispatch = lambda args: None\n"
         "from reconciler.cli.app import main\nmain(sys.argv[1:])\n")

IDS = re.compile(rb"\b[0-9a-f]{64}\b|\b[0-9a-f]{12}\b")
AGES = re.compile(rb"Less than a second|About a minute|\d+ (?:seconds?|minutes)|"
                  rb"\d{4}-\d\d-\d\dT[0-9:.]+Z")


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WHARF_HOST", "DOCKER_HOST")}
    env["MODS_OUT"] = str(tmp_path / "mods")
    return env


def fast(host: str, tmp_path: Path, *args: str, heavy: tuple[str, ...] = HEAVY, input: bytes | None = None):
    """`wharf --host unix://HOST ARGS`, checking that none of `heavy` was imported."""
    env = {**_env(tmp_path), "HEAVY": " ".join(heavy)}
    p = subprocess.run([sys.executable, "-c", FAST, "--host", f"unix://{host}", *args], env=env,
                       capture_output=True, input=input, timeout=60)
    mods = (tmp_path / "mods").read_text()
    assert mods == "", f"wharf --host ... {' '.join(args)} imported {mods}"
    return p


def slow(host: str, tmp_path: Path, *args: str, input: bytes | None = None):
    return subprocess.run([sys.executable, "-c", TYPER, "--host", f"unix://{host}", *args], env=_env(tmp_path),
                          capture_output=True, input=input, timeout=60)


def same(host: str, tmp_path: Path, *args: str, mask: bool = False, heavy: tuple[str, ...] = HEAVY
         ) -> subprocess.CompletedProcess:
    """Run ARGS both ways: the same exit code, stdout and stderr (ids and ages masked with `mask`)."""
    a, b = fast(host, tmp_path, *args, heavy=heavy), slow(host, tmp_path, *args)
    got = [a.returncode, a.stdout, a.stderr]
    want = [b.returncode, b.stdout, b.stderr]
    if mask:  # (and the column widths that follow an age)
        got[1:] = [re.sub(rb" +", b" ", AGES.sub(b"T", IDS.sub(b"ID", x))) for x in got[1:]]
        want[1:] = [re.sub(rb" +", b" ", AGES.sub(b"T", IDS.sub(b"ID", x))) for x in want[1:]]
    assert got == want, f"wharf {' '.join(args)}: fast {got} != typer {want}"
    assert b"Traceback" not in a.stderr
    return a


@pytest.mark.root
@pytest.mark.network
def test_hot_verbs_match_the_typer_path(wharf_daemon, tmp_path):
    sock = str(wharf_daemon)
    sfx = os.urandom(3).hex()
    up, down = f"fu{sfx}", f"fd{sfx}"
    r = fast(sock, tmp_path, "run", "-d", "--name", up, "--network", "none", "-l", "k=v", "busybox",
             "sh", "-c", "echo one; echo two >&2; sleep 60")
    assert r.returncode == 0 and re.fullmatch(rb"[0-9a-f]{64}\n", r.stdout), r
    assert fast(sock, tmp_path, "run", "--name", down, "--network", "none", "busybox", "true").returncode == 0
    deadline = time.monotonic() + 10
    while b"two" not in fast(sock, tmp_path, "logs", up).stderr:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    for args in (["ps"], ["ps", "-a"], ["ps", "-q"], ["ps", "-aq", "--no-trunc"], ["ps", "-n", "1"], ["ps", "-l"],
                 ["ps", "-a", "--filter", f"name={sfx}"], ["ps", "-a", "--filter", "status=exited"],
                 ["ps", "-a", "--format", "json"], ["ps", "-a", "--format", "{{.Names}} {{.State}} {{.Labels}}"],
                 ["ps", "--format", "table {{.ID}}\t{{.Command}}\t{{.Networks}}"]):
        same(sock, tmp_path, *args, mask=True)
    same(sock, tmp_path, "inspect", up, down)
    same(sock, tmp_path, "inspect", "-f", "{{.Name}} {{.State.Status}} {{.Config.Labels.k}}", up, "nosuch" + sfx)
    same(sock, tmp_path, "inspect", "--type", "image", "busybox")
    for args in ([], ["-q"], ["-aq", "--no-trunc"], ["--digests"], ["busybox"], ["nosuch"]):
        same(sock, tmp_path, "images", *args, mask=True)
    r = same(sock, tmp_path, "pull", "-q", "127.0.0.1:9/nope:1", heavy=("typer", "click", "rich"))
    assert r.returncode == 1 and b"127.0.0.1:9/nope" in r.stderr
    same(sock, tmp_path, "logs", up)
    same(sock, tmp_path, "logs", "-n", "1", up)
    same(sock, tmp_path, "logs", "nosuch" + sfx)
    for verb in (["rm"], ["stop"], ["start"], ["stop", "-t", "0"], ["rm", "-f"]):
        same(sock, tmp_path, *verb, "nosuch" + sfx)
    same(sock, tmp_path, "rm", up)  # running: a conflict, the container stays
    same(sock, tmp_path, "start", up)  # already running: prints it
    for args in (["--rm", "busybox", "sh", "-c", "echo out; echo err >&2; exit 3"],
                 ["busybox", "nonexist"], ["busybox", "/etc"], ["--rm", "-l", "=x", "busybox", "true"],
                 ["--rm", "-e", "A=1", "-w", "/tmp", "-u", "nobody", "busybox", "sh", "-c", 'echo "$A $PWD $(id -u)"'],
                 ["--rm", "-i", "busybox", "cat"], ["--name", up, "busybox", "true"]):
        same(sock, tmp_path, "run", "--network", "none", *args, mask=True)
    assert fast(sock, tmp_path, "run", "--rm", "-i", "--network", "none", "busybox", "cat",
                input=b"piped\n").stdout == b"piped\n"
    same(sock, tmp_path, "stop", "-t", "1", up)
    same(sock, tmp_path, "start", up)
    assert fast(sock, tmp_path, "stop", "-t", "0", up, down).stdout == f"{up}\n{down}\n".encode()
    assert fast(sock, tmp_path, "rm", up, down, "nosuch" + sfx).returncode == 1
    assert f"fu{sfx}".encode() not in fast(sock, tmp_path, "ps", "-a").stdout
    leftovers = fast(sock, tmp_path, "ps", "-aq").stdout.split()
    if leftovers:  # the runs without --rm
        fast(sock, tmp_path, "rm", "-f", *[x.decode() for x in leftovers])


@pytest.mark.root
@pytest.mark.network
def test_reconciler_verbs_and_gitops_once_over_host_skip_typer(wharf_daemon, tmp_path):
    sock = str(wharf_daemon)
    no_typer = ("typer", "click")
    sfx = os.urandom(3).hex()
    d = tmp_path / "proj"
    d.mkdir()
    compose = d / "compose.yaml"
    compose.write_text(f"name: rf{sfx}\nservices:\n  svc:\n    image: busybox\n    command: sleep 60\n"
                       "    network_mode: none\n")
    f = str(compose)
    assert b"container:svc:1  new" in same(sock, tmp_path, "diff", "-f", f, heavy=no_typer).stdout
    r = fast(sock, tmp_path, "apply", "-f", f, "--progress", "plain", heavy=no_typer)
    assert r.returncode == 0 and b"applied 1 operation" in r.stdout, r
    assert b"up to date" in same(sock, tmp_path, "diff", "-f", f, heavy=no_typer).stdout
    assert f"rf{sfx}-svc-1".encode() in fast(sock, tmp_path, "ps").stdout
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "compose.yaml").write_text(compose.read_text().replace(f"rf{sfx}", f"rg{sfx}"))
    git = ["git", "-C", str(repo), "-c", "user.email=t@t", "-c", "user.name=t"]
    for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "first"]):
        subprocess.run(git + cmd, check=True, capture_output=True)
    r = fast(sock, tmp_path, "gitops", str(repo), "--once", "--progress", "plain", heavy=no_typer)
    assert r.returncode == 0 and f"Project rg{sfx}: deployed".encode() in r.stdout, r
    r = same(sock, tmp_path, "gitops", str(repo), "--once", heavy=no_typer)
    assert b"is up to date at" in r.stdout
    assert f"rg{sfx}-svc-1".encode() in fast(sock, tmp_path, "ps").stdout
    (repo / "compose.yaml").write_text("services: [\n")
    subprocess.run(git + ["commit", "-qam", "broken"], check=True, capture_output=True)
    r = same(sock, tmp_path, "gitops", str(repo), "--once", heavy=no_typer)
    assert r.returncode == 1 and b"cannot be deployed" in r.stderr
    for p in (f"rf{sfx}", f"rg{sfx}"):
        fast(sock, tmp_path, "down", "-p", p, "-t", "0", heavy=no_typer)


# ---------------------------------------------------------------- the pieces, without an engine


def test_fast_run_body_is_the_typer_verbs_create_body(monkeypatch):
    from runtime.api.container_json import create_body
    from runtime.cli.containers import _run_opts, build_spec
    from runtime.cli.fast import _run_opts as parse
    from runtime.cli.remote_fast import simple_body

    monkeypatch.setenv("FROM_ENV", "v")
    defaults = {k: v.default for k, v in _run_opts().items()}
    cases = [
        (["busybox"], {}),
        (["-d", "--rm", "busybox", "sleep", "1"], {"detach": True, "rm": True}),
        (["-it", "--init", "--read-only", "--privileged", "busybox", "sh"],
         {"interactive": True, "tty": True, "init": True, "read_only": True, "privileged": True}),
        (["--name", "n1", "-e", "A=1", "-e", "FROM_ENV", "-e", "UNSET_X", "--network", "host", "-w", "/tmp",
          "-u", "1:2", "--hostname", "h", "-l", "a=b", "--label", "c", "--runtime", "runc", "busybox", "true"],
         {"name": "n1", "env": ["A=1", "FROM_ENV", "UNSET_X"], "network": "host", "workdir": "/tmp", "user": "1:2",
          "hostname": "h", "label": ["a=b", "c"], "runtime": "runc"}),
        (["--net=none", "-i", "-d", "busybox"], {"network": "none", "interactive": True, "detach": True}),
    ]
    for argv, typer_values in cases:
        o, image, command = parse(argv)
        spec = build_spec(image, command, {**defaults, "detach": False, "rm": False, **typer_values})
        assert simple_body(o, image, command) == create_body(spec), argv


def _ps_rows_the_old_way(doc: dict, no_trunc: bool) -> dict:
    """What ps showed for an inspect doc through RemoteEngine (ContainerInfo -> records)."""
    import dataclasses

    from runtime.api.container_json import info_from_inspect
    from runtime.containers.views import ps_row

    info = info_from_inspect(doc)
    rec = {"id": info.id, "name": info.name, "image": info.image, "created": info.created,
           "spec": dataclasses.asdict(info.spec), "ports": [dataclasses.asdict(p) for p in info.ports],
           "networks": {k: dataclasses.asdict(v) for k, v in info.networks.items()},
           "mounts": [dataclasses.asdict(m) for m in info.mounts]}
    return ps_row(rec, dataclasses.asdict(info.state), no_trunc, now=2e9)


def test_ps_rows_from_inspect_docs_are_the_engine_records_ones():
    from runtime.cli.remote_fast import records_from_inspect
    from runtime.containers.views import ps_row

    base = {"Id": "a" * 64, "Name": "/web", "Created": "2026-01-02T03:04:05.5Z", "Image": "sha256:" + "b" * 64,
            "Config": {"Image": "nginx:1", "Cmd": ["nginx", "-g", "daemon off;"], "Entrypoint": ["/docker-entrypoint.sh"],
                       "Labels": {"a": "1", "b": None}},
            "HostConfig": {"NetworkMode": "default", "Tmpfs": {"/run": "size=1m"}},
            "State": {"Status": "running", "StartedAt": "2026-01-02T03:04:06Z", "FinishedAt": "0001-01-01T00:00:00Z",
                      "ExitCode": 0, "Health": {"Status": "healthy", "FailingStreak": 0, "Log": []}},
            "Mounts": [{"Type": "volume", "Name": "data", "Source": "/var/lib/x", "Destination": "/data", "RW": False},
                       {"Type": "bind", "Source": "/etc/hosts", "Destination": "/h", "RW": True}],
            "NetworkSettings": {"Ports": {"80/tcp": [{"HostIp": "0.0.0.0", "HostPort": "8080"}], "443/tcp": None,
                                          "53/udp": [{"HostIp": "", "HostPort": "5353"}]},
                                "Networks": {"front": {"NetworkID": "n1", "IPAddress": "10.0.0.2"}, "back": {}}}}
    exited = {**base, "Config": {"Image": "busybox", "Cmd": "echo hi there", "Entrypoint": [""]},
              "HostConfig": {"NetworkMode": "none"}, "Mounts": None,
              "State": {"Status": "exited", "ExitCode": 3, "StartedAt": "2026-01-02T03:04:06Z",
                        "FinishedAt": "2026-01-02T04:04:06Z"}, "NetworkSettings": {}}
    disabled = {**exited, "Config": {"Image": "busybox", "NetworkDisabled": True}, "State": {"Status": "created"}}
    for doc in (base, exited, disabled, {**disabled, "HostConfig": {"NetworkMode": "default"}}):
        for no_trunc in (False, True):
            rec, st = records_from_inspect(json.loads(json.dumps(doc)))
            assert ps_row(rec, st, no_trunc, now=2e9) == _ps_rows_the_old_way(doc, no_trunc)


def test_lean_client_chunked_pipelined_keep_alive_and_step_down(tmp_path, monkeypatch):
    from runtime.api.remote_http import Http
    from runtime.errors import Conflict, NotFound

    monkeypatch.delenv("DOCKER_API_VERSION", raising=False)
    conns = []

    def handler(method, path, body, c, f):
        conns.append(id(c))
        if path.startswith("/v1.41/"):
            return response(400, b'{"message":"client version 1.41 is too new. Maximum supported API version '
                                  b'is 1.40"}')
        if path.endswith("/chunked"):
            return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"3\r\n[1,\r\n1\r\n2\r\n1;ext=1\r\n]\r\n0\r\n\r\n")
        if path.endswith("/lines"):
            return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
                    b"b\r\n{\"a\": 1}\n{\"\r\n8\r\nb\": 2}\n\n\r\n0\r\n\r\n")
        if "/missing" in path:
            return response(404, b'{"message":"No such container: missing"}')
        if "/busy" in path:
            return response(409, b'{"message":"it is running"}')
        if path.endswith("/empty"):
            return b"HTTP/1.1 204 No Content\r\n\r\n"
        return response(200, json.dumps({"path": path.split("?")[0], "body": body.decode()}).encode())

    e = Engine(tmp_path, handler)
    try:
        c = Http(f"unix://{e.path}")
        assert c.call("GET", "/chunked") == [1, 2]
        assert c.version == "1.40" and e.seen[:2] == ["GET /v1.41/chunked", "GET /v1.40/chunked"]
        assert c.call("POST", "/x", {"a": [1, 2], "b": None, "c": "s p/&"}, {"k": 1}) == \
            {"path": "/v1.40/x", "body": '{"k": 1}'}
        assert e.seen[-1] == "POST /v1.40/x?a=1&a=2&c=s%20p%2F%26"
        assert c.call("DELETE", "/empty") is None
        with pytest.raises(Conflict, match="rm busy: it is running"):
            c.call("DELETE", "/busy", what="rm busy")
        assert len(set(conns[2:])) == 1  # one keep-alive connection for the calls, also after errors
        got = c.call_many(["/a", "/missing", "/chunked", "/b"])
        assert got[0] == {"path": "/v1.40/a", "body": ""} and got[2] == [1, 2] and got[3]["path"] == "/v1.40/b"
        assert isinstance(got[1], NotFound)
        assert list(c.messages("GET", "/lines")) == [{"a": 1}, {"b": 2}]
    finally:
        e.close()
    with pytest.raises(Exception, match="is `wharf serve`"):
        Http(f"unix://{tmp_path}/nobody.sock").call("GET", "/x")


def test_root_host_option_and_gitops_once_parsing(monkeypatch):
    from reconciler.cli.fast import parse
    from runtime.cli.fast import take_host

    # a private environ: take_host/parse set WHARF_HOST, which must not outlive this test (the
    # worker's next tests would all talk to unix:///e)
    monkeypatch.setattr(os, "environ", dict(os.environ))

    for argv, rest, host in ((["--host", "unix:///a", "ps", "-a"], ["ps", "-a"], "unix:///a"),
                             (["-H", "tcp://127.0.0.1:9", "rm", "x"], ["rm", "x"], "tcp://127.0.0.1:9"),
                             (["--host=unix:///b", "-H", "unix:///c", "logs", "c"], ["logs", "c"], "unix:///c"),
                             (["ps", "--host", "unix:///d"], ["ps", "--host", "unix:///d"], None)):
        monkeypatch.delenv("WHARF_HOST", raising=False)
        assert take_host(argv) == rest
        assert os.environ.get("WHARF_HOST") == host
    monkeypatch.delenv("WHARF_HOST", raising=False)
    verb, v, pos = parse(["-H", "unix:///e", "gitops", "repo", "--once", "-b", "main", "-f", "x.yaml", "--prune"])
    assert (verb, pos, v["branch"], v["files"], v["prune"], v["once"]) == ("gitops", ["repo"], "main", ["x.yaml"],
                                                                          True, True)
    assert os.environ["WHARF_HOST"] == "unix:///e"
    for argv in (["gitops", "repo"], ["gitops", "status", "--once"], ["gitops", "forget", "--once", "-p", "x"],
                 ["gitops", "repo", "--once", "--listen", ":1"], ["gitops", "--once"], ["gitops", "r", "--once", "-h"]):
        assert parse(argv) is None, argv
