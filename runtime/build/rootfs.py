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
from runtime.errors import RuntimeFailure
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


class Lease:
    """A build key in use: its dir under work_dir() stays flock'ed until released, so `repair`
    can tell a crashed build's leftovers from a running one (also while a commit is pending)."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.base = work_dir() / key
        self.base.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.base / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def release(self, store: Any) -> None:
        """Forget the key's upper dir in the store and remove its work dir (idempotent)."""
        if self.fd < 0:
            return
        try:
            store.release_rootfs(self.key)
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
            os.close(self.fd)
            self.fd = -1


@contextlib.contextmanager
def mounted(store: Any, image_id: str | None, lease: Lease | None = None,
            extra_lower: Path | None = None) -> Iterator[tuple[Path, list[Any]]]:
    """(rootfs path, mount descriptions) of `image_id`, unmounted afterwards. Without a lease the
    key is a throw-away view released at the end; with one, the caller commits and releases it.
    `extra_lower`: a finished step's upper dir stacked on the image (overlay reads its whiteouts)."""
    if image_id is not None and os.geteuid() != 0:
        raise RuntimeFailure("this build step needs root: it mounts the image's layers (overlayfs)",
                             hint="run wharf build as root")
    own = lease is None
    lease = lease or Lease(new_key("build-view"))
    rootfs = lease.base / "rootfs"
    rootfs.mkdir(parents=True, exist_ok=True)
    mounts: list[Any] = []
    try:
        if image_id is not None:
            mounts = store.rootfs_mounts(image_id, lease.key)
            if extra_lower is not None:
                mounts = [_stack(mnt, extra_lower) for mnt in mounts]
            mount_all(mounts, rootfs)
        yield rootfs, mounts
    finally:
        with contextlib.suppress(OSError):
            m.umount_all_under(rootfs)
        shutil.rmtree(rootfs, ignore_errors=True)
        if own:
            with contextlib.suppress(Exception):
                lease.release(store)


def _stack(mnt: Any, lower: Path) -> Any:
    opts = list(mnt.options)
    for i, opt in enumerate(opts):
        if opt.startswith("lowerdir="):
            opts[i] = f"lowerdir={lower}:{opt.removeprefix('lowerdir=')}"
            return type(mnt)(type=mnt.type, source=mnt.source, target=mnt.target, options=opts)
    raise RuntimeFailure("the image store's rootfs is not an overlay with lowerdir= (cannot stack a step)")


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


def resolve_in(rootfs: Path, path: str) -> Path:
    """`path` inside the image with symlinks resolved relative to the image root (like chroot)."""
    from runtime.oci.rootfs import resolve

    try:
        return Path(resolve(str(rootfs), path))
    except OSError as e:
        from runtime.errors import InvalidArgument

        raise InvalidArgument(f"{path}: {e.strerror}", hint="a symlink in the image loops") from None
