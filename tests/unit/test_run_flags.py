"""runtime/cli/run_flags.py: the typer-free `run` parser gives what the typer verb gives."""

from __future__ import annotations

import pytest

from runtime.cli import run_flags
from runtime.errors import InvalidArgument


def typer_params(verb: str, argv: list[str]) -> dict:
    """What the typer `run`/`create` verb's click command parses from argv (no callback runs)."""
    import typer.main

    from reconciler.cli.app import build_app

    group = typer.main.get_command(build_app(verb))
    cmd = group.commands[verb]
    ctx = cmd.make_context(verb, list(argv), resilient_parsing=False)
    return ctx.params


CASES = [
    ["busybox"],
    ["-d", "--rm", "busybox", "sleep", "1"],
    ["-itd", "--name=web", "-p80:80", "-p", "127.0.0.1::8080", "-p", "127.0.0.1:53:5353/udp", "busybox", "sh"],
    ["-dp", "8080:80", "-v", "/tmp:/h:ro", "--mount", "type=tmpfs,target=/t", "--tmpfs", "/run", "busybox"],
    ["-e", "A=1", "-eB=2", "--env", "C", "-l", "x=y", "--label=z", "-w", "/tmp", "-u", "1:2", "busybox", "id"],
    ["-m", "64m", "--memory-swap", "-1", "--cpus", "1.5", "-c", "512", "--cpuset-cpus", "0", "--pids-limit", "50",
     "--ulimit", "nofile=100:200", "busybox"],
    ["--restart", "on-failure:3", "--stop-signal", "SIGINT", "--stop-timeout", "3", "--init", "--read-only",
     "--privileged", "--cap-add", "NET_ADMIN", "--cap-drop", "ALL", "--group-add", "7", "busybox"],
    ["--health-cmd", "true", "--health-interval", "1s", "--health-retries", "2", "--network", "none",
     "--dns", "1.1.1.1", "--add-host", "h:10.0.0.1", "--sysctl", "net.ipv4.ip_forward=1",
     "--log-opt", "max-size=1m", "--hostname", "hh", "--expose", "22", "-P", "busybox", "sh", "-c", "x -y"],
    ["--entrypoint", "", "--security-opt", "no-new-privileges", "--runtime", "runc", "--net=host", "busybox",
     "--not-a-flag-of-ours"],
    ["--rootfs", "/tmp", "-", "true"],
]


@pytest.mark.parametrize("argv", CASES, ids=lambda a: " ".join(a)[:40])
def test_same_spec_as_the_typer_verb(argv, monkeypatch):
    monkeypatch.setenv("C", "from-env")
    for verb in ("run", "create"):
        if verb == "create" and any(a in ("-d", "-itd", "-dp") for a in argv):
            continue  # (create has no --detach)
        o, image, command = run_flags.parse(argv, verb)
        p = typer_params(verb, argv)
        assert {k: p[k] for k in o} == o, argv
        assert run_flags.build_spec(image, command, o) == run_flags.build_spec(p["image"], p["command"] or [], p)


@pytest.mark.parametrize("argv", [
    ["--help"], ["--no-such-flag", "busybox"], ["-Z", "busybox"], ["--rm=false", "busybox"], ["-d"], [],
    ["--name"], ["-p"],
])
def test_what_only_typer_knows_is_left_to_it(argv):
    assert run_flags.parse(argv) is None


def test_a_bad_number_is_docker_s_usage_error():
    with pytest.raises(InvalidArgument, match='invalid argument "x" for "--cpu-shares"') as e:
        run_flags.parse(["--cpu-shares", "x", "busybox"])
    assert e.value.exit_code == 125


def test_the_command_keeps_its_own_flags():
    o, image, command = run_flags.parse(["-d", "busybox", "ls", "-la", "--", "-d"])
    assert (o["detach"], image, command) == (True, "busybox", ["ls", "-la", "--", "-d"])
    o, image, command = run_flags.parse(["-t", "--", "busybox", "-x"])
    assert (o["tty"], image, command) == (True, "busybox", ["-x"])
