"""The docker CLI through `wharf serve`: `ps`, `images`, `inspect` with 20 containers, and
`run --rm busybox true`. Prints medians and ratios against dockerd's figures measured on
this VM (issue 9; dockerd is never started here). Needs root and the docker CLI.
Uses a private WHARF_ROOT/WHARF_RUN, its own socket and bridge, and removes everything it made.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DOCKERD = {"ps": 0.011, "images": 0.010, "inspect": 0.010, "run": 0.181}  # issue 9, measured here
N_CONTAINERS = 20


def timed(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=False)
    return time.perf_counter() - t


def median(argv: list[str], env: dict[str, str], n: int) -> float:
    timed(argv, env)  # warm-up
    return statistics.median(timed(argv, env) for _ in range(n))


def main() -> int:
    docker = shutil.which("docker")
    if docker is None or os.geteuid() != 0:
        print("bench_api: needs root and the docker CLI (apt-get install docker.io)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="wharf-bench-api-"))
    env = {**os.environ, "WHARF_ROOT": str(tmp / "root"), "WHARF_RUN": str(tmp / "run"),
           "WHARF_BRIDGE": "wba" + secrets.token_hex(4)}
    sock = tmp / "api.sock"
    denv = {**env, "DOCKER_HOST": f"unix://{sock}", "DOCKER_CONFIG": str(tmp / "dcfg")}
    subprocess.run([sys.executable, "-m", "reconciler.cli.app", "image", "bootstrap", "busybox"], env=env,
                   check=True, capture_output=True)
    daemon = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "serve", "-H", f"unix://{sock}"],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        for i in range(N_CONTAINERS):
            subprocess.run([docker, "create", "--name", f"b{i}", "--network", "none", "busybox", "true"],
                           env=denv, check=True, capture_output=True)
        ours = {
            "ps": median([docker, "ps", "-a"], denv, 15),
            "images": median([docker, "images"], denv, 15),
            "inspect": median([docker, "inspect", "b7"], denv, 15),
            "run": median([docker, "run", "--rm", "--network", "none", "busybox", "true"], denv, 7),
        }
        for name, t in ours.items():
            print(f"docker {name:8s} via wharf serve: {t:.3f} s   dockerd {DOCKERD[name]:.3f} s   "
                  f"ratio {t / DOCKERD[name]:.2f}x")
        null = subprocess.run([docker, "version"], env=denv, capture_output=True)
        if null.returncode:
            print("warning: docker version failed:", null.stderr.decode().strip())
    finally:
        subprocess.run([docker, "rm", "-f", *[f"b{i}" for i in range(N_CONTAINERS)]], env=denv, capture_output=True)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(10)
        subprocess.run([sys.executable, "-c", "from runtime.network.manager import NetworkManager as M; "
                        "M().teardown()"], env=env, capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
