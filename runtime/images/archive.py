"""save / load / import: image tarballs in docker-archive and OCI-layout form.

save (docker-archive):  manifest.json, repositories, <config hex>.json, <chain hex>/{layer.tar,VERSION,json}
save (oci):             oci-layout, index.json, blobs/sha256/<hex> (manifests, configs, layers as stored)
load:                   either format (also Docker 25's combined one, and gzip/zstd-compressed tars),
                        detected from the members; streamed member by member into the content store.
import:                 any tar (plain/gzip/zstd) -> a single-layer image.
Errors leave the store as it was: blobs this call wrote and no image references are deleted.
"""

from __future__ import annotations

import io
import json
import posixpath
import tarfile
import zlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, BinaryIO

from runtime.errors import InvalidArgument, NotFound
from runtime.images import oci
from runtime.images.content import sha256_digest
from runtime.images.reference import familiar, parse, with_default_tag
from runtime.images.streams import (
    CHUNK,
    FullReader,
    HashingReader,
    PeekReader,
    TeeReader,
    decompressor,
    detect,
)
from runtime.util.events import emit_image

if TYPE_CHECKING:
    from runtime.images.store import Image, ImageStore

REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
_META = ("manifest.json", "repositories", "index.json", "oci-layout")
_SMALL = 16 << 20


# ---------------------------------------------------------------- save


def _tar_add(tf: tarfile.TarFile, name: str, data: bytes | None = None, src: Any = None, size: int = 0,
             kind: bytes = tarfile.REGTYPE) -> None:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mtime, ti.uid, ti.gid, ti.uname, ti.gname = kind, 0, 0, 0, "", ""
    ti.mode = 0o755 if kind == tarfile.DIRTYPE else 0o644
    if data is not None:
        ti.size = len(data)
        tf.addfile(ti, io.BytesIO(data))
    elif src is not None:
        ti.size = size
        tf.addfile(ti, src)
    else:
        tf.addfile(ti)


def _resolve_all(store: ImageStore, refs: list[str]) -> list[tuple[Image, list[str]]]:
    """[(image, familiar tags to record)] in the order given, one entry per image."""
    out: dict[str, tuple[Image, list[str]]] = {}
    for ref in refs:
        img = store.resolve(ref)
        entry = out.setdefault(img.id, (img, []))
        if not ref.startswith("sha256:") and not img.id[7:].startswith(ref):
            r = parse(ref)
            if not r.digest:
                tag = familiar(str(with_default_tag(r)))
                if tag not in entry[1]:
                    entry[1].append(tag)
    return list(out.values())


def _uncompressed_layer(store: ImageStore, img: Image, i: int) -> tuple[Any, int]:
    """(reader, size) of layer i of `img` as an uncompressed tar."""
    layer = img.layers[i]
    compression = oci.LAYER_TYPES.get(layer["mediaType"], "")
    f = store.content.open(layer["digest"])
    if compression == "":
        return f, store.content.size(layer["digest"])
    snap = store.snapshots.get(img.chain_ids[i])
    if snap is None:
        store.ensure_snapshots(img.manifest, img.config)
        snap = store.snapshots.get(img.chain_ids[i])
    assert snap is not None
    return _Closing(FullReader(decompressor(f, compression)), f), snap.diff_size


class _Closing:
    def __init__(self, reader: Any, f: BinaryIO) -> None:
        self._reader, self._f = reader, f

    def read(self, n: int = -1) -> bytes:
        return self._reader.read(n)

    def close(self) -> None:
        self._f.close()


def save_docker(store: ImageStore, refs: list[str], out: BinaryIO) -> None:
    """`docker save` format: what `docker load` and `skopeo ... docker-archive:` read."""
    images = _resolve_all(store, refs)
    manifest: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    written: set[str] = set()
    with tarfile.open(mode="w|", fileobj=out, format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tf:
        tf.copybufsize = CHUNK
        for img, tags in images:
            layer_names = []
            parent = ""
            for i, chain in enumerate(img.chain_ids):
                d = chain[7:]
                layer_names.append(f"{d}/layer.tar")
                if d not in written:
                    written.add(d)
                    _tar_add(tf, d, kind=tarfile.DIRTYPE)
                    _tar_add(tf, f"{d}/VERSION", b"1.0")
                    legacy: dict[str, Any] = {"id": d, "created": "1970-01-01T00:00:00Z",
                                              "container_config": {}}
                    if parent:
                        legacy["parent"] = parent
                    _tar_add(tf, f"{d}/json", json.dumps(legacy).encode())
                    reader, size = _uncompressed_layer(store, img, i)
                    try:
                        _tar_add(tf, f"{d}/layer.tar", src=reader, size=size)
                    finally:
                        reader.close()
                parent = d
            config_name = f"{img.id[7:]}.json"
            if config_name not in written:
                written.add(config_name)
                _tar_add(tf, config_name, store.content.read(img.id))
            manifest.append({"Config": config_name, "RepoTags": tags or None, "Layers": layer_names})
            for t in tags:
                name, _, tag = t.rpartition(":")
                repositories.setdefault(name, {})[tag] = parent or img.id[7:]
        _tar_add(tf, "manifest.json", json.dumps(manifest).encode())
        if repositories:
            _tar_add(tf, "repositories", json.dumps(repositories).encode())


def _oci_manifest(store: ImageStore, img: Image) -> bytes:
    """The image's manifest bytes in OCI media types (unchanged when it already is one)."""
    raw = store.content.read(img.manifest_digest)
    if img.media_type == oci.OCI_MANIFEST:
        return raw
    doc = json.loads(raw)
    doc["mediaType"] = oci.OCI_MANIFEST
    doc["config"]["mediaType"] = oci.OCI_CONFIG
    for layer in doc["layers"]:
        layer["mediaType"] = oci.TO_OCI.get(layer["mediaType"], layer["mediaType"])
    return oci.dumps(doc)


def save_oci(store: ImageStore, refs: list[str], out: BinaryIO) -> None:
    """An OCI image layout as a tar (what `skopeo ... oci-archive:` and `umoci` read)."""
    images = _resolve_all(store, refs)
    index: list[dict[str, Any]] = []
    written: set[str] = set()
    with tarfile.open(mode="w|", fileobj=out, format=tarfile.PAX_FORMAT, bufsize=CHUNK) as tf:
        tf.copybufsize = CHUNK
        _tar_add(tf, "oci-layout", json.dumps({"imageLayoutVersion": oci.OCI_LAYOUT_VERSION}).encode())
        _tar_add(tf, "blobs", kind=tarfile.DIRTYPE)
        _tar_add(tf, "blobs/sha256", kind=tarfile.DIRTYPE)

        def blob(digest: str, data: bytes | None = None) -> None:
            if digest in written:
                return
            written.add(digest)
            name = f"blobs/sha256/{digest[7:]}"
            if data is not None:
                _tar_add(tf, name, data)
                return
            with store.content.open(digest) as f:
                _tar_add(tf, name, src=f, size=store.content.size(digest))

        for img, tags in images:
            for layer in img.layers:
                blob(layer["digest"])
            blob(img.id)
            manifest = _oci_manifest(store, img)
            digest = sha256_digest(manifest)
            blob(digest, manifest)
            desc = {"mediaType": oci.OCI_MANIFEST, "digest": digest, "size": len(manifest)}
            if not tags:
                index.append(desc)
            for t in tags:
                full = str(with_default_tag(parse(t)))
                index.append({**desc, "annotations": {REF_NAME: full.rpartition(":")[2], CONTAINERD_NAME: full}})
        _tar_add(tf, "index.json", oci.dumps({"schemaVersion": 2, "mediaType": oci.OCI_INDEX,
                                              "manifests": index}))


def save(store: ImageStore, refs: list[str], out: BinaryIO, format: str = "docker") -> None:
    if not refs:
        raise InvalidArgument("save needs at least one image")
    if format in ("docker", "docker-archive"):
        save_docker(store, refs, out)
    elif format in ("oci", "oci-archive"):
        save_oci(store, refs, out)
    else:
        raise InvalidArgument(f"unknown save format {format!r}", hint="use docker or oci")
    for img, _tags in _resolve_all(store, refs):
        emit_image("save", img.id, img.id, img.labels)


# ---------------------------------------------------------------- load


class _Loader:
    """Streams an archive's members into the content store; remembers names and small JSON files."""

    def __init__(self, store: ImageStore) -> None:
        self.store = store
        self.files: dict[str, str] = {}  # member name -> blob digest
        self.meta: dict[str, bytes] = {}  # small metadata files by name
        self.links: dict[str, str] = {}  # symlink/hardlink member -> target member name
        self.new_blobs: set[str] = set()

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        name = posixpath.normpath(m.name.lstrip("/")) if m.name.strip("/.") else ""
        if m.issym():
            self.links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), m.linkname))
            return
        if m.islnk():
            self.links[name] = posixpath.normpath(m.linkname.lstrip("/"))
            return
        if not m.isreg():
            return
        base = posixpath.basename(name)
        src = tf.extractfile(m)
        assert src is not None
        if name in _META or base in ("VERSION", "json"):
            if m.size > _SMALL:
                raise InvalidArgument(f"archive member {name!r} is too large ({m.size} bytes) for metadata")
            self.meta[name] = src.read()
            return
        expected = None
        if name.startswith("blobs/sha256/") and len(base) == 64:
            expected = "sha256:" + base
        if expected and self.store.content.has(expected):
            self.files[name] = expected
            return
        with self.store.content.writer(expected, m.size) as w:
            left = m.size
            while left:
                buf = src.read(min(CHUNK, left))
                if not buf:
                    raise EOFError(f"archive member {name!r} is truncated")
                w.write(buf)
                left -= len(buf)
            existed = self.store.content.has(w.current_digest)
            digest = w.commit()
        if not existed:
            self.new_blobs.add(digest)
        self.files[name] = digest

    def digest_of(self, name: str, what: str) -> str:
        name = posixpath.normpath(name.lstrip("/"))
        for _ in range(16):
            if name in self.files:
                return self.files[name]
            if name not in self.links:
                break
            name = self.links[name]
        raise NotFound(f"archive: {what} {name!r} is missing from the archive")

    def json_of(self, name: str, what: str) -> Any:
        data = self.meta.get(name)
        if data is None:
            data = self.store.content.read(self.digest_of(name, what))
        try:
            return json.loads(data)
        except ValueError as e:
            raise InvalidArgument(f"archive: {what} {name!r} is not valid JSON: {e}") from None


def _register_tags(store: ImageStore, manifest: bytes, tags: list[str]) -> Image:
    img = store.register(manifest, tags[0] if tags else None)
    for t in tags[1:]:
        store.tag(img.id, t, events=False)  # (a load has its own event, as docker's)
    return img


def _load_docker(ld: _Loader) -> list[tuple[Image, list[str]]]:
    entries = ld.json_of("manifest.json", "manifest.json")
    if not isinstance(entries, list):
        raise InvalidArgument("archive: manifest.json must be a list")
    out = []
    for n, e in enumerate(entries):
        if not isinstance(e, dict) or "Config" not in e or not isinstance(e.get("Layers"), list):
            raise InvalidArgument(f"archive: manifest.json[{n}] needs Config and Layers")
        config_digest = ld.digest_of(e["Config"], "config")
        config_bytes = ld.store.content.read(config_digest)
        oci.parse_config(config_bytes, f"archive config {e['Config']!r}")
        layers = []
        for name in e["Layers"]:
            digest = ld.digest_of(name, "layer")
            with ld.store.content.open(digest) as f:
                compression = detect(f.read(4))
            mt = {"": oci.OCI_LAYER, "gzip": oci.OCI_LAYER_GZIP, "zstd": oci.OCI_LAYER_ZSTD}[compression]
            layers.append({"mediaType": mt, "digest": digest, "size": ld.store.content.size(digest)})
        manifest = oci.dumps({"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                              "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest,
                                         "size": len(config_bytes)},
                              "layers": layers})
        tags = [str(t) for t in (e.get("RepoTags") or [])]
        for t in tags:
            parse(t)
        out.append((_register_tags(ld.store, manifest, tags), tags))
    return out


def _load_oci(ld: _Loader) -> list[tuple[Image, list[str]]]:
    layout = ld.json_of("oci-layout", "oci-layout")
    if not isinstance(layout, dict) or "imageLayoutVersion" not in layout:
        raise InvalidArgument("archive: oci-layout has no imageLayoutVersion")
    index = oci.parse_index(json.dumps(ld.json_of("index.json", "index.json")).encode(), "archive index.json")
    out = []
    for n, desc in enumerate(index["manifests"]):
        if desc["mediaType"] in oci.INDEX_TYPES:
            nested = oci.parse_index(ld.store.content.read(ld.digest_of(f"blobs/sha256/{desc['digest'][7:]}",
                                                                          "index")), f"index {desc['digest']}")
            desc = {**oci.select_platform(nested), "annotations": desc.get("annotations", {})}
        if desc["mediaType"] not in oci.MANIFEST_TYPES:
            raise InvalidArgument(f"archive index.json manifests[{n}]: unsupported media type "
                                  f"{desc['mediaType']!r}")
        manifest = ld.store.content.read(ld.digest_of(f"blobs/sha256/{desc['digest'][7:]}", "manifest"))
        ann = desc.get("annotations") or {}
        name = ann.get(CONTAINERD_NAME) or ""
        if not name and ann.get(REF_NAME) and ("/" in ann[REF_NAME] or ":" in ann[REF_NAME]):
            name = ann[REF_NAME]
        tags = [familiar(name)] if name else []
        out.append((_register_tags(ld.store, manifest, tags), tags))
    return out


def load(store: ImageStore, src: BinaryIO, what: str = "archive") -> list[str]:
    """Load every image in a docker-archive or OCI-layout tar (optionally compressed).

    Returns docker's messages ("Loaded image: busybox:latest" / "Loaded image ID: sha256:...").
    """
    peek = PeekReader(src)
    stream = decompressor(peek, detect(peek.peek(4)))
    ld = _Loader(store)
    before = {i.id: (list(i.repo_tags)) for i in store.list()}
    loaded: list[tuple[Image, list[str]]] = []
    try:
        try:
            with tarfile.open(mode="r|", fileobj=stream, bufsize=CHUNK) as tf:  # type: ignore[call-overload]
                for m in tf:
                    ld.member(tf, m)
        except (tarfile.TarError, EOFError, zlib.error) as e:
            raise InvalidArgument(f"{what}: corrupt or truncated tar: {e}") from None
        if "manifest.json" in ld.meta or "manifest.json" in ld.files:
            loaded = _load_docker(ld)
        elif "index.json" in ld.meta:
            loaded = _load_oci(ld)
        else:
            raise InvalidArgument(f"{what}: neither a docker-archive (manifest.json) nor an OCI layout "
                                  "(index.json + oci-layout)")
    except BaseException:
        for img, _tags in loaded:
            if img.id not in before:
                try:
                    store.remove(img.id, force=True, events=False)  # (a failed load announces nothing)
                except NotFound:
                    pass
        _drop_unreferenced(store, ld.new_blobs)
        raise
    _drop_unreferenced(store, ld.new_blobs)
    msgs = []
    for img, tags in loaded:
        emit_image("load", img.id, img.id, img.labels)
        if tags:
            msgs += [f"Loaded image: {t}" for t in tags]
        else:
            msgs.append(f"Loaded image ID: {img.id}")
    return msgs


def _drop_unreferenced(store: ImageStore, digests: set[str]) -> None:
    if not digests:
        return
    blobs, _ = store._references(store._read())
    for d in digests - blobs:
        try:
            store.content.delete(d)
        except NotFound:
            pass


# ---------------------------------------------------------------- import


def import_tar(store: ImageStore, src: BinaryIO, ref: str | None = None, changes: list[str] | None = None,
               message: str = "", source: str = "-", platform: str | None = None) -> Image:
    """`docker import`: a filesystem tar (plain/gzip/zstd) -> a single-layer image."""
    from runtime.images.changes import parse_changes
    from runtime.images.store import now_rfc3339

    if ref:
        parse(ref)
    parsed = parse_changes(changes)
    os_, arch = oci.host_platform()
    if platform:
        parts = platform.split("/")
        if len(parts) < 2:
            raise InvalidArgument(f"platform {platform!r} must be os/arch")
        os_, arch = parts[0], parts[1]
    peek = PeekReader(src)
    compression = detect(peek.peek(4))
    with store.content.writer() as w:
        hashing = HashingReader(decompressor(TeeReader(peek, w), compression))
        try:
            hashing.drain()
        except (EOFError, zlib.error) as e:
            raise InvalidArgument(f"import {source}: corrupt or truncated {compression or 'tar'} stream: {e}"
                                  ) from None
        existed = store.content.has(w.current_digest)
        digest = w.commit()
    created = now_rfc3339()
    config = {"architecture": arch, "os": os_, "created": created, "config": parsed,
              "history": [{"created": created, "created_by": "", "comment": message or f"Imported from {source}"}]}
    try:
        img = store.add_image(config, [(digest, hashing.digest)], ref)
    except BaseException:
        if not existed:
            _drop_unreferenced(store, {digest})
        raise
    if ref:
        emit_image("tag", img.id, familiar(ref), img.labels)
    emit_image("import", img.id, img.id, img.labels)
    return img


def open_input(path: str | None, stdin: BinaryIO) -> tuple[BinaryIO, Callable[[], None]]:
    """(stream, close) for `-i FILE` / `FILE` / `-` (stdin)."""
    if not path or path == "-":
        return stdin, lambda: None
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        raise NotFound(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InvalidArgument(f"{path} is a directory, not a tar file") from None
    return f, f.close

