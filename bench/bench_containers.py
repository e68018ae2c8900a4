"""Containers: `run --rm busybox true`, 20 parallel `run -d`, `ps` with 20 containers, supervisor memory.

Prints medians and ratios against docker and podman, each measured in the same run (a private dockerd,
a podman with its own storage: bench/peers.py), in turns with ours, when installed; without dockerd,
against the fixed figures of issue 4. Needs root.
Uses a private WHARF_ROOT/WHARF_RUN and removes everything it made.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from peers import docker_cli, podman_cli, private_dockerd, private_podman

WHARF = str(Path(sys.executable).with_name("wharf"))
DOCKER_FIGURES = {"run": 0.181, "parallel20": 2.72, "ps": 0.011}  # measured on this VM (issue 4): without dockerd
N = 20  # runs per median


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - t


def median(argv: list[str], n: int, env: dict[str, str] | None = None) -> float:
    timed(argv, env)  # warm-up
    return statistics.median(timed(argv, env) for _ in range(n))


def medians_abba(ours: list[str], theirs: list[str], n: int, env: dict[str, str] | None,
                 denv: dict[str, str]) -> tuple[float, float]:
    """Medians of n runs each, in turns A B B A ... so that load from elsewhere hits both alike."""
    timed(ours, env)  # warm-ups
    timed(theirs, denv)
    a: list[float] = []
    b: list[float] = []
    for i in range(n):
        pair = ((a, ours, env), (b, theirs, denv))
        for out, argv, e in pair if i % 2 == 0 else pair[::-1]:
            out.append(timed(argv, e))
    return statistics.median(a), statistics.median(b)


def parallel_runs(n: int, cli: str = WHARF, env: dict[str, str] | None = None) -> tuple[float, list[str]]:
    t = time.perf_counter()
    with ThreadPoolExecutor(n) as ex:
        ids = list(ex.map(lambda _: subprocess.run(
            [cli, "run", "-d", "--network", "none", "busybox", "sleep", "600"],
            capture_output=True, text=True, env=env).stdout.strip(), range(n)))
    return time.perf_counter() - t, ids


def supervisor_memory() -> tuple[float, float]:
    """RSS and PSS (MB) of this root's one supervisor process (runtime/containers/supervisord.py)."""
    pid = Path(os.environ["WHARF_RUN"], "supervisor.pid").read_text().strip()
    with open(f"/proc/{pid}/smaps_rollup") as f:
        fields = dict(line.split(":", 1) for line in f if ":" in line)
    return int(fields["Rss"].split()[0]) / 1024, int(fields["Pss"].split()[0]) / 1024


def memory_per_container() -> None:
    """The supervisor with 1, then 21 running containers: per-container cost = the difference / 20."""
    first = subprocess.run([WHARF, "run", "-d", "--network", "none", "busybox", "sleep", "600"],
                           capture_output=True, text=True).stdout.strip()
    time.sleep(0.5)
    rss1, pss1 = supervisor_memory()
    _, ids = parallel_runs(20)
    time.sleep(0.5)
    rss21, pss21 = supervisor_memory()
    print(f"{'supervisor memory with 1 / 21 containers':<44} RSS {rss1:.1f} / {rss21:.1f} MB, "
          f"PSS {pss1:.1f} / {pss21:.1f} MB")
    print(f"{'supervisor memory per container':<44} RSS {(rss21 - rss1) / 20:.2f} MB, "
          f"PSS {(pss21 - pss1) / 20:.2f} MB   (conmon 2.0 MB RSS; containerd-shim 13.2 MB RSS / 3.0 MB PSS)")
    subprocess.run([WHARF, "rm", "-f", first, *ids], capture_output=True)


def peer(name: str) -> str | None:
    return shutil.which(name)


def report(label: str, ours: float, key: str, peer: float | None = None, who: str = "docker") -> None:
    line = f"{label:<44} wharf {ours:.3f} s"
    if peer is not None:
        line += f"   {who} (same run) {peer:.3f} s   ratio {ours / peer:.2f}x"
    else:
        line += f"   (docker measured here before: {DOCKER_FIGURES[key]:.3f} s, ratio {ours / DOCKER_FIGURES[key]:.2f}x)"
    print(line)


def runtimes(run: list[str]) -> list[tuple[str, dict[str, str]]]:
    """The OCI runtimes that work here, with the environment selecting each."""
    out = []
    for rt in ("builtin", "runc", "crun"):
        if rt != "builtin" and not peer(rt):
            continue
        env = dict(os.environ, WHARF_RUNTIME=rt)
        trial = subprocess.run(run, capture_output=True, text=True, env=env)
        if trial.returncode != 0:
            print(f"run --rm busybox true ({rt}): cannot run here: {trial.stderr.strip()[:100]}")
            continue
        out.append((rt, env))
    return out


def alone(run: list[str]) -> None:
    """Wharf only; docker's figures are the fixed ones of issue 4."""
    for rt, env in runtimes(run):
        report(f"run --rm busybox true ({rt})", median(run, N, env), "run")
    wall, ids = parallel_runs(20)
    report("20 parallel run -d busybox sleep", wall, "parallel20")
    report("ps with 20 containers", median([WHARF, "ps"], N), "ps")
    subprocess.run([WHARF, "rm", "-f", *ids], capture_output=True)


def with_peer(who: str, ctx, run: list[str]) -> None:
    """The same commands through a private dockerd or podman (bench/peers.py), in turns with ours."""
    with ctx as (penv, cli):
        prun = [cli, "run", "--rm", "--network", "none", "busybox", "true"]
        rm = [cli, "rm", "-f"] + (["-t", "0"] if who == "podman" else [])
        for rt, env in runtimes(run) if who == "docker" else [("builtin", None)]:
            ours, theirs = medians_abba(run, prun, N, env, penv)
            report(f"run --rm busybox true ({rt})", ours, "run", theirs, who)
        walls: dict[str, list[float]] = {"wharf": [], who: []}
        ids: dict[str, list[str]] = {"wharf": [], who: []}
        for side in ("wharf", who, who, "wharf"):  # ABBA; the second round's containers stay for ps
            c, env = (WHARF, None) if side == "wharf" else (cli, penv)
            if ids[side]:
                subprocess.run(([WHARF, "rm", "-f"] if side == "wharf" else rm) + ids[side], capture_output=True,
                               env=env)
            wall, ids[side] = parallel_runs(20, c, env)
            walls[side].append(wall)
        report("20 parallel run -d busybox sleep", statistics.mean(walls["wharf"]), "parallel20",
               statistics.mean(walls[who]), who)
        ours, theirs = medians_abba([WHARF, "ps"], [cli, "ps"], N, None, penv)
        report("ps with 20 containers", ours, "ps", theirs, who)
        subprocess.run([WHARF, "rm", "-f", *ids["wharf"]], capture_output=True)
        subprocess.run(rm + ids[who], capture_output=True, env=penv)


def main() -> int:
    if os.geteuid() != 0:
        print("bench_containers: needs root")
        return 0
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # measure as users run it: with .pyc files
    tmp = tempfile.mkdtemp(prefix="wbench")
    os.environ["WHARF_ROOT"], os.environ["WHARF_RUN"] = f"{tmp}/root", f"{tmp}/run"
    try:
        subprocess.run([WHARF, "image", "bootstrap", "busybox"], check=True, capture_output=True)
        run = [WHARF, "run", "--rm", "--network", "none", "busybox", "true"]
        if docker_cli():
            with_peer("docker", private_dockerd(wharf_env=dict(os.environ)), run)
        else:
            print("docker is not installed: ratios against the figures of issue 4")
            alone(run)
        if podman_cli():
            with_peer("podman", private_podman(wharf_env=dict(os.environ)), run)
        memory_per_container()
    finally:
        subprocess.run([WHARF, "rm", "-f", *subprocess.run([WHARF, "ps", "-aq"], capture_output=True,
                                                           text=True).stdout.split()], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
