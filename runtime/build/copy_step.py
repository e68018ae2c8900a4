"""COPY and ADD: resolve the sources, hash them for the cache, write the layer.

Docker's rules: a directory source copies its contents into <dest>; several sources
(or a wildcard) need a <dest> ending in `/`; a file goes into <dest> when <dest> ends in
`/` or is a directory in the image, else becomes <dest>; missing parents are created.
Ownership is 0:0 unless `--chown` (names from the image's /etc/passwd, /etc/group);
`--from` sources keep theirs. ADD also extracts local tar archives (gzip/bzip2/xz)
into <dest> and downloads http(s) URLs (mode 0600, `--checksum=sha256:...` verified).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import shutil
import tarfile
import tempfile
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.build import rootfs as rfs
from runtime.build.context import BuildContext, Source, file_sha256
from runtime.build.layer import LayerBuilder
from runtime.build.users import chown_ids
from runtime.errors import InvalidArgument, NotFound, RuntimeFailure


@dataclass
class CopyRequest:
    where: str
    add: bool
    sources: list[str]  # after substitution; heredoc sources are "<<NAME"
    dest: str  # absolute, after substitution and WORKDIR
    dest_is_dir: bool  # ends with "/" (or several sources)
    heredocs: dict[str, bytes] = field(default_factory=dict)
    chown: str | None = None
    chmod: int | None = None
    checksum: str | None = None
    from_image: bool = False  # COPY --from: sources are paths in another image ...
    from_rootfs: Path | None = None  # ... mounted here when the layer is made
    # filled by prepare():
    context_sources: list[Source] = field(default_factory=list)
    downloads: dict[str, Path] = field(default_factory=dict)
    tmpdir: Path | None = None


def parse_chmod(value: str, where: str) -> int:
    try:
        mode = int(value, 8)
    except ValueError:
        raise InvalidArgument(f"invalid --chmod={value}: use an octal mode such as 755", where=where) from None
    if not 0 <= mode <= 0o7777:
        raise InvalidArgument(f"invalid --chmod={value}: out of range", where=where)
    return mode


def is_url(src: str) -> bool:
    return src.startswith(("http://", "https://"))


def prepare(req: CopyRequest, ctx: BuildContext) -> str:
    """Resolve the sources (errors name the line) and return the cache digest of what is copied."""
    h = hashlib.sha256()
    if len(req.sources) > 1 and not req.dest_is_dir:
        raise InvalidArgument("When using COPY with more than one source file, the destination must be a "
                              "directory and end with a /", where=req.where)
    for src in req.sources:
        if src in req.heredocs:
            h.update(b"heredoc\0" + src.encode() + b"\0" + req.heredocs[src])
        elif is_url(src) or src.startswith("git@"):
            if not req.add:
                raise InvalidArgument(f"source can't be a URL for COPY: {src}", where=req.where, hint="use ADD")
            if src.startswith("git@") or urllib.parse.urlparse(src).path.endswith(".git"):
                raise InvalidArgument(f"ADD {src}: git repositories are not supported by wharf build",
                                      where=req.where, hint="clone it into the build context and COPY it")
            path = _download(req, src)
            h.update(f"url\0{src}\0{file_sha256(path)}".encode())
        elif req.from_image:
            h.update(f"from\0{src}".encode())
        else:
            found = ctx.sources(src, req.where)
            req.context_sources.extend(found)
            h.update(ctx.digest(found).encode())
    return "sha256:" + h.hexdigest()


def _download(req: CopyRequest, url: str) -> Path:
    if req.tmpdir is None:
        req.tmpdir = Path(tempfile.mkdtemp(prefix="wharf-build-add-", dir=rfs.work_dir()))
    path = req.tmpdir / f"download-{len(req.downloads)}"
    try:
        with urllib.request.urlopen(url, timeout=60) as resp, open(path, "wb") as out:
            shutil.copyfileobj(resp, out, 1 << 20)
    except (OSError, ValueError) as e:
        raise RuntimeFailure(f"ADD {url}: download failed: {e}", where=req.where) from None
    if req.checksum:
        algo, _, want = req.checksum.partition(":")
        if algo != "sha256" or file_sha256(path) != want:
            raise InvalidArgument(f"ADD {url}: digest mismatch (want {req.checksum})", where=req.where)
    req.downloads[url] = path
    return path


def cleanup(req: CopyRequest) -> None:
    if req.tmpdir is not None:
        shutil.rmtree(req.tmpdir, ignore_errors=True)


def build_layer(req: CopyRequest, ctx: BuildContext, rootfs: Path) -> LayerBuilder:
    """The layer for this COPY/ADD given the destination image mounted at `rootfs`."""
    lb = LayerBuilder()
    ids = chown_ids(rootfs, req.chown) if req.chown else None
    uid, gid = ids or (0, 0)
    dest_is_dir = req.dest_is_dir or rfs.is_dir_in(rootfs, req.dest)
    dest = _real(rootfs, req.dest)

    def exists(p: str) -> os.stat_result | None:
        return rfs.exists_in(rootfs, p)

    def target_for(name: str) -> str:
        return posixpath.join(dest, name) if dest_is_dir else dest

    for src in req.sources:
        if src in req.heredocs:
            t = target_for(src[2:].lstrip("-").strip("'\""))
            lb.ensure_parents(t, exists, uid, gid)
            lb.add_bytes(t, req.heredocs[src], req.chmod if req.chmod is not None else 0o644, uid, gid)
        elif is_url(src):
            name = posixpath.basename(urllib.parse.urlparse(src).path) or "index.html"
            t = target_for(name)
            path = req.downloads[src]
            lb.ensure_parents(t, exists, uid, gid)
            lb.add_host(t, path, os.stat(path), uid, gid, req.chmod if req.chmod is not None else 0o600)
        elif req.from_image:
            _copy_from_image(req, lb, src, dest, dest_is_dir, target_for, exists, ids)
    for source in req.context_sources:
        if req.add and not source.is_dir and _add_archive(lb, source.path, dest, exists, uid, gid):
            continue
        _copy_tree(lb, ctx.walk(source), source.is_dir, dest, target_for(posixpath.basename(source.rel)),
                   exists, uid, gid, req.chmod)
    return lb


def _real(rootfs: Path, path: str) -> str:
    """`path` with the image's symlinks in its parents resolved (so the layer writes where the image points)."""
    parent, name = posixpath.split(posixpath.normpath(path))
    if not name:
        return "/"
    real_parent = "/" + str(rfs.resolve_in(rootfs, parent).relative_to(rootfs)).lstrip(".")
    return posixpath.join(real_parent, name)


def _copy_tree(lb: LayerBuilder, walk: Any, is_dir: bool, dest: str, file_target: str, exists: Any,
               uid: int, gid: int, chmod: int | None, keep_owner: bool = False) -> None:
    for below, path, st in walk:
        u, g = (st.st_uid, st.st_gid) if keep_owner else (uid, gid)
        t = (posixpath.join(dest, below) if below else dest) if is_dir else file_target
        if not below:
            lb.ensure_parents(t, exists, u, g)
            if is_dir and (have := exists(dest)) is not None:
                lb.add_existing(t, have)  # an existing destination dir keeps its own metadata
                continue
        lb.add_host(t, path, st, u, g, chmod)


def _copy_from_image(req: CopyRequest, lb: LayerBuilder, src: str, dest: str, dest_is_dir: bool,
                     target_for: Any, exists: Any, ids: tuple[int, int] | None) -> None:
    assert req.from_rootfs is not None
    root = req.from_rootfs
    norm = posixpath.normpath("/" + src)
    if any(c in norm for c in "*?["):
        matches = sorted(str(p.relative_to(root)) for p in root.glob(norm.lstrip("/")))
        if not matches:
            raise NotFound(f"{src}: no source files were specified (nothing matches in the --from image)",
                           where=req.where)
        if len(matches) > 1 and not dest_is_dir:
            raise InvalidArgument("When using COPY with more than one source file, the destination must be a "
                                  "directory and end with a /", where=req.where)
    else:
        matches = [norm.lstrip("/")]
    for rel in matches:
        host = rfs.resolve_in(root, rel)
        if not os.path.lexists(host):
            raise NotFound(f"{src}: not found in the --from image", where=req.where)
        is_dir = host.is_dir()
        walk = _walk_host(host)
        uid, gid = ids or (0, 0)
        _copy_tree(lb, walk, is_dir, dest, target_for(posixpath.basename(rel)), exists, uid, gid, req.chmod,
                   keep_owner=ids is None)


def _walk_host(top: Path) -> Any:
    yield "", top, os.lstat(top)
    if not top.is_dir():
        return
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        base = Path(dirpath)
        for name in sorted(dirnames + filenames):
            p = base / name
            yield str(p.relative_to(top)), p, os.lstat(p)


def _add_archive(lb: LayerBuilder, path: Path, dest: str, exists: Any, uid: int, gid: int) -> bool:
    """Extract a local tar (optionally compressed) into dest; False when it is not an archive."""
    try:
        if not tarfile.is_tarfile(path):
            return False
        tf = tarfile.open(path, "r:*")
    except (tarfile.TarError, OSError, EOFError):
        return False
    lb.ensure_parents(posixpath.join(dest, "x"), exists, uid, gid)
    for member in tf.getmembers():
        lb.add_archive_member(dest, tf, member)
        # directories the archive only implies get an entry: the layer alone makes the tree
        rel = posixpath.normpath("/" + member.name).lstrip("/")
        lb.ensure_parents(posixpath.join(dest, rel), exists)
    return True
