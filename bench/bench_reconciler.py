"""Reconciler benchmarks.

1. Pure: load + plan of a converged project with 10 and 200 services (what a no-op diff
   costs besides the engine's label queries). Target: 200 services <= 1 s.
2. Real (root, when the engine works): 10 services (9 sleepers + 1 httpd with a port and a
   volume) apply from scratch, no-op apply, no-op diff, down — in a private WHARF_ROOT —
   and the same with docker-compose v1 in turns, round by round, against a private dockerd
   (bench/peers.py) when both are installed (else the issue's docker-compose figures).
3. Real, 200 services (199 sleepers + the httpd): apply, then no-op diff and apply
   (medians of 5; target <= 1 s), then down.
Prints medians; never asserts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from peers import docker_cli, private_dockerd  # noqa: E402

from reconciler.desired import build_desired  # noqa: E402
from reconciler.observe import Observed, ObservedContainer, ObservedNetwork, ObservedVolume  # noqa: E402
from reconciler.plan import plan  # noqa: E402
from reconciler.spec import load_project  # noqa: E402


def stack(n: int, port: int = 18080, networks: bool = True) -> str:
    """n-1 sleepers + 1 httpd with a port and a volume (without networks: network_mode none, no port)."""
    nonet = [] if networks else ["    network_mode: none"]
    lines = ["services:"]
    for i in range(n - 1):
        lines += [f"  s{i}:", "    image: busybox:latest", "    command: [sleep, '100000']",
                  "    stop_grace_period: 1s", f"    environment: {{INDEX: '{i}'}}", *nonet]
    lines += ["  web:", "    image: busybox:latest", "    command: [httpd, -f, -p, '80', -h, /www]",
              *([f"    ports: ['127.0.0.1:{port}:80']"] if networks else nonet),
              "    volumes: [www:/www]", "    stop_grace_period: 1s", "volumes:", "  www: {}"]
    return "\n".join(lines) + "\n"


def converged(d, image_id: str) -> Observed:
    obs = Observed(d.project, images={ref: image_id for ref in d.images})
    for net in d.networks.values():
        obs.networks[net.name] = ObservedNetwork(net.name, net.name, net.key, net.config_hash)
    for vol in d.volumes.values():
        obs.volumes[vol.name] = ObservedVolume(vol.name, vol.key, vol.config_hash)
    for svc in d.services.values():
        for r in range(1, svc.replicas + 1):
            spec = svc.spec_for(d.project, r, image_id)
            obs.containers.append(ObservedContainer(
                f"id{svc.name}{r}", spec.name, svc.name, r, spec.labels["io.wharf.config-hash"],
                spec.labels["io.wharf.files-hash"], image_id, "running", networks=sorted(spec.networks),
                spec=dataclasses.asdict(spec)))
    return obs


def median(fn, n: int = 5) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def pure(tmp: Path) -> None:
    for n in (10, 200):
        f = tmp / f"s{n}" / "compose.yaml"
        f.parent.mkdir()
        f.write_text(stack(n))
        lp = load_project([str(f)], environ={})
        d = build_desired(lp.project, lp.file_digests, lp.project_dir)
        obs = converged(d, "sha256:" + "a" * 64)

        def noop(f=f, obs=obs):
            lp = load_project([str(f)], environ={})
            p = plan(lp, obs)
            assert p.empty, p.text()

        t = median(noop)
        print(f"pure no-op load+plan, {n:>3} services: {t * 1000:7.1f} ms (target for a whole no-op diff: "
              f"{'100 ms' if n == 10 else '1 s'})")


ROUNDS = 3


def cli(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "reconciler.cli.app", *args], env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode not in (0, 2):
        raise RuntimeError(f"wharf {' '.join(args)}: {r.stderr.strip()}")
    return dt


def real(tmp: Path) -> None:
    if os.geteuid() != 0:
        print("real engine: skipped (needs root)")
        return
    root = tmp / "root"
    env = {**os.environ, "WHARF_ROOT": str(root), "WHARF_RUN": str(tmp / "run"), "WHARF_BRIDGE": "wbr" + secrets.token_hex(4),
           "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    f = tmp / "real" / "compose.yaml"
    f.parent.mkdir()
    os.environ.update(WHARF_ROOT=env["WHARF_ROOT"], WHARF_RUN=env["WHARF_RUN"], WHARF_BRIDGE=env["WHARF_BRIDGE"])
    from reconciler.engine_guard import UNAVAILABLE, connect

    try:
        connect().networks.list()
        networks = True
    except UNAVAILABLE:
        networks = False
        print("(the engine has no networks yet: services use network_mode none and the httpd publishes no port)")
    f.write_text("name: wharfbench\n" + stack(10, 18081, networks))
    ups, noops, diffs, downs = [], [], [], []
    with contextlib.ExitStack() as stack_:
        try:
            cli(["image", "bootstrap", "busybox"], env)
            old = time.time() - 10  # written "long ago": the project cache may keep it (see target_cache.put)
            os.utime(f, (old, old))
            dc = compose(tmp, networks, env, stack_)
            for r in range(ROUNDS):  # round 1 loads the file (cold cache); later rounds reuse the cached project
                if dc is not None and r % 2 == 1:  # in turns with docker-compose: W C C W W C
                    dc = dc.round()
                ups.append(cli(["apply", "-f", str(f), "--progress", "plain"], env))
                noops += [cli(["apply", "-f", str(f)], env) for _ in range(3)]
                diffs += [cli(["diff", "-f", str(f)], env) for _ in range(3)]
                downs.append(cli(["down", "-f", str(f), "-t", "0", "-v"], env))
                if dc is not None and r % 2 == 0:
                    dc = dc.round()
        except RuntimeError as e:
            print(f"real engine: not available: {e}")
            subprocess.run([sys.executable, "-m", "reconciler.cli.app", "down", "-f", str(f), "-v", "-t", "0"],
                           env=env, capture_output=True)
            return
    up, noop, diff, down = (statistics.median(x) for x in (ups, noops, diffs, downs))
    print(f"({ROUNDS} rounds of apply, 3x no-op apply, 3x no-op diff, down; medians. first apply, cold cache: "
          f"{ups[0]:.2f} s)")
    if dc is not None:
        ref, src = dc.medians(), "docker-compose same run"
        print(f"docker-compose here (private dockerd, {ROUNDS} rounds in turns with wharf's): up -d {ref['up']:.2f} s, "
              f"no-op up -d {ref['noop']:.3f} s, down -t 0 {ref['down']:.2f} s")
    else:
        ref, src = {"up": 1.81, "noop": 0.334, "down": 1.15}, "docker-compose"  # this machine class (issue 8)
    print(f"wharf apply 10 services: {up:.2f} s ({src} up -d {ref['up']:.2f} s: ratio {up / ref['up']:.2f})")
    print(f"wharf no-op apply:       {noop:.3f} s ({src} {ref['noop']:.3f} s: ratio {noop / ref['noop']:.2f})")
    print(f"wharf no-op diff:        {diff:.3f} s")
    print(f"wharf down -t 0:         {down:.2f} s ({src} {ref['down']:.2f} s: ratio {down / ref['down']:.2f})")
    real200(tmp, env, networks)


class Compose:
    """docker-compose v1 on the same 10 services (compose file format 2.4: v1 knows no `name:`)."""

    def __init__(self, exe: str, f: Path, env: dict[str, str]) -> None:
        self.exe, self.f, self.env = exe, f, env
        self.ups: list[float] = []
        self.noops: list[float] = []
        self.downs: list[float] = []

    def dc(self, *args: str) -> float:
        t0 = time.perf_counter()
        subprocess.run([self.exe, "-p", "wharfbenchdc", "-f", str(self.f), *args], env=self.env, capture_output=True,
                       check=True)
        return time.perf_counter() - t0

    def round(self) -> Compose | None:
        """up -d, 3x no-op up -d, down; None (and a message) when docker-compose fails."""
        try:
            self.ups.append(self.dc("up", "-d"))
            self.noops += [self.dc("up", "-d") for _ in range(3)]
            self.downs.append(self.dc("down", "-t", "0", "-v"))
            return self
        except (subprocess.CalledProcessError, OSError) as e:
            err = getattr(e, "stderr", b"") or b""
            print(f"docker-compose: failed ({e}: {err.decode(errors='replace').strip()[-300:]}), skipped; "
                  "the ratios below use the issue's figures for it")
            with contextlib.suppress(subprocess.CalledProcessError, OSError):
                self.dc("down", "-t", "0", "-v")
            return None

    def medians(self) -> dict[str, float]:
        return {"up": statistics.median(self.ups), "noop": statistics.median(self.noops),
                "down": statistics.median(self.downs)}


def compose(tmp: Path, networks: bool, env: dict[str, str], stack_: contextlib.ExitStack) -> Compose | None:
    """docker-compose against a private dockerd (bench/peers.py, started into `stack_`), when both are installed."""
    exe = shutil.which("docker-compose")
    if not exe:
        print("docker-compose: not installed, skipped; the ratios below use the issue's figures for it")
        return None
    if not docker_cli() or not networks:
        print("docker-compose: no dockerd installed here (or no networks in wharf), skipped; "
              "the ratios below use the issue's figures for it")
        return None
    denv, _ = stack_.enter_context(private_dockerd(wharf_env=env))
    f = tmp / "dc" / "docker-compose.yml"
    f.parent.mkdir()
    f.write_text('version: "2.4"\n' + stack(10, 18083, networks))
    return Compose(exe, f, denv)


def real200(tmp: Path, env: dict[str, str], networks: bool) -> None:
    """200 services of busybox sleep, started for real: no-op diff and apply (target <= 1 s each)."""
    n = 200
    f = tmp / "real200" / "compose.yaml"
    f.parent.mkdir()
    f.write_text("name: wharfbench200\n" + stack(n, 18082, networks))
    old = time.time() - 10
    os.utime(f, (old, old))
    try:
        up = cli(["apply", "-f", str(f), "--parallel", "8", "--progress", "plain"], env)
        diffs = [cli(["diff", "-f", str(f)], env) for _ in range(5)]
        noops = [cli(["apply", "-f", str(f)], env) for _ in range(5)]
        down = cli(["down", "-f", str(f), "-t", "0", "-v"], env)
    except RuntimeError as e:
        print(f"real engine, {n} services: not available: {e}")
        subprocess.run([sys.executable, "-m", "reconciler.cli.app", "down", "-f", str(f), "-v", "-t", "0"],
                       env=env, capture_output=True)
        return
    diff, noop = statistics.median(diffs), statistics.median(noops)
    print(f"wharf, {n} real services: apply {up:.1f} s (--parallel 8), down -t 0 {down:.1f} s")
    print(f"wharf no-op diff,  {n} services: {diff:.3f} s (target <= 1 s: {'met' if diff <= 1 else 'MISSED'})")
    print(f"wharf no-op apply, {n} services: {noop:.3f} s (target <= 1 s: {'met' if noop <= 1 else 'MISSED'})")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="wharf-bench-") as d:
        tmp = Path(d)
        pure(tmp)
        try:
            real(tmp)
        finally:
            if os.environ.get("WHARF_RUN", "").startswith(d):  # the private root's bridge, DNS daemon, nft tables
                from runtime.network.manager import NetworkManager

                NetworkManager().teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
