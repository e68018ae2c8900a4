"""The Feed that streams a layer from its download thread into its unpacking thread."""

from __future__ import annotations

import threading

import pytest

from runtime.registry.unpack import Feed


def feed_of(chunks: list[bytes], ok: bool = True) -> Feed:
    feed = Feed(depth=2)

    def produce() -> None:
        for c in chunks:
            feed.put(c)
        feed._aborted = not ok
        feed.put(None)

    threading.Thread(target=produce, daemon=True).start()
    return feed


def test_exact_reads_across_chunks():
    data = [b"abc", b"defgh", b"", b"ijklmnop"]
    feed = feed_of(data)
    assert feed.read(2) == b"ab"
    assert feed.read(4) == b"cdef"
    assert feed.read(100) == b"ghijklmnop"
    assert feed.read(10) == b"" and feed.read() == b""


def test_whole_chunks_are_passed_through():
    chunk = b"x" * 1000
    feed = feed_of([chunk, chunk])
    assert feed.read(1000) is chunk  # no copy when a read takes a whole chunk
    assert feed.read(4096) == chunk
    assert feed_of([b"a", b"b"]).read() == b"ab"


def test_broken_download_raises_for_the_reader():
    feed = feed_of([b"partial"], ok=False)
    assert feed.read(7) == b"partial"
    with pytest.raises(EOFError):
        feed.read(1)


def test_a_reader_that_gives_up_does_not_block_the_writer():
    feed = Feed(depth=1)
    feed.reader_gone.set()
    for _ in range(10):  # would block on a full queue if the reader were still expected
        feed.put(b"data")
    feed.finish(ok=True)
