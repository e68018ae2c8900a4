"""Registry credentials in Docker's config.json (`auths` with base64 "user:password", mode 0600).

The file is $DOCKER_CONFIG/config.json, else ~/.docker/config.json; keys other than the
entry being changed are kept as they are, so Docker and Wharf can share the file.
"""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

from runtime.errors import InvalidArgument
from runtime.util.fs import atomic_write

DOCKER_HUB_KEY = "https://index.docker.io/v1/"


def config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _load(path: Path) -> dict:
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise InvalidArgument(f"{path} is not valid JSON: {e}", hint="fix or remove the file") from None
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{path} must hold a JSON object")
    return doc


def server_key(domain: str) -> str:
    """The `auths` key Docker uses for a registry (Docker Hub keeps its legacy URL)."""
    return DOCKER_HUB_KEY if domain in ("docker.io", "index.docker.io", "registry-1.docker.io") else domain


def _matches(key: str, domain: str) -> bool:
    if key == server_key(domain):
        return True
    host = key.split("://", 1)[-1].split("/", 1)[0]
    return host == domain


def get(domain: str) -> tuple[str, str] | None:
    """(user, password) stored for `domain`, or None."""
    auths = _load(config_path()).get("auths") or {}
    for key, entry in auths.items():
        if not isinstance(entry, dict) or not _matches(key, domain):
            continue
        if entry.get("auth"):
            try:
                user, sep, password = base64.b64decode(entry["auth"]).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                raise InvalidArgument(f"{config_path()}: auths[{key!r}].auth is not base64 of user:password",
                                      hint=f"run `wharf login {domain}` again") from None
            if sep:
                return user, password
        if entry.get("username") and entry.get("password"):
            return entry["username"], entry["password"]
    return None


def store(domain: str, user: str, password: str) -> Path:
    path = config_path()
    doc = _load(path)
    auths = doc.setdefault("auths", {})
    for key in [k for k in auths if _matches(k, domain)]:
        del auths[key]
    auths[server_key(domain)] = {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}
    atomic_write(path, json.dumps(doc, indent="\t") + "\n", mode=0o600)
    return path


def erase(domain: str) -> bool:
    """Forget the credentials of `domain`; False when there were none."""
    path = config_path()
    doc = _load(path)
    auths = doc.get("auths") or {}
    keys = [k for k in auths if _matches(k, domain)]
    if not keys:
        return False
    for key in keys:
        del auths[key]
    atomic_write(path, json.dumps(doc, indent="\t") + "\n", mode=0o600)
    return True


def decode_registry_auth(value: str | None) -> tuple[str, str] | None:
    """The Engine API's X-Registry-Auth header (base64url JSON {"username", "password", ...}) ->
    (user, password), or None when it carries no password (empty, or an identity token only)."""
    if not value:
        return None
    try:
        doc = json.loads(base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("X-Registry-Auth is not base64url-encoded JSON") from None
    if not isinstance(doc, dict) or not doc.get("username") or not doc.get("password"):
        return None
    return str(doc["username"]), str(doc["password"])
