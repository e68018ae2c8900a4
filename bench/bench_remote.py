"""`wharf --host` as an Engine API client, against the docker CLI on the same daemons.

Starts `wharf serve` on a private root (busybox bootstrapped) and, when dockerd is installed,
a private dockerd (bench/peers.py: no bridge, no iptables, its own roots; stopped and removed
afterwards), with 20 running containers on each. For each daemon it prints the median wall
time of the hot verbs (`ps`, `ps -a`, `ps -q`, `inspect C`, `logs C`, `images`,
`run --rm --network none busybox true`, `run -d`), then `exec C true`, `image inspect`,
`history`, `save -o` and `load -i`, for the wharf CLI and the docker CLI (when installed;
runs interleaved), and the ratio wharf/docker. The hot verbs also show the same command
through the typer verbs (`typer`: what they cost before runtime/cli/remote_fast.py). Then
the reconciler over --host: no-op `diff`, no-op `apply` (vs `docker-compose up -d`, when
installed) and `gitops REPO --once` of a 2-service project, fast path vs typer. Needs root.

    .venv/bin/python bench/bench_remote.py [-n RUNS]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers import private_dockerd, terminate

WHARF = str(Path(sys.executable).with_name("wharf"))
DOCKER = shutil.which("docker")
COMPOSE = shutil.which("docker-compose")
# the wharf CLI with its fast paths switched off: every verb through typer
TYPER = [sys.executable, "-c", "import sys\nimport runtime.cli.fast as f\nimport reconciler.cli.fast as r\n"
         "f.dispatch = r.dispatch = lambda args: None\nfrom reconciler.cli.app import main\nmain(sys.argv[1:])\n"]
HOT = ("ps", "ps -a", "ps -q", "inspect", "logs", "images", "run --rm true", "run -d")


def medians(cmds: list[tuple[list[str], dict[str, str]]], n: int) -> list[float]:
    """Median wall time of each command, the commands run in turns (a busy machine slows all alike)."""
    times: list[list[float]] = [[] for _ in cmds]
    for _ in range(n):
        for i, (argv, env) in enumerate(cmds):
            t0 = time.perf_counter()
            subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            times[i].append(time.perf_counter() - t0)
    return [statistics.median(t) for t in times]


def measure(label: str, host: str, n: int) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WHARF_HOST", "DOCKER_HOST")}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user runs it: imports from .pyc
    denv = {**env, "DOCKER_HOST": host, "DOCKER_CONFIG": tempfile.mkdtemp(prefix="bench-dcfg-")}
    cname = "bench" + os.urandom(3).hex()
    for i in range(20):
        subprocess.run([WHARF, "--host", host, "run", "-d", "--name", f"{cname}-{i}" if i else cname, "-l",
                        f"{cname}=1", "--network", "none", "busybox", "sh", "-c", "echo hello; sleep 600"],
                       env=env, check=True, capture_output=True)
    try:
        tar = os.path.join(denv["DOCKER_CONFIG"], "bb.tar")
        cases = {"ps": ["ps"], "ps -a": ["ps", "-a"], "ps -q": ["ps", "-q"], "inspect": ["inspect", cname],
                 "logs": ["logs", cname], "images": ["images"],
                 "run --rm true": ["run", "--rm", "--network", "none", "busybox", "true"],
                 "run -d": ["run", "-d", "-l", f"{cname}=1", "--network", "none", "busybox", "sleep", "600"],
                 "exec true": ["exec", cname, "true"], "image inspect": ["image", "inspect", "busybox"],
                 "history": ["history", "busybox"], "save -o": ["save", "-o", tar, "busybox"],
                 "load -i": ["load", "-i", tar]}
        for case, args in cases.items():
            cmds = [([WHARF, "--host", host, *args], env)]
            if case in HOT:
                cmds.append(([*TYPER, "--host", host, *args], env))
            if DOCKER:
                cmds.append(([DOCKER, *args], denv))
            t = medians(cmds, n)
            line = f"{label:14s} {case:14s} wharf CLI {t[0]:.3f} s"
            if case in HOT:
                line += f" (typer {t[1]:.3f} s)"
            if DOCKER:
                line += f"   docker CLI {t[-1]:.3f} s   ratio {t[0] / t[-1]:.2f}x"
            print(line, flush=True)
        reconciler(label, host, env, denv, n)
    finally:
        ids = subprocess.run([WHARF, "--host", host, "ps", "-aq", "--filter", f"label={cname}"], env=env,
                             capture_output=True, text=True).stdout.split()
        if ids:
            subprocess.run([WHARF, "--host", host, "rm", "-f", *ids], env=env, capture_output=True)
        shutil.rmtree(denv["DOCKER_CONFIG"], ignore_errors=True)


def reconciler(label: str, host: str, env: dict[str, str], denv: dict[str, str], n: int) -> None:
    """No-op diff/apply and gitops --once of a 2-service project over --host: fast path vs typer."""
    d = Path(tempfile.mkdtemp(prefix="bench-rproj-"))
    proj, gproj = "br" + os.urandom(3).hex(), "bg" + os.urandom(3).hex()
    svc = "    image: busybox\n    command: sleep 600\n    network_mode: none\n"
    text = f"services:\n  one:\n{svc}  two:\n{svc}"
    (d / "compose.yaml").write_text(f"name: {proj}\n" + text)
    (d / "dc.yaml").write_text(text)  # docker-compose v1: its own project (-p), no top-level name
    repo = d / "repo"
    repo.mkdir()
    (repo / "compose.yaml").write_text(f"name: {gproj}\n" + text)
    git = ["git", "-C", str(repo), "-c", "user.email=b@b", "-c", "user.name=b"]
    f = str(d / "compose.yaml")
    try:
        for cmd in (["init", "-q"], ["add", "."], ["commit", "-qm", "one"]):
            subprocess.run(git + cmd, check=True, capture_output=True)
        subprocess.run([WHARF, "--host", host, "apply", "-f", f], env=env, check=True, capture_output=True)
        subprocess.run([WHARF, "--host", host, "gitops", str(repo), "--once"], env=env, check=True,
                       capture_output=True)
        cases = {"diff (no-op)": ["diff", "-f", f], "apply (no-op)": ["apply", "-f", f],
                 "gitops --once": ["gitops", str(repo), "--once"]}
        for case, args in cases.items():
            cmds = [([WHARF, "--host", host, *args], env), ([*TYPER, "--host", host, *args], env)]
            if case == "apply (no-op)" and COMPOSE:
                cmds.append(([COMPOSE, "-p", proj + "dc", "-f", str(d / "dc.yaml"), "up", "-d"], denv))
            t = medians(cmds, n)
            line = f"{label:14s} {case:14s} wharf CLI {t[0]:.3f} s (typer {t[1]:.3f} s)"
            if len(t) > 2:
                line += f"   docker-compose up -d {t[2]:.3f} s   ratio {t[0] / t[2]:.2f}x"
            print(line, flush=True)
    finally:
        for p in (proj, gproj):
            subprocess.run([WHARF, "--host", host, "down", "-p", p, "-t", "0"], env=env, capture_output=True)
        if COMPOSE:
            subprocess.run([COMPOSE, "-p", proj + "dc", "-f", str(d / "dc.yaml"), "down", "-t", "0"], env=denv,
                           capture_output=True)
        shutil.rmtree(d, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=10)
    n = ap.parse_args().n
    if os.geteuid() != 0:
        print("needs root", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    env = {k: v for k, v in os.environ.items() if k not in ("WHARF_HOST", "DOCKER_HOST")}
    env.update(WHARF_ROOT=str(tmp / "root"), WHARF_RUN=str(tmp / "run"), WHARF_BRIDGE="wbr" + os.urandom(3).hex())
    subprocess.run([WHARF, "image", "bootstrap", "busybox"], env=env, check=True, capture_output=True)
    sock = tmp / "api.sock"
    serve = subprocess.Popen([WHARF, "serve", "-H", f"unix://{sock}", "-p", str(tmp / "pid")], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.2)  # the socket file exists from bind(); give listen() a moment
        measure("wharf serve", f"unix://{sock}", n)
    finally:
        terminate(serve, 20)
        subprocess.run([WHARF, "network", "prune", "-f"], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    if shutil.which("dockerd"):
        with private_dockerd() as (denv, _):
            measure("dockerd", denv["DOCKER_HOST"], n)
    else:
        print("dockerd is not installed: no dockerd figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
