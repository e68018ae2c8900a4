"""`cp` and `export`: paths resolved inside a container root (symlinks cannot escape it), tar semantics."""

from __future__ import annotations

import io
import os
import shutil
import stat
from typing import TYPE_CHECKING, BinaryIO

from runtime.errors import InvalidArgument, NotFound

if TYPE_CHECKING:
    import tarfile


def resolve_in_root(root: str, path: str, follow_last: bool = True) -> str:
    """Host path of container path `path` under `root` (runtime.oci.rootfs.resolve), a symlink loop
    as an InvalidArgument naming the path."""
    from runtime.oci.rootfs import resolve

    try:
        return resolve(root, path, follow_last)
    except OSError as e:
        raise InvalidArgument(f"{path}: {e.strerror}", hint="a symlink in the container loops") from None


def tar_from(root: str, src: str, out: BinaryIO) -> None:
    """Docker's `cp CONTAINER:SRC -`: a tar of SRC (its contents when SRC ends with /.)."""
    host = resolve_in_root(root, src, follow_last=not src.endswith("/"))
    if not os.path.lexists(host):
        raise NotFound(f"could not find the file {src} in container")
    import tarfile  # lazily: `run` imports this module for resolve_in_root only

    with tarfile.open(fileobj=out, mode="w|") as tar:
        if src.endswith("/.") and os.path.isdir(host):
            for name in sorted(os.listdir(host)):
                tar.add(os.path.join(host, name), arcname=name)
        else:
            tar.add(host, arcname=os.path.basename(host.rstrip("/")) or ".")


def copy_out(root: str, src: str, dest: str) -> None:
    """`cp CONTAINER:SRC DEST` onto the host filesystem."""
    buf = io.BytesIO()
    tar_from(root, src, buf)
    buf.seek(0)
    host = resolve_in_root(root, src, follow_last=not src.endswith("/"))
    contents = src.endswith("/.") and os.path.isdir(host)
    if contents or (os.path.isdir(dest) and not contents):
        target = dest
    else:
        target = os.path.dirname(os.path.abspath(dest))
        if not os.path.isdir(target):
            raise NotFound(f"destination directory {target} does not exist")
    if contents and not os.path.exists(dest):
        os.makedirs(dest)
    import tarfile  # lazily: `run` imports this module for resolve_in_root only

    with tarfile.open(fileobj=buf, mode="r:") as tar:
        members = tar.getmembers()
        if not contents and not os.path.isdir(dest) and members:
            members[0].name = os.path.basename(os.path.abspath(dest))
            for m in members[1:]:
                m.name = members[0].name + m.name[m.name.find("/"):]
        tar.extractall(target, members=members, filter="tar")


def copy_in(root: str, src_tar: BinaryIO, dest: str) -> None:
    """Extract a tar stream into container path `dest` (a directory)."""
    host = resolve_in_root(root, dest)
    if not os.path.isdir(host):
        raise NotFound(f"could not find the directory {dest} in container")
    import tarfile  # lazily: `run` imports this module for resolve_in_root only

    with tarfile.open(fileobj=src_tar, mode="r|*") as tar:
        tar.extractall(host, filter="tar")


def copy_path_in(root: str, src: str, dest: str) -> None:
    """`cp SRC CONTAINER:DEST` from the host filesystem, with docker's naming rules."""
    if not os.path.lexists(src):
        raise NotFound(f"could not find the file {src} on the host")
    hdest = resolve_in_root(root, dest)
    contents = src.endswith("/.") and os.path.isdir(src)
    if os.path.isdir(hdest):
        target = hdest if contents else os.path.join(hdest, os.path.basename(os.path.abspath(src)))
    else:
        if dest.endswith("/"):
            raise NotFound(f"directory {dest} does not exist in container")
        parent = os.path.dirname(hdest)
        if not os.path.isdir(parent):
            raise NotFound(f"directory {os.path.dirname(dest) or '/'} does not exist in container")
        target = hdest
    if os.path.isdir(src) and not os.path.islink(src):
        shutil.copytree(src, target, symlinks=True, dirs_exist_ok=True)
    else:
        shutil.copy2(src, target, follow_symlinks=False)


def export(root: str, out: BinaryIO) -> None:
    """The container's filesystem as a tar; what other filesystems mounted into it hold
    (/proc, /sys, /dev, volumes) is left out, as `docker export` does."""
    dev = os.stat(root).st_dev  # stat: root may be the /proc/PID/root link

    def add(tar: tarfile.TarFile, path: str, arc: str) -> None:
        st = os.lstat(path)
        tar.add(path, arcname=arc, recursive=False)
        if stat.S_ISDIR(st.st_mode) and st.st_dev == dev:  # a mount point: its directory only
            for name in sorted(os.listdir(path)):
                add(tar, os.path.join(path, name), f"{arc}/{name}")

    import tarfile  # lazily: `run` imports this module for resolve_in_root only

    with tarfile.open(fileobj=out, mode="w|") as tar:
        for name in sorted(os.listdir(root)):
            add(tar, os.path.join(root, name), name)
