"""Where a registry is and how to talk to it: Docker Hub's API host, insecure registries, mirrors.

Insecure registries (plain HTTP allowed, certificates not verified): localhost, 127.0.0.0/8, ::1,
the comma-separated WHARF_INSECURE_REGISTRIES (host[:port] or CIDR), and "insecure-registries" in
$WHARF_REGISTRIES_CONFIG (default /etc/wharf/registries.json). Mirrors of Docker Hub, tried first
by pull: WHARF_REGISTRY_MIRRORS (comma-separated URLs) and "registry-mirrors" in the same file.
"""

from __future__ import annotations

import ipaddress
import json
import os
from typing import Any

from runtime.errors import InvalidArgument


def _config() -> dict[str, Any]:
    path = os.environ.get("WHARF_REGISTRIES_CONFIG", "/etc/wharf/registries.json")
    try:
        with open(path) as f:
            doc = json.load(f)
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise InvalidArgument(f"{path} is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k, []), list)
                                            for k in ("insecure-registries", "registry-mirrors")):
        raise InvalidArgument(f"{path}: expected JSON like "
                              '{"insecure-registries": ["host:port"], "registry-mirrors": ["http://host:port"]}')
    return doc


def _env_list(name: str) -> list[str]:
    return [s.strip() for s in os.environ.get(name, "").split(",") if s.strip()]


def api_host(domain: str) -> str:
    return "registry-1.docker.io" if domain in ("docker.io", "index.docker.io") else domain


def _insecure_list() -> list[str]:
    return _env_list("WHARF_INSECURE_REGISTRIES") + [str(x) for x in _config().get("insecure-registries", [])]


def is_insecure(domain: str) -> bool:
    host = domain[1:domain.index("]")] if domain.startswith("[") else domain.rsplit(":", 1)[0]
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and ip.is_loopback:
        return True
    for entry in _insecure_list():
        if entry in (domain, host):
            return True
        if ip is not None and "/" in entry:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:
                continue
    return False


def registry_mirrors() -> list[tuple[str, str | None]]:
    """Docker Hub mirrors as (domain, scheme or None): "http://127.0.0.1:5001" -> ("127.0.0.1:5001", "http")."""
    out = []
    for url in _env_list("WHARF_REGISTRY_MIRRORS") + [str(x) for x in _config().get("registry-mirrors", [])]:
        scheme, sep, rest = url.partition("://")
        domain = (rest if sep else url).split("/", 1)[0]
        if not domain:
            raise InvalidArgument(f"invalid registry mirror {url!r}", hint="use a URL like https://mirror.example:5000")
        out.append((domain, scheme if sep and scheme in ("http", "https") else None))
    return out
