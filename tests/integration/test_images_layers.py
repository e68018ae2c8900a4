"""Layer apply: formats, metadata, whiteouts vs umoci, malicious tars, corrupt input (real overlayfs)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard

from runtime.errors import InvalidArgument, NotFound
from runtime.images.apply import LayerError
from runtime.images.archive import save_oci
from runtime.images.store import ImageStore
from runtime.linux.mount import is_mountpoint, umount

pytestmark = pytest.mark.root


def _tar(entries: list[tuple]) -> bytes:
    """entries: (name, kind, extra) with kind in file/dir/sym/link/chr/fifo; extra = data/linkname/dict."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, kind, *rest in entries:
            extra = rest[0] if rest else None
            opts = rest[1] if len(rest) > 1 else {}
            ti = tarfile.TarInfo(name)
            ti.mtime = opts.get("mtime", 1_600_000_000)
            ti.uid, ti.gid = opts.get("uid", 0), opts.get("gid", 0)
            ti.pax_headers = opts.get("pax", {})
            data = None
            if kind == "file":
                data = extra if isinstance(extra, bytes) else (extra or "").encode()
                ti.size, ti.mode = len(data), opts.get("mode", 0o644)
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, opts.get("mode", 0o755)
            elif kind == "sym":
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, extra, 0o777
            elif kind == "link":
                ti.type, ti.linkname = tarfile.LNKTYPE, extra
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor, ti.mode = tarfile.CHRTYPE, 1, 3, 0o666
            elif kind == "fifo":
                ti.type, ti.mode = tarfile.FIFOTYPE, 0o600
            tf.addfile(ti, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _digest(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def _image(store: ImageStore, layers: list[bytes], ref: str, compress: str = "gzip"):
    descs = []
    for raw in layers:
        blob = {"gzip": lambda b: gzip.compress(b, mtime=0), "zstd": zstandard.ZstdCompressor().compress,
                "": lambda b: b}[compress](raw)
        descs.append((store.content.put(blob), _digest(raw)))
    return store.add_image({"config": {"Cmd": ["sh"]}}, descs, ref)


def _tree(root: Path) -> dict[str, tuple]:
    """path -> (type, mode, uid, gid, content/link) for comparing unpacked trees."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for n in dirs + files:
            p = Path(dirpath) / n
            st = p.lstat()
            rel = str(p.relative_to(root))
            if stat.S_ISLNK(st.st_mode):
                v: tuple = ("l", os.readlink(p))
            elif stat.S_ISREG(st.st_mode):
                v = ("f", p.read_bytes())
            elif stat.S_ISDIR(st.st_mode):
                v = ("d",)
            else:
                v = ("o", st.st_rdev)
            out[rel] = v + (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return out


@pytest.fixture
def store(wharf_root: Path) -> ImageStore:
    return ImageStore()


@pytest.fixture
def mount_image(tmp_path):
    targets: list[Path] = []

    def _mount(store: ImageStore, img, key: str) -> Path:
        t = tmp_path / f"m-{key}"
        t.mkdir()
        store.rootfs_mounts(img.id, key)[0].mount(t)
        targets.append(t)
        return t

    yield _mount
    for t in targets:
        if is_mountpoint(t):
            umount(t)


CORPUS = [
    _tar([("a", "dir"), ("a/x", "file", "x"), ("a/y", "file", "y"), ("b", "dir"), ("b/z", "file", "z"),
          ("b/sub", "dir"), ("b/sub/deep", "file", "d"), ("f", "file", "f1"), ("g", "file", "g"),
          ("hl", "file", "hard"), ("hl2", "link", "hl"), ("s", "sym", "a/y")]),
    _tar([("a", "dir"), ("a/.wh.x", "file", ""), ("b", "dir"), ("b/.wh..wh..opq", "file", ""),
          ("b/new", "file", "n"), (".wh.f", "file", ""), (".wh.g", "file", ""), ("g", "file", "g2")]),
    _tar([("f", "file", "f3"), ("a", "dir"), ("a/.wh.y", "file", ""), ("c", "dir", None, {"mode": 0o1777})]),
]


@pytest.mark.peer
def test_whiteout_corpus_matches_umoci(store, mount_image, tmp_path):
    if not shutil.which("umoci"):
        pytest.skip("umoci not installed")
    img = _image(store, CORPUS, "corpus:1")
    merged = mount_image(store, img, "k")
    ours = _tree(merged)
    # the same image through an OCI layout and umoci
    layout = tmp_path / "layout"
    layout.mkdir()
    with open(tmp_path / "oci.tar", "wb") as f:
        save_oci(store, ["corpus:1"], f)
    subprocess.run(["tar", "-xf", str(tmp_path / "oci.tar"), "-C", str(layout)], check=True)
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:1", str(tmp_path / "bundle")], check=True,
                   capture_output=True)
    theirs = _tree(tmp_path / "bundle" / "rootfs")
    assert ours == theirs
    assert "a/x" not in ours and "a/y" not in ours and "b/z" not in ours and "b/sub" not in ours
    assert ours["b/new"][1] == b"n" and ours["f"][1] == b"f3" and ours["g"][1] == b"g2"
    assert ours["c"][1] == 0o1777


@pytest.mark.parametrize("compress", ["", "gzip", "zstd"])
def test_formats_and_metadata(store, compress, mount_image):
    xattr = {"SCHILY.xattr.user.test": "v1"}
    layer = _tar([("d", "dir", None, {"mode": 0o750, "uid": 1000, "gid": 1001, "mtime": 1_500_000_000}),
                  ("d/suid", "file", "s", {"mode": 0o4755, "uid": 7, "gid": 8}),
                  ("d/x", "file", "xattr", {"pax": xattr}),
                  ("d/link", "link", "d/suid"),
                  ("d/sym", "sym", "/etc/passwd"),
                  ("d/null", "chr"),
                  ("d/fifo", "fifo"),
                  ("./d/dot", "file", "dot")])
    img = _image(store, [layer], "meta:1", compress)
    snap = store.snapshots.get(img.chain_ids[0])
    assert snap is not None and snap.diff_id == _digest(layer) and snap.diff_size == len(layer)
    root = snap.path
    st = (root / "d").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, int(st.st_mtime)) == (0o750, 1000, 1001, 1_500_000_000)
    st = (root / "d" / "suid").stat()
    assert (stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_nlink) == (0o4755, 7, 8, 2)
    assert (root / "d" / "link").stat().st_ino == st.st_ino
    assert os.getxattr(root / "d" / "x", "user.test") == b"v1"
    assert os.readlink(root / "d" / "sym") == "/etc/passwd"
    assert stat.S_ISCHR((root / "d" / "null").lstat().st_mode) and (root / "d" / "null").lstat().st_rdev == os.makedev(1, 3)
    assert stat.S_ISFIFO((root / "d" / "fifo").lstat().st_mode)
    assert (root / "d" / "dot").read_text() == "dot"
    merged = mount_image(store, img, "m")
    assert (merged / "d" / "suid").read_text() == "s"


MALICIOUS = {
    "dotdot": [("../escape", "file", "x")],
    "absolute": [("/abs-escape", "file", "x")],
    "symlink-write-through": [("l", "sym", "/HOST"), ("l/owned", "file", "x")],
    "symlink-relative-through": [("d", "dir", None), ("d/l", "sym", "RELHOST"), ("d/l/owned", "file", "x")],
    "hardlink-outside": [("h", "link", "../../../../etc/passwd")],
    "hardlink-absolute": [("h", "link", "/etc/passwd")],
    "hardlink-through-symlink": [("l", "sym", "/etc"), ("h", "link", "l/passwd")],
    "whiteout-through-symlink": [("l", "sym", "/HOST"), ("l/.wh.victim", "file", "")],
    "opaque-through-symlink": [("l", "sym", "/HOST"), ("l/.wh..wh..opq", "file", "")],
}


@pytest.mark.parametrize("case", sorted(MALICIOUS))
def test_malicious_layers_are_refused_and_leave_nothing(store, tmp_path, case):
    host = tmp_path / "host"
    host.mkdir()
    (host / "victim").write_text("keep")
    rel_host = "../" * 20 + str(host).lstrip("/")
    entries = [(n, k, (v.replace("RELHOST", rel_host).replace("/HOST", str(host)) if k == "sym" else v))
               for n, k, v in MALICIOUS[case]]
    raw = _tar(entries)
    with pytest.raises(LayerError) as e:
        _image(store, [raw], "evil:1")
    assert "layer" in str(e.value)
    assert sorted(os.listdir(host)) == ["victim"] and (host / "victim").read_text() == "keep"
    assert not (tmp_path.parent / "escape").exists() and not Path("/abs-escape").exists()
    assert list(store.snapshots.walk()) == []
    assert not (store.root / "sn").exists() or os.listdir(store.root / "sn") == []
    with pytest.raises(NotFound):
        store.resolve("evil:1")


def test_corrupt_truncated_and_mismatched_layers(store):
    good = _tar([("f", "file", "x" * 100_000)])
    gz = gzip.compress(good, mtime=0)
    cases = {
        "truncated gzip": (gz[: len(gz) // 2], _digest(good)),
        "garbage": (b"\x1f\x8b" + os.urandom(2000), _digest(good)),
        "truncated tar": (good[:1500], _digest(good[:1500])),
        "diff_id mismatch": (gz, _digest(b"something else")),
    }
    for what, (blob, diff_id) in cases.items():
        digest = store.content.put(blob)
        with pytest.raises(InvalidArgument) as e:
            store.add_image({}, [(digest, diff_id)], "bad:1")
        msg = str(e.value)
        assert "layer" in msg and ("corrupt" in msg or "truncated" in msg or "diff_id" in msg), (what, msg)
        assert list(store.snapshots.walk()) == [] and store.list() == []
        assert [p for p in os.listdir(store.root / "sn") if not p.startswith(".")] == []


def test_missing_blob_unknown_media_type_and_bad_manifest(store):
    layer = _tar([("f", "file", "x")])
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [_digest(layer)]}}).encode()
    cfg = store.content.put(config)
    missing = _digest(b"not stored")
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg,
                           "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 1}]}
    with pytest.raises(NotFound, match=missing):
        store.register(json.dumps(manifest).encode(), "m:1")
    manifest["layers"][0]["mediaType"] = "application/x-unknown"
    with pytest.raises(InvalidArgument, match="application/x-unknown"):
        store.register(json.dumps(manifest).encode(), "m:1")
    with pytest.raises(InvalidArgument, match="JSON"):
        store.register(b"{not json", "m:1")
    with pytest.raises(InvalidArgument, match="reference"):
        store.register(json.dumps(manifest).encode(), "BAD REF")
    assert store.list() == []
