"""`wharf exec`: latency of `wharf exec c true` (CLI) and of LocalContainers.exec (in-process), for a
default container (seccomp filter + dropped caps applied to each exec) and a --privileged exec.

Prints medians. Needs root. Uses a private WHARF_ROOT/WHARF_RUN and removes everything it made.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

WHARF = str(Path(sys.executable).with_name("wharf"))
N = int(os.environ.get("BENCH_N", "30"))


def median_of(fn, n: int = N) -> float:
    fn()  # warm-up (also fills the seccomp cache)
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.conftest import make_busybox_rootfs

    tmp = Path(tempfile.mkdtemp(prefix="wharf-bench-exec-"))
    os.environ["WHARF_ROOT"] = str(tmp / "root")
    os.environ["WHARF_RUN"] = str(tmp / "run")
    rootfs = make_busybox_rootfs(tmp / "rootfs")
    name = f"bx{os.getpid()}"
    try:
        subprocess.run([WHARF, "run", "-d", "--name", name, "--rootfs", str(rootfs), "--network", "none",
                        "-", "sleep", "600"], check=True, capture_output=True)
        from runtime.containers.manager import LocalContainers

        cs = LocalContainers()
        cli = median_of(lambda: subprocess.run([WHARF, "exec", name, "true"], check=True))
        api = median_of(lambda: cs.exec(name, ["true"]))
        print(f"wharf exec c true (CLI):        {cli * 1000:7.1f} ms median of {N}")
        print(f"LocalContainers.exec(c, true):  {api * 1000:7.1f} ms median of {N}")
        try:
            priv = median_of(lambda: cs.exec(name, ["true"], privileged=True))  # type: ignore[call-arg]
            print(f"  ... privileged=True:          {priv * 1000:7.1f} ms median of {N}")
        except TypeError:
            pass
    finally:
        subprocess.run([WHARF, "rm", "-f", name], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
