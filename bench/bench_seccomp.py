"""What Wharf's default seccomp allowlist costs: container start (built-in runtime vs runc, no filter vs the
default profile, runs interleaved), compiling the filter vs installing a cached one, and a syscall-heavy
process (dd of 1-byte blocks: ~400k syscalls through the filter).
Usage: python bench/bench_seccomp.py [N]   (root; runc is measured when installed)
"""

from __future__ import annotations

import json
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

from runtime.linux import seccomp  # noqa: E402
from runtime.linux.caps import DOCKER_DEFAULT  # noqa: E402
from runtime.oci.bundle import write_bundle  # noqa: E402
from runtime.oci.runtimes import runtime_argv  # noqa: E402
from runtime.oci.seccomp_profile import default_profile, resolve  # noqa: E402
from tests.conftest import make_busybox_rootfs  # noqa: E402


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    if os.geteuid() != 0:
        sys.exit("bench_seccomp needs root")
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-seccomp-"))
    try:
        rootfs = make_busybox_rootfs(work / "rootfs")
        profile = resolve(default_profile(), list(DOCKER_DEFAULT))
        t = time.perf_counter()
        for _ in range(5):
            seccomp.compile_filter(profile)
        compile_ms = (time.perf_counter() - t) / 5 * 1000
        seccomp.cached_program(profile, str(work / "cache"))
        t = time.perf_counter()
        for _ in range(20):
            seccomp.cached_program(profile, str(work / "cache"))
        cached_ms = (time.perf_counter() - t) / 20 * 1000
        print(f"default profile: {len(profile['syscalls'][0]['names'])} syscalls allowed outright, "
              f"{len(seccomp.compile_filter(profile).bpf) // 8} BPF instructions (3 ABIs)")
        print(f"  compile with libseccomp {compile_ms:.1f} ms; cached program read {cached_ms:.2f} ms")
        runtimes = ["builtin"] + (["runc"] if shutil.which("runc") else [])
        for label, args, runs in (("/bin/true", ["/bin/true"], n),
                                  ("dd bs=1 count=200000", ["dd", "if=/dev/zero", "of=/dev/null", "bs=1",
                                                            "count=200000"], max(3, n // 4))):
            times: dict[tuple[str, str], list[float]] = {}
            bundles = {}
            for mode in ("none", "default"):
                b = work / f"b-{mode}-{len(args)}"
                spec = write_bundle(b, rootfs, args)
                spec["linux"].pop("seccomp", None)
                if mode == "default":
                    spec["linux"]["seccomp"] = profile
                (b / "config.json").write_text(json.dumps(spec))
                bundles[mode] = b
            for _ in range(runs):
                for rt in runtimes:
                    for mode, b in bundles.items():
                        t = time.perf_counter()
                        subprocess.run([*runtime_argv(rt), "--root", str(work / f"st-{rt}"), "run", "--bundle",
                                        str(b), "b" + uuid.uuid4().hex[:10]], check=True, capture_output=True)
                        times.setdefault((rt, mode), []).append(time.perf_counter() - t)
            print(f"{label} start-to-exit, median of {runs}:")
            for rt in runtimes:
                none, dflt = (statistics.median(times[(rt, m)]) * 1000 for m in ("none", "default"))
                print(f"  {rt:8s} no filter {none:7.1f} ms   default profile {dflt:7.1f} ms   "
                      f"(+{dflt - none:.1f} ms)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
