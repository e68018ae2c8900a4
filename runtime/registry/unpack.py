"""Layer snapshots made while a pull is still running.

Layers are independent tar diffs, so each one is unpacked as its bytes arrive: the download
feeds a `Feed` that a thread unpacks from (decompressing, hashing against the diff_id, writing
the snapshot), in parallel with the other layers. If that stream breaks (a retried download),
the layer is unpacked again from the verified blob once it is in the content store.
`ImageStore.register` then finds every snapshot made; on failure `rollback()` removes them.
"""

from __future__ import annotations

import json
import queue
import threading

from runtime.registry import digests, manifests
from runtime.registry.progress import emit


class Feed:
    """A readable stream of chunks put by another thread (bounded: the writer waits for the reader)."""

    def __init__(self, depth: int = 16) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(depth)
        self._chunk = b""
        self._pos = 0
        self._eof = False
        self._aborted = False
        self.reader_gone = threading.Event()
        self.thread: threading.Thread | None = None

    # the download's side
    def put(self, data: bytes | None) -> None:
        while not self.reader_gone.is_set():
            try:
                self._q.put(data, timeout=0.2)
                return
            except queue.Full:
                continue

    def finish(self, ok: bool) -> None:
        """End of the data (ok=False: the download broke) and wait for the reader."""
        self._aborted = not ok
        self.put(None)
        if self.thread is not None:
            self.thread.join()

    # the unpacker's side
    def read(self, n: int = -1) -> bytes:
        """Up to n bytes (all, when n < 0); fewer only at the end of the data."""
        parts: list[bytes] = []
        want = n
        while want != 0:
            if self._pos >= len(self._chunk):
                if self._eof:
                    break
                item = self._q.get()
                if item is None:
                    self._eof = True
                    if self._aborted:
                        raise EOFError("the download of this layer was interrupted")
                    break
                self._chunk, self._pos = item, 0
            avail = len(self._chunk) - self._pos
            take = avail if want < 0 else min(want, avail)
            whole = self._pos == 0 and take == len(self._chunk)
            parts.append(self._chunk if whole else self._chunk[self._pos:self._pos + take])
            self._pos += take
            if want > 0:
                want -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)


class Unpacker:
    """The snapshot jobs of one pulled image, by layer blob digest."""

    def __init__(self, store, manifest: manifests.Manifest, config: bytes, what: str) -> None:
        from runtime.images import oci

        self.snapshots = getattr(store, "snapshots", None)
        self.store = store
        self.jobs: dict[str, list[tuple]] = {}
        self.created: list[str] = []
        self._lock = threading.Lock()
        try:
            diff_ids = json.loads(config)["rootfs"]["diff_ids"]
        except (ValueError, KeyError, TypeError):
            return  # register() names what is wrong with the config
        layers = manifest.blobs[1:]
        if self.snapshots is None or not isinstance(diff_ids, list) or len(diff_ids) != len(layers):
            return
        chain = oci.chain_ids(diff_ids)
        for i, (layer, diff_id) in enumerate(zip(layers, diff_ids, strict=True)):
            compression = oci.LAYER_TYPES.get(layer.get("mediaType"))
            if compression is None or self.snapshots.has(chain[i]):
                continue
            job = (chain[i], chain[i - 1] if i else None, diff_id, compression, f"{what} layer {i} ({layer['digest']})")
            self.jobs.setdefault(layer["digest"], []).append(job)

    def _take(self, digest: str) -> tuple | None:
        with self._lock:
            jobs = self.jobs.get(digest)
            return jobs.pop(0) if jobs else None

    def _create(self, job: tuple, blob) -> None:
        chain_id, parent, diff_id, compression, what = job
        self.snapshots.create(chain_id, parent, diff_id, blob, compression, what)
        with self._lock:
            self.created.append(chain_id)

    def stream(self, desc: dict) -> Feed | None:
        """A Feed to put the layer's (compressed) bytes into while they download, or None."""
        job = self._take(desc["digest"])
        if job is None:
            return None
        feed = Feed()

        def run() -> None:
            try:
                self._create(job, feed)
            except BaseException:  # unpack it again from the blob, once that is verified
                with self._lock:
                    self.jobs.setdefault(desc["digest"], []).insert(0, job)
            finally:
                feed.reader_gone.set()

        feed.thread = threading.Thread(target=run, name="unpack", daemon=True)
        feed.thread.start()
        return feed

    def __call__(self, desc: dict, progress) -> None:
        """After the blob is in the content store: unpack what streaming did not."""
        while (job := self._take(desc["digest"])) is not None:
            emit(progress, status="Extracting", id=digests.short(desc["digest"]))
            with self.store.content.open(desc["digest"]) as blob:
                self._create(job, blob)
        if not desc.get("present"):
            emit(progress, status="Pull complete", id=digests.short(desc["digest"]))

    def rollback(self) -> None:
        for chain_id in self.created:
            self.snapshots.remove(chain_id)
