"""Network state on disk: <root>/network/networks/<id>.json, <root>/network/endpoints/<container>.json,
<root>/network/released/<container>.json (endpoints whose veths the kernel is still destroying).

Every mutation holds `lock()` (one flock per WHARF_ROOT); files are written atomically.
An endpoint record is written before the kernel objects it names exist, so a crash
leaves a record that release() can clean up from.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from runtime import paths
from runtime.util.fs import atomic_write_json, file_lock, read_json

HOST_LOCK = "/run/lock/wharf-network.lock"  # host-wide: subnets and host ports are shared by all roots


class NetStore:
    def __init__(self, root: Path | None = None) -> None:
        self.dir = Path(root) if root is not None else paths.root() / "network"

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        with file_lock(self.dir / "lock"):
            yield

    @staticmethod
    @contextlib.contextmanager
    def host_lock() -> Iterator[None]:
        with file_lock(HOST_LOCK):
            yield

    # networks
    def networks(self) -> list[dict[str, Any]]:
        return self._all(self.dir / "networks")

    def save_network(self, rec: dict[str, Any]) -> None:
        atomic_write_json(self.dir / "networks" / f"{rec['id']}.json", rec)

    def delete_network(self, net_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "networks" / f"{net_id}.json").unlink()

    # endpoints (one record per container, all its networks and ports)
    def endpoints(self) -> list[dict[str, Any]]:
        return self._all(self.dir / "endpoints")

    def endpoint(self, container_id: str) -> dict[str, Any] | None:
        return read_json(self.dir / "endpoints" / f"{container_id}.json")

    def save_endpoint(self, rec: dict[str, Any]) -> None:
        atomic_write_json(self.dir / "endpoints" / f"{rec['id']}.json", rec)

    def delete_endpoint(self, container_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "endpoints" / f"{container_id}.json").unlink()

    # released endpoints: the record moves here on release and stays while its veths exist
    def release_endpoint(self, container_id: str) -> None:
        """Move the endpoint record to released/ (a rename: no fsync on the hot path); its mtime
        becomes the time of release."""
        dest = self.dir / "released" / f"{container_id}.json"
        try:
            os.rename(self.dir / "endpoints" / f"{container_id}.json", dest)
        except FileNotFoundError:
            if not (self.dir / "endpoints").exists():
                return
            dest.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.rename(self.dir / "endpoints" / f"{container_id}.json", dest)
            except FileNotFoundError:
                return
        os.utime(dest)

    def released(self) -> list[tuple[dict[str, Any], float]]:
        """(record, time of release) of every released endpoint."""
        out = []
        for rec in self._all(self.dir / "released"):
            with contextlib.suppress(FileNotFoundError):
                out.append((rec, os.stat(self.dir / "released" / f"{rec['id']}.json").st_mtime))
        return out

    def forget_released(self, container_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / "released" / f"{container_id}.json").unlink()

    @staticmethod
    def _all(d: Path) -> list[dict[str, Any]]:
        out = []
        try:
            names = sorted(os.listdir(d))
        except FileNotFoundError:
            return []
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                with contextlib.suppress(FileNotFoundError, json.JSONDecodeError):
                    with open(d / name, "rb") as f:
                        out.append(json.load(f))
        return out
