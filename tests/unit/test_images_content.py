import hashlib
import os

import pytest

from runtime.errors import InvalidArgument, NotFound
from runtime.images.content import ContentStore


def _d(b: bytes) -> str:
    return "sha256:" + hashlib.sha256(b).hexdigest()


def test_put_open_size_delete(tmp_path):
    cs = ContentStore(tmp_path)
    d = cs.put(b"hello")
    assert d == _d(b"hello") and cs.has(d) and cs.size(d) == 5
    with cs.open(d) as f:
        assert f.read() == b"hello"
    assert cs.path(d).parent == tmp_path / "blobs" / "sha256"
    assert list(cs.walk()) == [d]
    cs.delete(d)
    assert not cs.has(d)
    with pytest.raises(NotFound, match=d):
        cs.open(d)


def test_writer_verifies_digest_and_size(tmp_path):
    cs = ContentStore(tmp_path)
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        cs.put(b"abc", expected=_d(b"xyz"))
    w = cs.writer(expected=_d(b"abc"), size=4)
    w.write(b"abc")
    with pytest.raises(InvalidArgument, match="size mismatch"):
        w.commit()
    assert list(cs.walk()) == [] and os.listdir(cs.ingest_dir) == []
    with cs.writer(expected=_d(b"abc"), size=3) as w:
        w.write(b"ab")
        w.write(b"c")
        assert w.commit() == _d(b"abc")


def test_writer_aborts_on_exception(tmp_path):
    cs = ContentStore(tmp_path)
    with pytest.raises(RuntimeError):
        with cs.writer() as w:
            w.write(b"partial")
            raise RuntimeError("boom")
    assert list(cs.walk()) == [] and os.listdir(cs.ingest_dir) == []


@pytest.mark.parametrize("bad", ["sha256:abc", "md5:" + "a" * 32, "nothex", "sha256:" + "G" * 64])
def test_bad_digests(tmp_path, bad):
    with pytest.raises(InvalidArgument):
        ContentStore(tmp_path).has(bad)
