"""Mount an image's snapshot chain for a build step (RUN's rootfs, or a view to read files from).

The ImageStore only describes mounts (rootfs_mounts); this module performs them through
runtime.linux.mount and undoes them, also when the step fails.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime import paths
from runtime.linux import mount as m


def work_dir() -> Path:
    d = paths.run_dir() / "build"
    d.mkdir(parents=True, exist_ok=True)
    return d


def new_key(prefix: str = "build") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


def mount_all(mounts: list[Any], target: Path) -> None:
    for mnt in mounts:
        dest = target / str(getattr(mnt, "target", "") or "").lstrip("/")
        opts = list(mnt.options)
        if mnt.type == "bind" or "bind" in opts or "rbind" in opts:
            m.mount(mnt.source, dest, None, m.MS_BIND | m.MS_REC)
            if "ro" in opts:
                m.mount(None, dest, None, m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY | m.MS_REC)
        else:
            mnt.mount(dest)


def upperdir(mounts: list[Any]) -> Path | None:
    for mnt in mounts:
        for opt in getattr(mnt, "options", []):
            if opt.startswith("upperdir="):
                return Path(opt.split("=", 1)[1])
    return None


@contextlib.contextmanager
def mounted(store: Any, image_id: str | None, key: str | None = None) -> Iterator[tuple[Path, list[Any]]]:
    """(rootfs path, mount descriptions) of `image_id` under `key` (released afterwards unless the
    caller commits it: pass your own key and call store.release_rootfs yourself then). The dir is
    flock'ed while in use, so `repair` can tell a crashed build's leftovers from a running one."""
    own_key = key is None
    key = key or new_key("build-view")
    base = work_dir() / key
    rootfs = base / "rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    lock = os.open(base / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    fcntl.flock(lock, fcntl.LOCK_EX)
    mounts: list[Any] = []
    try:
        if image_id is not None:
            mounts = store.rootfs_mounts(image_id, key)
            mount_all(mounts, rootfs)
        yield rootfs, mounts
    finally:
        with contextlib.suppress(OSError):
            m.umount_all_under(rootfs)
        if own_key and image_id is not None:
            with contextlib.suppress(Exception):
                store.release_rootfs(key)
        shutil.rmtree(base, ignore_errors=True)
        os.close(lock)


def repair(store: Any, runtime_state: Path, delete_container: Any) -> list[str]:
    """Undo what builds that crashed left: mounts, runtime containers, upper dirs. Returns the keys."""
    cleaned = []
    for entry in sorted(work_dir().iterdir()):
        if not entry.name.startswith("build-"):
            continue
        try:
            fd = os.open(entry / ".lock", os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            fd = None
        try:
            if fd is not None:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live build
            if (runtime_state / entry.name).exists():
                delete_container(entry.name)
            with contextlib.suppress(OSError):
                m.umount_all_under(entry)
            with contextlib.suppress(Exception):
                store.release_rootfs(entry.name)
            shutil.rmtree(entry, ignore_errors=True)
            cleaned.append(entry.name)
        finally:
            if fd is not None:
                os.close(fd)
    return cleaned


def exists_in(rootfs: Path, path: str) -> bool:
    """Whether `path` exists in the image (symlinks are not followed out of the rootfs)."""
    return os.path.lexists(rootfs / path.lstrip("/"))


def is_dir_in(rootfs: Path, path: str) -> bool:
    return resolve_in(rootfs, path).is_dir()


def resolve_in(rootfs: Path, path: str, depth: int = 0) -> Path:
    """`path` inside the image with symlinks resolved relative to the image root (like chroot)."""
    parts = [p for p in path.split("/") if p and p != "."]
    cur = rootfs
    for i, part in enumerate(parts):
        if part == "..":
            cur = cur.parent if cur != rootfs else rootfs
            continue
        nxt = cur / part
        if nxt.is_symlink() and depth < 40:
            target = os.readlink(nxt)
            base = "/" if target.startswith("/") else "/" + str(cur.relative_to(rootfs))
            rest = "/".join(parts[i + 1:])
            return resolve_in(rootfs, os.path.join(base, target, rest), depth + 1)
        cur = nxt
    return cur
