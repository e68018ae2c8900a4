"""Named and anonymous volumes (local driver): paths.root()/volumes/<name>/{_data,volume.json}.

A new volume is seeded from the image content at its mount point the first time a
container mounts it (Docker's copy-up), unless the mount says nocopy.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path

from runtime import paths
from runtime.engine import Filters, MountSpec, VolumeInfo
from runtime.errors import Conflict, InvalidArgument, NotFound
from runtime.util.fs import atomic_write_json, file_lock, read_json
from runtime.util.labels import match_labels

ANON_LABEL = "com.docker.volume.anonymous"


def valid_volume_name(name: str) -> str:
    ok = len(name) >= 2 and name[0].isalnum() and all(c.isalnum() or c in "_.-" for c in name)
    if not ok:
        raise InvalidArgument(f"invalid volume name {name!r}",
                              hint="use [a-zA-Z0-9][a-zA-Z0-9_.-]+ (at least 2 characters)")
    return name


class VolumeStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.root() / "volumes"

    def _meta(self, name: str) -> Path:
        return self.root / name / "volume.json"

    def _info(self, meta: dict) -> VolumeInfo:
        return VolumeInfo(name=meta["name"], driver=meta.get("driver", "local"),
                          mountpoint=str(self.root / meta["name"] / "_data"), labels=meta.get("labels", {}),
                          options=meta.get("options", {}), created=meta.get("created", ""))

    def create(self, name: str | None = None, driver: str = "local", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None, anonymous: bool = False) -> VolumeInfo:
        from runtime.containers.store import now_rfc3339

        if driver not in ("local", ""):
            raise InvalidArgument(f"volume driver {driver!r} is not supported", hint="use the local driver")
        labels = dict(labels or {})
        if not name:
            name, anonymous = secrets.token_hex(32), True
        valid_volume_name(name)
        if anonymous:
            labels.setdefault(ANON_LABEL, "")
        with file_lock(self.root / ".lock"):
            meta = read_json(self._meta(name))
            if meta is not None:
                return self._info(meta)
            (self.root / name / "_data").mkdir(parents=True, exist_ok=True)
            meta = {"name": name, "driver": "local", "labels": labels, "options": dict(options or {}),
                    "created": now_rfc3339(), "seeded": False}
            atomic_write_json(self._meta(name), meta)
        from runtime.util.events import emit

        emit("volume", "create", name, {"driver": "local"})
        return self._info(meta)

    def inspect(self, name: str) -> VolumeInfo:
        meta = read_json(self._meta(name)) if name and "/" not in name else None
        if meta is None:
            raise NotFound(f"no such volume: {name}", hint="see `wharf volume ls`")
        return self._info(meta)

    def list(self, filters: Filters | None = None) -> list[VolumeInfo]:
        out = []
        try:
            names = sorted(os.listdir(self.root))
        except FileNotFoundError:
            return []
        used = self.in_use() if filters and "dangling" in filters else {}
        for n in names:
            if n.startswith("."):
                continue
            meta = read_json(self._meta(n))
            if meta is None:
                continue
            info = self._info(meta)
            if filters and not self._match(info, filters, used):
                continue
            out.append(info)
        return out

    def _match(self, info: VolumeInfo, filters: Filters, used: dict[str, list[str]]) -> bool:
        for key, wanted in filters.items():
            if key == "name" and not any(w in info.name for w in wanted):
                return False
            if key == "driver" and info.driver not in wanted:
                return False
            if key == "label" and not match_labels(info.labels, wanted):
                return False
            if key == "dangling":
                dangling = info.name not in used
                if any((w.lower() in ("1", "true")) != dangling for w in wanted):
                    return False
        return True

    def in_use(self) -> dict[str, list[str]]:
        """volume name -> ids of containers that mount it."""
        from runtime.containers.store import ContainerStore

        cs = ContainerStore()
        used: dict[str, list[str]] = {}
        for cid in cs.ids():
            rec = read_json(cs.dir(cid) / "config.json") or {}
            for m in rec.get("mounts", []):
                if m.get("type") == "volume" and m.get("source"):
                    used.setdefault(m["source"], []).append(cid)
        return used

    def remove(self, name: str, force: bool = False) -> None:
        self.inspect(name)
        users = self.in_use().get(name)
        if users:
            raise Conflict(f"volume {name} is in use by container {users[0][:12]}",
                           hint="remove the container first (`wharf rm`), or use `wharf rm -v` for anonymous volumes")
        with file_lock(self.root / ".lock"):
            shutil.rmtree(self.root / name, ignore_errors=True)
        from runtime.util.events import emit

        emit("volume", "destroy", name, {"driver": "local"})

    def prune(self, all: bool = False, filters: Filters | None = None) -> list[str]:
        used = self.in_use()
        gone = []
        for info in self.list(filters):
            if info.name in used or (not all and ANON_LABEL not in info.labels):
                continue
            self.remove(info.name)
            gone.append(info.name)
        return gone

    def prepare_mounts(self, mounts: list[MountSpec], rootfs: Path, container_id: str = "") -> list[MountSpec]:
        """Volume mounts -> bind mounts of their _data (created and seeded as needed). With the
        container's id: Docker's volume `mount` events (see mount_events)."""
        out = []
        used = []
        for m in mounts:
            if m.type != "volume":
                out.append(m)
                continue
            info = self.create(m.source, labels=m.volume_labels)
            data = Path(info.mountpoint)
            meta = read_json(self._meta(info.name)) or {}
            if not meta.get("seeded"):
                if not m.volume_nocopy:
                    _seed(rootfs, m.target, data)
                meta["seeded"] = True
                atomic_write_json(self._meta(info.name), meta)
            out.append(MountSpec(type="bind", target=m.target, source=str(data), read_only=m.read_only,
                                 propagation=m.propagation))
            used.append((info.name, m))
        if container_id and used:
            mount_events(container_id, used)
        return out


def _mounts_file(container_id: str) -> str:
    return os.path.join(paths.run_str(), "volume-mounts", container_id)


def mount_events(container_id: str, used: list[tuple[str, MountSpec]]) -> None:
    """A `mount` event per named volume a container starts with (attributes as Docker's: driver,
    container, destination, read/write, propagation); the names are kept in the run dir until
    unmount_events."""
    from runtime.util.events import emit

    for name, m in used:
        emit("volume", "mount", name, {"driver": "local", "container": container_id, "destination": m.target,
                                       "read/write": "false" if m.read_only else "true",
                                       "propagation": m.propagation or ""})
    path = _mounts_file(container_id)
    try:  # (like the log itself: never fails the start)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write("\n".join(name for name, _ in used))
    except OSError:
        pass


def unmount_events(container_id: str) -> None:
    """The `unmount` events of a container's volumes once it is down (each start's mounts once)."""
    from runtime.util.events import emit

    path = _mounts_file(container_id)
    try:
        with open(path) as f:
            names = f.read().split()
        os.unlink(path)
    except FileNotFoundError:
        return
    for name in names:
        emit("volume", "unmount", name, {"driver": "local", "container": container_id})


def _seed(rootfs: Path, target: str, data: Path) -> None:
    from runtime.containers.copy import resolve_in_root

    src = resolve_in_root(str(rootfs), target)
    if not os.path.isdir(src) or any(data.iterdir()):
        return
    shutil.copytree(src, data, symlinks=True, dirs_exist_ok=True)
    st = os.stat(src)
    os.chown(data, st.st_uid, st.st_gid)
    os.chmod(data, st.st_mode & 0o7777)
