"""`wharf info` / `system df` figures (Docker's field names)."""

from __future__ import annotations

import os
import platform
from typing import Any

from runtime import __version__, paths


def _du(path: str) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_blocks * 512
            except OSError:
                pass
    return total


def info(engine) -> dict[str, Any]:
    cs = engine.containers.list(all=True)
    try:
        images = len(engine.images.list())
    except Exception:  # noqa: BLE001 - images area may be absent or broken; info still answers
        images = 0
    from runtime.containers.launch import default_runtime

    return {
        "ID": "wharf", "Containers": len(cs),
        "ContainersRunning": sum(c.state.status == "running" for c in cs),
        "ContainersPaused": sum(c.state.status == "paused" for c in cs),
        "ContainersStopped": sum(c.state.status not in ("running", "paused") for c in cs),
        "Images": images, "Driver": "overlay2", "LoggingDriver": "json-file",
        "CgroupDriver": "cgroupfs",
        "CgroupVersion": "2" if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else "1",
        "KernelVersion": platform.release(), "OperatingSystem": platform.platform(), "OSType": "linux",
        "Architecture": platform.machine(), "NCPU": os.cpu_count(),
        "MemTotal": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        "DockerRootDir": str(paths.root()), "Name": platform.node(), "ServerVersion": __version__,
        "DefaultRuntime": default_runtime(), "Runtimes": {n: {"path": n} for n in ("builtin", "runc", "crun")},
    }


def disk_usage(engine) -> dict[str, Any]:
    cs = engine.containers.list(all=True)
    vols = engine.volumes.list()
    root = paths.root()
    return {
        "Containers": [{"Id": c.id, "Names": ["/" + c.name], "SizeRw": _du(str(root / "containers" / c.id))}
                       for c in cs],
        "Volumes": [{"Name": v.name, "UsageData": {"Size": _du(v.mountpoint)}} for v in vols],
        "ImagesSize": _du(str(root / "images")),
    }
