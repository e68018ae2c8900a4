"""Tar bodies both ways: a writer function -> chunks of a response, and a request body ->
a checked temp file (no absolute paths, no `..`, nothing through a link of the same archive)."""

from __future__ import annotations

import os
import tarfile
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import BinaryIO

from runtime.errors import InvalidArgument

MAX_UPLOAD = 8 * 1024 * 1024 * 1024


def produce(write: Callable[[BinaryIO], None], chunk: int = 65536) -> Iterator[bytes]:
    """Run write(file) in a thread over a pipe; yield what it writes. Errors re-raise here."""
    r, w = os.pipe2(os.O_CLOEXEC)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with os.fdopen(w, "wb") as out:
                write(out)
        except BrokenPipeError:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the reading side
            errors.append(e)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        with os.fdopen(r, "rb") as f:
            while data := f.read1(chunk):
                yield data
    finally:
        t.join(30)
    if errors:
        raise errors[0]


def check_members(tar: tarfile.TarFile) -> None:
    links: list[str] = []
    for m in tar:
        name = os.path.normpath(m.name.lstrip("/")) if m.name not in ("", ".") else "."
        if name.startswith("..") or os.path.isabs(m.name) and ".." in m.name.split("/"):
            raise InvalidArgument(f"archive member {m.name!r} escapes the destination (path traversal)")
        parts = name.split("/")
        if ".." in parts:
            raise InvalidArgument(f"archive member {m.name!r} escapes the destination (path traversal)")
        for link in links:
            if name.startswith(link + "/"):
                raise InvalidArgument(f"archive member {m.name!r} is written through the link {link!r}")
        if m.islnk():
            target = os.path.normpath(m.linkname.lstrip("/"))
            if target.startswith("..") or ".." in target.split("/"):
                raise InvalidArgument(f"hard link {m.name!r} points outside the destination ({m.linkname})")
        if m.issym():
            links.append(name)
        if m.isdev() and not m.isfifo():
            raise InvalidArgument(f"archive member {m.name!r} is a device node")


@contextmanager
def spool_tar(body) -> Iterator[BinaryIO]:
    """The request body in a temp file, checked member by member before anything is extracted."""
    with tempfile.TemporaryFile(prefix="wharf-upload-") as tmp:
        total = 0
        while data := body.read(1 << 20):
            total += len(data)
            if total > MAX_UPLOAD:
                raise InvalidArgument(f"archive larger than {MAX_UPLOAD} bytes")
            tmp.write(data)
        tmp.seek(0)
        try:
            with tarfile.open(fileobj=tmp, mode="r:*") as tar:
                check_members(tar)
        except tarfile.TarError as e:
            raise InvalidArgument(f"the request body is not a tar archive: {e}") from None
        tmp.seek(0)
        yield tmp
