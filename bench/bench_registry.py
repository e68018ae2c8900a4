"""Registry benchmark: a ~100 MB image in 4 incompressible gzip layers over loopback.

Measures (medians): `wharf pull` (CLI, with unpack, fresh store each run; also the in-process
`client.pull` LocalEngine calls) and `wharf push` (CLI, to a new repository each run) against `wharf registry serve` and Debian's docker-registry, and skopeo
copying to an OCI layout from each server. Prints MB/s and ratios: skopeo from ours vs from
docker-registry (target >= 0.8), wharf vs the docker figures measured on this machine (issue 6).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

DOCKER_PULL, DOCKER_PUSH, SKOPEO_OCI = 143.0, 84.0, 470.0  # MB/s measured here (issue 6)
LAYERS, LAYER_MB = 4, 25
RUNS = int(os.environ.get("BENCH_RUNS", "5"))


def make_layout(dest: Path) -> int:
    """An OCI layout with LAYERS gzip layers of random bytes; returns the total blob size."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)

    def put(data: bytes) -> dict:
        d = hashlib.sha256(data).hexdigest()
        (blobs / d).write_bytes(data)
        return {"digest": "sha256:" + d, "size": len(data)}

    layers, diff_ids = [], []
    for i in range(LAYERS):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            data = os.urandom(LAYER_MB << 20)
            info = tarfile.TarInfo(f"data{i}.bin")
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        raw = buf.getvalue()
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                       **put(gzip.compress(raw, 1, mtime=0))})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["/bin/sh"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **put(config)},
                           "layers": layers}).encode()
    desc = put(manifest)
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", **desc,
         "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return sum(d["size"] for d in layers) + len(config)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise SystemExit(f"server on port {port} did not start")


def run(*argv: str, env: dict | None = None) -> None:
    r = subprocess.run(argv, capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"{' '.join(argv)} failed: {r.stderr}")


def timed(fns: dict[str, tuple]) -> dict[str, float]:
    """Median seconds of each fn(i) over RUNS runs, the fns interleaved run by run (fair under a
    changing machine load). fns maps a label to (fn, setup, teardown): setup(i) runs untimed
    before, teardown(i) after (removing the run's output, so that gigabytes of dirty pages from
    earlier runs do not throttle the later ones)."""
    times: dict[str, list[float]] = {k: [] for k in fns}
    for i in range(RUNS):
        for label, (fn, setup, teardown) in fns.items():
            if setup:
                setup(i)
            t0 = time.perf_counter()
            fn(i)
            times[label].append(time.perf_counter() - t0)
            if teardown:
                teardown(i)
    return {k: statistics.median(v) for k, v in times.items()}


def remove(prefix: Path, i: int) -> None:
    for p in (Path(f"{prefix}-{i}"), Path(f"{prefix}-{i}-run")):
        shutil.rmtree(p, ignore_errors=True)


def wharf(root: Path, *args: str) -> None:
    env = {**os.environ, "WHARF_ROOT": str(root), "WHARF_RUN": f"{root}-run"}
    run(sys.executable, "-m", "reconciler.cli.app", *args, env=env)


def skopeo_pull(addr: str, out: Path, i: int) -> None:
    run("skopeo", "copy", "--src-tls-verify=false", f"docker://{addr}/bench/img:v1", f"oci:{out}-{i}:v1")


def wharf_pull(addr: str, roots: Path, i: int) -> None:
    wharf(Path(f"{roots}-{i}"), "pull", "-q", f"{addr}/bench/img:v1")


def api_pull(addr: str, roots: Path, i: int) -> None:
    """The library call LocalEngine makes (no CLI start-up), into a fresh store."""
    from runtime.images.store import ImageStore
    from runtime.registry.client import pull

    pull(ImageStore(Path(f"{roots}-{i}") / "images"), f"{addr}/bench/img:v1")


def pull_and_tag(src: str, dst: str, roots: Path, i: int) -> None:
    wharf(Path(f"{roots}-{i}"), "pull", "-q", f"{src}/bench/img:v1")
    wharf(Path(f"{roots}-{i}"), "tag", f"{src}/bench/img:v1", f"{dst}/bench/push{i}:v1")


def wharf_push(dst: str, roots: Path, i: int) -> None:
    wharf(Path(f"{roots}-{i}"), "push", "-q", f"{dst}/bench/push{i}:v1")


def main() -> None:
    if not shutil.which("skopeo"):
        raise SystemExit("skopeo is needed (apt-get install skopeo)")
    tmp = Path(tempfile.mkdtemp(prefix="bench-registry-"))
    procs: list[subprocess.Popen] = []
    try:
        size = make_layout(tmp / "layout")
        mb = size / 1e6
        servers = {}
        port = free_port()
        procs.append(subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "registry", "serve", "--addr",
                                       f"127.0.0.1:{port}", "--root", str(tmp / "ours")],
                                      stdout=subprocess.DEVNULL))
        wait_port(port, procs[-1])
        servers["wharf registry"] = f"127.0.0.1:{port}"
        if shutil.which("docker-registry"):
            port = free_port()
            (tmp / "dr.yml").write_text(json.dumps({
                "version": 0.1, "log": {"level": "error"},
                "storage": {"filesystem": {"rootdirectory": str(tmp / "dreg")}}, "http": {"addr": f"127.0.0.1:{port}"}}))
            procs.append(subprocess.Popen(["docker-registry", "serve", str(tmp / "dr.yml")],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            wait_port(port, procs[-1])
            servers["docker-registry"] = f"127.0.0.1:{port}"
        for addr in servers.values():
            run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{tmp / 'layout'}:v1", f"docker://{addr}/bench/img:v1")
        print(f"image: {LAYERS} layers, {mb:.1f} MB; {RUNS} runs each, medians")
        fns: dict[str, tuple] = {}
        for name, addr in servers.items():
            out = tmp / f"skopeo-{name.split()[0]}"
            fns[f"skopeo copy from {name}"] = (partial(skopeo_pull, addr, out), None, partial(remove, out))
        for name, addr in servers.items():
            roots, api_roots = tmp / f"root-{name.split()[0]}", tmp / f"api-{name.split()[0]}"
            fns[f"wharf pull from {name}"] = (partial(wharf_pull, addr, roots), None, partial(remove, roots))
            fns[f"  (in-process client.pull from {name})"] = (partial(api_pull, addr, api_roots), None,
                                                             partial(remove, api_roots))
        pulls = dict(fns)
        for name, addr in servers.items():
            # push what was pulled from the *other* server, so nothing can be mounted or skipped
            src = next((a for n, a in servers.items() if n != name), addr)
            roots = tmp / f"push-{name.split()[0]}"
            fns[f"wharf push to {name}"] = (partial(wharf_push, addr, roots), partial(pull_and_tag, src, addr, roots),
                                            partial(remove, roots))
        results = {k: mb / t for k, t in timed(pulls).items()}
        results.update({k: mb / t for k, t in timed({k: v for k, v in fns.items() if k not in pulls}).items()})
        print(f"load average at the end: {os.getloadavg()[0]:.1f} (2 cores)")
        for k, v in results.items():
            print(f"{k:<36} {v:8.1f} MB/s")
        ours = results["skopeo copy from wharf registry"]
        if "skopeo copy from docker-registry" in results:
            theirs = results["skopeo copy from docker-registry"]
            print(f"ratio skopeo from wharf registry / from docker-registry: {ours / theirs:.2f} (target >= 0.8)")
            print(f"ratio wharf pull / docker pull ({DOCKER_PULL:.0f} MB/s, measured here, issue 6): "
                  f"{results['wharf pull from docker-registry'] / DOCKER_PULL:.2f} (target >= 1.5)")
            print(f"ratio wharf push / docker push ({DOCKER_PUSH:.0f} MB/s, measured here, issue 6): "
                  f"{results['wharf push to docker-registry'] / DOCKER_PUSH:.2f} (target >= 1.5)")
        print(f"ratio wharf pull from wharf registry / docker pull: {results['wharf pull from wharf registry'] / DOCKER_PULL:.2f}")
        for name in servers:
            print(f"ratio in-process client.pull from {name} / docker pull: "
                  f"{results[f'  (in-process client.pull from {name})'] / DOCKER_PULL:.2f} (no CLI start-up)")
    finally:
        for p in procs:
            p.terminate()
            p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
