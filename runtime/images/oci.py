"""OCI image-spec documents (manifest, index, config) and the Docker schema2 equivalents.

Documents stay plain dicts (they are hashed byte-for-byte); the functions here parse
and validate them, raising InvalidArgument that names the object and the field.
"""

from __future__ import annotations

import json
from typing import Any

from runtime.errors import InvalidArgument
from runtime.images.content import check_digest

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYOUT_VERSION = "1.0.0"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_FOREIGN = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)
CONFIG_TYPES = (OCI_CONFIG, DOCKER_CONFIG)
# layer media type -> compression ("" = none, "gzip", "zstd")
LAYER_TYPES = {
    OCI_LAYER: "", OCI_LAYER_GZIP: "gzip", OCI_LAYER_ZSTD: "zstd",
    OCI_LAYER_NONDIST: "", OCI_LAYER_NONDIST_GZIP: "gzip",
    DOCKER_LAYER: "", DOCKER_LAYER_GZIP: "gzip", DOCKER_LAYER_FOREIGN: "gzip",
}
# docker schema2 -> OCI equivalents (for writing OCI layouts)
TO_OCI = {DOCKER_MANIFEST: OCI_MANIFEST, DOCKER_MANIFEST_LIST: OCI_INDEX, DOCKER_CONFIG: OCI_CONFIG,
          DOCKER_LAYER: OCI_LAYER, DOCKER_LAYER_GZIP: OCI_LAYER_GZIP, DOCKER_LAYER_FOREIGN: OCI_LAYER_GZIP}


def dumps(doc: Any) -> bytes:
    """Canonical JSON bytes for documents Wharf writes (sorted keys, compact)."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{what} is not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{what} must be a JSON object")
    return doc


def media_type_of(data: bytes, what: str = "manifest") -> str:
    """The mediaType of a manifest or index, guessed from its fields when absent (OCI allows that)."""
    doc = _load(data, what)
    mt = doc.get("mediaType")
    if mt:
        return mt
    if "manifests" in doc:
        return OCI_INDEX
    if "config" in doc and "layers" in doc:
        return OCI_MANIFEST
    raise InvalidArgument(f"{what} has no mediaType and is neither a manifest nor an index")


def check_descriptor(d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise InvalidArgument(f"{where} must be a descriptor object")
    for key in ("mediaType", "digest", "size"):
        if key not in d:
            raise InvalidArgument(f"{where}: descriptor has no {key!r}")
    check_digest(d["digest"], f"{where}.digest")
    if not isinstance(d["size"], int) or d["size"] < 0:
        raise InvalidArgument(f"{where}.size must be a non-negative integer")
    return d


def parse_manifest(data: bytes, what: str = "manifest") -> dict[str, Any]:
    """An image manifest (OCI or Docker schema2), validated; an index or unknown type is InvalidArgument."""
    doc = _load(data, what)
    mt = doc.get("mediaType") or (OCI_MANIFEST if "layers" in doc else "")
    if mt in INDEX_TYPES or (not mt and "manifests" in doc):
        raise InvalidArgument(f"{what} is an image index (multi-platform), not an image manifest",
                              hint="select one platform's manifest from the index")
    if mt not in MANIFEST_TYPES:
        raise InvalidArgument(f"{what}: unsupported media type {mt!r}",
                              hint=f"supported: {', '.join(MANIFEST_TYPES)}")
    if doc.get("schemaVersion") != 2:
        raise InvalidArgument(f"{what}: schemaVersion must be 2, got {doc.get('schemaVersion')!r}")
    cfg = check_descriptor(doc.get("config"), f"{what}.config")
    if cfg["mediaType"] not in CONFIG_TYPES:
        raise InvalidArgument(f"{what}.config: unsupported media type {cfg['mediaType']!r}",
                              hint=f"supported: {', '.join(CONFIG_TYPES)}")
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument(f"{what}.layers must be a list")
    for i, layer in enumerate(layers):
        check_descriptor(layer, f"{what}.layers[{i}]")
        if layer["mediaType"] not in LAYER_TYPES:
            raise InvalidArgument(f"{what}.layers[{i}]: unsupported layer media type {layer['mediaType']!r}",
                                  hint="supported: OCI/Docker tar, tar+gzip, tar+zstd")
    return doc


def parse_index(data: bytes, what: str = "index") -> dict[str, Any]:
    doc = _load(data, what)
    mt = doc.get("mediaType") or OCI_INDEX
    if mt not in INDEX_TYPES:
        raise InvalidArgument(f"{what}: unsupported media type {mt!r}", hint=f"expected {OCI_INDEX}")
    ms = doc.get("manifests")
    if not isinstance(ms, list):
        raise InvalidArgument(f"{what}.manifests must be a list")
    for i, m in enumerate(ms):
        check_descriptor(m, f"{what}.manifests[{i}]")
    return doc


def parse_config(data: bytes, what: str = "image config") -> dict[str, Any]:
    doc = _load(data, what)
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise InvalidArgument(f"{what}: rootfs.diff_ids is missing")
    for i, d in enumerate(rootfs["diff_ids"]):
        check_digest(d, f"{what}.rootfs.diff_ids[{i}]")
    if "config" in doc and doc["config"] is not None and not isinstance(doc["config"], dict):
        raise InvalidArgument(f"{what}.config must be an object")
    return doc


def host_platform() -> tuple[str, str]:
    import platform

    arch = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386", "ppc64le": "ppc64le",
            "s390x": "s390x", "riscv64": "riscv64"}.get(platform.machine(), platform.machine())
    return "linux", arch


def select_platform(index: dict[str, Any], platform: str | None = None) -> dict[str, Any]:
    """The descriptor in `index` for `platform` ("os/arch[/variant]", default: this host)."""
    want_os, want_arch = host_platform()
    variant = None
    if platform:
        parts = platform.split("/")
        if len(parts) < 2:
            raise InvalidArgument(f"platform {platform!r} must be os/arch[/variant]")
        want_os, want_arch = parts[0], parts[1]
        variant = parts[2] if len(parts) > 2 else None
    for m in index.get("manifests", []):
        p = m.get("platform") or {}
        if p.get("os") == want_os and p.get("architecture") == want_arch and (
                variant is None or p.get("variant") == variant):
            return m
    have = ", ".join(f"{(m.get('platform') or {}).get('os')}/{(m.get('platform') or {}).get('architecture')}"
                     for m in index.get("manifests", []))
    raise InvalidArgument(f"no manifest for platform {want_os}/{want_arch} in the index (has: {have or 'none'})")


def chain_ids(diff_ids: list[str]) -> list[str]:
    """OCI ChainIDs: chain[0] = diff[0]; chain[n] = sha256(chain[n-1] + " " + diff[n])."""
    import hashlib

    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out
