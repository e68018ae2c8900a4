"""JSON and state files for the shim using only C modules (_json, fcntl): it is paid per container.

`import json` pulls in re and friends (~1 MB per process); the shim reads and writes a few
small files, which the C scanner/encoder that json itself uses do just as well.
"""

from __future__ import annotations

import _json
import fcntl
import os

from runtime.oci.fastjson import loads  # the one C-scanner JSON reader

_encode = _json.make_encoder(None, None, _json.encode_basestring_ascii, None, ": ", ", ", True, False, True)
encode_string = _json.encode_basestring  # str -> JSON string literal (non-ASCII kept)


def dumps(obj: object) -> str:
    return "".join(_encode(obj, 0))


def read_json(path: str, default: object = None) -> object:
    try:
        with open(path, "rb") as f:
            return loads(f.read())
    except FileNotFoundError:
        return default


def atomic_write_json(path: str, obj: object) -> None:
    """Same protocol as runtime.util.fs.atomic_write: temp file, fsync, rename."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, dumps(obj).encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def write_regenerated(path: str, data: bytes | str) -> None:
    """Temp file + rename, without fsync: for files every start writes anew (bundle config,
    shim config, /etc/hosts & co.), where a crash only means the next start rewrites them."""
    tmp = os.path.join(os.path.dirname(path), f".{os.path.basename(path)}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


class Locked:
    """flock on a lock file for a `with` block (the same lock runtime.util.fs.file_lock takes)."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)


def append_line(path: str, obj: object) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, (dumps(obj) + "\n").encode())
    finally:
        os.close(fd)
