"""Manifest media types and what a manifest refers to (shared by client and server)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = ("application/vnd.docker.distribution.manifest.v1+json",
                  "application/vnd.docker.distribution.manifest.v1+prettyjws")

IMAGE_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
ALL_TYPES = IMAGE_TYPES + INDEX_TYPES
ACCEPT = ", ".join(ALL_TYPES)

# Layers a registry never stores (Windows base layers): they carry `urls` instead.
FOREIGN_LAYERS = ("application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
                  "application/vnd.oci.image.layer.nondistributable.v1.tar",
                  "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
                  "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd")


class ManifestError(ValueError):
    """The bytes are not a manifest this code understands (message says why)."""


@dataclass
class Manifest:
    media_type: str
    doc: dict[str, Any]
    blobs: list[dict[str, Any]] = field(default_factory=list)      # config + layers (image manifests)
    manifests: list[dict[str, Any]] = field(default_factory=list)  # children (indexes)
    subject: dict[str, Any] | None = None

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def parse(data: bytes, content_type: str | None = None) -> Manifest:
    """Parse and check a manifest; the media type comes from the body, else `content_type`."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as e:
        raise ManifestError(f"not valid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise ManifestError("not a JSON object")
    declared = doc.get("mediaType")
    ctype = (content_type or "").split(";", 1)[0].strip()
    if ctype in DOCKER_SCHEMA1 or declared in DOCKER_SCHEMA1 or doc.get("schemaVersion") == 1:
        raise ManifestError("Docker schema 1 manifests are not supported")
    if doc.get("schemaVersion") != 2:
        raise ManifestError("schemaVersion must be 2")
    if declared is not None and not isinstance(declared, str):
        raise ManifestError("mediaType must be a string")
    media_type = declared or (ctype if ctype in ALL_TYPES else None)
    if media_type is None:
        media_type = OCI_INDEX if "manifests" in doc else OCI_MANIFEST
    if declared and ctype and ctype in ALL_TYPES and ctype != declared:
        raise ManifestError(f"mediaType {declared} does not match Content-Type {ctype}")
    m = Manifest(media_type=media_type, doc=doc)
    if media_type in INDEX_TYPES:
        m.manifests = _descriptors(doc.get("manifests"), "manifests")
    elif media_type in IMAGE_TYPES:
        config = doc.get("config")
        m.blobs = _descriptors([config], "config") + _descriptors(doc.get("layers"), "layers")
    else:
        raise ManifestError(f"unsupported manifest media type {media_type}")
    if doc.get("subject") is not None:
        m.subject = _descriptors([doc["subject"]], "subject")[0]
    return m


def _descriptors(items: Any, where: str) -> list[dict[str, Any]]:
    from runtime.registry.digests import is_digest

    if not isinstance(items, list):
        raise ManifestError(f"{where} must be a list of descriptors")
    for i, d in enumerate(items):
        if not isinstance(d, dict) or not isinstance(d.get("digest"), str) or not is_digest(d["digest"]):
            raise ManifestError(f"{where}[{i}]: a descriptor needs a valid digest")
        if not isinstance(d.get("size"), int) or d["size"] < 0:
            raise ManifestError(f"{where}[{i}]: a descriptor needs a size")
        if not isinstance(d.get("mediaType", ""), str):
            raise ManifestError(f"{where}[{i}]: mediaType must be a string")
    return items


def stored_blobs(m: Manifest) -> list[dict[str, Any]]:
    """The blobs a registry must hold for `m` (foreign layers excluded)."""
    return [d for d in m.blobs if d.get("mediaType") not in FOREIGN_LAYERS]
