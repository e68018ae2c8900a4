"""Volume routes (/volumes/...) and the Docker volume JSON <-> VolumeInfo translation."""

from __future__ import annotations

from typing import Any

from runtime.api.http import Reply, Request
from runtime.api.router import router
from runtime.engine import VolumeInfo
from runtime.errors import InvalidArgument


def volume_json(v: VolumeInfo) -> dict[str, Any]:
    return {"Name": v.name, "Driver": v.driver, "Mountpoint": v.mountpoint, "CreatedAt": v.created,
            "Labels": v.labels or None, "Scope": "local", "Options": v.options or None}


def volume_from_json(d: dict[str, Any]) -> VolumeInfo:
    return VolumeInfo(name=d["Name"], driver=d.get("Driver", "local"), mountpoint=d.get("Mountpoint", ""),
                      labels=d.get("Labels") or {}, options=d.get("Options") or {}, created=d.get("CreatedAt", ""))


@router.route("GET", r"/volumes")
def list_volumes(engine, req: Request) -> dict[str, Any]:
    return {"Volumes": [volume_json(v) for v in engine.volumes.list(req.filters())], "Warnings": []}


@router.route("POST", r"/volumes/create")
def create(engine, req: Request) -> Reply:
    from runtime.api.container_json import _get, _strmap

    body = req.json()
    name = _get(body, "Name", str, "body", "") or None
    v = engine.volumes.create(name, _get(body, "Driver", str, "body", "") or "local",
                              _strmap(body, "Labels", "body"), _strmap(body, "DriverOpts", "body"))
    return Reply(201, volume_json(v))


@router.route("GET", r"/volumes/(?P<name>[^/]+)")
def inspect(engine, req: Request) -> dict[str, Any]:
    return volume_json(engine.volumes.inspect(req.params["name"]))


@router.route("DELETE", r"/volumes/(?P<name>[^/]+)")
def remove(engine, req: Request) -> None:
    engine.volumes.remove(req.params["name"], force=req.qbool("force"))


@router.route("POST", r"/volumes/prune")
def prune(engine, req: Request) -> dict[str, Any]:
    filters = req.filters()
    all_ = filters.pop("all", ["false"])
    if all_[-1].lower() not in ("true", "false", "1", "0"):
        raise InvalidArgument(f"invalid filter 'all={all_[-1]}'")
    old_api = req.version is not None and tuple(int(x) for x in req.version.split(".")) < (1, 42)
    gone = engine.volumes.prune(filters or None, all=old_api or all_[-1].lower() in ("true", "1"))
    return {"VolumesDeleted": gone, "SpaceReclaimed": 0}
