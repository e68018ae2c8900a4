"""`push`: for each blob of the image, HEAD (present?), else mount from another repository of
the same registry, else upload (monolithic PUT, or PATCH chunks when `chunk_size` is set);
then PUT the manifest, byte for byte as stored, so its digest does not change."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

from runtime.errors import InvalidArgument, NotFound, RuntimeFailure, WharfError
from runtime.registry import digests, manifests
from runtime.registry.progress import emit
from runtime.registry.transport import RETRIES, Body, Session

PARALLEL = 3


def _with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + "digest=" + quote(digest)


class _Uploader:
    def __init__(self, session: Session, store, path: str, mount_from: list[str], chunk_size: int | None) -> None:
        self.session = session
        self.store = store
        self.path = path
        self.mount_from = mount_from
        self.chunk_size = chunk_size
        self.stop = threading.Event()

    def blob(self, desc: dict, progress) -> None:
        digest = desc["digest"]
        short = digests.short(digest)
        s, path = self.session, self.path
        resp, _ = s.fetch("HEAD", f"/v2/{path}/blobs/{digest}", ok=(200, 404), what=f"blob {digest}")
        if resp.status == 200:
            emit(progress, status="Layer already exists", id=short)
            return
        location = None
        if self.mount_from:
            source = self.mount_from[0]
            resp, _ = s.fetch("POST", f"/v2/{path}/blobs/uploads/?mount={quote(digest)}&from={quote(source)}",
                              ok=(201, 202), scopes=(*s.scopes, f"repository:{source}:pull"),
                              what=f"mount {digest} from {source}")
            if resp.status == 201:
                emit(progress, status=f"Mounted from {source}", id=short)
                return
            location = resp.getheader("Location")
        for attempt in range(RETRIES + 1):
            if location is None:
                resp, _ = s.fetch("POST", f"/v2/{path}/blobs/uploads/", ok=(202,), retry=True,
                                  what=f"start upload of {digest}")
                location = resp.getheader("Location")
                if not location:
                    raise InvalidArgument(f"registry {s.domain}: the upload of {digest} got no Location header")
            try:
                self._upload(location, desc, progress)
                break
            except RuntimeFailure:  # connection broke, 5xx: start over (the registry keeps nothing partial)
                self._cancel(location)
                location = None
                if attempt == RETRIES or self.stop.is_set():
                    raise
                time.sleep(0.1 * 3 ** attempt)
            except BaseException:
                self._cancel(location)
                raise
        emit(progress, status="Pushed", id=short)

    def _upload(self, location: str, desc: dict, progress) -> None:
        digest, size = desc["digest"], desc["size"]
        s, short = self.session, digests.short(digest)
        emit(progress, status="Pushing", id=short, progressDetail={"current": 0, "total": size})
        with open(self.store.content.path(digest), "rb") as f:
            if os.fstat(f.fileno()).st_size != size:
                raise InvalidArgument(f"local blob {digest} has {os.fstat(f.fileno()).st_size} bytes, the manifest "
                                      f"says {size}", hint="the content store is damaged; pull or build again")
            body: Body = (f, 0, size, lambda sent: emit(progress, status="Pushing", id=short,
                                                         progressDetail={"current": sent, "total": size}))
            if self.chunk_size and size > self.chunk_size:
                offset = 0
                while offset < size:
                    if self.stop.is_set():
                        raise InvalidArgument("push cancelled")
                    n = min(self.chunk_size, size - offset)
                    resp, _ = s.fetch("PATCH", location, body=(f, offset, n), ok=(202,),
                                      headers={"Content-Type": "application/octet-stream",
                                               "Content-Range": f"{offset}-{offset + n - 1}"},
                                      what=f"upload of {digest}")
                    location = resp.getheader("Location") or location
                    offset += n
                    emit(progress, status="Pushing", id=short, progressDetail={"current": offset, "total": size})
                body = None
            s.fetch("PUT", _with_digest(location, digest), body=body, ok=(201, 204),
                    headers={"Content-Type": "application/octet-stream"}, what=f"upload of {digest}")

    def _cancel(self, location: str | None) -> None:
        """Best effort: drop the registry's upload session."""
        if location:
            try:
                self.session.fetch("DELETE", location, ok=(200, 202, 204, 404), what="cancel upload")
            except WharfError:
                pass


def push(store, ref: str, progress=None, chunk_size: int | None = None, auth: tuple[str, str] | None = None) -> str:
    """Push the local image `ref` to its registry; returns the manifest digest. `auth` (user,
    password) overrides the stored credentials; `chunk_size` uploads in PATCH chunks of that size."""
    from runtime.images.reference import familiar, familiar_name, parse, with_default_tag
    from runtime.util.events import emit_image

    r = with_default_tag(parse(ref))
    image = store.resolve(str(r))
    try:
        data = store.content.read(image.manifest_digest)
    except NotFound:
        raise NotFound(f"the manifest of {ref} is missing from the content store",
                       hint="pull or build the image again") from None
    m = manifests.parse(data)
    known = [parse(d) for d in image.repo_digests]  # where the image came from: blobs can be mounted
    mount_from = sorted({k.path for k in known if k.domain == r.domain and k.path != r.path})
    session = Session(r.domain, (f"repository:{r.path}:pull,push",), auth)
    up = _Uploader(session, store, r.path, mount_from, chunk_size)
    emit(progress, status=f"The push refers to repository [{r.name}]")
    try:
        blobs = list({d["digest"]: d for d in manifests.stored_blobs(m)}.values())  # each blob once
        errors: list[BaseException] = []
        with ThreadPoolExecutor(max_workers=min(PARALLEL, len(blobs) or 1), thread_name_prefix="push") as ex:
            futures = [ex.submit(up.blob, d, progress) for d in blobs[1:]] + [ex.submit(up.blob, blobs[0], None)]
            for fut in futures:
                try:
                    fut.result()
                except BaseException as e:
                    up.stop.set()
                    errors.append(e)
        if errors:
            raise next((e for e in errors if isinstance(e, WharfError)), errors[0])
        target = r.digest or r.tag
        resp, _ = session.fetch("PUT", f"/v2/{r.path}/manifests/{target}", body=data, ok=(201, 200, 202),
                                headers={"Content-Type": m.media_type}, what=f"manifest {r.path}:{target}")
        digest = digests.of(data)
        echoed = resp.getheader("Docker-Content-Digest")
        if echoed and echoed != digest:
            raise InvalidArgument(f"registry {r.domain} stored the manifest as {echoed}, expected {digest}")
        if r.tag:  # remember name@digest (Docker's RepoDigests): later pushes can mount from here
            store.register(data, f"{r.name}:{r.tag}", repo_digest=True)
        emit(progress, status=f"{r.tag or r.digest}: digest: {digest} size: {len(data)}")
        emit_image("push", familiar(str(r)), familiar_name(r.name), image.labels)
        return digest
    finally:
        session.close()
