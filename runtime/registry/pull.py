"""`pull`: manifest (index -> platform manifest), config, then layers downloaded in parallel,
hashed while they stream into the content store and, at the same time, unpacked into their
snapshots (unpack.py); `ImageStore.register` then records and tags the image.

A failed pull records no image and leaves no partial blob (ingest files are aborted); blobs that
finished and verified stay in the content store, so a retry does not fetch them again.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from runtime.errors import InvalidArgument, NotFound, RuntimeFailure, WharfError
from runtime.registry import digests, manifests
from runtime.registry.hosts import registry_mirrors
from runtime.registry.progress import emit
from runtime.registry.transport import RETRIES, Session
from runtime.registry.unpack import Unpacker

PARALLEL = 4  # layers in flight (each downloading and unpacking at once)
MAX_MANIFEST = 4 << 20


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


def _download(session: Session, store, path: str, desc: dict, progress, stop: threading.Event,
              stream=None) -> None:
    """One blob into the content store (retried on transient errors); the first attempt also
    feeds `stream(desc)`'s Feed, which unpacks the layer while it downloads."""
    digest, size = desc["digest"], desc["size"]
    short = digests.short(digest)
    for attempt in range(RETRIES + 1):
        feed = stream(desc) if stream is not None and attempt == 0 else None
        with store.content.writer(expected=digest, size=size) as w:
            try:
                resp = session.request("GET", f"/v2/{path}/blobs/{digest}", what=f"blob {digest}")
                last = 0.0
                while data := resp.read(1 << 20):  # a new bytes object each time: the feed keeps it
                    w.write(data)
                    if feed is not None:
                        feed.put(data)
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
            except BaseException as e:
                if feed is not None:
                    feed.finish(ok=False)
                if not isinstance(e, (OSError, http.client.HTTPException)):
                    raise
                session.reset()
                if attempt < RETRIES and not stop.is_set():
                    time.sleep(0.1 * 3 ** attempt)
                    continue
                raise RuntimeFailure(f"registry {session.domain}: blob {digest}: download failed after "
                                     f"{w.written} of {size} bytes: {e or type(e).__name__}",
                                     hint="the connection broke or the registry is down; pull again") from None
            if feed is not None:
                feed.finish(ok=True)
            w.commit()  # InvalidArgument (nothing stored) when the bytes do not hash to `digest`
            emit(progress, status="Download complete", id=short)
            return


def fetch_blobs(session: Session, store, path: str, descs: list[dict], progress, after=None) -> int:
    """Download the blobs of `descs` that the content store lacks, in parallel, verified; then
    `after(desc, progress)` in the same worker (for every desc). Progress is reported for all but
    descs[0] when it is the image config, as Docker does. Returns how many blobs were fetched."""
    todo: list[dict] = []
    config = descs[0] if descs and after is None else None
    for d in descs:
        show = progress if d is not config else None
        if store.content.has(d["digest"]):
            emit(show, status="Already exists", id=digests.short(d["digest"]))
            todo.append({**d, "present": True})
        elif d["digest"] not in (t["digest"] for t in todo):
            emit(show, status="Pulling fs layer", id=digests.short(d["digest"]))
            todo.append(d)
    stop = threading.Event()

    def work(d: dict) -> None:
        show = progress if d is not config else None
        if not d.get("present"):
            _download(session, store, path, d, show, stop, getattr(after, "stream", None))
        if after is not None and not stop.is_set():
            after(d, show)

    fetched = sum(1 for d in todo if not d.get("present"))
    todo = [d for d in todo if after is not None or not d.get("present")]
    if not todo:
        return 0
    errors: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(todo)), thread_name_prefix="pull") as ex:
        for f in [ex.submit(work, d) for d in todo]:
            try:
                f.result()
            except _Cancelled:
                pass
            except BaseException as e:
                stop.set()
                errors.append(e)
    if errors:
        raise next((e for e in errors if isinstance(e, WharfError)), errors[0])
    return fetched


def _check_platform(config: bytes, platform: str, r) -> None:
    """A single-platform image pulled with --platform must be that platform (as Docker checks)."""
    try:
        doc = json.loads(config)
        have = [doc.get("os"), doc.get("architecture"), doc.get("variant")]
    except (ValueError, AttributeError):
        return  # register() names what is wrong with the config
    want = platform.split("/")
    if any(w and h and w != h for w, h in zip(want, have, strict=False)):
        raise InvalidArgument(f"image {r} is for {'/'.join(h for h in have if h)}, not {platform}",
                              hint="pull it without --platform, or pick a multi-platform image")


def _first_answer(r, auth: tuple[str, str] | None) -> tuple[Session, tuple[bytes, str, str]]:
    """The session and manifest of the first registry that has `r`: Docker Hub's mirrors, then its own."""
    scopes = (f"repository:{r.path}:pull",)
    candidates = registry_mirrors() if r.domain == "docker.io" else []
    for domain, scheme in [*candidates, (r.domain, None)]:
        session = Session(domain, scopes, auth if domain == r.domain else None, scheme)
        try:
            return session, get_manifest(session, r.path, r.digest or r.tag)
        except (NotFound, RuntimeFailure):
            session.close()
            if domain == r.domain:
                raise
        except BaseException:
            session.close()
            raise
    raise AssertionError("unreachable")


def pull(store, ref: str, platform: str | None = None, progress=None, auth: tuple[str, str] | None = None):
    """Pull `ref` (name[:tag|@digest]) into `store` (an ImageStore); returns the registered Image.
    `auth` (user, password) overrides the stored credentials (e.g. from an API's X-Registry-Auth)."""
    from runtime.images import oci
    from runtime.images.reference import familiar, familiar_name, parse, with_default_tag
    from runtime.util.events import emit_image

    r = with_default_tag(parse(ref))
    emit(progress, status=f"Pulling from {familiar_name(r.name)}", id=r.tag or r.digest)
    session, (data, media_type, digest) = _first_answer(r, auth)
    unpacker = None
    try:
        top, top_type = digest, media_type
        if media_type in manifests.INDEX_TYPES:
            desc = oci.select_platform(json.loads(data), platform)
            data, media_type, digest = get_manifest(session, r.path, desc["digest"])
            if media_type in manifests.INDEX_TYPES:
                raise InvalidArgument(f"registry {r.domain}: {r.path}@{digest}: nested indexes are not supported")
        m = manifests.parse(data, media_type)
        if media_type not in manifests.IMAGE_TYPES:
            raise InvalidArgument(f"registry {r.domain}: {r.path}@{digest}: not an image manifest ({media_type})")
        config = m.blobs[0]
        fetched = fetch_blobs(session, store, r.path, [config], None)
        config_bytes = store.content.read(config["digest"])
        if platform and media_type == top_type:
            _check_platform(config_bytes, platform, r)
        unpacker = Unpacker(store, m, config_bytes, f"image {config['digest'][7:19]}")
        fetched += fetch_blobs(session, store, r.path, manifests.stored_blobs(m)[1:], progress, after=unpacker)
        image = store.register(data, str(r), repo_digest=True)
        emit(progress, status=f"Digest: {top}")
        if fetched or unpacker.created:
            emit(progress, status=f"Status: Downloaded newer image for {r}")
        else:
            emit(progress, status=f"Status: Image is up to date for {r}")
        emit_image("pull", familiar(str(r)), familiar_name(r.name), image.labels)
        return image
    except BaseException:
        if unpacker is not None:
            unpacker.rollback()
        raise
    finally:
        session.close()
