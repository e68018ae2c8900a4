"""VolumeStore: named/anonymous volumes, labels, filters, in-use protection, prune, seeding."""

from __future__ import annotations

import os

import pytest

from runtime.errors import Conflict, InvalidArgument, NotFound


@pytest.fixture
def vs(wharf_root):
    from runtime.volumes.store import VolumeStore

    return VolumeStore()


def test_create_is_idempotent_and_labelled(vs, wharf_root):
    a = vs.create("data", labels={"app": "x"})
    assert a.mountpoint == str(wharf_root / "volumes" / "data" / "_data") and os.path.isdir(a.mountpoint)
    assert vs.create("data").labels == {"app": "x"}
    anon = vs.create()
    assert len(anon.name) == 64 and "com.docker.volume.anonymous" in anon.labels
    assert [v.name for v in vs.list({"label": ["app=x"]})] == ["data"]
    assert [v.name for v in vs.list({"name": ["dat"]})] == ["data"]
    assert {v.name for v in vs.list({"dangling": ["true"]})} == {"data", anon.name}
    for bad in ("a", "-x", "a/b", "a b"):
        with pytest.raises(InvalidArgument):
            vs.create(bad)
    with pytest.raises(InvalidArgument, match="driver"):
        vs.create("y", driver="nfs")
    with pytest.raises(NotFound):
        vs.inspect("nope")


def test_prune_removes_unused_anonymous_unless_all(vs):
    vs.create("keep")
    anon = vs.create()
    assert vs.prune() == [anon.name]
    assert [v.name for v in vs.list()] == ["keep"]
    assert vs.prune(all=True) == ["keep"] and vs.list() == []


def test_in_use_volume_cannot_be_removed(vs, wharf_root, busybox_rootfs):
    from runtime.containers.manager import LocalContainers
    from runtime.engine import ContainerSpec, MountSpec

    cs = LocalContainers()
    info = cs.create(ContainerSpec(image="", rootfs=str(busybox_rootfs), command=["true"], network_mode="none",
                                   mounts=[MountSpec(type="volume", source="used", target="/d")]))
    vs.create("used")
    with pytest.raises(Conflict, match="in use"):
        vs.remove("used")
    assert vs.list({"dangling": ["false"]})[0].name == "used"
    cs.remove(info.id)
    vs.remove("used")
    assert vs.list() == []


@pytest.mark.root
def test_new_volume_is_seeded_from_the_image_once(vs, busybox_rootfs):
    from runtime.engine import MountSpec

    (busybox_rootfs / "srv").mkdir()
    (busybox_rootfs / "srv" / "seed").write_text("from image")
    mounts = vs.prepare_mounts([MountSpec(type="volume", source="seeded", target="/srv")], busybox_rootfs)
    data = mounts[0].source
    assert mounts[0].type == "bind" and open(os.path.join(data, "seed")).read() == "from image"
    os.unlink(os.path.join(data, "seed"))
    vs.prepare_mounts([MountSpec(type="volume", source="seeded", target="/srv")], busybox_rootfs)
    assert os.listdir(data) == []  # seeded only when new
    nocopy = vs.prepare_mounts([MountSpec(type="volume", source="bare", target="/srv", volume_nocopy=True)],
                               busybox_rootfs)
    assert os.listdir(nocopy[0].source) == []
