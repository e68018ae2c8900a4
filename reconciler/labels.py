"""Ownership labels and the config hash (DESIGN decision 6) — the one place that knows them."""

from __future__ import annotations

import hashlib
import json
from typing import Any

PROJECT = "io.wharf.project"
SERVICE = "io.wharf.service"
REPLICA = "io.wharf.replica"
CONFIG_HASH = "io.wharf.config-hash"
NETWORK = "io.wharf.network"
VOLUME = "io.wharf.volume"
FILES_HASH = "io.wharf.files-hash"  # env/config/secret file contents: names the "why" of a recreate

MANAGED = (PROJECT, SERVICE, REPLICA, CONFIG_HASH, FILES_HASH)


def project_filter(project: str) -> dict[str, list[str]]:
    return {"label": [f"{PROJECT}={project}"]}


def digest(data: Any) -> str:
    """sha256 of a canonical JSON form (sorted keys, no whitespace)."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def short(value: str, n: int = 12) -> str:
    return value.removeprefix("sha256:")[:n] if value else "none"
