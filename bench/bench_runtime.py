"""Start-to-exit of /bin/true in a busybox bundle: the built-in runtime vs runc vs crun.

Each runtime runs `<runtime> --root R run --bundle B ID` (create + start + wait + delete in one
command), then the engine's path of three commands (create, start, delete; the exit is awaited
as the shim does, as subreaper),
with the same config.json; prints the median wall time of N runs and the ratio to runc.
Usage: python bench/bench_runtime.py [N]   (root; runc/crun are measured when installed)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from runtime.oci.bundle import write_bundle  # noqa: E402
from runtime.oci.runtimes import runtime_argv  # noqa: E402
from tests.conftest import make_busybox_rootfs  # noqa: E402


def measure(argv: list[str], bundle: Path, root: Path, n: int) -> list[float] | str:
    times = []
    for i in range(n + 2):
        cid = "bench-" + uuid.uuid4().hex[:8]
        t0 = time.perf_counter()
        p = subprocess.run([*argv, "--root", str(root), "run", "--bundle", str(bundle), cid],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        dt = time.perf_counter() - t0
        if p.returncode != 0:
            subprocess.run([*argv, "--root", str(root), "delete", "--force", cid], capture_output=True)
            return p.stderr.decode(errors="replace").strip().splitlines()[-1:][0] if p.stderr else f"exit {p.returncode}"
        if i >= 2:  # two warm-up runs (page cache, bytecode cache)
            times.append(dt)
    return times


def measure_steps(argv: list[str], bundle: Path, root: Path, n: int) -> list[float] | str:
    """The engine's path: create, start, wait for the exit (as the shim, a subreaper), delete."""
    from runtime.linux import prctl

    prctl.set_child_subreaper(True)
    times = []
    base = [*argv, "--root", str(root)]
    pid_file = root.parent / "init.pid"
    for i in range(n + 2):
        cid = "bench-" + uuid.uuid4().hex[:8]
        t0 = time.perf_counter()
        # (the container inherits create's stdio: a pipe here would not close until it exits)
        with tempfile.TemporaryFile() as err:
            p = subprocess.run([*base, "create", "--bundle", str(bundle), "--pid-file", str(pid_file), cid],
                               stdout=subprocess.DEVNULL, stderr=err)
            if p.returncode != 0:
                err.seek(0)
                return err.read().decode(errors="replace").strip() or f"exit {p.returncode}"
        subprocess.run([*base, "start", cid], check=True)
        os.waitpid(int(pid_file.read_text()), 0)
        subprocess.run([*base, "delete", cid], check=True)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return times


def main() -> int:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if os.geteuid() != 0:
        print("bench_runtime: needs root (namespaces, cgroups)")
        return 0
    tmp = Path(tempfile.mkdtemp(prefix="wharf-bench-rt-"))
    try:
        rootfs = make_busybox_rootfs(tmp / "rootfs")
        bundle = tmp / "bundle"
        write_bundle(bundle, rootfs, ["/bin/true"])
        results: dict[tuple[str, str], float] = {}
        for name in ("builtin", "runc", "crun"):
            if name != "builtin" and not shutil.which(name):
                print(f"{name:8s} not installed")
                continue
            for mode, fn in (("run", measure), ("create+start+wait+delete", measure_steps)):
                r = fn(runtime_argv(name), bundle, tmp / f"state-{name}", n)
                if isinstance(r, str):
                    print(f"{name:8s} {mode}: failed: {r}")
                    break
                results[(name, mode)] = statistics.median(r)
                print(f"{name:8s} {mode:26s} median {results[(name, mode)] * 1000:7.1f} ms   "
                      f"(min {min(r) * 1000:.1f}, max {max(r) * 1000:.1f}, n={len(r)})")
        for (name, mode), v in results.items():
            if name != "runc" and ("runc", mode) in results:
                print(f"{mode}: {name} / runc = {v / results[('runc', mode)]:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
