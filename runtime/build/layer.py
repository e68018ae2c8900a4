"""A layer tar written straight into the content store (COPY, ADD, WORKDIR, heredoc files).

Entries are collected first (path -> what to write), then written in path order so
every parent comes before its children. The blob is an uncompressed tar, so its
digest is also its diff_id.
"""

from __future__ import annotations

import io
import os
import posixpath
import stat
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BUFSIZE = 1 << 16  # the tar goes out in 64 KiB writes (tarfile's 10 KiB default: 6x the hand-offs to the unpacker)


@dataclass
class _Entry:
    info: tarfile.TarInfo
    host: Path | None = None  # regular file contents from the host
    data: bytes | None = None  # or from memory
    archive: tuple[tarfile.TarFile, tarfile.TarInfo] | None = None  # or from an archive member


class LayerBuilder:
    def __init__(self) -> None:
        self.entries: dict[str, _Entry] = {}
        self.now = int(time.time())

    @staticmethod
    def _name(path: str) -> str:
        return posixpath.normpath("/" + path).lstrip("/")

    def _info(self, path: str, typ: bytes, mode: int, uid: int, gid: int, mtime: float | None) -> tarfile.TarInfo:
        info = tarfile.TarInfo(self._name(path))
        info.type = typ
        info.mode = mode & 0o7777
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        info.mtime = int(self.now if mtime is None else mtime)
        return info

    def add_dir(self, path: str, mode: int = 0o755, uid: int = 0, gid: int = 0, mtime: float | None = None) -> None:
        name = self._name(path)
        if name:
            self.entries[name] = _Entry(self._info(name, tarfile.DIRTYPE, mode, uid, gid, mtime))

    def add_bytes(self, path: str, data: bytes, mode: int = 0o644, uid: int = 0, gid: int = 0,
                  mtime: float | None = None) -> None:
        info = self._info(path, tarfile.REGTYPE, mode, uid, gid, mtime)
        info.size = len(data)
        self.entries[info.name] = _Entry(info, data=data)

    def add_host(self, path: str, host: Path, st: os.stat_result, uid: int, gid: int,
                 mode: int | None = None) -> None:
        """A file, dir or symlink from the host with its lstat (mode overridden by --chmod)."""
        perm = stat.S_IMODE(st.st_mode) if mode is None else mode
        if stat.S_ISDIR(st.st_mode):
            self.add_dir(path, perm, uid, gid, st.st_mtime)
        elif stat.S_ISLNK(st.st_mode):
            info = self._info(path, tarfile.SYMTYPE, 0o777, uid, gid, st.st_mtime)
            info.linkname = os.readlink(host)
            self.entries[info.name] = _Entry(info)
        elif stat.S_ISREG(st.st_mode):
            info = self._info(path, tarfile.REGTYPE, perm, uid, gid, st.st_mtime)
            info.size = st.st_size
            self.entries[info.name] = _Entry(info, host=host)
        # sockets, fifos and devices in a build context are skipped, as Docker does

    def add_archive_member(self, dest_dir: str, tf: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        """One member of an archive that ADD extracts below `dest_dir` (paths kept inside it)."""
        rel = posixpath.normpath("/" + member.name).lstrip("/")
        if not rel or rel == ".":
            return
        info = tarfile.TarInfo(self._name(posixpath.join(dest_dir, rel)))
        for attr in ("type", "mode", "uid", "gid", "uname", "gname", "mtime", "size", "linkname",
                     "devmajor", "devminor"):
            setattr(info, attr, getattr(member, attr))
        if member.islnk():  # hard link target is also inside the archive
            target = posixpath.normpath("/" + member.linkname).lstrip("/")  # relative: joined below dest_dir
            info.linkname = self._name(posixpath.join(dest_dir, target))
        entry = _Entry(info, archive=(tf, member) if member.isreg() else None)
        self.entries[info.name] = entry

    def ensure_parents(self, path: str, exists: Any, uid: int = 0, gid: int = 0) -> None:
        """Give every parent dir of `path` an entry, so the layer alone makes its tree (an unpacker
        would otherwise create the missing ones with its own mode and time, and in an overlay they
        hide the image's): exists(abs_path) -> the image's lstat of it (kept as it is) or None (new)."""
        parts = self._name(path).split("/")[:-1]
        for i in range(1, len(parts) + 1):
            name = "/".join(parts[:i])
            if name not in self.entries:
                self.add_existing(name, exists("/" + name), uid, gid)

    def add_existing(self, path: str, st: Any, uid: int = 0, gid: int = 0) -> None:
        """An entry for dir `path` as the image has it (st: its lstat), a new one when st is None/False.
        Existing non-directories (a symlink the path was resolved through) get no entry."""
        if not st:
            self.add_dir(path, 0o755, uid, gid)
        elif isinstance(st, os.stat_result) and stat.S_ISDIR(st.st_mode):
            self.add_dir(path, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime)

    def write(self, content: Any, snapshot: Any = None) -> str:
        """Write the tar into the content store (a ContentStore); returns the blob digest.
        `snapshot` (a Snapshots.writer) gets the same bytes: the layer is unpacked on the way."""
        writer = content.writer()
        try:
            sink = writer if snapshot is None else _Tee(writer, snapshot)
            with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT, bufsize=BUFSIZE) as tf:
                for name in sorted(self.entries):
                    entry = self.entries[name]
                    if entry.host is not None:
                        with open(entry.host, "rb") as f:
                            entry.info.size = os.fstat(f.fileno()).st_size
                            tf.addfile(entry.info, f)
                    elif entry.data is not None:
                        tf.addfile(entry.info, io.BytesIO(entry.data))
                    elif entry.archive is not None:
                        src_tf, member = entry.archive
                        tf.addfile(entry.info, src_tf.extractfile(member))
                    else:
                        tf.addfile(entry.info)
            return writer.commit()
        except BaseException:
            writer.abort()
            raise


class _Tee:
    """The tar stream to the blob and to the snapshot being unpacked."""

    def __init__(self, blob: Any, snapshot: Any) -> None:
        self.blob, self.snapshot = blob, snapshot

    def write(self, data: bytes) -> int:
        self.blob.write(data)
        self.snapshot.write(data)
        return len(data)
