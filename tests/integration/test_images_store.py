"""ImageStore contract: bootstrap, resolve, tag/rmi, rootfs overlay mounts, diff, commit (real overlayfs)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.errors import Conflict, InvalidArgument, NotFound
from runtime.images.bootstrap import bootstrap_busybox
from runtime.images.store import ImageStore
from runtime.linux.mount import is_mountpoint, umount

pytestmark = pytest.mark.root


@pytest.fixture
def store(wharf_root: Path) -> ImageStore:
    return ImageStore()


@pytest.fixture
def mounted(tmp_path):
    """mount(store, image, key) -> target; everything is unmounted at the end."""
    targets: list[Path] = []

    def _mount(store: ImageStore, image_id: str, key: str) -> Path:
        target = tmp_path / f"mnt-{key}"
        target.mkdir(exist_ok=True)
        (m,) = store.rootfs_mounts(image_id, key)
        m.mount(target)
        targets.append(target)
        return target

    yield _mount
    for t in targets:
        if is_mountpoint(t):
            umount(t)


def _umount(target: Path) -> None:
    umount(target)


def test_bootstrap_is_deterministic_and_resolvable(store):
    a = bootstrap_busybox(store)
    b = bootstrap_busybox(store)
    assert a.id == b.id and a.manifest_digest == b.manifest_digest
    assert a.repo_tags == ["busybox:latest"]
    assert a.config["config"]["Cmd"] == ["sh"]
    assert a.config["config"]["Env"] == ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    for ref in ("busybox", "busybox:latest", "docker.io/library/busybox:latest", a.id, a.id[7:], a.id[7:19],
                f"busybox@{a.manifest_digest}"):
        assert store.resolve(ref).id == a.id, ref
    assert [i.id for i in store.list()] == [a.id]
    with pytest.raises(NotFound, match="nothere"):
        store.resolve("nothere:1")
    with pytest.raises(InvalidArgument, match="reference"):
        store.resolve("Bad Ref")


def test_rootfs_mount_diff_commit(store, mounted, tmp_path):
    img = bootstrap_busybox(store)
    target = mounted(store, img.id, "k1")
    assert (target / "bin" / "busybox").is_file() and os.readlink(target / "bin" / "sh") == "busybox"
    (target / "etc" / "motd").write_text("hello\n")
    (target / "bin" / "ls").unlink()
    (target / "var" / "www" / "site").mkdir()
    assert store.diff("k1") == [("C", "/bin"), ("D", "/bin/ls"), ("C", "/etc"), ("A", "/etc/motd"),
                                ("C", "/var"), ("C", "/var/www"), ("A", "/var/www/site")]
    assert store.in_use_by(img.id) == ["k1"]
    new = store.commit("k1", img.id, ['CMD ["cat", "/etc/motd"]', "ENV A=1", "WORKDIR /var/www"],
                       author="me <me@x>", message="add motd", ref="mine:v1")
    assert new.repo_tags == ["mine:v1"] and len(new.layers) == 2 and new.chain_ids[0] == img.chain_ids[0]
    cfg = new.config["config"]
    assert cfg["Cmd"] == ["cat", "/etc/motd"] and cfg["WorkingDir"] == "/var/www" and "A=1" in cfg["Env"]
    assert new.config["author"] == "me <me@x>"
    assert new.config["history"][-1]["comment"] == "add motd"
    # the committed image, mounted fresh, shows the change (whiteout included)
    t2 = mounted(store, new.id, "k2")
    assert (t2 / "etc" / "motd").read_text() == "hello\n"
    assert not os.path.lexists(t2 / "bin" / "ls") and (t2 / "bin" / "cat").exists()
    assert (t2 / "var" / "www" / "site").is_dir()


def test_scratch_image_mounts(store, mounted):
    img = store.add_image({"config": {"Cmd": ["/x"]}}, [], ref="scratchy")
    assert img.chain_ids == []
    target = mounted(store, img.id, "s1")
    assert os.listdir(target) == []
    (target / "f").write_text("x")
    assert store.diff("s1") == [("A", "/f")]


def test_rootfs_tolerates_leftovers_and_release_is_idempotent(store, mounted, tmp_path):
    img = bootstrap_busybox(store)
    target = mounted(store, img.id, "k3")
    (target / "keep").write_text("1")
    _umount(target)
    # a stale work dir and a second prepare (restart) must not block, and the upper survives
    (store.container_dir("k3") / "work" / "work").mkdir(exist_ok=True)
    target = mounted(store, img.id, "k3")
    assert (target / "keep").read_text() == "1"
    # a crashed engine left it mounted: release repairs that (lazy unmount) and removes the dir
    store.release_rootfs("k3")
    assert not is_mountpoint(target)
    store.release_rootfs("k3")
    assert not store.container_dir("k3").exists()
    assert store.in_use_by(img.id) == []


def test_tag_untag_rmi_like_docker(store):
    img = bootstrap_busybox(store)
    store.tag("busybox", "other:1")
    store.tag(img.id, "localhost:5000/x/y:2")
    assert sorted(store.resolve(img.id).repo_tags) == ["busybox:latest", "localhost:5000/x/y:2", "other:1"]
    with pytest.raises(Conflict, match="multiple repositories"):
        store.remove(img.id)
    assert store.remove("other:1") == ["Untagged: other:1"]
    store.rootfs_mounts(img.id, "user1")
    store.remove("localhost:5000/x/y:2")
    with pytest.raises(Conflict, match="must force"):
        store.remove("busybox")
    with pytest.raises(Conflict, match="being used"):
        store.remove(img.id)
    # forced: untagged, but the data stays while the container holds it
    assert store.remove("busybox", force=True) == ["Untagged: busybox:latest"]
    assert store.resolve(img.id).repo_tags == []
    store.release_rootfs("user1")
    out = store.remove(img.id)
    assert out[0] == f"Deleted: {img.id}"
    assert list(store.content.walk()) == [] and list(store.snapshots.walk()) == []
    with pytest.raises(NotFound):
        store.resolve(img.id)


def test_shared_snapshots_survive_removal_of_one_image(store, mounted):
    base = bootstrap_busybox(store)
    t = mounted(store, base.id, "c")
    (t / "x").write_text("x")
    child = store.commit("c", base.id, ref="child")
    _umount(t)
    store.release_rootfs("c")
    store.remove("busybox")  # base is dangling now but its layer is shared with child
    assert store.snapshots.has(base.chain_ids[0])
    t2 = mounted(store, child.id, "c2")
    assert (t2 / "x").read_text() == "x" and (t2 / "bin" / "busybox").exists()


def _tiny_layers(store: ImageStore, n: int) -> list[tuple[str, str]]:
    import hashlib
    import io
    import tarfile

    out = []
    for i in range(n):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            ti = tarfile.TarInfo(f"l{i}")
            ti.size = len(str(i))
            tf.addfile(ti, io.BytesIO(str(i).encode()))
        raw = buf.getvalue()
        out.append((store.content.put(raw), "sha256:" + hashlib.sha256(raw).hexdigest()))
    return out


def test_deep_chains_are_flattened_below_the_overlay_limit(store, mounted):
    import hashlib
    import io
    import tarfile

    from runtime.images.snapshots import FLAT, max_layers

    def layer(entries):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tf:
            for name, data in entries:
                ti = tarfile.TarInfo(name)
                if data is None:
                    ti.type, ti.mode = tarfile.DIRTYPE, 0o755
                    tf.addfile(ti)
                else:
                    ti.size = len(data)
                    tf.addfile(ti, io.BytesIO(data))
        raw = buf.getvalue()
        return store.content.put(raw), "sha256:" + hashlib.sha256(raw).hexdigest()

    limit = max_layers(store.root)
    assert limit >= 20
    first = [layer([("gone", b"1"), ("d", None), ("d/x", b"x"), ("keep", b"k")]),
             layer([(".wh.gone", b""), ("d", None), ("d/.wh..wh..opq", b""), ("d/y", b"y")])]
    layers = first + _tiny_layers(store, limit + 5)
    deep = store.add_image({}, layers, ref="deep:1")
    target = mounted(store, deep.id, "deep")
    names = set(os.listdir(target))
    assert names == {"keep", "d"} | {f"l{i}" for i in range(limit + 5)}
    assert os.listdir(target / "d") == ["y"] and (target / "l3").read_text() == "3"
    flat = [c for c in store.snapshots.walk() if c.startswith(FLAT)]
    assert len(flat) == 1
    (target / "new").write_text("n")  # still a normal writable overlay
    assert store.diff("deep") == [("A", "/new")]
    shallow = store.add_image({}, layers[:20], ref="shallow:1")
    t2 = mounted(store, shallow.id, "shallow")
    assert len(os.listdir(t2)) == 2 + 18
    assert [c for c in store.snapshots.walk() if c.startswith(FLAT)] == flat  # only deep chains flatten
    _umount(target)
    store.release_rootfs("deep")
    store.remove("deep:1")
    assert (t2 / "l0").read_text() == "0"  # the shallow image's shared layers stay
    assert [c for c in store.snapshots.walk() if c.startswith(FLAT)] == flat  # as long as its base chain
    _umount(t2)
    store.release_rootfs("shallow")
    store.remove("shallow:1")
    assert list(store.snapshots.walk()) == []


def test_gc_disk_usage_and_export(store, mounted, tmp_path):
    import io
    import tarfile

    from runtime.images.export import export_tree

    img = bootstrap_busybox(store)
    orphan = store.content.put(b"orphan blob")
    (store.root / "sn" / ".tmp-crashed").mkdir(parents=True)
    assert orphan not in store.gc()  # young orphans survive (a pull may be about to use them)
    removed = store.gc(grace=0)
    assert orphan in removed and not store.content.has(orphan)
    assert not (store.root / "sn" / ".tmp-crashed").exists()
    assert store.resolve("busybox").id == img.id and store.snapshots.has(img.chain_ids[0])
    df = store.disk_usage()
    assert df["total"] == img.size and df["images"][0]["unique"] == img.size and df["reclaimable"] == img.size
    target = mounted(store, img.id, "exp")
    (target / "new").write_text("n")
    out = io.BytesIO()
    export_tree(target, out)
    with tarfile.open(fileobj=io.BytesIO(out.getvalue())) as tf:
        names = tf.getnames()
        assert "bin/busybox" in names and "new" in names and tf.getmember("bin/sh").linkname == "busybox"
    assert store.disk_usage()["containers"]["exp"] == 1


def test_commit_converts_opaque_dirs_and_whiteouts(store, mounted, tmp_path):
    import io
    import shutil as sh
    import tarfile

    img = bootstrap_busybox(store)
    t = mounted(store, img.id, "op")
    sh.rmtree(t / "etc")  # a lower dir removed and re-created -> opaque in the upper
    (t / "etc").mkdir()
    (t / "etc" / "only").write_text("1")
    (t / "root").rmdir()  # a removed lower dir -> whiteout
    diff = store.diff("op")
    assert ("D", "/root") in diff and ("C", "/etc") in diff and ("A", "/etc/only") in diff
    assert ("D", "/etc/passwd") in diff and ("D", "/etc/group") in diff
    new = store.commit("op", img.id, compression="")
    with store.content.open(new.layers[-1]["digest"]) as f:
        names = tarfile.open(fileobj=io.BytesIO(f.read())).getnames()
    assert "etc/.wh..wh..opq" in names and ".wh.root" in names and "etc/only" in names
    t2 = mounted(store, new.id, "op2")
    assert os.listdir(t2 / "etc") == ["only"] and not (t2 / "root").exists()


def test_concurrent_registration_of_the_same_image(store, wharf_root):
    import subprocess
    import sys

    img = bootstrap_busybox(store)
    manifest = store.content.read(img.manifest_digest)
    store.remove("busybox")
    for d in (img.id, *[x["digest"] for x in img.layers]):
        assert not store.content.has(d)
    bootstrap_busybox(store)  # blobs back
    store.snapshots.remove(img.chain_ids[0])
    (wharf_root / "m.json").write_bytes(manifest)
    code = ("import sys; from runtime.images.store import ImageStore; s = ImageStore(); "
            "s.register(open(sys.argv[1], 'rb').read(), f'race:{sys.argv[2]}')")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(wharf_root / "m.json"), str(i)]) for i in range(4)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0, 0, 0]
    got = store.resolve(img.id)
    assert sorted(got.repo_tags) == ["busybox:latest", "race:0", "race:1", "race:2", "race:3"]
    assert list(store.snapshots.walk()) == img.chain_ids
    assert [e for e in os.listdir(store.root / "sn") if e.startswith(".")] == []


def test_commit_without_upper_gives_an_empty_layer(store):
    img = bootstrap_busybox(store)
    new = store.commit("never-started", img.id, ["LABEL a=b"], ref="same:1")
    assert len(new.layers) == 2 and new.labels == {"a": "b"}
    with pytest.raises(NotFound):
        store.diff("never-started")


def test_rmi_of_a_pulled_image_drops_its_digest_refs(store):
    img = bootstrap_busybox(store)
    manifest = store.content.read(img.manifest_digest)
    store.register(manifest, "localhost:5000/bb:1", repo_digest=True)  # as a pull does
    got = store.resolve("localhost:5000/bb:1")
    assert got.repo_digests == [f"localhost:5000/bb@{img.manifest_digest}"]
    assert store.resolve(f"localhost:5000/bb@{img.manifest_digest}").id == img.id
    assert store.remove("localhost:5000/bb:1") == ["Untagged: localhost:5000/bb:1",
                                                   f"Untagged: localhost:5000/bb@{img.manifest_digest}"]
    assert store.resolve("busybox").repo_digests == []
    out = store.remove(f"busybox@{img.manifest_digest}")  # by manifest digest only: removes as by id
    assert out[:2] == ["Untagged: busybox:latest", f"Deleted: {img.id}"]


def test_rootfs_mounts_reunpacks_a_missing_snapshot(store, mounted):
    img = bootstrap_busybox(store)
    store.snapshots.remove(img.chain_ids[0])
    target = mounted(store, img.id, "again")
    assert (target / "bin" / "busybox").is_file() and store.snapshots.has(img.chain_ids[0])


def _stats(root: Path) -> dict[str, tuple[int, int, int]]:
    """(inode, mtime, ctime) of every file and dir under the store (the lock file aside)."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in dirs + files:
            p = os.path.join(dirpath, name)
            if name != "lock":
                st = os.lstat(p)
                out[p] = (st.st_ino, st.st_mtime_ns, st.st_ctime_ns)
    return out


def test_adding_what_is_there_touches_nothing(store):
    img = bootstrap_busybox(store)
    layers = list(zip([x["digest"] for x in img.layers], img.diff_ids, strict=True))
    made = store.add_image({"config": {"Cmd": ["true"]}, "created": "2020-01-01T00:00:00Z"}, layers, "same:1")
    store.hold(img.id, "h1")
    before = _stats(store.root)
    again = store.add_image({"config": {"Cmd": ["true"]}, "created": "2020-01-01T00:00:00Z"}, layers, "same:1")
    assert again.id == made.id
    store.register(store.content.read(img.manifest_digest), "busybox:latest")
    store.tag("busybox", "busybox:latest")
    store.hold(img.id, "h1")
    assert _stats(store.root) == before
    store.tag("busybox", "busybox:2")  # a change is still written
    assert _stats(store.root)[str(store.root / "images.json")] != before[str(store.root / "images.json")]


def test_pull_of_a_present_image_touches_nothing(store, tmp_path):
    from runtime.registry import client
    from runtime.registry.server import RegistryServer
    from tests.integration.test_registry_client import Wire, put_image

    server = RegistryServer(tmp_path / "registry", "127.0.0.1:0").start()
    try:
        put_image(Wire(server.address), "lib/same", "v1", [{"a.txt": b"first"}, {"b.txt": b"second"}])
        ref = f"{server.address}/lib/same:v1"
        client.pull(store, ref)
        before = _stats(store.root)
        events: list[dict] = []
        client.pull(store, ref, progress=events.append)
        assert _stats(store.root) == before
        assert any("up to date" in e.get("status", "") for e in events)
    finally:
        server.stop()


def _tree(root: Path) -> dict[str, tuple]:
    """Everything overlay reads from a lower dir: type/mode/owner/times/xattrs/content/link targets/hardlinks."""
    import hashlib

    out: dict[str, tuple] = {}
    inodes: dict[int, str] = {}
    for dirpath, dirs, files in os.walk(root):
        for name in sorted(dirs + files):
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            xattrs = {x: os.getxattr(p, x, follow_symlinks=False) for x in os.listxattr(p, follow_symlinks=False)}
            body = os.readlink(p) if os.path.islink(p) else (
                hashlib.sha256(Path(p).read_bytes()).hexdigest() if os.path.isfile(p) else "")
            link = inodes.setdefault(st.st_ino, rel) if os.path.isfile(p) and not os.path.islink(p) else ""
            whiteout = st.st_mode & 0o170000 == 0o020000 and st.st_rdev == 0  # made at unpack time: no mtime
            out[rel] = (st.st_mode, st.st_uid, st.st_gid, st.st_rdev, st.st_nlink,
                        None if whiteout else st.st_mtime_ns, sorted(xattrs.items()), body, link)
    return out


@pytest.mark.parametrize("compression", ["gzip", ""])
def test_commit_snapshot_is_what_unpacking_its_layer_gives(store, mounted, monkeypatch, compression):
    import shutil as sh

    from runtime.images.snapshots import Snapshots
    from runtime.images.streams import open_layer

    img = bootstrap_busybox(store)
    t = mounted(store, img.id, "same")
    (t / "etc" / "motd").write_bytes(os.urandom(3 << 20))  # several chunks through the pipe
    os.link(t / "etc" / "motd", t / "etc" / "motd.hard")
    os.symlink("../etc/motd", t / "bin" / "motd")
    (t / "data").mkdir(mode=0o711)
    (t / "data" / "f").write_text("x")
    os.chown(t / "data" / "f", 1234, 5678)
    os.chmod(t / "data" / "f", 0o4755)
    os.setxattr(t / "data" / "f", "user.k", b"v")
    os.mkfifo(t / "data" / "fifo")
    os.utime(t / "data", ns=(10**18, 10**18))
    sh.rmtree(t / "var")  # opaque dir
    (t / "var").mkdir()
    (t / "root").rmdir()  # whiteout
    _umount(t)

    def no_reunpack(*a, **k):
        raise AssertionError("commit read its own layer back")

    monkeypatch.setattr(Snapshots, "create", no_reunpack)
    new = store.commit("same", img.id, compression=compression)
    monkeypatch.undo()
    top = new.layers[-1]
    with store.content.open(top["digest"]) as f:  # the layer blob, unpacked the ordinary way
        reader = open_layer(f)
        other = Snapshots(store.root / "check")
        with store.content.open(top["digest"]) as g:
            fresh = other.create(new.chain_ids[-1], new.chain_ids[-2], new.diff_ids[-1], g, None, "check")
        reader.drain()
    assert reader.digest == new.diff_ids[-1]
    got = store.snapshots.get(new.chain_ids[-1])
    assert got is not None and (got.size, got.diff_size, got.parent) == (fresh.size, fresh.diff_size, fresh.parent)
    assert _tree(got.path) == _tree(fresh.path)
    assert "data/fifo" in _tree(got.path) and _tree(got.path)["root"][0] & 0o170000 == 0o020000
    assert os.getxattr(got.path / "var", "trusted.overlay.opaque") == b"y"


def test_commit_failure_leaves_no_snapshot(store, monkeypatch):
    img = bootstrap_busybox(store)
    before = sorted(store.snapshots.walk())

    def refuse(*a, **k):
        raise InvalidArgument("refused")

    monkeypatch.setattr(ImageStore, "add_image", refuse)
    with pytest.raises(InvalidArgument):
        store.commit("never", img.id)
    assert sorted(store.snapshots.walk()) == before
    assert [e for e in os.listdir(store.root / "sn") if e.startswith(".")] == []
