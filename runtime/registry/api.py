"""The routes of the OCI distribution spec over `Storage` (no HTTP plumbing here).

`Registry.handle(request)` maps one request to a `Response`; server.py does the socket work
(keep-alive, body decoding, sendfile). Errors are `ApiError`s carrying the spec's codes.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from runtime.registry import digests, manifests
from runtime.registry.apierrors import ApiError
from runtime.registry.proxy import Upstream, is_tag
from runtime.registry.storage import MAX_MANIFEST, Storage, check_name


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]                       # lower-case names
    body: Callable[[], Iterator[bytes]]           # the body as chunks (call once)
    read_body: Callable[[int], bytes]             # the whole body, at most N bytes (else SIZE_INVALID)


@dataclass
class Response:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    file: tuple[Path, int, int] | None = None    # (path, offset, length) sent with sendfile

    @staticmethod
    def json(obj, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(status, {"Content-Type": "application/json", **(headers or {})},
                        json.dumps(obj).encode())


_ROUTES = [
    (re.compile(r"^/v2/?$"), "ping"),
    (re.compile(r"^/v2/_catalog$"), "catalog"),
    (re.compile(r"^/v2/(?P<name>.+)/tags/list$"), "tags"),
    (re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$"), "manifest"),
    (re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/?$"), "upload_start"),
    (re.compile(r"^/v2/(?P<name>.+)/blobs/uploads/(?P<uuid>[^/]+)$"), "upload"),
    (re.compile(r"^/v2/(?P<name>.+)/blobs/(?P<digest>[^/]+)$"), "blob"),
    (re.compile(r"^/v2/(?P<name>.+)/referrers/(?P<digest>[^/]+)$"), "referrers"),
]
_ALLOWED = {
    "ping": ("GET", "HEAD"), "catalog": ("GET",), "tags": ("GET",),
    "manifest": ("GET", "HEAD", "PUT", "DELETE"), "upload_start": ("POST",),
    "upload": ("GET", "PATCH", "PUT", "DELETE"), "blob": ("GET", "HEAD", "DELETE"), "referrers": ("GET",),
}


def _paginate(items: list[str], query: dict[str, str], link_base: str) -> tuple[list[str], dict]:
    last = query.get("last")
    if last:
        items = [i for i in items if i > last]
    headers: dict[str, str] = {}
    if "n" in query:
        try:
            n = int(query["n"])
            if n < 0:
                raise ValueError
        except ValueError:
            raise ApiError("PAGINATION_NUMBER_INVALID", f"invalid n={query['n']!r}", {"n": query["n"]}) from None
        if len(items) > n:
            items = items[:n]
            if items:
                headers["Link"] = f'<{link_base}?n={n}&last={quote(items[-1])}>; rel="next"'
    return items, headers


class Registry:
    def __init__(self, storage: Storage, upstream: Upstream | None = None) -> None:
        self.storage = storage
        self.upstream = upstream

    def handle(self, req: Request) -> Response:
        found = next(((route, m) for pattern, route in _ROUTES if (m := pattern.match(req.path))), None)
        if found is None:
            raise ApiError("NAME_UNKNOWN", f"no route for {req.path}", status=404)
        route, m = found
        if req.method not in _ALLOWED[route]:
            raise ApiError("UNSUPPORTED", f"{req.method} is not supported on {req.path}",
                           headers={"Allow": ", ".join(_ALLOWED[route])})
        if self.upstream is not None and req.method not in ("GET", "HEAD"):
            raise ApiError("UNSUPPORTED", "this registry is a read-only pull-through cache",
                           headers={"Allow": "GET, HEAD"})
        args = m.groupdict()
        if "name" in args:
            check_name(args["name"])
        return getattr(self, f"_{route}")(req, **args)

    # ------------------------------------------------------------------ misc
    def _ping(self, req: Request) -> Response:
        return Response.json({})

    def _catalog(self, req: Request) -> Response:
        repos, headers = _paginate(self.storage.catalog(), req.query, "/v2/_catalog")
        return Response.json({"repositories": repos}, headers=headers)

    def _tags(self, req: Request, name: str) -> Response:
        tags, headers = _paginate(self.storage.tags(name), req.query, f"/v2/{name}/tags/list")
        return Response.json({"name": name, "tags": tags}, headers=headers)

    def _referrers(self, req: Request, name: str, digest: str) -> Response:
        if not digests.is_digest(digest):
            raise ApiError("DIGEST_INVALID", f"invalid digest {digest!r}", {"digest": digest})
        want = req.query.get("artifactType")
        descs = []
        for d, media_type in self.storage.referrers(name, digest):
            doc = json.loads(self.storage.blob_path(d).read_bytes())
            artifact = doc.get("artifactType") or doc.get("config", {}).get("mediaType")
            if want and artifact != want:
                continue
            desc = {"mediaType": media_type, "digest": d, "size": self.storage.blob_path(d).stat().st_size}
            if artifact:
                desc["artifactType"] = artifact
            if doc.get("annotations"):
                desc["annotations"] = doc["annotations"]
            descs.append(desc)
        headers = {"Content-Type": manifests.OCI_INDEX}
        if want:
            headers["OCI-Filters-Applied"] = "artifactType"
        return Response(200, headers, json.dumps(
            {"schemaVersion": 2, "mediaType": manifests.OCI_INDEX, "manifests": descs}).encode())

    # ------------------------------------------------------------- manifests
    def _manifest(self, req: Request, name: str, ref: str) -> Response:
        st = self.storage
        if req.method == "PUT":
            data = req.read_body(MAX_MANIFEST)
            digest, subject = st.put_manifest(name, ref, data, req.headers.get("content-type"))
            headers = {"Location": f"/v2/{name}/manifests/{digest}", "Docker-Content-Digest": digest}
            if subject:
                headers["OCI-Subject"] = subject
            return Response(201, headers)
        if req.method == "DELETE":
            st.delete_manifest(name, ref)
            return Response(202)
        digest, media_type = self._resolve(name, ref)
        path = st.blob_path(digest)
        size = path.stat().st_size
        headers = {"Content-Type": media_type, "Docker-Content-Digest": digest, "ETag": f'"{digest}"'}
        if req.method == "HEAD":
            return Response(200, {**headers, "Content-Length": str(size)})
        return Response(200, headers, path.read_bytes())

    def _resolve(self, name: str, ref: str) -> tuple[str, str]:
        """st.resolve, asking the upstream (pull-through cache) for tags and for what is missing."""
        st, up = self.storage, self.upstream
        if up is None:
            return st.resolve(name, ref)
        if not is_tag(ref):
            try:
                return st.resolve(name, ref)
            except ApiError as e:
                if e.code not in ("MANIFEST_UNKNOWN", "NAME_UNKNOWN"):
                    raise
        try:
            data, media_type = up.manifest(name, ref)
        except ApiError as e:
            if e.status == 404 or not is_tag(ref):
                raise
            return st.resolve(name, ref)  # upstream unreachable: serve the cached tag
        st.put_manifest(name, ref, data, media_type, check_blobs=False)
        return st.resolve(name, ref)

    # ----------------------------------------------------------------- blobs
    def _blob(self, req: Request, name: str, digest: str) -> Response:
        if not digests.is_digest(digest):
            raise ApiError("DIGEST_INVALID", f"invalid digest {digest!r}", {"digest": digest})
        if req.method == "DELETE":
            self.storage.unlink_blob(name, digest)
            return Response(202)
        try:
            path = self.storage.blob_for(name, digest)
        except ApiError as e:
            if self.upstream is None or e.code not in ("BLOB_UNKNOWN", "NAME_UNKNOWN"):
                raise
            self.upstream.blob(name, digest, self.storage)
            path = self.storage.blob_for(name, digest)
        size = path.stat().st_size
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": digest,
                   "Accept-Ranges": "bytes", "ETag": f'"{digest}"', "Cache-Control": "max-age=31536000"}
        start, length, status = 0, size, 200
        rng = req.headers.get("range")
        if rng and req.method == "GET":
            start, length = _parse_range(rng, size)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        if req.method == "HEAD":
            return Response(200, {**headers, "Content-Length": str(size)})
        return Response(status, headers, file=(path, start, length))

    # --------------------------------------------------------------- uploads
    def _upload_start(self, req: Request, name: str) -> Response:
        st = self.storage
        q = req.query
        if "mount" in q:
            digest = q["mount"]
            if digests.is_digest(digest) and st.mount(name, digest, q.get("from")):
                return Response(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})
        if "digest" in q:  # monolithic: POST ?digest= with the whole blob as body
            digest = _check_digest(q["digest"])
            upload_id = st.start_upload(name)
            try:
                st.append(name, upload_id, req.body())
            except BaseException:
                st.cancel_upload(name, upload_id)
                raise
            st.finish_upload(name, upload_id, digest)
            return Response(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})
        upload_id = st.start_upload(name)
        return Response(202, self._upload_headers(name, upload_id, 0))

    @staticmethod
    def _upload_headers(name: str, upload_id: str, offset: int) -> dict[str, str]:
        return {"Location": f"/v2/{name}/blobs/uploads/{upload_id}", "Docker-Upload-UUID": upload_id,
                "Range": f"0-{max(offset - 1, 0)}", "OCI-Chunk-Min-Length": "0"}

    def _upload(self, req: Request, name: str, uuid: str) -> Response:
        st = self.storage
        if req.method == "GET":
            return Response(204, self._upload_headers(name, uuid, st.upload_offset(name, uuid)))
        if req.method == "DELETE":
            st.cancel_upload(name, uuid)
            return Response(204)
        start = None
        crange = req.headers.get("content-range")
        if crange:
            m = re.match(r"^(?:bytes )?(\d+)-(\d+)(?:/\d+|/\*)?$", crange.strip())
            if not m:
                raise ApiError("RANGE_INVALID", f"invalid Content-Range {crange!r}")
            start = int(m.group(1))
            clen = req.headers.get("content-length")
            if clen is not None and int(m.group(2)) - start + 1 != int(clen):
                raise ApiError("RANGE_INVALID", f"Content-Range {crange!r} does not match Content-Length {clen}")
        if req.method == "PATCH":
            offset = st.append(name, uuid, req.body(), start)
            return Response(202, self._upload_headers(name, uuid, offset))
        # PUT: the last chunk (maybe empty) and the digest that closes the upload
        if "digest" not in req.query:
            raise ApiError("DIGEST_INVALID", "the digest query parameter is missing")
        digest = _check_digest(req.query["digest"])
        st.append(name, uuid, req.body(), start)
        st.finish_upload(name, uuid, digest)
        return Response(201, {"Location": f"/v2/{name}/blobs/{digest}", "Docker-Content-Digest": digest})


def _check_digest(value: str) -> str:
    if not digests.is_digest(value):
        raise ApiError("DIGEST_INVALID", f"invalid digest {value!r}", {"digest": value})
    return value


def _parse_range(value: str, size: int) -> tuple[int, int]:
    m = re.match(r"^bytes=(\d*)-(\d*)$", value.strip())
    bad = ApiError("RANGE_INVALID", f"invalid Range {value!r} for a blob of {size} bytes",
                   headers={"Content-Range": f"bytes */{size}"})
    if not m or (not m.group(1) and not m.group(2)):
        raise bad
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0:
            raise bad
        return max(size - n, 0), min(n, size)
    start = int(m.group(1))
    end = int(m.group(2)) if m.group(2) else size - 1
    end = min(end, size - 1)
    if start >= size or end < start:
        raise bad
    return start, end - start + 1
