"""The build context as the docker CLI sends it to `POST /build`: a tar of the context directory
without what `.dockerignore` excludes (the Dockerfile and .dockerignore always go), and a
Dockerfile from outside the context (or from stdin) added under a private name."""

from __future__ import annotations

import io
import os
import secrets
import tarfile
import tempfile
from typing import BinaryIO

from runtime.errors import InvalidArgument, NotFound

SPOOL = 32 << 20  # contexts up to this size stay in memory


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tar.addfile(info, io.BytesIO(data))


def context_tar(context: str, dockerfile: str | None = None,
                dockerfile_text: str | None = None) -> tuple[BinaryIO, str]:
    """(a rewound tar file of the context, the Dockerfile's name inside it).

    `dockerfile` is relative to the current directory (as docker's -f) or None for
    CONTEXT/Dockerfile; `dockerfile_text` is a Dockerfile read from stdin."""
    from runtime.build.dockerignore import Matcher, parse_patterns

    root = os.path.realpath(context)
    if not os.path.isdir(root):
        raise NotFound(f"build context {context!r} is not a directory",
                       hint="give a directory, or - to read a tar (or a Dockerfile) from stdin")
    ignore_text = ""
    try:
        with open(os.path.join(root, ".dockerignore")) as f:
            ignore_text = f.read()
        matcher = Matcher(parse_patterns(ignore_text))
    except (FileNotFoundError, IsADirectoryError):
        matcher = Matcher([])
    except ValueError as e:
        raise InvalidArgument(str(e), where=os.path.join(root, ".dockerignore")) from None
    name = "Dockerfile"
    extra: bytes | None = None
    if dockerfile_text is not None:
        name, extra = f".dockerfile.{secrets.token_hex(10)}", dockerfile_text.encode()
    elif dockerfile:
        path = os.path.realpath(dockerfile)
        if not os.path.isfile(path):
            raise NotFound(f"cannot read the Dockerfile {dockerfile!r}", hint="check the -f path")
        rel = os.path.relpath(path, root)
        if rel.startswith(".." + os.sep) or rel == "..":
            with open(path, "rb") as f:
                name, extra = f".dockerfile.{secrets.token_hex(10)}", f.read()
        else:
            name = rel.replace(os.sep, "/")
    elif not os.path.isfile(os.path.join(root, "Dockerfile")):
        raise NotFound(f"cannot find {os.path.join(context, 'Dockerfile')}", hint="add one or point -f at it")
    keep = {name, ".dockerignore"}
    out = tempfile.SpooledTemporaryFile(SPOOL)  # noqa: SIM115 - handed to the caller
    try:
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for dirpath, dirs, files in os.walk(root):
                dirs.sort()
                rel_dir = os.path.relpath(dirpath, root).replace(os.sep, "/")
                rel_dir = "" if rel_dir == "." else rel_dir
                if rel_dir and not matcher.matches(rel_dir):
                    tar.add(dirpath, arcname=rel_dir, recursive=False)
                elif rel_dir and not matcher.has_exclusions:
                    dirs[:] = []  # an excluded directory with no `!` patterns: nothing below it goes
                    continue
                for fn in sorted(files) + [d for d in dirs if os.path.islink(os.path.join(dirpath, d))]:
                    rel = f"{rel_dir}/{fn}" if rel_dir else fn
                    if extra is not None and rel == ".dockerignore":
                        continue  # rewritten below
                    if rel in keep or not matcher.matches(rel):
                        tar.add(os.path.join(dirpath, fn), arcname=rel, recursive=False)
            if extra is not None:  # as the docker CLI: the added Dockerfile is ignored for COPY . too
                _add_bytes(tar, name, extra)
                _add_bytes(tar, ".dockerignore", (ignore_text.rstrip("\n") + f"\n{name}\n").lstrip("\n").encode())
    except OSError as e:
        out.close()
        raise InvalidArgument(f"cannot read the build context: {e}") from None
    out.seek(0)
    return out, name


def stdin_context(data: bytes, dockerfile: str | None) -> tuple[BinaryIO, str]:
    """`build -`: a tar context as it came, or a lone Dockerfile wrapped into one."""
    if data[257:262] == b"ustar" or data[:2] == b"\x1f\x8b" or data[:3] == b"BZh" or data[:6] == b"\xfd7zXZ\x00":
        return io.BytesIO(data), dockerfile or "Dockerfile"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add_bytes(tar, "Dockerfile", data)
    buf.seek(0)
    return buf, "Dockerfile"
