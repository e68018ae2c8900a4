"""Where a container's filesystem comes from: the ImageStore (contract 2) or a --rootfs directory."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from runtime.engine import HealthCheck
from runtime.errors import NotFound, WharfError
from runtime.linux.mount import Mount


def _store():
    from runtime.images.store import ImageStore

    return ImageStore()


def resolve(ref: str) -> tuple[str, dict[str, Any]]:
    """(image id, full OCI image config) for a reference; NotFound says how to get it."""
    try:
        img = _store().resolve(ref)
    except (NotFound, ImportError):  # ImportError: no image store in this build
        raise NotFound(f"unable to find image '{ref}' locally",
                       hint="pull it (`wharf pull`), build it, or `wharf image bootstrap busybox`") from None
    return img.id, img.config


def hold(image_id: str, cid: str) -> None:
    """The container uses the image (released by `release`): rmi refuses, rmi -f only untags."""
    _store().hold(image_id, cid)


DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")


def pull_if_missing(ref: str, progress=None) -> bool:
    """`run`/`create` of an image that is not here: pull it, as docker does (True when pulled).

    Only from an explicitly named registry (localhost:5000/app, registry.lan/app): a bare
    `busybox` would go to Docker Hub, and Wharf never reaches out to the internet on its own.
    """
    from runtime.images.reference import parse

    try:
        _store().resolve(ref)
        return False
    except (NotFound, ImportError):
        pass
    try:
        r = parse(ref)
    except WharfError:
        return False
    if r.domain in DOCKER_HUB:
        return False
    import sys

    from runtime.registry.client import pull

    print(f"Unable to find image '{ref}' locally", file=sys.stderr)
    pull(_store(), ref, progress=progress)
    return True


def rootfs_mounts(rec: dict[str, Any], cdir: Path) -> list[Mount]:
    if rec.get("rootfs_dir"):
        upper, work = cdir / "upper", cdir / "work"
        upper.mkdir(exist_ok=True)
        work.mkdir(exist_ok=True)
        return [Mount("overlay", "overlay", options=[f"lowerdir={rec['rootfs_dir']}", f"upperdir={upper}",
                                                     f"workdir={work}"])]
    return _store().rootfs_mounts(rec["image_id"], rec["id"])


def release(rec: dict[str, Any], cdir: Path) -> None:
    if rec.get("rootfs_dir"):
        shutil.rmtree(cdir / "upper", ignore_errors=True)
        shutil.rmtree(cdir / "work", ignore_errors=True)
        return
    try:
        _store().release_rootfs(rec["id"])
    except NotFound:
        pass


def diff(rec: dict[str, Any]) -> list[tuple[str, str]]:
    """The container's changes without the mount points made for /etc/hosts, /etc/resolv.conf and
    /etc/hostname (bind mounts: nothing written there reaches the upper dir), as docker, whose init
    layer holds them; /etc itself only when something else in it changed."""
    return _without_mount_points(_store().diff(rec["id"]))


def _without_mount_points(changes: list[tuple[str, str]]) -> list[tuple[str, str]]:
    from runtime.containers.netsetup import ETC

    out = [(k, p) for k, p in changes if not (k == "A" and p in ETC)]
    parents = {p.rsplit("/", 1)[0] for p in ETC}
    return [(k, p) for k, p in out if p not in parents or any(q.startswith(p + "/") for _, q in out)]


def commit(rec: dict[str, Any], changes: dict | None, author: str, message: str, ref: str | None):
    """The new layer leaves out what `diff` does (the mount points and their otherwise unchanged /etc)."""
    every = _store().diff(rec["id"])
    skip = frozenset(p for _, p in every) - {p for _, p in _without_mount_points(every)}
    return _store().commit(rec["id"], rec["image_id"], changes=changes, author=author, message=message, ref=ref,
                           skip=skip)


def _secs(ns: Any, default: float) -> float:
    return ns / 1e9 if ns else default


def image_healthcheck(h: dict[str, Any]) -> HealthCheck:
    return HealthCheck(test=list(h.get("Test") or ["NONE"]), interval=_secs(h.get("Interval"), 30.0),
                       timeout=_secs(h.get("Timeout"), 30.0), retries=h.get("Retries") or 3,
                       start_period=_secs(h.get("StartPeriod"), 0.0),
                       start_interval=_secs(h.get("StartInterval"), 5.0))
