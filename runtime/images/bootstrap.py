"""Offline base images: busybox from Debian's busybox-static, Debian from debootstrap.

Both are deterministic for the same input: entries sorted, numeric owners, fixed mtimes
(the busybox binary's own mtime, i.e. its Debian package's), gzip without a timestamp.
Same content -> same layer digest -> same image id.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from runtime.errors import NotFound, RuntimeFailure

if TYPE_CHECKING:
    from runtime.images.store import Image, ImageStore

BUSYBOX = "/bin/busybox"
PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PASSWD = ("root:x:0:0:root:/root:/bin/sh\n"
          "daemon:x:1:1:daemon:/usr/sbin:/bin/false\n"  # as in Docker Hub's busybox (Dockerfiles say USER daemon)
          "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
GROUP = "root:x:0:\ndaemon:x:1:\nnogroup:x:65534:\n"


def _rfc3339(ts: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _entry(name: str, kind: bytes, mode: int, mtime: int, linkname: str = "", size: int = 0) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode, ti.mtime, ti.linkname, ti.size = kind, mode, mtime, linkname, size
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def busybox_layer(binary: str = BUSYBOX) -> tuple[list[tarfile.TarInfo], dict[str, bytes | str]]:
    """The tar entries of the busybox rootfs (sorted) and the contents of its regular files."""
    if not os.path.exists(binary):
        raise NotFound(f"{binary} not found", hint="install Debian's busybox-static (apt-get install busybox-static)")
    mtime = int(os.stat(binary).st_mtime)
    applets = subprocess.run([binary, "--list"], capture_output=True, text=True, check=True).stdout.split()
    entries = {
        "bin": _entry("bin", tarfile.DIRTYPE, 0o755, mtime),
        "bin/busybox": _entry("bin/busybox", tarfile.REGTYPE, 0o755, mtime, size=os.stat(binary).st_size),
        "etc": _entry("etc", tarfile.DIRTYPE, 0o755, mtime),
        "etc/group": _entry("etc/group", tarfile.REGTYPE, 0o644, mtime, size=len(GROUP)),
        "etc/passwd": _entry("etc/passwd", tarfile.REGTYPE, 0o644, mtime, size=len(PASSWD)),
    }
    for d, mode in (("dev", 0o755), ("proc", 0o555), ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777),
                    ("var", 0o755), ("var/www", 0o755)):
        entries[d] = _entry(d, tarfile.DIRTYPE, mode, mtime)
    for a in applets:
        if a != "busybox" and "/" not in a:
            entries[f"bin/{a}"] = _entry(f"bin/{a}", tarfile.SYMTYPE, 0o777, mtime, linkname="busybox")
    files: dict[str, bytes | str] = {"bin/busybox": binary, "etc/passwd": PASSWD.encode(), "etc/group": GROUP.encode()}
    return [entries[k] for k in sorted(entries)], files


def _write_layer(store: ImageStore, entries: list[tarfile.TarInfo], files: dict[str, bytes | str]
                 ) -> tuple[str, str]:
    from runtime.images.streams import CHUNK, CompressingWriter

    with store.content.writer() as w:
        cw = CompressingWriter(w, "gzip", level=9)
        with tarfile.open(mode="w|", fileobj=cw, format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tf:  # type: ignore[arg-type]
            for ti in entries:
                src = files.get(ti.name)
                if isinstance(src, str):
                    with open(src, "rb") as f:
                        tf.addfile(ti, f)
                elif src is not None:
                    tf.addfile(ti, io.BytesIO(src))
                else:
                    tf.addfile(ti)
        cw.close()
        return w.commit(), cw.diff_id


def bootstrap_busybox(store: ImageStore, ref: str = "busybox:latest", binary: str = BUSYBOX) -> Image:
    """busybox:latest from the host's static busybox: same binary -> same image id."""
    entries, files = busybox_layer(binary)
    mtime = int(os.stat(binary).st_mtime)
    version = subprocess.run([binary], capture_output=True, text=True).stdout.splitlines()[:1]
    digest, diff_id = _write_layer(store, entries, files)
    created = _rfc3339(mtime)
    config = {
        "architecture": _arch(), "os": "linux", "created": created,
        "config": {"Env": [PATH_ENV], "Cmd": ["sh"]},
        "history": [{"created": created,
                     "created_by": f"wharf image bootstrap busybox ({(version or ['busybox'])[0].strip()})"}],
    }
    return store.add_image(config, [(digest, diff_id)], ref)


def _arch() -> str:
    from runtime.images.oci import host_platform

    return host_platform()[1]


def apt_mirror(sources: tuple[str, ...] = ("/etc/apt/sources.list", "/etc/apt/sources.list.d")) -> str:
    """The first Debian mirror URL configured for apt (one-line or deb822 format)."""
    files: list[Path] = []
    for s in sources:
        p = Path(s)
        if p.is_dir():
            files += sorted(p.glob("*.list")) + sorted(p.glob("*.sources"))
        elif p.exists():
            files.append(p)
    for f in files:
        for line in f.read_text(errors="replace").splitlines():
            words = line.split()
            if len(words) >= 3 and words[0] == "deb" and "/debian" in line and "security" not in line:
                url = next((w for w in words[1:] if "://" in w), None)
                if url:
                    return url
            if line.startswith("URIs:"):
                for url in line.split()[1:]:
                    if url.rstrip("/").endswith("/debian"):
                        return url
    raise NotFound("no Debian mirror configured in /etc/apt/sources.list*",
                   hint="configure apt first, or pass --mirror")


def bootstrap_debian(store: ImageStore, ref: str = "debian:bookworm", suite: str = "bookworm",
                     mirror: str | None = None, log=None) -> Image:
    """A minbase Debian image from debootstrap (single layer; deterministic tar of the tree)."""
    from runtime.images.pack import write_tree
    from runtime.images.store import now_rfc3339
    from runtime.images.streams import CompressingWriter

    if shutil.which("debootstrap") is None:
        raise NotFound("debootstrap is not installed", hint="apt-get install debootstrap")
    mirror = mirror or apt_mirror()
    store.root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".debootstrap-", dir=store.root))
    try:
        target = tmp / "rootfs"
        proc = subprocess.run(["debootstrap", "--variant=minbase", suite, str(target), mirror],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if proc.returncode != 0:
            tail = "\n".join(proc.stdout.strip().splitlines()[-5:])
            raise RuntimeFailure(f"debootstrap {suite} from {mirror} failed (exit {proc.returncode}):\n{tail}")
        for p in ("var/cache/apt/archives", "var/lib/apt/lists"):
            d = target / p
            for e in d.glob("*") if d.is_dir() else []:
                if e.is_file():
                    e.unlink()
        debootstrap_log = target / "debootstrap"
        shutil.rmtree(debootstrap_log, ignore_errors=True)
        with store.content.writer() as w:
            cw = CompressingWriter(w, "gzip")
            write_tree(target, cw)  # type: ignore[arg-type]
            cw.close()
            digest = w.commit()
        created = now_rfc3339()
        config = {"architecture": _arch(), "os": "linux", "created": created,
                  "config": {"Env": [PATH_ENV], "Cmd": ["bash"]},
                  "history": [{"created": created,
                               "created_by": f"wharf image bootstrap debian (debootstrap --variant=minbase "
                                             f"{suite} {mirror})"}]}
        return store.add_image(config, [(digest, cw.diff_id)], ref)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
