"""save/load/import against real peers: skopeo reads what we write, we load what skopeo writes, umoci unpacks."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument, NotFound
from runtime.images.archive import import_tar, load, save
from runtime.images.bootstrap import bootstrap_busybox
from runtime.images.store import ImageStore
from runtime.linux.mount import is_mountpoint, umount

pytestmark = [pytest.mark.root]
needs_skopeo = pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo not installed")


def _layer(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            tf.addfile(ti, io.BytesIO(data.encode()))
    return buf.getvalue()


@pytest.fixture
def store(wharf_root: Path) -> ImageStore:
    return ImageStore()


@pytest.fixture
def two_layer(store: ImageStore, busybox_image):
    """busybox plus a second (gzip) layer, tagged app:1."""
    import hashlib

    base = busybox_image
    raw = _layer({"app/hello.txt": "hello from layer 2\n"})
    digest = store.content.put(gzip.compress(raw, mtime=0))
    layers = list(zip([x["digest"] for x in base.layers], base.diff_ids, strict=True))
    history = base.config["history"] + [{"created_by": "layer 2"}]
    return store.add_image({**base.config, "history": history}, layers + [(digest, "sha256:" + hashlib.sha256(raw).hexdigest())],
                           "app:1")


def _save(store: ImageStore, refs: list[str], path: Path, fmt: str) -> Path:
    with open(path, "wb") as f:
        save(store, refs, f, fmt)
    return path


def _skopeo_json(*args: str) -> dict:
    out = subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True).stdout
    return json.loads(out)


@needs_skopeo
@pytest.mark.peer
def test_skopeo_reads_what_we_save(store, two_layer, tmp_path):
    img = two_layer
    docker = _save(store, ["app:1"], tmp_path / "d.tar", "docker")
    info = _skopeo_json("inspect", f"docker-archive:{docker}")
    assert info["Layers"] == img.diff_ids  # docker-archive carries uncompressed layers
    raw = _skopeo_json("inspect", "--raw", f"docker-archive:{docker}")
    assert raw["config"]["digest"] == img.id
    ocia = _save(store, ["app:1"], tmp_path / "o.tar", "oci")
    info = _skopeo_json("inspect", f"oci-archive:{ocia}")
    assert info["Digest"] == img.manifest_digest
    assert info["Layers"] == [x["digest"] for x in img.layers]
    assert _skopeo_json("inspect", "--config", f"oci-archive:{ocia}")["rootfs"]["diff_ids"] == img.diff_ids


@needs_skopeo
@pytest.mark.peer
def test_we_load_what_skopeo_writes_and_it_runs(store, two_layer, tmp_path):
    img = two_layer
    docker = _save(store, ["app:1"], tmp_path / "d.tar", "docker")
    ocia = _save(store, ["app:1"], tmp_path / "o.tar", "oci")
    # skopeo: our OCI archive -> an OCI dir (then tarred); our docker-archive -> a new docker-archive
    subprocess.run(["skopeo", "copy", "-q", f"oci-archive:{ocia}", f"oci:{tmp_path / 'ocidir'}:v9"],
                   check=True, capture_output=True)
    subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{docker}",
                    f"docker-archive:{tmp_path / 'sk.tar'}:localhost/sk:2"], check=True, capture_output=True)
    oci_tar = tmp_path / "skopeo-oci.tar"
    with tarfile.open(oci_tar, "w") as tf:
        for p in sorted((tmp_path / "ocidir").rglob("*")):
            tf.add(p, str(p.relative_to(tmp_path / "ocidir")), recursive=False)
    other = ImageStore(tmp_path / "other")
    with open(oci_tar, "rb") as f:
        assert load(other, f) == [f"Loaded image ID: {img.id}"]  # ref.name "v9" has no repository
    with open(tmp_path / "sk.tar", "rb") as f:
        assert load(other, f) == ["Loaded image: localhost/sk:2"]
    # docker -> OCI conversion: skopeo re-serialises the config (new id), same content and layers
    subprocess.run(["skopeo", "copy", "-q", f"docker-archive:{docker}", f"oci-archive:{tmp_path / 'conv.tar'}"],
                   check=True, capture_output=True)
    with open(tmp_path / "conv.tar", "rb") as f:
        (msg,) = load(other, f)
    conv = other.resolve(msg.rpartition(" ")[2])
    assert conv.diff_ids == img.diff_ids
    assert {k: v for k, v in conv.config.items()} == json.loads(json.dumps(img.config))
    got = other.resolve("localhost/sk:2")
    assert got.id == img.id and got.diff_ids == img.diff_ids
    target = tmp_path / "mnt"
    target.mkdir()
    other.rootfs_mounts(got.id, "run1")[0].mount(target)
    try:
        out = subprocess.run(["chroot", str(target), "/bin/sh", "-c", "cat /app/hello.txt; echo ok"],
                             capture_output=True, text=True, check=True).stdout
        assert out == "hello from layer 2\nok\n"
    finally:
        if is_mountpoint(target):
            umount(target)
    other.release_rootfs("run1")


@pytest.mark.peer
def test_umoci_unpacks_our_oci_layout(store, two_layer, tmp_path):
    if not shutil.which("umoci"):
        pytest.skip("umoci not installed")
    ocia = _save(store, ["app:1"], tmp_path / "o.tar", "oci")
    layout = tmp_path / "layout"
    layout.mkdir()
    with tarfile.open(ocia) as tf:
        tf.extractall(layout, filter="tar")
    subprocess.run(["umoci", "unpack", "--image", f"{layout}:1", str(tmp_path / "b")], check=True,
                   capture_output=True)
    rootfs = tmp_path / "b" / "rootfs"
    assert (rootfs / "app" / "hello.txt").read_text() == "hello from layer 2\n"
    assert (rootfs / "bin" / "busybox").read_bytes() == Path("/bin/busybox").read_bytes()


def test_roundtrip_both_formats_and_multiple_images(store, two_layer, tmp_path):
    base = store.resolve("busybox")
    for fmt in ("docker", "oci"):
        path = _save(store, ["app:1", "busybox"], tmp_path / f"{fmt}.tar", fmt)
        other = ImageStore(tmp_path / f"other-{fmt}")
        with open(path, "rb") as f:
            msgs = load(other, f)
        assert msgs == ["Loaded image: app:1", "Loaded image: busybox:latest"]
        assert other.resolve("app:1").id == two_layer.id and other.resolve("busybox").id == base.id
        # shared base layer is stored once
        assert len(list(other.snapshots.walk())) == 2
    # gzip-compressed archive loads too
    gz = tmp_path / "d.tar.gz"
    gz.write_bytes(gzip.compress((tmp_path / "docker.tar").read_bytes()))
    with open(gz, "rb") as f:
        assert load(ImageStore(tmp_path / "gz"), f)[0] == "Loaded image: app:1"


def _snapshot_state(store: ImageStore):
    return sorted(store.content.walk()), sorted(store.snapshots.walk()), [i.id for i in store.list()]


def test_bad_archives_leave_store_unchanged(store, two_layer, tmp_path):
    good = _save(store, ["app:1"], tmp_path / "d.tar", "docker").read_bytes()
    ocia = _save(store, ["app:1"], tmp_path / "o.tar", "oci").read_bytes()
    target = ImageStore(tmp_path / "t")
    bootstrap_busybox(target)
    before = _snapshot_state(target)

    def tar_with(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for n, d in members.items():
                ti = tarfile.TarInfo(n)
                ti.size = len(d)
                tf.addfile(ti, io.BytesIO(d))
        return buf.getvalue()

    with tarfile.open(fileobj=io.BytesIO(ocia)) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf if m.isreg()}
    layer_name = f"blobs/sha256/{two_layer.layers[1]['digest'][7:]}"  # not in `target` yet
    tampered = dict(members, **{layer_name: members[layer_name][:-10] + b"0123456789"})
    missing = {n: d for n, d in members.items() if n != layer_name}
    manifest_json = json.loads(tarfile.open(fileobj=io.BytesIO(good)).extractfile("manifest.json").read())
    manifest_json[0]["Layers"].append("nothere/layer.tar")
    with tarfile.open(fileobj=io.BytesIO(good)) as tf:
        dmembers = {m.name: tf.extractfile(m).read() for m in tf if m.isreg()}
    dmembers["manifest.json"] = json.dumps(manifest_json).encode()
    cases = {
        "truncated": (good[: len(good) // 2], InvalidArgument, "truncated"),
        "random": (os.urandom(4096), InvalidArgument, "tar"),
        "not an image": (tar_with({"hello.txt": b"hi"}), InvalidArgument, "manifest.json"),
        "digest mismatch": (tar_with(tampered), InvalidArgument, "digest mismatch"),
        "missing blob": (tar_with(missing), NotFound, "missing"),
        "missing layer": (tar_with(dmembers), NotFound, "nothere/layer.tar"),
        "bad manifest.json": (tar_with({"manifest.json": b"{oops"}), InvalidArgument, "manifest.json"),
    }
    for what, (data, exc, text) in cases.items():
        with pytest.raises(exc) as e:
            load(target, io.BytesIO(data), "input.tar")
            pytest.fail(f"{what}: loaded")
        assert text in str(e.value), (what, str(e.value))
        assert _snapshot_state(target) == before, what
        assert os.listdir(target.content.ingest_dir) == []


def test_import_with_changes(store, busybox_rootfs, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(busybox_rootfs, ".")
    img = import_tar(store, io.BytesIO(buf.getvalue()), "imported:1", ['CMD ["/bin/sh"]', "ENV PATH=/bin"],
                     source="rootfs.tgz")
    assert img.repo_tags == ["imported:1"] and len(img.layers) == 1
    assert img.config["config"] == {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}
    assert img.config["history"][0]["comment"] == "Imported from rootfs.tgz"
    assert store.snapshots.get(img.chain_ids[0]).path.joinpath("bin", "busybox").is_file()
    before = _snapshot_state(store)
    with pytest.raises(InvalidArgument):
        import_tar(store, io.BytesIO(buf.getvalue()[:3000]), "broken:1")
    with pytest.raises(InvalidArgument):
        import_tar(store, io.BytesIO(b"x" * 700), "broken:1")
    assert _snapshot_state(store) == before


def test_docker_schema2_manifest_and_nested_index(store, two_layer, tmp_path):
    from runtime.images import oci

    img = two_layer
    doc = json.loads(store.content.read(img.manifest_digest))
    doc["mediaType"] = oci.DOCKER_MANIFEST
    doc["config"]["mediaType"] = oci.DOCKER_CONFIG
    for layer in doc["layers"]:
        layer["mediaType"] = oci.DOCKER_LAYER_GZIP
    schema2 = json.dumps(doc).encode()
    got = store.register(schema2, "docker2:1")
    assert got.id == img.id and got.media_type == oci.DOCKER_MANIFEST
    # an OCI layout whose index.json points at a multi-platform index (as `skopeo copy --all` writes)
    ocia = _save(store, ["docker2:1"], tmp_path / "o.tar", "oci")
    with tarfile.open(ocia) as tf:
        members = {m.name: tf.extractfile(m).read() for m in tf if m.isreg()}
    (desc,) = json.loads(members["index.json"])["manifests"]
    assert json.loads(members[f"blobs/sha256/{desc['digest'][7:]}"])["mediaType"] == oci.OCI_MANIFEST
    os_, arch = oci.host_platform()
    inner = json.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX, "manifests": [
        {**{k: desc[k] for k in ("mediaType", "digest", "size")}, "platform": {"os": os_, "architecture": "s390x"
                                                                              if arch != "s390x" else "arm64"}},
        {**{k: desc[k] for k in ("mediaType", "digest", "size")}, "platform": {"os": os_, "architecture": arch}},
    ]}).encode()
    import hashlib

    inner_digest = "sha256:" + hashlib.sha256(inner).hexdigest()
    members[f"blobs/sha256/{inner_digest[7:]}"] = inner
    members["index.json"] = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": oci.OCI_INDEX, "digest": inner_digest, "size": len(inner),
         "annotations": {"io.containerd.image.name": "docker.io/library/multi:1"}}]}).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for n, d in members.items():
            ti = tarfile.TarInfo(n)
            ti.size = len(d)
            tf.addfile(ti, io.BytesIO(d))
    other = ImageStore(tmp_path / "multi")
    assert load(other, io.BytesIO(buf.getvalue())) == ["Loaded image: multi:1"]
    assert other.resolve("multi:1").id == img.id
