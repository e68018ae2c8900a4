"""Byte streams for layers: decompression (none/gzip/zstd, detected or named) and hashing, one pass.

    raw blob -> Decompressor -> HashingReader (diff_id, size) -> tar reader
    tar writer -> CompressingWriter (diff_id on the way in; gzip out) -> BlobWriter
"""

from __future__ import annotations

import hashlib
import zlib
from typing import BinaryIO, Protocol

from runtime.errors import InvalidArgument

CHUNK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Readable(Protocol):
    def read(self, n: int = -1) -> bytes: ...


class Writable(Protocol):
    def write(self, data: bytes) -> int: ...


def detect(head: bytes) -> str:
    """Compression of a stream from its first bytes: "gzip", "zstd" or "" (none)."""
    if head.startswith(GZIP_MAGIC):
        return "gzip"
    if head.startswith(ZSTD_MAGIC):
        return "zstd"
    return ""


class PeekReader:
    """A reader whose first bytes can be looked at without consuming them (to sniff compression)."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._head = b""

    def peek(self, n: int = 8) -> bytes:
        while len(self._head) < n:
            more = self._raw.read(n - len(self._head))
            if not more:
                break
            self._head += more
        return self._head[:n]

    def read(self, n: int = -1) -> bytes:
        if self._head:
            head, self._head = self._head, b""
            if n < 0:
                return head + self._raw.read()
            if len(head) >= n:
                self._head = head[n:]
                return head[:n]
            return head + self._raw.read(n - len(head))
        return self._raw.read(n)


class _Gunzip:
    """Streaming gunzip of possibly multi-member gzip data (zero padding allowed), bounded output per read."""

    def __init__(self, raw: Readable) -> None:
        self._raw = raw
        self._d = zlib.decompressobj(31)
        self._fed = False  # has the current member seen any input?
        self._pending = b""  # input after the end of a member

    def read(self, n: int = -1) -> bytes:
        n = CHUNK if n is None or n < 0 else n
        while True:
            if self._d.unconsumed_tail:
                buf = self._d.unconsumed_tail
            elif self._pending:
                buf, self._pending = self._pending, b""
            else:
                buf = self._raw.read(CHUNK)
                if not buf:
                    if self._fed:
                        raise EOFError("gzip stream is truncated")
                    return b""
            if not self._fed:
                buf = buf.lstrip(b"\0")  # padding between/after members
                if not buf:
                    continue
            self._fed = True
            out = self._d.decompress(buf, n)
            if self._d.eof:
                self._pending = self._d.unused_data
                self._d = zlib.decompressobj(31)
                self._fed = False
            if out:
                return out


def decompressor(raw: Readable, compression: str) -> Readable:
    if compression == "":
        return raw
    if compression == "gzip":
        return _Gunzip(raw)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True, read_size=CHUNK)
    raise InvalidArgument(f"unsupported compression {compression!r}")


class HashingReader:
    """Passes bytes through, hashing (sha256) and counting them."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        self.hash.update(data)
        self.size += len(data)
        return data

    def drain(self) -> None:
        while self.read(CHUNK):
            pass

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class CompressingWriter:
    """Tar bytes in; hashes them (diff_id) and writes them gzip-compressed (or as is) to `out`."""

    def __init__(self, out: Writable, compression: str = "gzip", level: int = 1) -> None:
        if compression not in ("", "gzip"):
            raise InvalidArgument(f"cannot write {compression!r} layers (use gzip or none)")
        self._out = out
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31) if compression == "gzip" else None
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        if self._z is None:
            self._out.write(data)
        else:
            out = self._z.compress(data)
            if out:
                self._out.write(out)
        return len(data)

    def close(self) -> None:
        if self._z is not None:
            self._out.write(self._z.flush())
            self._z = None

    @property
    def diff_id(self) -> str:
        return "sha256:" + self.hash.hexdigest()


def open_layer(f: BinaryIO, compression: str | None = None) -> HashingReader:
    """A hashing reader of the uncompressed tar in `f` (compression sniffed when None)."""
    src: Readable = f
    if compression is None:
        peek = PeekReader(f)
        compression = detect(peek.peek(4))
        src = peek
    return HashingReader(decompressor(src, compression))


class FullReader:
    """read(n) returns exactly n bytes unless the stream ends (tarfile.addfile needs that)."""

    def __init__(self, inner: Readable) -> None:
        self._inner = inner

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            parts = []
            while chunk := self._inner.read(CHUNK):
                parts.append(chunk)
            return b"".join(parts)
        buf = bytearray()
        while len(buf) < n:
            chunk = self._inner.read(n - len(buf))
            if not chunk:
                break
            buf += chunk
        return bytes(buf)


class TeeReader:
    """Passes bytes through while copying them to `sink` (e.g. a BlobWriter)."""

    def __init__(self, inner: Readable, sink: Writable) -> None:
        self._inner = inner
        self._sink = sink

    def read(self, n: int = -1) -> bytes:
        data = self._inner.read(n)
        if data:
            self._sink.write(data)
        return data
