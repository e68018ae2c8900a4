"""The builder unpacks each COPY/ADD/WORKDIR layer while writing it (no second pass over the blob), and
what it unpacked is exactly what unpacking the layer blob gives."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from runtime.build.builder import build
from runtime.images.snapshots import Snapshots
from tests.integration.test_images_store import _tree

pytestmark = [pytest.mark.root]

DOCKERFILE = """\
FROM busybox:latest
COPY tree/ /srv/tree/
COPY --chown=1234:5678 --chmod=640 big.bin /data/
ADD bundle.tar /opt/
WORKDIR /work/deep/dir
RUN echo ran > /ran.txt
COPY <<EOF /etc/motd
hello $HOSTNAME
EOF
COPY --from=busybox:latest /bin/busybox /copied/busybox
COPY tree/a.txt /tmp/
COPY tree/a.txt /root/
"""


def _context(root: Path) -> Path:
    root.mkdir()
    (root / "Dockerfile").write_text(DOCKERFILE)
    t = root / "tree"
    (t / "sub" / "deeper").mkdir(parents=True)
    (t / "a.txt").write_text("a")
    (t / "sub" / "exec.sh").write_text("#!/bin/sh\n")
    os.chmod(t / "sub" / "exec.sh", 0o4755)
    os.symlink("../a.txt", t / "sub" / "link")
    os.symlink("/nowhere", t / "dangling")
    os.utime(t / "sub", ns=(10**18, 10**18))
    (root / "big.bin").write_bytes(os.urandom(3 << 20))  # several chunks through the unpack pipe
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("pkg/bin/tool", b"tool"), ("pkg/README", b"read me")):
            ti = tarfile.TarInfo(name)
            ti.size, ti.mode, ti.mtime = len(data), 0o755, 1_600_000_000
            tf.addfile(ti, io.BytesIO(data))
        hard = tarfile.TarInfo("pkg/bin/tool2")
        hard.type, hard.linkname = tarfile.LNKTYPE, "pkg/bin/tool"
        tf.addfile(hard)
        sym = tarfile.TarInfo("pkg/latest")
        sym.type, sym.linkname = tarfile.SYMTYPE, "bin/tool"
        tf.addfile(sym)
    (root / "bundle.tar").write_bytes(buf.getvalue())
    return root


def test_build_snapshots_equal_unpacking_their_blobs(wharf_root, tmp_path, monkeypatch):
    from runtime.images.bootstrap import bootstrap_busybox
    from runtime.images.store import ImageStore

    store = ImageStore()
    base = bootstrap_busybox(store)

    def no_reunpack(*a, **k):
        raise AssertionError("the build unpacked a layer blob a second time")

    monkeypatch.setattr(Snapshots, "create", no_reunpack)
    image = build(store, _context(tmp_path / "ctx"), progress=lambda _: None)
    monkeypatch.undo()

    new = list(zip(image.layers, image.diff_ids, image.chain_ids, strict=True))[len(base.layers):]
    assert len(new) == 9  # COPY, COPY, ADD, WORKDIR, RUN, COPY heredoc, COPY --from, 2 x COPY
    check = Snapshots(Path(wharf_root) / "check")
    for i, (layer, diff_id, chain_id) in enumerate(new):
        parent = image.chain_ids[len(base.layers) + i - 1]
        with store.content.open(layer["digest"]) as blob:
            fresh = check.create(chain_id, parent, diff_id, blob, None, f"check {i}")
        got = store.snapshots.get(chain_id)
        assert got is not None and (got.parent, got.diff_id, got.size, got.diff_size) == \
            (fresh.parent, fresh.diff_id, fresh.size, fresh.diff_size), i
        assert _tree(got.path) == _tree(fresh.path), i
    tree = _tree(store.snapshots.get(new[0][2]).path)  # type: ignore[union-attr]
    assert "srv/tree/sub/link" in tree and "srv/tree/dangling" in tree
    data = _tree(store.snapshots.get(new[1][2]).path)  # type: ignore[union-attr]
    assert data["data/big.bin"][1:3] == (1234, 5678) and data["data/big.bin"][0] & 0o7777 == 0o640
    opt = _tree(store.snapshots.get(new[2][2]).path)  # type: ignore[union-attr]
    assert opt["opt/pkg/bin/tool2"][-1] == "opt/pkg/bin/tool"  # the hard link stays one inode


def test_a_failed_layer_write_leaves_no_snapshot_behind(wharf_root, tmp_path, monkeypatch):
    from runtime.build import layer
    from runtime.errors import RuntimeFailure
    from runtime.images.bootstrap import bootstrap_busybox
    from runtime.images.store import ImageStore

    store = ImageStore()
    bootstrap_busybox(store)
    before = sorted(store.snapshots.walk())
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY f /f\n")
    (ctx / "f").write_bytes(b"x" * 100_000)

    def broken(self, data):
        raise RuntimeFailure("disk full")

    monkeypatch.setattr(layer._Tee, "write", broken)
    with pytest.raises(RuntimeFailure, match="disk full"):
        build(store, ctx, progress=lambda _: None)
    assert sorted(store.snapshots.walk()) == before
    assert [e for e in os.listdir(store.root / "sn") if e.startswith(".")] == []


def test_copy_into_existing_dirs_keeps_their_mode_and_owner(wharf_root, tmp_path):
    """COPY f /tmp/ leaves /tmp 1777 (the layer carries /tmp as the image has it; an implied parent
    would come out 0755 and hide the image's /tmp in the overlay)."""
    from runtime.build import rootfs as rfs
    from runtime.images.bootstrap import bootstrap_busybox
    from runtime.images.store import ImageStore

    store = ImageStore()
    base = bootstrap_busybox(store)
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox:latest\nCOPY f /tmp/\nCOPY f /root/sub/\nCOPY f /etc/\n")
    (ctx / "f").write_text("x")
    image = build(store, ctx, progress=lambda _: None)
    want, got = {}, {}
    for img, out in ((base.id, want), (image.id, got)):
        with rfs.mounted(store, img) as (root, _):
            for d in ("tmp", "root", "etc"):
                st = os.lstat(root / d)
                out[d] = (oct(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns // 10**9)
    assert got == want and want["tmp"][0] == oct(0o41777)
