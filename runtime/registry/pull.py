"""`pull`: manifest (index -> platform manifest), then config and layers downloaded in parallel,
hashed while they stream into the content store, then `ImageStore.register` unpacks and tags.

A failed pull records no image and leaves no partial blob (ingest files are aborted); blobs that
finished and verified stay in the content store, so a retry does not fetch them again.
"""

from __future__ import annotations

import http.client
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from runtime.errors import InvalidArgument, RuntimeFailure, WharfError
from runtime.registry import digests, manifests
from runtime.registry.transport import RETRIES, Session

PARALLEL = 4
MAX_MANIFEST = 4 << 20


def emit(progress, **msg: Any) -> None:
    if progress is not None:
        progress(msg)


def get_manifest(session: Session, path: str, reference: str) -> tuple[bytes, str, str]:
    """(bytes, media type, digest) of a manifest by tag or digest (digest-verified)."""
    resp = session.request("GET", f"/v2/{path}/manifests/{reference}", headers={"Accept": manifests.ACCEPT},
                           what=f"manifest {path}:{reference}" if ":" not in reference else f"manifest {path}@{reference}")
    length = int(resp.getheader("Content-Length") or 0)
    if length > MAX_MANIFEST:
        resp.close()
        raise InvalidArgument(f"registry {session.domain}: manifest {path}:{reference} is larger than 4 MiB")
    data = resp.read(MAX_MANIFEST + 1)
    if len(data) > MAX_MANIFEST:
        resp.close()
        raise InvalidArgument(f"registry {session.domain}: manifest {path}:{reference} is larger than 4 MiB")
    expected = reference if digests.is_digest(reference) else resp.getheader("Docker-Content-Digest")
    if expected and digests.is_digest(expected):
        actual = digests.of(data, expected.split(":", 1)[0])
        if actual != expected:
            raise InvalidArgument(f"registry {session.domain}: manifest {path}@{expected}: digest mismatch: "
                                  f"content hashes to {actual}", hint="the registry or a proxy altered it")
    digest = digests.of(data)
    try:
        m = manifests.parse(data, resp.getheader("Content-Type"))
    except manifests.ManifestError as e:
        raise InvalidArgument(f"registry {session.domain}: manifest {path}:{reference}: {e}") from None
    return data, m.media_type, digest


class _Cancelled(Exception):
    pass


def _download(session: Session, store, path: str, desc: dict, progress, stop: threading.Event) -> None:
    digest, size = desc["digest"], desc["size"]
    short = digests.short(digest)
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    for attempt in range(RETRIES + 1):
        with store.content.writer(expected=digest, size=size) as w:
            try:
                resp = session.request("GET", f"/v2/{path}/blobs/{digest}", what=f"blob {digest}")
                last = 0.0
                while n := resp.readinto(view):
                    w.write(view[:n])
                    if stop.is_set():
                        session.reset()
                        raise _Cancelled
                    now = time.monotonic()
                    if now - last > 0.1:
                        last = now
                        emit(progress, status="Downloading", id=short,
                             progressDetail={"current": w.written, "total": size})
                if w.written != size:
                    raise http.client.IncompleteRead(b"", size - w.written)
            except (OSError, http.client.HTTPException) as e:
                session.reset()
                if attempt < RETRIES and not stop.is_set():
                    time.sleep(0.1 * 3 ** attempt)
                    continue
                raise RuntimeFailure(f"registry {session.domain}: blob {digest}: download failed after "
                                     f"{w.written} of {size} bytes: {e or type(e).__name__}",
                                     hint="the connection broke or the registry is down; pull again") from None
            w.commit()  # InvalidArgument (nothing stored) when the bytes do not hash to `digest`
            emit(progress, status="Download complete", id=short)
            return


def fetch_blobs(session: Session, store, path: str, descs: list[dict], progress) -> None:
    """Download the blobs of `descs` that the content store lacks, in parallel, verified.
    (Progress is reported for all but the first, the image config, as Docker does.)"""
    todo = []
    for i, d in enumerate(descs):
        if store.content.has(d["digest"]):
            emit(progress if i else None, status="Already exists", id=digests.short(d["digest"]))
        elif d["digest"] not in (t["digest"] for t in todo):
            todo.append(d)
            emit(progress if i else None, status="Pulling fs layer", id=digests.short(d["digest"]))
    if not todo:
        return
    stop = threading.Event()
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(todo)), thread_name_prefix="pull") as ex:
        futures = [ex.submit(_download, session, store, path, d, progress if d is not descs[0] else None, stop)
                   for d in todo]
        for f in futures:
            try:
                f.result()
            except _Cancelled:
                pass
            except BaseException as e:
                stop.set()
                errors.append(e)
    if errors:
        first = next((e for e in errors if isinstance(e, WharfError)), errors[0])
        raise first


def pull(store, ref: str, platform: str | None = None, progress=None):
    """Pull `ref` (name[:tag|@digest]) into `store` (an ImageStore); returns the registered Image."""
    from runtime.images import oci
    from runtime.images.reference import familiar_name, parse, with_default_tag

    r = with_default_tag(parse(ref))
    session = Session(r.domain, (f"repository:{r.path}:pull",))
    try:
        emit(progress, status=f"Pulling from {familiar_name(r.name)}", id=r.tag or r.digest)
        data, media_type, digest = get_manifest(session, r.path, r.digest or r.tag)
        top = digest
        if media_type in manifests.INDEX_TYPES:
            import json

            desc = oci.select_platform(json.loads(data), platform)
            data, media_type, digest = get_manifest(session, r.path, desc["digest"])
            if media_type in manifests.INDEX_TYPES:
                raise InvalidArgument(f"registry {r.domain}: {r.path}@{digest}: nested indexes are not supported")
        m = manifests.parse(data, media_type)
        fetch_blobs(session, store, r.path, manifests.stored_blobs(m), progress)
        image = store.register(data, str(r), repo_digest=True)
        for d in m.blobs[1:]:
            emit(progress, status="Pull complete", id=digests.short(d["digest"]))
        emit(progress, status=f"Digest: {top}")
        emit(progress, status=f"Status: Downloaded image for {r}")
        return image
    finally:
        session.close()
