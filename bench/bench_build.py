"""Build benchmark: 4 RUN steps each writing 25 MB of random data FROM busybox, uncached and fully cached;
4 COPY steps of a 25 MB file each (plus a WORKDIR and 200 small files), uncached.

Runs in a private WHARF_ROOT/WHARF_RUN (needs root). Prints medians and ratios against the
docker figures measured on this machine (issue 7) and against buildah when it is installed
(BENCH_NO_PEERS=1 skips it). WHARF_BUILD_RUNTIME picks the OCI runtime of the RUN steps.
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

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DOCKERFILE = """\
FROM busybox:latest
RUN head -c 26214400 /dev/urandom > /r1
RUN head -c 26214400 /dev/urandom > /r2
RUN head -c 26214400 /dev/urandom > /r3
RUN head -c 26214400 /dev/urandom > /r4
"""
COPY_DOCKERFILE = """\
FROM busybox:latest
COPY f1 /data/
COPY f2 /data/
WORKDIR /app
COPY small/ /app/small/
COPY f3 f4 /data/
"""
DOCKER_UNCACHED, DOCKER_CACHED = 2.08, 0.047  # docker build, measured here (issue 7)


def median_time(fn, n: int) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_buildah(ctx: Path, tmp: Path) -> float | None:
    exe = shutil.which("buildah")
    if not exe:
        return None
    argv = [exe, "--root", str(tmp / "bh-root"), "--runroot", str(tmp / "bh-run"), "--storage-driver", "vfs"]
    try:
        from runtime.images.store import ImageStore

        store = ImageStore()
        image = store.resolve("busybox:latest")
        layout = tmp / "layout"
        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration"))
        from test_build_buildah import oci_layout

        oci_layout(store, image, layout)
        pulled = subprocess.run([*argv, "pull", f"oci:{layout}"], capture_output=True, text=True, check=True)
        subprocess.run([*argv, "tag", pulled.stdout.split()[-1], "busybox:latest"], check=True, capture_output=True)

        def once() -> None:
            subprocess.run([*argv, "bud", "--network", "host", "--isolation", "chroot", "--pull-never",
                            "--no-cache", "--layers", "-t", "bench:latest", str(ctx)], check=True,
                           capture_output=True)
        return median_time(once, 3)
    except subprocess.CalledProcessError as e:
        print(f"buildah: skipped ({' '.join(e.cmd[-2:])}: {(e.stderr or b'').decode(errors='replace')[-300:]})")
        return None
    except (OSError, ImportError) as e:
        print(f"buildah: skipped ({e})")
        return None
    finally:
        subprocess.run([*argv, "rmi", "--all", "--force"], capture_output=True)
        subprocess.run(["umount", "-R", str(tmp / "bh-root")], capture_output=True)


def main() -> None:
    if os.geteuid() != 0:
        print("bench_build: needs root (RUN steps run containers)")
        return
    tmp = Path(tempfile.mkdtemp(prefix="wharf-bench-build-"))
    os.environ["WHARF_ROOT"] = str(tmp / "root")
    os.environ["WHARF_RUN"] = str(tmp / "run")
    try:
        from runtime.build.builder import build
        from runtime.images.bootstrap import bootstrap_busybox
        from runtime.images.store import ImageStore

        store = ImageStore()
        bootstrap_busybox(store)
        ctx = tmp / "ctx"
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(DOCKERFILE)

        def quiet(_: str) -> None:
            pass

        uncached = median_time(lambda: build(store, ctx, no_cache=True, progress=quiet), 3)
        build(store, ctx, progress=quiet)
        cached = median_time(lambda: build(store, ctx, progress=quiet), 7)
        from runtime.build.run_step import runtime_argv

        print(f"OCI runtime: {' '.join(runtime_argv())}")
        print(f"wharf build, 4 x 25 MB RUN steps, uncached:     {uncached:.3f} s median "
              f"({uncached / DOCKER_UNCACHED:.2f}x docker's {DOCKER_UNCACHED} s)")
        print(f"wharf build, 4 x 25 MB RUN steps, fully cached: {cached:.4f} s median "
              f"({cached / DOCKER_CACHED:.2f}x docker's {DOCKER_CACHED} s)")
        cctx = tmp / "cctx"
        (cctx / "small").mkdir(parents=True)
        (cctx / "Dockerfile").write_text(COPY_DOCKERFILE)
        for i in range(1, 5):
            (cctx / f"f{i}").write_bytes(os.urandom(25 << 20))
        for i in range(200):
            (cctx / "small" / f"s{i}").write_bytes(os.urandom(1000))
        copies = median_time(lambda: build(store, cctx, no_cache=True, progress=quiet), 5)
        print(f"wharf build, COPY 4 x 25 MB + 200 files, uncached: {copies:.3f} s median")
        bh = None if os.environ.get("BENCH_NO_PEERS") else bench_buildah(ctx, tmp)
        if bh is not None:
            print(f"buildah bud (vfs, chroot), uncached:            {bh:.3f} s median "
                  f"(wharf/buildah {uncached / bh:.2f}x)")
    finally:
        subprocess.run(["umount", "-R", "-l", str(tmp)], capture_output=True)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
