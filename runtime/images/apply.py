"""Apply one layer tar into an empty snapshot directory, in overlay form, safely.

OCI whiteouts become what overlayfs reads in a lower dir: `.wh.<name>` -> a 0/0
character device `<name>`; `.wh..wh..opq` -> xattr trusted.overlay.opaque=y on
its directory. Ownership, modes, xattrs, hardlinks, symlinks, devices and mtimes
are kept. No member may write outside `dest`: absolute names, `..`, paths through
a symlink, and hardlinks to such places are refused (LayerError names the member).
The caller extracts into a fresh temp dir and deletes it on error.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import tarfile
import zlib
from pathlib import Path

from runtime.errors import InvalidArgument
from runtime.images.streams import CHUNK, HashingReader

WHITEOUT_PREFIX = ".wh."
OPAQUE = ".wh..wh..opq"
OVERLAY_OPAQUE_XATTR = "trusted.overlay.opaque"
_XATTR_PAX = "SCHILY.xattr."


class LayerError(InvalidArgument):
    """A layer tar that is corrupt, truncated or unsafe."""


def clean_name(name: str, what: str) -> str:
    """Member name relative to the layer root ('' for the root); refuses absolute paths and `..`."""
    if name.startswith("/"):
        raise LayerError(f"{what}: absolute path {name!r} is not allowed in a layer")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise LayerError(f"{what}: path {name!r} leaves the layer ('..' is not allowed)")
    return "/".join(parts)


class _Extractor:
    def __init__(self, dest: Path, what: str) -> None:
        self.dest = os.fspath(dest)
        self.what = what
        self.safe_dirs: set[str] = {""}
        self.dir_times: list[tuple[str, int]] = []
        self.root = os.geteuid() == 0
        self.size = 0

    def _abs(self, rel: str) -> str:
        return os.path.join(self.dest, rel) if rel else self.dest

    def parent_dir(self, rel: str, create: bool, member: str) -> str:
        """Absolute path of rel's parent after checking every component is a real directory."""
        parent = os.path.dirname(rel)
        if parent in self.safe_dirs:
            return self._abs(parent)
        walked = ""
        for comp in parent.split("/"):
            walked = f"{walked}/{comp}" if walked else comp
            if walked in self.safe_dirs:
                continue
            p = self._abs(walked)
            try:
                st = os.lstat(p)
            except FileNotFoundError:
                if not create:
                    raise LayerError(f"{self.what}: member {member!r}: {walked!r} does not exist "
                                     "in the layer") from None
                os.mkdir(p, 0o755)
                self.safe_dirs.add(walked)
                continue
            if stat.S_ISLNK(st.st_mode):
                raise LayerError(f"{self.what}: member {member!r} goes through symlink {walked!r} "
                                 "(writing through symlinks could escape the layer)")
            if not stat.S_ISDIR(st.st_mode):
                raise LayerError(f"{self.what}: member {member!r}: {walked!r} is not a directory")
            self.safe_dirs.add(walked)
        return self._abs(parent)

    def _clear(self, path: str, keep_dir: bool) -> bool:
        """Remove what is at `path` unless it is a dir and keep_dir; True when a dir is kept."""
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISDIR(st.st_mode):
            if keep_dir:
                return True
            shutil.rmtree(path)
            self.safe_dirs.clear()
            self.safe_dirs.add("")
        else:
            os.unlink(path)
        return False

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        rel = clean_name(m.name, self.what)
        base = os.path.basename(rel)
        if base.startswith(WHITEOUT_PREFIX):
            self.whiteout(rel, base)
            return
        if not rel:  # the layer root itself: nothing to create
            return
        path = os.path.join(self.parent_dir(rel, True, m.name), base)
        if m.isdir():
            if not self._clear(path, keep_dir=True):
                os.mkdir(path, 0o700)
            self.safe_dirs.add(rel)
        elif m.islnk():
            target_rel = clean_name(m.linkname, f"{self.what}: hardlink {m.name!r}")
            if not target_rel:
                raise LayerError(f"{self.what}: hardlink {m.name!r} points at the layer root")
            src = os.path.join(self.parent_dir(target_rel, False, m.linkname), os.path.basename(target_rel))
            try:
                if stat.S_ISDIR(os.lstat(src).st_mode):
                    raise LayerError(f"{self.what}: hardlink {m.name!r} points at directory {m.linkname!r}")
            except FileNotFoundError:
                raise LayerError(f"{self.what}: hardlink {m.name!r} points at {m.linkname!r}, "
                                 "which is not in the layer") from None
            if os.path.abspath(src) == os.path.abspath(path):
                return
            self._clear(path, keep_dir=False)
            os.link(src, path, follow_symlinks=False)
            return  # metadata is the target's
        else:
            self._clear(path, keep_dir=False)
            if m.isreg():
                self.regular(tf, m, path)
            elif m.issym():
                os.symlink(m.linkname, path)
            elif m.ischr() or m.isblk():
                if not self.root:
                    return
                kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK
                os.mknod(path, kind | 0o600, os.makedev(m.devmajor, m.devminor))
            elif m.isfifo():
                os.mkfifo(path, 0o600)
            else:
                raise LayerError(f"{self.what}: member {m.name!r} has unsupported type {m.type!r}")
        self.metadata(m, path, rel)

    def regular(self, tf: tarfile.TarFile, m: tarfile.TarInfo, path: str) -> None:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            src = tf.extractfile(m)
            assert src is not None
            left = m.size
            while left > 0:
                buf = src.read(min(CHUNK, left))
                if not buf:
                    raise EOFError(f"member {m.name!r} is truncated")
                left -= len(buf)
                view = memoryview(buf)
                while view:
                    view = view[os.write(fd, view):]
        finally:
            os.close(fd)
        self.size += m.size

    def metadata(self, m: tarfile.TarInfo, path: str, rel: str) -> None:
        if self.root:
            os.lchown(path, m.uid, m.gid)
        if not m.issym():
            os.chmod(path, m.mode & 0o7777)
        for key, value in m.pax_headers.items():
            if not key.startswith(_XATTR_PAX):
                continue
            name = key[len(_XATTR_PAX):]
            if name.startswith("trusted.overlay.") or (name.startswith("trusted.") and not self.root):
                continue  # overlay's own metadata must not come from a layer
            raw = value.encode("utf-8", "surrogateescape")
            try:
                os.setxattr(path, name, raw, follow_symlinks=False)
            except OSError as e:
                if e.errno not in (errno.ENOTSUP, errno.EPERM):
                    raise
        if m.isdir():
            self.dir_times.append((path, int(m.mtime)))
        else:
            mt = int(m.mtime * 1_000_000_000)
            os.utime(path, ns=(mt, mt), follow_symlinks=False)

    def whiteout(self, rel: str, base: str) -> None:
        parent = self.parent_dir(rel, True, rel)
        if base == OPAQUE:
            os.setxattr(parent, OVERLAY_OPAQUE_XATTR, b"y")
            return
        name = base[len(WHITEOUT_PREFIX):]
        if not name or name.startswith(WHITEOUT_PREFIX) or name in (".", ".."):
            return  # aufs metadata (.wh..wh.plnk, ...) has no overlay meaning
        path = os.path.join(parent, name)
        if os.path.lexists(path):
            return  # present in this same layer: the whiteout applies to lower layers only
        os.mknod(path, stat.S_IFCHR | 0o000, os.makedev(0, 0))

    def finish(self) -> None:
        for path, mtime in reversed(self.dir_times):
            ns = mtime * 1_000_000_000
            os.utime(path, ns=(ns, ns), follow_symlinks=False)


def apply_tar(reader: HashingReader, dest: Path, what: str = "layer") -> int:
    """Extract the tar read from `reader` into existing empty dir `dest`; returns the bytes of file data.

    `reader` is drained to its end so its digest covers the whole stream (the diff_id).
    """
    ex = _Extractor(dest, what)
    try:
        with tarfile.open(mode="r|", fileobj=reader, bufsize=CHUNK) as tf:  # type: ignore[call-overload]
            for m in tf:
                ex.member(tf, m)
        reader.drain()
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise LayerError(f"{what}: corrupt or truncated tar: {e}",
                         hint="the layer data is damaged; fetch the image again") from None
    except Exception as e:  # zstandard raises its own ZstdError
        if type(e).__name__ == "ZstdError":
            raise LayerError(f"{what}: corrupt zstd stream: {e}") from None
        raise
    ex.finish()
    return ex.size
