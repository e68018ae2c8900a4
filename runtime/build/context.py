"""The build context: a directory (or a tar read from stdin) filtered by `.dockerignore`.

`sources(pattern)` resolves a COPY/ADD source (Go filepath.Match wildcards per path
component) to files inside the context; a path that leaves the context is an error,
and so is a source that does not exist or is excluded. `digest(sources)` hashes what a
COPY would copy (paths, types, modes, link targets and contents) for the build cache.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runtime.build.cache import write_json
from runtime.build.dockerignore import Matcher, parse_patterns
from runtime.errors import InvalidArgument, NotFound
from runtime.util.fs import read_json


@dataclass(frozen=True)
class Source:
    rel: str  # path inside the context ("" = the context root), '/'-separated
    path: Path  # absolute path on the host

    @property
    def is_dir(self) -> bool:
        return self.path.is_dir() and not self.path.is_symlink()


class BuildContext:
    def __init__(self, root: Path, temporary: bool = False) -> None:
        self.root = Path(os.path.realpath(root))
        self.temporary = temporary
        try:
            self.matcher = Matcher.from_context(self.root)
        except ValueError as e:
            raise InvalidArgument(str(e), where=str(self.root / ".dockerignore")) from None
        self._file_digests: dict[str, str] = {}
        self._used_digests: dict[str, str] = {}

    def use_ignore_file(self, path: Path) -> None:
        """BuildKit's `<Dockerfile>.dockerignore` (next to the Dockerfile) replaces .dockerignore."""
        try:
            self.matcher = Matcher(parse_patterns(path.read_text()))
        except ValueError as e:
            raise InvalidArgument(str(e), where=str(path)) from None

    @classmethod
    def from_dir(cls, path: str | os.PathLike[str]) -> BuildContext:
        p = Path(path)
        if not p.is_dir():
            raise NotFound(f"build context {str(path)!r} is not a directory",
                           hint="give a directory, or - to read a tar (or a Dockerfile) from stdin")
        return cls(p)

    @classmethod
    def from_tar(cls, fileobj: BinaryIO) -> BuildContext:
        """Unpack a context tar (optionally compressed) into a private temp dir."""
        tmp = Path(tempfile.mkdtemp(prefix="wharf-build-ctx-"))
        try:
            with tarfile.open(fileobj=fileobj, mode="r|*") as tf:
                tf.extractall(tmp, filter=_context_filter)
        except (tarfile.TarError, OSError) as e:
            shutil.rmtree(tmp, ignore_errors=True)
            raise InvalidArgument(f"cannot read the build context tar: {e}") from None
        return cls(tmp, temporary=True)

    @classmethod
    def empty(cls) -> BuildContext:
        return cls(Path(tempfile.mkdtemp(prefix="wharf-build-ctx-")), temporary=True)

    def close(self) -> None:
        if self.temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> BuildContext:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ resolving sources

    def excluded(self, rel: str) -> bool:
        return bool(rel) and self.matcher.matches(rel)

    def clean(self, src: str, where: str) -> str:
        """`src` relative to the context root, '/'-separated; error when it leaves the context."""
        norm = posixpath.normpath(src.replace("\\", "/") if os.sep != "/" else src)
        if norm.startswith("/"):
            norm = norm.lstrip("/") or "."
        if norm == ".." or norm.startswith("../"):
            raise InvalidArgument(f"forbidden path outside the build context: {src}", where=where,
                                  hint="COPY/ADD sources must be inside the build context directory")
        return "" if norm == "." else norm

    def _real(self, rel: str, where: str, src: str) -> Path:
        path = Path(os.path.realpath(self.root / rel)) if rel else self.root
        if path != self.root and self.root not in path.parents:
            raise InvalidArgument(f"forbidden path outside the build context: {src} (a symlink leads out)",
                                  where=where)
        return path

    def sources(self, src: str, where: str) -> list[Source]:
        rel = self.clean(src, where)
        if not any(c in rel for c in "*?["):
            if self.excluded(rel):
                raise NotFound(f"{src}: excluded by .dockerignore", where=where,
                               hint="remove the matching pattern from .dockerignore")
            path = self._real(rel, where, src)
            if not os.path.lexists(path):
                raise NotFound(f"{src}: no such file or directory in the build context", where=where,
                               hint=f"the context is {self.root}")
            return [Source(rel, path)]
        found = [s for s in self._glob(rel.split("/"), "") if not self.excluded(s)]
        if not found:
            raise NotFound(f"{src}: no source files were specified (nothing in the context matches)",
                           where=where)
        return [Source(r, self._real(r, where, src)) for r in sorted(found)]

    def _glob(self, parts: list[str], base: str) -> Iterator[str]:
        head, rest = parts[0], parts[1:]
        directory = self.root / base if base else self.root
        try:
            names = sorted(os.listdir(directory))
        except (NotADirectoryError, FileNotFoundError):
            return
        for name in names:
            if not fnmatch.fnmatchcase(name, head):
                continue
            rel = f"{base}/{name}" if base else name
            if rest:
                yield from self._glob(rest, rel)
            else:
                yield rel

    def walk(self, source: Source) -> Iterator[tuple[str, Path, os.stat_result]]:
        """(path below the source, host path, lstat) for the source and what is under it, sorted,
        skipping .dockerignore'd entries. The source itself comes first with path ""."""
        st = os.lstat(source.path)
        yield "", source.path, st
        if not stat.S_ISDIR(st.st_mode):
            return
        yield from self._walk_dir(source.path, source.rel, "")

    def _walk_dir(self, host: Path, rel: str, below: str) -> Iterator[tuple[str, Path, os.stat_result]]:
        for name in sorted(os.listdir(host)):
            child_rel = f"{rel}/{name}" if rel else name
            child_below = f"{below}/{name}" if below else name
            path = host / name
            st = os.lstat(path)
            excluded = self.excluded(child_rel)
            is_dir = stat.S_ISDIR(st.st_mode)
            if not excluded:
                yield child_below, path, st
            if is_dir and (not excluded or self.matcher.may_reinclude_below(child_rel)):
                yield from self._walk_dir(path, child_rel, child_below)

    # ------------------------------------------------------------ cache digests

    def digest(self, sources: list[Source]) -> str:
        h = hashlib.sha256()
        for source in sources:
            h.update(f"src {source.rel}\0".encode())
            for below, path, st in self.walk(source):
                h.update(f"{below}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
                if stat.S_ISLNK(st.st_mode):
                    h.update(os.readlink(path).encode() + b"\0")
                elif stat.S_ISREG(st.st_mode):
                    h.update(self._file_digest(path, st).encode())
        return "sha256:" + h.hexdigest()

    def _file_digest(self, path: Path, st: os.stat_result) -> str:
        key = f"{path.relative_to(self.root)}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ctime_ns}\0{st.st_ino}"
        digest = self._file_digests.get(key)
        if digest is None:
            digest = self._file_digests[key] = file_sha256(path)
        self._used_digests[key] = digest
        return digest

    def load_digests(self, cache_dir: Path) -> None:
        """Reuse the file hashes of the previous build of this context (a file whose size, mtime,
        ctime and inode are unchanged is not read again)."""
        if self.temporary:
            return
        try:
            data = read_json(self._digests_path(cache_dir), {})
        except ValueError:
            data = {}
        if isinstance(data, dict):
            self._file_digests.update({k: v for k, v in data.items() if isinstance(v, str)})

    def save_digests(self, cache_dir: Path) -> None:
        if not self.temporary and self._used_digests:
            write_json(self._digests_path(cache_dir), self._used_digests)

    def _digests_path(self, cache_dir: Path) -> Path:
        return cache_dir / "contexts" / (hashlib.sha256(str(self.root).encode()).hexdigest()[:32] + ".json")


def _context_filter(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo | None:
    """tarfile's "tar" filter (no absolute or `..` names, no setuid bits), plus: nothing is written
    through a symlink and hard links stay inside. Symlinks themselves may point anywhere: they are
    copied as links, never followed (a context may hold `link -> /etc/x`)."""
    member = tarfile.tar_filter(member, dest)
    root = os.path.realpath(dest)
    parent = os.path.realpath(os.path.join(root, os.path.dirname(member.name)))
    if parent != root and not parent.startswith(root + os.sep):
        raise tarfile.OutsideDestinationError(member, parent)
    if member.islnk():
        target = os.path.realpath(os.path.join(root, member.linkname))
        if not target.startswith(root + os.sep):
            raise tarfile.LinkOutsideDestinationError(member, target)
    return member


def file_sha256(path: str | os.PathLike[str]) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()
