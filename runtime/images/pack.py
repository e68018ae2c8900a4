"""Directory trees -> tar streams (sorted, numeric owners, PAX xattrs, hardlinks kept).

`write_tree(..., overlay=True)` reads an overlay upper dir and writes OCI whiteouts:
a 0/0 char device `x` -> empty file `.wh.x`; a dir with trusted.overlay.opaque=y ->
the dir plus `dir/.wh..wh..opq`. Overlay's own trusted.overlay.* xattrs are dropped.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Iterator
from typing import BinaryIO

from runtime.images.apply import OPAQUE, OVERLAY_OPAQUE_XATTR, WHITEOUT_PREFIX
from runtime.images.streams import CHUNK

_XATTR_PAX = "SCHILY.xattr."


def _walk(root: str, rel: str = "") -> Iterator[tuple[str, os.stat_result]]:
    """(relative path, lstat) depth-first in sorted name order, parents before children."""
    base = os.path.join(root, rel) if rel else root
    with os.scandir(base) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        path = f"{rel}/{e.name}" if rel else e.name
        st = e.stat(follow_symlinks=False)
        yield path, st
        if stat.S_ISDIR(st.st_mode):
            yield from _walk(root, path)


def _xattrs(path: str) -> dict[str, bytes]:
    out = {}
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return out
    for name in sorted(names):
        if name.startswith("trusted.overlay."):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, OVERLAY_OPAQUE_XATTR, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _info(name: str, st: os.stat_result, mtime: int | None) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mode = stat.S_IMODE(st.st_mode)
    ti.uid, ti.gid = st.st_uid, st.st_gid
    ti.uname = ti.gname = ""
    ti.mtime = st.st_mtime if mtime is None else mtime
    return ti


def write_tree(root: str | os.PathLike[str], out: BinaryIO, *, overlay: bool = False,
               mtime: int | None = None, prefix: str = "", skip: frozenset[str] = frozenset()) -> None:
    """Write the tree under `root` as a tar to `out` (PAX, sorted; `mtime` fixes all times).
    skip: relative paths of files to leave out."""
    root = os.fspath(root)
    links: dict[tuple[int, int], str] = {}
    with tarfile.open(mode="w|", fileobj=out, format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tf:
        tf.copybufsize = CHUNK
        for rel, st in _walk(root):
            if rel in skip:
                continue
            path = os.path.join(root, rel)
            name = prefix + rel
            if overlay and is_whiteout(st):
                head, _, base = name.rpartition("/")
                ti = _info(f"{head}/{WHITEOUT_PREFIX}{base}" if head else WHITEOUT_PREFIX + base, st, mtime)
                ti.mode, ti.uid, ti.gid = 0o644, 0, 0
                tf.addfile(ti)
                continue
            ti = _info(name, st, mtime)
            for k, v in _xattrs(path).items():
                ti.pax_headers[_XATTR_PAX + k] = v.decode("utf-8", "surrogateescape")
            mode = st.st_mode
            if stat.S_ISREG(mode):
                key = (st.st_dev, st.st_ino)
                if st.st_nlink > 1 and key in links:
                    ti.type, ti.linkname = tarfile.LNKTYPE, links[key]
                    tf.addfile(ti)
                    continue
                links[key] = name
                ti.size = st.st_size
                with open(path, "rb") as f:
                    tf.addfile(ti, f)
                continue
            if stat.S_ISDIR(mode):
                ti.type = tarfile.DIRTYPE
            elif stat.S_ISLNK(mode):
                ti.type, ti.linkname = tarfile.SYMTYPE, os.readlink(path)
            elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
                ti.type = tarfile.CHRTYPE if stat.S_ISCHR(mode) else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
            elif stat.S_ISFIFO(mode):
                ti.type = tarfile.FIFOTYPE
            else:
                continue  # sockets are not archived (as tar and Docker do)
            tf.addfile(ti)
            if overlay and stat.S_ISDIR(mode) and is_opaque(path):
                oi = _info(f"{name}/{OPAQUE}", st, mtime)
                oi.mode, oi.uid, oi.gid = 0o644, 0, 0
                tf.addfile(oi)
