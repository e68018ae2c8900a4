"""Image references `[domain/]path[:tag][@digest]`, normalised the way Docker does.

    parse("busybox")            -> Reference("docker.io", "library/busybox", "latest"?, None)
    normalize("busybox")        -> "docker.io/library/busybox:latest"
    familiar("docker.io/library/busybox:latest") -> "busybox:latest"
    normalize("localhost:5000/a/b:1") -> "localhost:5000/a/b:1"

`parse` fills no default tag; `normalize` adds `:latest` when there is neither a tag nor a digest.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from runtime.errors import InvalidArgument

DEFAULT_DOMAIN = "docker.io"
LEGACY_DOMAIN = "index.docker.io"
OFFICIAL_PREFIX = "library/"
DEFAULT_TAG = "latest"

_ALNUM = r"[a-z0-9]+"
_SEP = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = rf"{_ALNUM}(?:{_SEP}{_ALNUM})*"
_PATH = re.compile(rf"^{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*$")
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(rf"^(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[0-9a-fA-F:.]+\])(?::[0-9]+)?$")
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_DIGEST = re.compile(r"^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[0-9a-fA-F]{32,}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


@dataclass(frozen=True)
class Reference:
    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    @property
    def name(self) -> str:
        """`domain/path` (the repository)."""
        return f"{self.domain}/{self.path}"

    def __str__(self) -> str:
        s = self.name
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def _bad(ref: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"invalid reference {ref!r}: {why}",
                           hint="expected [registry/]name[:tag][@sha256:digest], e.g. busybox:latest")


def parse(ref: str) -> Reference:
    """Parse and normalise the name part (docker.io/library/ added); InvalidArgument when it does not parse."""
    if not isinstance(ref, str) or not ref:
        raise _bad(str(ref), "empty reference")
    if _HEX64.match(ref):
        raise _bad(ref, "cannot use a 64-character hexadecimal string as a repository name")
    rest, digest = ref, None
    if "@" in rest:
        rest, digest = rest.split("@", 1)
        if not _DIGEST.match(digest):
            raise _bad(ref, f"digest {digest!r} is not algorithm:hex")
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise _bad(ref, f"digest {digest!r}: only sha256:<64 hex> is supported")
        digest = digest.lower()
    tag = None
    slash = rest.rfind("/")
    colon = rest.rfind(":")
    if colon > slash:
        rest, tag = rest[:colon], rest[colon + 1:]
        if not _TAG.match(tag):
            raise _bad(ref, f"tag {tag!r} is not valid (letters, digits, '_', '.', '-'; at most 128)")
    if not rest:
        raise _bad(ref, "missing repository name")
    first, _, remainder = rest.partition("/")
    if remainder and (any(c in first for c in ".:") or first == "localhost" or first.lower() != first):
        domain, path = first, remainder
        if not _DOMAIN.match(domain):
            raise _bad(ref, f"registry {domain!r} is not a valid host[:port]")
    else:
        domain, path = DEFAULT_DOMAIN, rest
    if domain == LEGACY_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    if path.lower() != path:
        raise _bad(ref, "repository name must be lowercase")
    if not _PATH.match(path):
        raise _bad(ref, f"repository name {path!r} has invalid characters")
    if len(domain) + 1 + len(path) > 255:
        raise _bad(ref, "repository name is longer than 255 characters")
    return Reference(domain, path, tag, digest)


def with_default_tag(r: Reference) -> Reference:
    if r.tag or r.digest:
        return r
    return Reference(r.domain, r.path, DEFAULT_TAG, None)


def normalize(ref: str) -> str:
    """`busybox` -> `docker.io/library/busybox:latest` (`:latest` only when there is no digest)."""
    return str(with_default_tag(parse(ref)))


def familiar_name(name: str) -> str:
    """`docker.io/library/busybox` -> `busybox`; other registries unchanged."""
    if name.startswith(DEFAULT_DOMAIN + "/"):
        name = name[len(DEFAULT_DOMAIN) + 1:]
        if name.startswith(OFFICIAL_PREFIX) and name.count("/") == 1:
            name = name[len(OFFICIAL_PREFIX):]
    return name


def familiar(ref: str) -> str:
    """The short form Docker shows: `docker.io/library/busybox:latest` -> `busybox:latest`."""
    r = with_default_tag(parse(ref))
    s = familiar_name(r.name)
    if r.tag:
        s += f":{r.tag}"
    if r.digest:
        s += f"@{r.digest}"
    return s


def is_image_id(ref: str) -> bool:
    """True for `sha256:<64 hex>` or bare 64 hex (a full image id)."""
    return bool(_HEX64.match(ref.removeprefix("sha256:"))) and (ref.startswith("sha256:") or len(ref) == 64)
