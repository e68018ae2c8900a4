"""The content store: blobs addressed by sha256 at <root>/blobs/sha256/<hex>.

Every write is verified (a `BlobWriter` commits only when the bytes hash to the
expected digest and size) and atomic (temp file in <root>/ingest, fsync, rename):
a blob either exists complete and correct, or not at all.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from runtime.errors import InvalidArgument, NotFound

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_digest(digest: str, what: str = "digest") -> str:
    """`digest` if it is a well-formed sha256 digest, else InvalidArgument naming it."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        if isinstance(digest, str) and ":" in digest and not digest.startswith("sha256:"):
            raise InvalidArgument(f"{what} {digest!r}: unsupported digest algorithm",
                                  hint="only sha256 digests are supported")
        raise InvalidArgument(f"{what} {digest!r} is not a valid digest", hint="expected sha256:<64 hex digits>")
    return digest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobWriter:
    """Streams one blob into the store; `commit()` verifies and publishes it atomically."""

    def __init__(self, store: ContentStore, expected: str | None = None, size: int | None = None) -> None:
        self._store = store
        self.expected = check_digest(expected, "expected digest") if expected else None
        self.expected_size = size
        self._hash = hashlib.sha256()
        self.written = 0
        self.digest: str | None = None
        store.ingest_dir.mkdir(parents=True, exist_ok=True)
        self._tmp = store.ingest_dir / f"{os.getpid()}-{secrets.token_hex(8)}"
        self._fd: int | None = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)

    def write(self, data: bytes | memoryview) -> int:
        if self._fd is None:
            raise InvalidArgument("blob writer is already closed")
        view = memoryview(data)
        n = len(view)
        self._hash.update(view)
        while view:
            view = view[os.write(self._fd, view):]
        self.written += n
        return n

    @property
    def current_digest(self) -> str:
        """The digest of what was written so far."""
        return "sha256:" + self._hash.hexdigest()

    def commit(self) -> str:
        """Verify against expected digest/size and publish; InvalidArgument (and nothing stored) on mismatch."""
        if self._fd is None:
            if self.digest:
                return self.digest
            raise InvalidArgument("blob writer was aborted")
        digest = "sha256:" + self._hash.hexdigest()
        if self.expected_size is not None and self.written != self.expected_size:
            self.abort()
            raise InvalidArgument(f"blob {self.expected or digest}: size mismatch: expected "
                                  f"{self.expected_size} bytes, got {self.written}",
                                  hint="the data is truncated or corrupt; fetch it again")
        if self.expected and digest != self.expected:
            self.abort()
            raise InvalidArgument(f"blob {self.expected}: digest mismatch: content hashes to {digest}",
                                  hint="the data is corrupt or was altered; fetch it again")
        fd, self._fd = self._fd, None
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        final = self._store._blob_path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._tmp, final)  # same content either way: replacing an existing blob is harmless
        self.digest = digest
        return digest

    def abort(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        try:
            os.unlink(self._tmp)
        except FileNotFoundError:
            pass

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            self.abort()


class ContentStore:
    """sha256-addressed blobs under `root` (blobs/sha256/<hex>; in-flight writes under ingest/)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"

    def _blob_path(self, digest: str) -> Path:
        return self.blobs_dir / check_digest(digest)[7:]

    def has(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def path(self, digest: str) -> Path:
        p = self._blob_path(digest)
        if not p.is_file():
            raise NotFound(f"blob {digest} not found in the content store",
                           hint="pull or load the image again")
        return p

    def open(self, digest: str) -> BinaryIO:
        return open(self.path(digest), "rb")

    def read(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def writer(self, expected: str | None = None, size: int | None = None) -> BlobWriter:
        return BlobWriter(self, expected, size)

    def put(self, data: bytes, expected: str | None = None) -> str:
        """Store `data` (verified against `expected`); a blob already stored is not written again."""
        digest = sha256_digest(data)
        if (expected is None or expected == digest) and self.has(digest):
            return digest
        with self.writer(expected, None) as w:
            w.write(data)
            return w.commit()

    def size(self, digest: str) -> int:
        return self.path(digest).stat().st_size

    def delete(self, digest: str) -> None:
        try:
            os.unlink(self._blob_path(digest))
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found in the content store") from None

    def walk(self) -> Iterator[str]:
        """Every stored digest."""
        try:
            names = os.listdir(self.blobs_dir)
        except FileNotFoundError:
            return
        for name in names:
            if len(name) == 64:
                yield "sha256:" + name

    def sweep_ingest(self, older_than: float = 3600.0) -> None:
        """Remove writes abandoned by crashed processes."""
        now = time.time()
        try:
            entries = list(os.scandir(self.ingest_dir))
        except FileNotFoundError:
            return
        for e in entries:
            try:
                if now - e.stat(follow_symlinks=False).st_mtime > older_than:
                    os.unlink(e.path)
            except FileNotFoundError:
                pass
