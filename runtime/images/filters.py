"""`wharf images --filter` / `image prune --filter`: dangling=, reference=, label=, before=, since=."""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from runtime.errors import InvalidArgument
from runtime.images.views import parse_time
from runtime.util.labels import match_labels

if TYPE_CHECKING:
    from runtime.images.store import Image

KNOWN = ("dangling", "reference", "label", "label!", "before", "since", "until")


def parse_filters(items: list[str] | None) -> dict[str, list[str]]:
    """["dangling=true", "label=a=b"] -> {"dangling": ["true"], "label": ["a=b"]}."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        key, eq, value = item.partition("=")
        key = key.strip().lower()
        if not eq or key not in KNOWN:
            raise InvalidArgument(f"invalid filter {item!r}", hint=f"supported: {', '.join(k + '=' for k in KNOWN)}")
        out.setdefault(key, []).append(value)
    return out


def _label_ok(img: Image, want: str) -> bool:
    return match_labels(img.labels, [want])


def _ref_ok(img: Image, pattern: str) -> bool:
    for t in img.repo_tags:
        name = t.rsplit(":", 1)[0]
        if fnmatch.fnmatchcase(t, pattern) or fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def matches(img: Image, filters: dict[str, list[str]], prune: bool = False, store_images: list[Image] | None = None
            ) -> bool:
    for value in filters.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise InvalidArgument(f"invalid filter 'dangling={value}'", hint="use dangling=true or dangling=false")
        dangling = not img.repo_tags
        if dangling != (value.lower() in ("true", "1")):
            return False
    refs = filters.get("reference", [])
    if refs and not any(_ref_ok(img, p) for p in refs):
        return False
    if not all(_label_ok(img, w) for w in filters.get("label", [])):
        return False
    if any(_label_ok(img, w) for w in filters.get("label!", [])):
        return False
    for value in filters.get("until", []):
        created = parse_time(img.created)
        if created is None or created.timestamp() >= _until(value):
            return False
    for key in ("before", "since"):
        for value in filters.get(key, []):
            other = next((i for i in store_images or [] if value in i.repo_tags or i.id.endswith(value)
                          or i.id[7:].startswith(value)), None)
            if other is None:
                raise InvalidArgument(f"filter {key}={value}: no such image")
            if (key == "before" and not img.created < other.created) or (
                    key == "since" and not img.created > other.created):
                return False
    return True


def _until(value: str) -> float:
    """A unix time from `until=`: a timestamp, an RFC 3339 date, or a duration before now (10m, 24h, 1h30m)."""
    import re
    import time

    try:
        return float(value)
    except ValueError:
        pass
    t = parse_time(value)
    if t is not None:
        return t.timestamp()
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", value)
    if not value or parts is None:
        raise InvalidArgument(f"invalid filter 'until={value}'", hint="use a timestamp, RFC 3339 date or 24h/10m/30s")
    h, m, sec = (int(x or 0) for x in parts.groups())
    return time.time() - (h * 3600 + m * 60 + sec)
