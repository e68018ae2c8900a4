"""Images benchmark: layer unpack throughput vs `umoci unpack` and `tar -x`, and `commit` of a 50 MB change.

    sudo .venv/bin/python bench/bench_images.py [--mb 100] [--runs 3]

The image: 4 gzip layers, ~MB/4 each of uncompressed data (half random, half text,
in files from 1 kB to 8 MB). Wharf unpacks into overlay-form snapshots (hash + extract in
one pass, as `register` does after a pull or load); tar -x extracts each layer into one dir;
umoci unpacks the OCI layout (what `wharf save --format oci` writes). Prints medians.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import os
import random
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from runtime.images.archive import save_oci  # noqa: E402
from runtime.images.store import ImageStore  # noqa: E402
from runtime.linux.mount import umount  # noqa: E402


def make_layer(n: int, size: int, rng: random.Random) -> bytes:
    buf = io.BytesIO()
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(2000)]
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        d = tarfile.TarInfo(f"layer{n}")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        tf.addfile(d)
        total, i = 0, 0
        while total < size:
            fsize = rng.choice([1024, 4096, 65536, 1 << 20, 8 << 20])
            if i % 2:
                data = rng.randbytes(fsize)
            else:
                data = b" ".join(rng.choice(words) for _ in range(fsize // 5))[:fsize]
            ti = tarfile.TarInfo(f"layer{n}/dir{i % 16}/f{i}")
            ti.size, ti.mode, ti.mtime = len(data), 0o644, 1_600_000_000
            if i % 16 == i:
                di = tarfile.TarInfo(f"layer{n}/dir{i}")
                di.type, di.mode = tarfile.DIRTYPE, 0o755
                tf.addfile(di)
            tf.addfile(ti, io.BytesIO(data))
            total += len(data)
            i += 1
    return buf.getvalue()


def timed(fn, runs: int) -> float:
    out = []
    for _ in range(runs):
        t = fn()
        out.append(t)
    return statistics.median(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_images needs root (overlay mounts, ownership)")
    work = Path(tempfile.mkdtemp(prefix="wharf-bench-images-"))
    try:
        rng = random.Random(42)
        layers = [make_layer(n, args.mb * (1 << 20) // 4, rng) for n in range(4)]
        total = sum(len(raw) for raw in layers)
        blobs = [gzip.compress(raw, compresslevel=6, mtime=0) for raw in layers]
        print(f"image: 4 layers, {total / 1e6:.1f} MB uncompressed, {sum(map(len, blobs)) / 1e6:.1f} MB gzip")
        src = ImageStore(work / "src")
        descs = [(src.content.put(b), "sha256:" + hashlib.sha256(raw).hexdigest()) for b, raw in zip(blobs, layers,
                                                                                                        strict=True)]
        img = src.add_image({"config": {"Cmd": ["sh"]}}, descs, "bench:1")
        for i, b in enumerate(blobs):
            (work / f"l{i}.tar.gz").write_bytes(b)
            (work / f"l{i}.tar").write_bytes(layers[i])

        plain_descs = [(src.content.put(raw), d) for raw, (_, d) in zip(layers, descs, strict=True)]
        plain = src.add_image({"config": {"Cmd": ["sh"]}}, plain_descs, "bench:plain")

        def wharf_unpack(image=img, blob_list=blobs) -> float:
            dst = ImageStore(work / "dst")
            for layer, b in zip(image.layers, blob_list, strict=True):
                dst.content.put(b, expected=layer["digest"])
            dst.content.put(src.content.read(image.id))
            manifest = src.content.read(image.manifest_digest)
            t = time.perf_counter()
            dst.register(manifest, "bench:1")
            el = time.perf_counter() - t
            shutil.rmtree(work / "dst")
            return el

        def tar_x(flag: str, suffix: str):
            def run() -> float:
                out = work / "tarx"
                out.mkdir()
                t = time.perf_counter()
                for i in range(4):
                    subprocess.run(["tar", flag, str(work / f"l{i}{suffix}"), "-C", str(out)], check=True)
                el = time.perf_counter() - t
                shutil.rmtree(out)
                return el
            return run

        results = {"wharf": timed(wharf_unpack, args.runs), "tar -xz": timed(tar_x("-xzf", ".tar.gz"), args.runs),
                   "wharf (plain)": timed(lambda: wharf_unpack(plain, layers), args.runs),
                   "tar -x (plain)": timed(tar_x("-xf", ".tar"), args.runs)}
        if shutil.which("umoci"):
            with open(work / "oci.tar", "wb") as f:
                save_oci(src, ["bench:1"], f)
            (work / "layout").mkdir()
            subprocess.run(["tar", "-xf", str(work / "oci.tar"), "-C", str(work / "layout")], check=True)

            def umoci() -> float:
                t = time.perf_counter()
                subprocess.run(["umoci", "unpack", "--image", f"{work / 'layout'}:1", str(work / "bundle")],
                               check=True, capture_output=True)
                el = time.perf_counter() - t
                shutil.rmtree(work / "bundle")
                return el

            results["umoci unpack"] = timed(umoci, args.runs)
        print(f"unpack ({args.runs} runs, median):")
        for name, secs in results.items():
            print(f"  {name:15s} {secs:7.3f} s  {total / 1e6 / secs:8.1f} MB/s")
        print(f"  wharf / tar -xz speed ratio: {results['tar -xz'] / results['wharf']:.2f}x")
        print(f"  wharf / tar -x (plain layers) speed ratio: {results['tar -x (plain)'] / results['wharf (plain)']:.2f}x")
        if "umoci unpack" in results:
            print(f"  wharf / umoci speed ratio:   {results['umoci unpack'] / results['wharf']:.2f}x")

        # commit of a 50 MB change
        def commit() -> float:
            key = f"bench{rng.randrange(1 << 30)}"
            target = work / "mnt"
            target.mkdir(exist_ok=True)
            src.rootfs_mounts(img.id, key)[0].mount(target)
            try:
                for i in range(50):
                    data = rng.randbytes(512 << 10) + b"x" * (512 << 10)
                    (target / f"new{i}").write_bytes(data)
            finally:
                umount(target)
            t = time.perf_counter()
            new = src.commit(key, img.id, ref="bench:committed")
            el = time.perf_counter() - t
            src.release_rootfs(key)
            src.remove(new.id, force=True)
            return el

        secs = timed(commit, args.runs)
        print(f"commit of a 50 MB change (one pass: gzip layer + its snapshot unpacked on the way): {secs:.3f} s "
              f"({50 * 1.048576 / secs:.1f} MB/s)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
