"""The registry's content-addressed filesystem layout (server side).

    <root>/blobs/<alg>/<hex>                                 blob data, written once, atomically
    <root>/uploads/<uuid> (+ <uuid>.repo)                    upload sessions in progress
    <root>/repositories/<name>/_layers/<alg>/<hex>           blob is part of the repository
    <root>/repositories/<name>/_manifests/revisions/<alg>/<hex>   manifest (file holds its media type)
    <root>/repositories/<name>/_manifests/tags/<tag>         tag (file holds the manifest digest)
    <root>/repositories/<name>/_referrers/<alg>/<subject hex>/<alg>/<hex>   OCI 1.1 referrers

A blob becomes visible only after its digest was verified: uploads land in uploads/,
are hashed while they stream in, then renamed into blobs/. Name components never start
with "_", so the underscore directories cannot clash with repository names.
"""

from __future__ import annotations

import os
import re
import threading
import uuid
from collections.abc import Iterable
from pathlib import Path

from runtime.registry import digests, manifests
from runtime.registry.apierrors import ApiError

NAME = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
UPLOAD_ID = re.compile(r"^[a-f0-9]{32}$")
MAX_MANIFEST = 4 << 20


def atomic_write(path: Path, data: bytes | str) -> None:
    """Temp file (unique per thread: the server writes concurrently), fsync, rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data.encode() if isinstance(data, str) else data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    os.replace(tmp, path)


def check_name(name: str) -> str:
    if len(name) > 255 or not NAME.match(name):
        raise ApiError("NAME_INVALID", f"invalid repository name {name!r}", {"name": name})
    return name


class _Upload:
    def __init__(self, repo: str, offset: int, hasher) -> None:
        self.repo = repo
        self.offset = offset
        self.hasher = hasher
        self.lock = threading.Lock()


class Storage:
    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        for d in ("blobs", "uploads", "repositories"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        self._uploads: dict[str, _Upload] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ blobs
    def blob_path(self, digest: str) -> Path:
        alg, hexpart = digest.split(":", 1)
        return self.root / "blobs" / alg / hexpart

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def repo_dir(self, name: str) -> Path:
        return self.root / "repositories" / name

    def repo_exists(self, name: str) -> bool:
        return self.repo_dir(name).is_dir()

    def _link(self, name: str, *parts: str, content: str = "") -> None:
        path = self.repo_dir(name).joinpath(*parts)
        if not path.exists() or content:
            atomic_write(path, content)

    def _layer_link(self, name: str, digest: str) -> Path:
        return self.repo_dir(name) / "_layers" / digest.replace(":", "/", 1)

    def link_blob(self, name: str, digest: str) -> None:
        self._link(name, "_layers", *digest.split(":", 1))

    def blob_linked(self, name: str, digest: str) -> bool:
        return self._layer_link(name, digest).exists() and self.has_blob(digest)

    def unlink_blob(self, name: str, digest: str) -> None:
        try:
            self._layer_link(name, digest).unlink()
        except FileNotFoundError:
            raise ApiError("BLOB_UNKNOWN", f"blob {digest} is not in {name}", {"digest": digest}) from None

    def blob_for(self, name: str, digest: str) -> Path:
        """The path of a blob of repository `name` (manifests count as blobs too)."""
        if self.blob_linked(name, digest) or (self._revision(name, digest).exists() and self.has_blob(digest)):
            return self.blob_path(digest)
        if not self.repo_exists(name):
            raise ApiError("NAME_UNKNOWN", f"repository {name} is not known to this registry", {"name": name})
        raise ApiError("BLOB_UNKNOWN", f"blob {digest} is unknown to repository {name}", {"digest": digest})

    def mount(self, name: str, digest: str, source: str | None) -> bool:
        """Link an existing blob into `name` from repository `source` (any repository when None)."""
        if source is not None:
            if not NAME.match(source) or not self.blob_linked(source, digest):
                return False
        elif not self.has_blob(digest):
            return False
        self.link_blob(name, digest)
        return True

    # ---------------------------------------------------------------- uploads
    def _upload_path(self, upload_id: str) -> Path:
        return self.root / "uploads" / upload_id

    def start_upload(self, name: str) -> str:
        upload_id = uuid.uuid4().hex
        path = self._upload_path(upload_id)
        path.with_suffix(".repo").write_text(name)
        path.touch()
        with self._lock:
            self._uploads[upload_id] = _Upload(name, 0, digests.hasher())
        return upload_id

    def _session(self, name: str, upload_id: str) -> _Upload:
        with self._lock:
            up = self._uploads.get(upload_id)
            if up is None and UPLOAD_ID.match(upload_id):
                up = self._reload(upload_id)
        if up is None or up.repo != name:
            raise ApiError("BLOB_UPLOAD_UNKNOWN", f"upload {upload_id} is unknown to repository {name}",
                           {"uuid": upload_id})
        return up

    def _reload(self, upload_id: str) -> _Upload | None:
        """Rebuild an upload's state from disk (e.g. after a server restart)."""
        path = self._upload_path(upload_id)
        try:
            repo = path.with_suffix(".repo").read_text()
            h = digests.hasher()
            with open(path, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
                offset = f.tell()
        except FileNotFoundError:
            return None
        up = self._uploads[upload_id] = _Upload(repo, offset, h)
        return up

    def upload_offset(self, name: str, upload_id: str) -> int:
        return self._session(name, upload_id).offset

    def append(self, name: str, upload_id: str, chunks: Iterable[bytes], start: int | None = None) -> int:
        """Append a chunk stream at `start` (which must be the current offset); returns the new offset."""
        up = self._session(name, upload_id)
        with up.lock:
            if start is not None and start != up.offset:
                raise ApiError("RANGE_INVALID", f"chunk starts at {start}, the upload is at {up.offset}",
                               headers={"Range": f"0-{max(up.offset - 1, 0)}"})
            fd = os.open(self._upload_path(upload_id), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            try:
                for chunk in chunks:
                    up.hasher.update(chunk)
                    view = memoryview(chunk)
                    while view:
                        view = view[os.write(fd, view):]
                    up.offset += len(chunk)
            except BaseException:
                # keep the session consistent with what reached the file
                os.close(fd)
                fd = -1
                with self._lock:
                    self._uploads.pop(upload_id, None)
                raise
            finally:
                if fd >= 0:
                    os.close(fd)
            return up.offset

    def finish_upload(self, name: str, upload_id: str, digest: str) -> None:
        """Verify the upload against `digest`, move it into blobs/ and link it into `name`."""
        up = self._session(name, upload_id)
        path = self._upload_path(upload_id)
        with up.lock:
            if digest.startswith("sha256:"):
                actual = "sha256:" + up.hasher.hexdigest()
            else:
                h = digests.hasher(digest)
                with open(path, "rb") as f:
                    while chunk := f.read(1 << 20):
                        h.update(chunk)
                actual = f"{digest.split(':', 1)[0]}:{h.hexdigest()}"
            if actual != digest:
                self.cancel_upload(name, upload_id)
                raise ApiError("DIGEST_INVALID", f"uploaded content has digest {actual}, not {digest}",
                               {"digest": digest, "actual": actual})
            target = self.blob_path(digest)
            if target.exists():
                path.unlink()
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    os.fdatasync(fd)
                finally:
                    os.close(fd)
                os.replace(path, target)
            self._drop_upload(upload_id)
        self.link_blob(name, digest)

    def cancel_upload(self, name: str, upload_id: str) -> None:
        self._session(name, upload_id)
        for p in (self._upload_path(upload_id), self._upload_path(upload_id).with_suffix(".repo")):
            p.unlink(missing_ok=True)
        self._drop_upload(upload_id)

    def _drop_upload(self, upload_id: str) -> None:
        self._upload_path(upload_id).with_suffix(".repo").unlink(missing_ok=True)
        with self._lock:
            self._uploads.pop(upload_id, None)

    # -------------------------------------------------------------- manifests
    def _revision(self, name: str, digest: str) -> Path:
        return self.repo_dir(name) / "_manifests" / "revisions" / digest.replace(":", "/", 1)

    def _tag_path(self, name: str, tag: str) -> Path:
        return self.repo_dir(name) / "_manifests" / "tags" / tag

    def put_manifest(self, name: str, reference: str, data: bytes, content_type: str | None,
                     check_blobs: bool = True) -> tuple[str, str | None]:
        """Store a manifest under a tag or digest; returns (digest, subject digest or None).
        (check_blobs=False: a pull-through cache, whose blobs arrive when first asked for.)"""
        is_digest = ":" in reference
        if is_digest and not digests.is_digest(reference):
            raise ApiError("DIGEST_INVALID", f"invalid digest {reference!r}", {"digest": reference})
        if not is_digest and not TAG.match(reference):
            raise ApiError("MANIFEST_INVALID", f"invalid tag {reference!r}", {"tag": reference})
        try:
            m = manifests.parse(data, content_type)
        except manifests.ManifestError as e:
            raise ApiError("MANIFEST_INVALID", f"manifest invalid: {e}") from None
        digest = digests.of(data, reference.split(":", 1)[0] if is_digest else "sha256")
        if is_digest and digest != reference:
            raise ApiError("DIGEST_INVALID", f"manifest has digest {digest}, not {reference}",
                           {"digest": reference, "actual": digest})
        for d in manifests.stored_blobs(m) if check_blobs else []:
            if not self.blob_linked(name, d["digest"]):
                raise ApiError("MANIFEST_BLOB_UNKNOWN", f"blob {d['digest']} is not in repository {name}",
                               {"digest": d["digest"]})
        for d in m.manifests if check_blobs else []:
            if not (self._revision(name, d["digest"]).exists() and self.has_blob(d["digest"])):
                raise ApiError("MANIFEST_BLOB_UNKNOWN", f"manifest {d['digest']} is not in repository {name}",
                               {"digest": d["digest"]})
        target = self.blob_path(digest)
        if not target.exists():
            atomic_write(target, data)
        self._link(name, "_manifests", "revisions", *digest.split(":", 1), content=m.media_type)
        subject = m.subject["digest"] if m.subject else None
        if subject:
            self._link(name, "_referrers", *subject.split(":", 1), *digest.split(":", 1), content=m.media_type)
        if not is_digest:
            atomic_write(self._tag_path(name, reference), digest)
        return digest, subject

    def resolve(self, name: str, reference: str) -> tuple[str, str]:
        """(digest, media type) of a manifest by tag or digest."""
        if ":" in reference:
            if not digests.is_digest(reference):
                raise ApiError("DIGEST_INVALID", f"invalid digest {reference!r}", {"digest": reference})
            digest = reference
        elif not TAG.match(reference):  # no such tag can exist: 404 (as distribution, and the conformance suite)
            raise ApiError("MANIFEST_UNKNOWN", f"invalid tag {reference!r}", {"tag": reference})
        else:
            try:
                digest = self._tag_path(name, reference).read_text().strip()
            except FileNotFoundError:
                digest = ""
        try:
            media_type = self._revision(name, digest).read_text() if digest else ""
        except FileNotFoundError:
            media_type = ""
        if not media_type or not self.has_blob(digest):
            if not self.repo_exists(name):
                raise ApiError("NAME_UNKNOWN", f"repository {name} is not known to this registry",
                               {"name": name})
            raise ApiError("MANIFEST_UNKNOWN", f"manifest {reference} is unknown to repository {name}",
                           {"name": name, "reference": reference})
        return digest, media_type

    def delete_manifest(self, name: str, reference: str) -> None:
        digest, _ = self.resolve(name, reference)
        if ":" not in reference:
            self._tag_path(name, reference).unlink(missing_ok=True)
            return
        for tag in self.tags(name):
            p = self._tag_path(name, tag)
            try:
                if p.read_text().strip() == digest:
                    p.unlink()
            except FileNotFoundError:
                pass
        self._revision(name, digest).unlink(missing_ok=True)

    def tags(self, name: str) -> list[str]:
        try:
            return sorted(t for t in os.listdir(self.repo_dir(name) / "_manifests" / "tags") if not t.startswith("."))
        except FileNotFoundError:
            if not self.repo_exists(name):
                raise ApiError("NAME_UNKNOWN", f"repository {name} is not known to this registry",
                               {"name": name}) from None
            return []

    def referrers(self, name: str, digest: str) -> list[tuple[str, str]]:
        """[(manifest digest, media type)] of the manifests whose subject is `digest`."""
        base = self.repo_dir(name) / "_referrers" / digest.replace(":", "/", 1)
        out = []
        for alg_dir in sorted(base.iterdir()) if base.is_dir() else []:
            for link in sorted(alg_dir.iterdir()):
                if link.name.startswith("."):
                    continue
                d = f"{alg_dir.name}:{link.name}"
                if self._revision(name, d).exists() and self.has_blob(d):
                    out.append((d, link.read_text()))
        return out

    def catalog(self) -> list[str]:
        base = self.root / "repositories"
        repos = []
        for dirpath, dirnames, _ in os.walk(base):
            if "_manifests" in dirnames or "_layers" in dirnames:
                repos.append(os.path.relpath(dirpath, base))
            dirnames[:] = [d for d in dirnames if not d.startswith("_")]
        return sorted(repos)
