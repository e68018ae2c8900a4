"""Content digests (`algorithm:hex`) as the OCI image spec defines them."""

from __future__ import annotations

import hashlib
import re

_DIGEST = re.compile(r"^(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")


def is_digest(value: str) -> bool:
    return bool(_DIGEST.match(value))


def hasher(digest: str | None = None):
    """A hashlib object for the algorithm of `digest` (sha256 when None)."""
    return hashlib.new(digest.split(":", 1)[0] if digest else "sha256")


def of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def short(digest: str) -> str:
    """The 12 hex digits Docker shows for a layer."""
    return digest.split(":", 1)[-1][:12]
