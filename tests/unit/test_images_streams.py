import gzip
import io
import os

import pytest
import zstandard

from runtime.images.streams import (
    CompressingWriter,
    FullReader,
    HashingReader,
    PeekReader,
    detect,
    open_layer,
)


def _read_all(r) -> bytes:
    out = b""
    while chunk := r.read(7919):
        out += chunk
    return out


def test_gunzip_multi_member_and_padding():
    a, b = os.urandom(300_000), b"text " * 100_000
    blob = gzip.compress(a, mtime=0) + gzip.compress(b, mtime=0) + b"\0" * 1024
    r = open_layer(io.BytesIO(blob))
    assert _read_all(r) == a + b and r.size == len(a + b)


def test_truncated_gzip_raises():
    blob = gzip.compress(os.urandom(100_000), mtime=0)
    with pytest.raises(EOFError):
        _read_all(open_layer(io.BytesIO(blob[:-100])))


def test_zstd_multi_frame_and_plain():
    c = zstandard.ZstdCompressor()
    data = b"x" * 50_000 + os.urandom(50_000)
    assert _read_all(open_layer(io.BytesIO(c.compress(data[:10]) + c.compress(data[10:])))) == data
    assert _read_all(open_layer(io.BytesIO(data), "")) == data
    assert detect(c.compress(b"a")) == "zstd" and detect(gzip.compress(b"a")) == "gzip" and detect(b"ab") == ""


def test_peek_full_and_hashing_readers():
    p = PeekReader(io.BytesIO(b"abcdef"))
    assert p.peek(2) == b"ab" and p.read(1) == b"a" and p.read(10) == b"bcdef"
    h = HashingReader(FullReader(io.BytesIO(b"hello")))
    assert h.read(3) == b"hel"
    h.drain()
    assert h.digest == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"


def test_compressing_writer_hashes_uncompressed():
    out = io.BytesIO()
    w = CompressingWriter(out)
    w.write(b"hello")
    w.close()
    assert gzip.decompress(out.getvalue()) == b"hello"
    assert w.diff_id == "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
