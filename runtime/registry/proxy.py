"""Pull-through cache: `wharf registry serve --proxy-remote URL` serves what it holds and fetches
what it lacks from the upstream registry (digest-verified, then kept), like distribution's proxy
mode. Tags are asked upstream on every GET (they move); content is fetched once. Read-only."""

from __future__ import annotations

import threading

from runtime.errors import NotFound, WharfError
from runtime.registry import digests
from runtime.registry.apierrors import ApiError
from runtime.registry.transport import Session


class Upstream:
    def __init__(self, url: str, username: str | None = None, password: str | None = None) -> None:
        scheme, sep, rest = url.partition("://")
        domain = (rest if sep else url).split("/", 1)[0]
        self.domain = "docker.io" if domain in ("registry-1.docker.io", "index.docker.io") else domain
        self.scheme = scheme if sep and scheme in ("http", "https") else None
        self.creds = (username, password or "") if username else None
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def _session(self, name: str) -> Session:
        with self._lock:
            s = self._sessions.get(name)
            if s is None:
                s = self._sessions[name] = Session(self.domain, (f"repository:{name}:pull",), self.creds, self.scheme)
            return s

    def _error(self, e: WharfError, code: str, detail: dict) -> ApiError:
        if isinstance(e, NotFound):
            return ApiError(code, f"upstream {self.domain}: {e.message}", detail)
        return ApiError("UNKNOWN", f"upstream {self.domain}: {e.message}", detail, status=502)

    def manifest(self, name: str, reference: str) -> tuple[bytes, str]:
        from runtime.registry.pull import get_manifest

        try:
            data, media_type, _ = get_manifest(self._session(name), name, reference)
        except WharfError as e:
            raise self._error(e, "MANIFEST_UNKNOWN", {"name": name, "reference": reference}) from None
        return data, media_type

    def blob(self, name: str, digest: str, storage) -> None:
        """Fetch a blob into `storage` (verified against `digest`) and link it into `name`."""
        session = self._session(name)
        upload_id = storage.start_upload(name)
        try:
            resp = session.request("GET", f"/v2/{name}/blobs/{digest}", what=f"blob {digest}")

            def chunks():
                while data := resp.read(1 << 20):
                    yield data

            storage.append(name, upload_id, chunks())
        except WharfError as e:
            storage.cancel_upload(name, upload_id)
            raise self._error(e, "BLOB_UNKNOWN", {"digest": digest}) from None
        except BaseException:
            session.reset()
            storage.cancel_upload(name, upload_id)
            raise
        storage.finish_upload(name, upload_id, digest)  # DIGEST_INVALID (nothing kept) on a mismatch

    def close(self) -> None:
        with self._lock:
            for s in self._sessions.values():
                s.close()
            self._sessions.clear()


def is_tag(reference: str) -> bool:
    return not digests.is_digest(reference) and ":" not in reference
