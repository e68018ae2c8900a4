"""The same Dockerfiles built by buildah (Debian's) and by wharf: same files, same config."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from runtime.build import rootfs as rfs
from runtime.build.builder import build

pytestmark = [pytest.mark.root, pytest.mark.peer]

# buildah (1.28) ignores SHELL for a shell-form CMD/ENTRYPOINT (Docker applies it), and `buildah from`
# runs ONBUILD triggers: the peer Dockerfiles avoid both.
# EXPOSE ranges differ by design: Docker expands 9000-9001/udp into two ports, buildah keeps the range.
CONFIG_KEYS = ("Env", "Cmd", "Entrypoint", "WorkingDir", "User", "ExposedPorts", "Volumes", "Labels", "StopSignal",
               "Shell", "Healthcheck", "OnBuild")

DOCKERFILES = {
    "metadata-and-copy": """\
FROM busybox:latest
ARG VERSION=1.2
ENV APP_HOME=/srv/app LEVEL="two words"
WORKDIR $APP_HOME
COPY --chmod=750 run.sh ./bin/
COPY conf/ /etc/app/
ADD data.tar /opt/data/
RUN mkdir -p /var/lib/app && echo "$VERSION" > /var/lib/app/version && chmod 600 /var/lib/app/version
RUN rm /etc/group && ln -s /etc/passwd /srv/app/passwd-link
USER 1000:1000
EXPOSE 8080 9000/udp
VOLUME /var/lib/app /cache
LABEL org.opencontainers.image.title="peer test" version=$VERSION
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=10s --retries=2 CMD test -e /var/lib/app/version
ENTRYPOINT ["/srv/app/bin/run.sh"]
CMD ["--serve"]
""",
    "shell-forms": """\
FROM busybox:latest
ENTRYPOINT exec echo entry
SHELL ["/bin/sh", "-ec"]
ENV A=1 B=$A
WORKDIR relative/dir
WORKDIR ../other
COPY --chown=1000:1000 run.sh /home/app/
RUN chown -R 1000:1000 /home/app && ln -s /home/app /app-link && echo "$A$B" > /ab
""",
    "multistage": """\
FROM busybox:latest AS build
RUN mkdir /out && echo compiled > /out/app && chmod 755 /out/app
FROM busybox:latest
COPY --from=build /out/app /usr/local/bin/app
CMD /usr/local/bin/app
""",
}


def _buildah() -> list[str] | None:
    exe = shutil.which("buildah")
    if not exe:
        return None
    return [exe]


@pytest.fixture
def buildah(tmp_path: Path):
    exe = _buildah()
    if exe is None:
        pytest.skip("buildah is not installed")
    root = tmp_path / "buildah"
    argv = [*exe, "--root", str(root / "root"), "--runroot", str(root / "run"), "--storage-driver", "vfs"]
    probe = subprocess.run([*argv, "images"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"buildah cannot run here: {probe.stderr.strip()[:200]}")
    yield argv
    subprocess.run([*argv, "rm", "--all"], capture_output=True)
    subprocess.run([*argv, "rmi", "--all", "--force"], capture_output=True)
    subprocess.run(["umount", "-R", str(root / "root")], capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


def oci_layout(store, image, dest: Path) -> Path:
    """Write an image of the store as an OCI image layout (what buildah pulls from)."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    digests = [image.manifest_digest, "sha256:" + image.id.removeprefix("sha256:")]
    digests += [layer["digest"] for layer in image.layers]
    for digest in digests:
        shutil.copyfile(store.content.path(digest), blobs / digest.removeprefix("sha256:"))
    manifest = json.loads(store.content.path(image.manifest_digest).read_bytes())
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (dest / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": manifest.get("mediaType", "application/vnd.oci.image.manifest.v1+json"),
        "digest": image.manifest_digest, "size": store.content.size(image.manifest_digest),
        "annotations": {"org.opencontainers.image.ref.name": "latest"}}]}))
    return dest


def tree(root: Path) -> dict[str, tuple]:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = "/" + str(p.relative_to(root))
            st = os.lstat(p)
            if stat.S_ISREG(st.st_mode):
                what = hashlib.sha256(p.read_bytes()).hexdigest()
            elif stat.S_ISLNK(st.st_mode):
                what = os.readlink(p)
            else:
                what = ""
            out[rel] = (stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, what)
    return out


# buildah leaves the mount points of its RUN containers in the image (empty /etc/hosts,
# /etc/hostname, /etc/resolv.conf and /run); Docker and wharf do not.
IGNORED = {"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run"}


@pytest.mark.parametrize("name", sorted(DOCKERFILES))
def test_same_result_as_buildah(name, buildah, tmp_path, wharf_root):
    import io
    import tarfile

    store = pytest.importorskip("runtime.images.store").ImageStore()
    base = pytest.importorskip("runtime.images.bootstrap").bootstrap_busybox(store)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(DOCKERFILES[name])
    (ctx / "run.sh").write_text("#!/bin/sh\necho run\n")
    (ctx / "conf").mkdir()
    (ctx / "conf" / "app.ini").write_text("[app]\n")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("inside/file.txt")
        info.size = 4
        info.mode = 0o640
        tf.addfile(info, io.BytesIO(b"data"))
    (ctx / "data.tar").write_bytes(buf.getvalue())

    layout = oci_layout(store, base, tmp_path / "layout")
    pulled = subprocess.run([*buildah, "pull", f"oci:{layout}"], capture_output=True, text=True)
    assert pulled.returncode == 0, pulled.stderr
    image_id = pulled.stdout.strip().splitlines()[-1]
    subprocess.run([*buildah, "tag", image_id, "busybox:latest"], check=True, capture_output=True)
    bud = subprocess.run([*buildah, "bud", "--network", "host", "--isolation", "chroot", "--format", "docker",
                          "--pull-never", "-t", "peer:latest", str(ctx)], capture_output=True, text=True)
    if bud.returncode != 0 and "chroot" in bud.stderr:
        pytest.skip(f"buildah bud cannot run here: {bud.stderr[-300:]}")
    assert bud.returncode == 0, bud.stderr

    ours = build(store, ctx, progress=lambda _: None)

    inspect = json.loads(subprocess.run([*buildah, "inspect", "--type", "image", "peer:latest"],
                                        capture_output=True, text=True, check=True).stdout)
    theirs_cfg = inspect["Docker"]["config"]  # docker format: SHELL and HEALTHCHECK are kept
    theirs_cfg.get("Labels", {}).pop("io.buildah.version", None)  # buildah signs its work
    ours_cfg = ours.config["config"]
    for key in CONFIG_KEYS:
        assert (ours_cfg.get(key) or None) == (theirs_cfg.get(key) or None), key

    cid = subprocess.run([*buildah, "from", "--pull-never", "peer:latest"], capture_output=True, text=True,
                         check=True).stdout.strip()
    mnt = Path(subprocess.run([*buildah, "mount", cid], capture_output=True, text=True, check=True).stdout.strip())
    theirs_tree = {k: v for k, v in tree(mnt).items() if k not in IGNORED}
    with rfs.mounted(store, ours.id) as (root, _):
        ours_tree = {k: v for k, v in tree(root).items() if k not in IGNORED}
    subprocess.run([*buildah, "umount", cid], capture_output=True)
    only_ours = sorted(set(ours_tree) - set(theirs_tree))
    only_theirs = sorted(set(theirs_tree) - set(ours_tree))
    assert (only_ours, only_theirs) == ([], [])
    differ = {k: (ours_tree[k], theirs_tree[k]) for k in ours_tree if ours_tree[k] != theirs_tree[k]}
    assert differ == {}
