"""The docker CLI through `wharf serve` against the same CLI through dockerd: `ps -a`, `images`,
`inspect` with 20 containers each, and `run --rm busybox true`. Needs root and the docker CLI.

When dockerd is installed, a PRIVATE dockerd (bench/peers.py) is started for the comparison (its own socket, data
and exec roots, no bridge, no iptables: it disturbs nothing else on the host), the busybox image
is moved into it with `wharf save` | `docker load`, and both daemons are timed in alternation
(medians of many runs, so load from other work on the machine hits both alike). It is always
stopped and its directory removed afterwards. Without dockerd the figures of issue 9 are used.
Wharf runs with a private WHARF_ROOT/WHARF_RUN, its own socket and bridge; everything is removed.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from peers import private_dockerd, terminate

ISSUE_DOCKERD = {"ps": 0.011, "images": 0.010, "inspect": 0.010, "run": 0.181}  # issue 9 (an older CLI)
N_CONTAINERS = 20
COMMANDS = {"ps": (["ps", "-a"], 31), "images": (["images"], 31), "inspect": (["inspect", "b7"], 31),
            "run": (["run", "--rm", "--network", "none", "busybox", "true"], 15)}


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       env=env, check=False, timeout=60)
    dt = time.perf_counter() - t
    if p.returncode:
        raise SystemExit(f"{' '.join(argv)} failed: {p.stderr.decode().strip()}")
    return dt


def wait_for(path: Path, proc: subprocess.Popen, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"{what} did not start")
        time.sleep(0.02)


def create_containers(docker: str, env: dict[str, str]) -> None:
    for i in range(N_CONTAINERS):
        subprocess.run([docker, "create", "--name", f"b{i}", "--network", "none", "busybox", "true"],
                       env=env, check=True, capture_output=True)


def measure(docker: str, envs: dict[str, dict[str, str]]) -> dict[str, dict[str, float]]:
    """Medians per command and daemon; the daemons take turns run by run."""
    out: dict[str, dict[str, float]] = {}
    for name, (args, n) in COMMANDS.items():
        runs: dict[str, list[float]] = {k: [] for k in envs}
        for env in envs.values():
            timed([docker, *args], env)  # warm-up
        for _ in range(n):
            for k, env in envs.items():
                runs[k].append(timed([docker, *args], env))
        out[name] = {k: statistics.median(v) for k, v in runs.items()}
    return out


def main() -> int:
    docker = shutil.which("docker")
    if docker is None or os.geteuid() != 0:
        print("bench_api: needs root and the docker CLI (apt-get install docker.io)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="wharf-bench-api-"))
    env = {**os.environ, "WHARF_ROOT": str(tmp / "root"), "WHARF_RUN": str(tmp / "run"),
           "WHARF_BRIDGE": "wba" + secrets.token_hex(4)}
    sock = tmp / "api.sock"
    wenv = {**env, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(tmp / "dcfg")}
    wharf = [sys.executable, "-m", "reconciler.cli.app"]
    subprocess.run([*wharf, "image", "bootstrap", "busybox"], env=env, check=True, capture_output=True)
    daemon = subprocess.Popen([*wharf, "serve", "-H", f"unix://{sock}"], env=env, stdin=subprocess.DEVNULL,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    envs = {"wharf": wenv}
    try:
        with contextlib.ExitStack() as stack:
            wait_for(sock, daemon, "wharf serve")
            if shutil.which("dockerd"):
                denv, _ = stack.enter_context(private_dockerd(wharf_env=env))
                envs["dockerd"] = denv
            for e in envs.values():
                create_containers(docker, e)
            figures = measure(docker, envs)
            for name, t in figures.items():
                ref, src = (t["dockerd"], "dockerd here") if "dockerd" in t else (ISSUE_DOCKERD[name], "issue 9")
                print(f"docker {name:8s} via wharf serve: {t['wharf']:.4f} s   {src}: {ref:.4f} s   "
                      f"ratio {t['wharf'] / ref:.2f}x")
    finally:
        subprocess.run([docker, "rm", "-f", *[f"b{i}" for i in range(N_CONTAINERS)]], env=wenv, capture_output=True)
        terminate(daemon)
        subprocess.run([sys.executable, "-c", "from runtime.network.manager import NetworkManager as M; "
                        "M().teardown()"], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
