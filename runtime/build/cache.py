"""The build cache: step key -> what the step produced (under paths.root()/build-cache).

A step's key is sha256 over (its parent's key, the instruction after substitution, and
for ADD/COPY the digest of its sources); the first key of a stage is derived from the
base image id, and each following one from the step before and the time that step was
made (so re-running a step re-runs what comes after it). An entry records the step's time (so a fully cached build makes the same
image id) and its layer (blob digest, diff_id) or none. One small JSON file per key,
written atomically; an entry whose layer blob has gone is a miss.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime import paths
from runtime.util.fs import read_json


def write_json(path: Path, obj: Any) -> None:
    """Atomic like util.fs.atomic_write_json, with a temp name unique per call: parallel builds
    in one process (threads share the pid that names util's temp file) may write the same entry."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        with open(tmp, "w") as f:
            json.dump(obj, f, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def step_key(parent: str, *parts: Any) -> str:
    h = hashlib.sha256(json.dumps([parent, *parts], sort_keys=True, separators=(",", ":")).encode())
    return h.hexdigest()


def rfc3339(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1e9):09d}Z"


@dataclass
class Entry:
    created: str
    layer: tuple[str, str] | None  # (blob digest, diff_id)


class BuildCache:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.root() / "build-cache"

    def _path(self, key: str) -> Path:
        return self.root / f"{key}.json"

    def get(self, key: str, content: Any) -> Entry | None:
        try:
            data = read_json(self._path(key))
        except ValueError:  # a torn entry (power loss) is a miss
            return None
        if not isinstance(data, dict) or "created" not in data:
            return None
        layer = data.get("layer")
        if layer is not None:
            if not content.has(layer[0]):
                return None
            layer = (layer[0], layer[1])
        return Entry(created=data["created"], layer=layer)

    def put(self, key: str, entry: Entry) -> None:
        write_json(self._path(key), {"created": entry.created, "layer": list(entry.layer) if entry.layer else None})

    def prune(self) -> int:
        """Remove every entry (the layers stay in the image store until their images go)."""
        n = 0
        for p in self.root.glob("*.json"):
            p.unlink(missing_ok=True)
            n += 1
        for p in self.root.glob("contexts/*.json"):  # remembered file hashes of build contexts
            p.unlink(missing_ok=True)
        return n
