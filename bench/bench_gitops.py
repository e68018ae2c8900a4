"""`wharf gitops` benchmarks (root; a private WHARF_ROOT; busybox bootstrapped offline).

1. A no-op pass on an unchanged head (`wharf gitops REPO --once`) against what a CI job would
   run instead: `git pull` in a clone + `wharf apply` (no-op).
2. Deploying a commit that changes one service's env (a recreate): `gitops --once` against
   `git pull && wharf apply`.
3. Commit -> running: a watcher (`wharf gitops REPO --interval 1h`) runs; the time from
   `git commit` until the container with the new env is running. A local repository wakes
   the watcher when its branch moves; a remote one is polled, which adds on average half the
   --interval to this figure.
The peer (git pull + apply) is the same engine, so the ratios show what gitops adds or saves.
Prints medians; never asserts.
"""

from __future__ import annotations

import os
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ROUNDS = 5
SERVICES = 3
GIT_ENV = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@b", "GIT_COMMITTER_NAME": "bench",
           "GIT_COMMITTER_EMAIL": "b@b"}


def stack(name: str, msg: str) -> str:
    out = [f"name: {name}", "services:"]
    for i in range(SERVICES):
        out += [f"  s{i}:", "    image: busybox:latest", "    network_mode: none",
                "    command: [sh, -c, \"trap 'exit 0' TERM; sleep 100000 & wait\"]",
                f"    environment: {{MSG: '{msg if i == 0 else 'fixed'}'}}"]
    return "\n".join(out) + "\n"


def sh(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    dt = time.perf_counter() - t0
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stderr.strip() or r.stdout.strip()}")
    return dt


def main() -> int:
    if os.geteuid() != 0:
        print("bench_gitops: skipped (needs root)")
        return 0
    with tempfile.TemporaryDirectory(prefix="wharf-bench-gitops-") as d:
        tmp = Path(d)
        os.environ.update(WHARF_ROOT=str(tmp / "root"), WHARF_RUN=str(tmp / "run"),
                          WHARF_BRIDGE="whb" + secrets.token_hex(4))
        env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO)}
        wharf = [sys.executable, "-m", "reconciler.cli.app"]
        name = "gbench" + secrets.token_hex(2)
        src, clone = tmp / "src" / name, tmp / "clone" / name
        src.mkdir(parents=True)
        n = 0

        def commit() -> str:
            nonlocal n
            n += 1
            (src / "compose.yaml").write_text(stack(name, f"v{n}"))
            sh("git", "add", "-A", cwd=src, env=env)
            sh("git", "commit", "-qm", f"v{n}", cwd=src, env=env)
            return f"v{n}"

        sh("git", "init", "-q", "-b", "main", str(src), env=env)
        commit()
        sh("git", "clone", "-q", str(src), str(clone), env=env)
        gitops = [*wharf, "gitops", str(src), "--once"]
        peer = ["sh", "-c", f"git -C {clone} pull -q --ff-only && {' '.join(wharf)} apply -f {clone}/compose.yaml"]
        watcher = None
        try:
            sh(*wharf, "image", "bootstrap", "busybox", env=env)
            sh(*gitops, env=env)
            sh(*peer, env=env)
            noop_g = statistics.median(sh(*gitops, env=env) for _ in range(ROUNDS))
            noop_p = statistics.median(sh(*peer, env=env) for _ in range(ROUNDS))
            print(f"no-op pass, {SERVICES} services: gitops --once {noop_g:.3f} s; git pull + apply {noop_p:.3f} s "
                  f"(ratio {noop_g / noop_p:.2f})")

            dep_g, dep_p = [], []
            for _ in range(3):  # each deploys every other commit; the other one then finds it running
                commit()
                dep_g.append(sh(*gitops, env=env))
                sh(*peer, env=env)
                commit()
                dep_p.append(sh(*peer, env=env))
                sh(*gitops, env=env)
            g, p = statistics.median(dep_g), statistics.median(dep_p)
            print(f"deploy a commit (1 recreate): gitops --once {g:.3f} s; git pull + apply {p:.3f} s "
                  f"(ratio {g / p:.2f})")

            from reconciler.engine_guard import connect

            engine = connect()

            def msg() -> str:
                for c in engine.containers.list(filters={"label": [f"io.wharf.project={name}",
                                                                   "io.wharf.service=s0"]}):
                    if c.state.running:
                        return dict(x.split("=", 1) for x in engine.containers.inspect(c.id).spec.env)["MSG"]
                return ""

            watcher = subprocess.Popen([*wharf, "gitops", str(src), "--interval", "1h"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)  # its first pass (an up-to-date one) is done
            lat = []
            for _ in range(ROUNDS):
                t0 = time.perf_counter()
                want = commit()
                while msg() != want:
                    if time.perf_counter() - t0 > 60:
                        raise RuntimeError("the watcher did not deploy the commit within 60 s")
                    time.sleep(0.01)
                lat.append(time.perf_counter() - t0)
            watcher.send_signal(signal.SIGINT)
            watcher.wait(30)
            watcher = None
            print(f"commit -> running (1 recreate), watcher on a local repository: median "
                  f"{statistics.median(lat):.3f} s, max {max(lat):.3f} s ({ROUNDS} commits; "
                  f"`git commit` + `wharf gitops --once` by hand: {g:.3f} s)")
        except RuntimeError as e:
            print(f"bench_gitops: {e}")
        finally:
            if watcher is not None:
                watcher.kill()
                watcher.wait()
            subprocess.run([*wharf, "down", "-p", name, "-t", "1"], env=env, capture_output=True)
            try:
                from runtime.network.manager import NetworkManager

                NetworkManager().teardown()
            except Exception as e:  # a bench never fails on cleanup; say what was left
                print(f"(network teardown: {e})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
