"""Persistent network namespaces: a file under <run>/netns/<id> with the netns bind-mounted on it."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from runtime import paths
from runtime.errors import RuntimeFailure
from runtime.network import links, rtnl


def netns_dir() -> Path:
    return paths.run_dir() / "netns"


def path_for(container_id: str) -> Path:
    return netns_dir() / container_id


def is_netns(path: str | os.PathLike[str]) -> bool:
    """Whether a netns is bind-mounted on `path` (nsfs has its own device)."""
    try:
        return os.stat(path).st_dev != os.stat(os.path.dirname(os.fspath(path))).st_dev
    except FileNotFoundError:
        return False


def create(container_id: str) -> str:
    """A new netns with lo up, bind-mounted on <run>/netns/<id> (idempotent: an existing one is kept)."""
    path = path_for(container_id)
    if is_netns(path):
        return str(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDONLY | os.O_CREAT | os.O_CLOEXEC, 0o444)
    os.close(fd)
    try:
        rtnl.new_netns_thread(str(path), links.lo_up)
    except OSError as e:
        delete(container_id)
        raise RuntimeFailure(f"cannot create a network namespace for {container_id[:12]}: {e.strerror or e}") from None
    except BaseException:
        delete(container_id)
        raise
    return str(path)


def delete(container_id: str) -> None:
    """Unmount and remove the netns file (idempotent)."""
    from runtime.linux.mount import MNT_DETACH, umount

    path = path_for(container_id)
    while is_netns(path):
        try:
            umount(path, MNT_DETACH)
        except OSError:
            break
    with contextlib.suppress(FileNotFoundError):
        path.unlink()


def leftovers() -> list[str]:
    """Container ids that have a netns file."""
    try:
        return [p.name for p in netns_dir().iterdir()]
    except FileNotFoundError:
        return []
