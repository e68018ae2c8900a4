"""`wharf --host` as an Engine API client, against the docker CLI on the same daemons.

Starts `wharf serve` on a private root (busybox bootstrapped) and, when dockerd is installed,
a private dockerd (bench/peers.py: no bridge, no iptables, its own roots; stopped and removed
afterwards). For each daemon it prints the median wall time of
`run --rm --network none busybox true`, `exec C true`, `ps`, `images`, `image inspect`,
`history`, `save -o` and `load -i` for the wharf CLI and the docker CLI (when installed), and
the ratio wharf/docker. Needs root.

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


def median(argv: list[str], env: dict[str, str], n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        subprocess.run(argv, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(label: str, host: str, n: int) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("WHARF_HOST", "DOCKER_HOST")}
    denv = {**env, "DOCKER_HOST": host, "DOCKER_CONFIG": tempfile.mkdtemp(prefix="bench-dcfg-")}
    cname = "bench" + os.urandom(3).hex()
    subprocess.run([WHARF, "--host", host, "run", "-d", "--name", cname, "--network", "none", "busybox",
                    "sleep", "600"], env=env, check=True, capture_output=True)
    try:
        tar = os.path.join(denv["DOCKER_CONFIG"], "bb.tar")
        cases = {"run --rm true": ["run", "--rm", "--network", "none", "busybox", "true"],
                 "exec true": ["exec", cname, "true"], "ps": ["ps"], "images": ["images"],
                 "image inspect": ["image", "inspect", "busybox"], "history": ["history", "busybox"],
                 "save -o": ["save", "-o", tar, "busybox"], "load -i": ["load", "-i", tar]}
        for case, args in cases.items():
            w = median([WHARF, "--host", host, *args], env, n)
            line = f"{label:14s} {case:14s} wharf CLI {w:.3f} s"
            if DOCKER:
                d = median([DOCKER, *args], denv, n)
                line += f"   docker CLI {d:.3f} s   ratio {w / d:.2f}x"
            print(line, flush=True)
    finally:
        subprocess.run([WHARF, "--host", host, "rm", "-f", cname], env=env, capture_output=True)
        shutil.rmtree(denv["DOCKER_CONFIG"], ignore_errors=True)


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
