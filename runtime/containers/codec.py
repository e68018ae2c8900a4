"""ContainerSpec / ContainerState <-> plain dicts (what config.json and state.json hold)."""

from __future__ import annotations

import dataclasses
from typing import Any

from runtime.engine import (
    ContainerSpec,
    ContainerState,
    EndpointInfo,
    EndpointSpec,
    HealthCheck,
    HealthState,
    MountSpec,
    PortBinding,
    Resources,
    RestartPolicy,
    Ulimit,
)


def to_dict(obj: Any) -> Any:
    return dataclasses.asdict(obj)


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _make(cls: type, data: dict[str, Any] | None) -> Any:
    return cls(**_known(cls, data or {}))


def port_from_dict(d: dict[str, Any]) -> PortBinding:
    return _make(PortBinding, d)


def mount_from_dict(d: dict[str, Any]) -> MountSpec:
    return _make(MountSpec, d)


def endpoint_info_from_dict(d: dict[str, Any]) -> EndpointInfo:
    return _make(EndpointInfo, d)


def spec_from_dict(d: dict[str, Any]) -> ContainerSpec:
    d = _known(ContainerSpec, d)
    if d.get("healthcheck") is not None:
        d["healthcheck"] = _make(HealthCheck, d["healthcheck"])
    d["mounts"] = [mount_from_dict(m) for m in d.get("mounts", [])]
    d["ports"] = [port_from_dict(p) for p in d.get("ports", [])]
    d["networks"] = {k: _make(EndpointSpec, v) for k, v in d.get("networks", {}).items()}
    d["restart"] = _make(RestartPolicy, d.get("restart"))
    res = dict(d.get("resources") or {})
    res["ulimits"] = [_make(Ulimit, u) for u in res.get("ulimits", [])]
    d["resources"] = _make(Resources, res)
    return ContainerSpec(**d)


def state_from_dict(d: dict[str, Any]) -> ContainerState:
    st = _make(ContainerState, d)
    if d.get("health"):
        st.health = _make(HealthState, d["health"])
    return st
