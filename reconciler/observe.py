"""The observed state: plain data from label queries on the engine (DESIGN decision 6)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.errors import NotFound

from . import labels as L
from .engine_guard import UNAVAILABLE


@dataclass
class ObservedContainer:
    id: str
    name: str
    service: str
    replica: int
    config_hash: str
    files_hash: str
    image_id: str
    status: str  # created | running | paused | restarting | exited | dead
    exit_code: int = 0
    health: str | None = None  # starting | healthy | unhealthy
    restart: str = "no"
    networks: list[str] = field(default_factory=list)
    spec: Any = None  # the engine's ContainerSpec (or its dict form): read only to explain a recreate

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")

    def spec_dict(self) -> dict[str, Any]:
        if self.spec is None or isinstance(self.spec, dict):
            return self.spec or {}
        try:
            return asdict(self.spec)
        except TypeError:
            return {}

    def volume_sources(self) -> set[str]:
        mounts = self.spec.get("mounts") if isinstance(self.spec, dict) else getattr(self.spec, "mounts", None)
        out = set()
        for m in mounts or []:
            kind, src = (m.get("type"), m.get("source")) if isinstance(m, dict) else (m.type, m.source)
            if kind == "volume" and src:
                out.add(src)
        return out


@dataclass
class ObservedNetwork:
    name: str
    id: str
    key: str
    config_hash: str
    labelled: bool = True


@dataclass
class ObservedVolume:
    name: str
    key: str
    config_hash: str
    labelled: bool = True


@dataclass
class Observed:
    project: str
    containers: list[ObservedContainer] = field(default_factory=list)
    networks: dict[str, ObservedNetwork] = field(default_factory=dict)  # by name
    volumes: dict[str, ObservedVolume] = field(default_factory=dict)  # by name
    images: dict[str, str | None] = field(default_factory=dict)  # ref -> image id (None: not present)

    @classmethod
    def empty(cls, project: str) -> Observed:
        return cls(project)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        for c, cd in zip(self.containers, d["containers"], strict=True):
            cd["spec"] = c.spec_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Observed:
        return cls(d["project"], [ObservedContainer(**c) for c in d.get("containers", [])],
                   {k: ObservedNetwork(**v) for k, v in d.get("networks", {}).items()},
                   {k: ObservedVolume(**v) for k, v in d.get("volumes", {}).items()},
                   dict(d.get("images", {})))

    def fingerprint(self) -> str:
        """What a saved plan was computed from; `apply plan.json` refuses when it moved."""
        return L.digest({
            "containers": sorted((c.id, c.name, c.config_hash, c.image_id, c.status, c.exit_code,
                                  sorted(c.networks)) for c in self.containers),
            "networks": sorted((n.name, n.config_hash) for n in self.networks.values()),
            "volumes": sorted((v.name, v.config_hash) for v in self.volumes.values()),
            "images": sorted((k, v or "") for k, v in self.images.items()),
        })

    def by_service(self) -> dict[str, list[ObservedContainer]]:
        out: dict[str, list[ObservedContainer]] = {}
        for c in self.containers:
            out.setdefault(c.service, []).append(c)
        return out


def _container(info: Any) -> ObservedContainer:
    lab = info.labels
    try:
        replica = int(lab.get(L.REPLICA, "0"))
    except ValueError:
        replica = 0
    health = info.state.health.status if info.state.health else None
    spec = info.spec
    return ObservedContainer(
        id=info.id, name=info.name.lstrip("/"), service=lab.get(L.SERVICE, ""), replica=replica,
        config_hash=lab.get(L.CONFIG_HASH, ""), files_hash=lab.get(L.FILES_HASH, ""), image_id=info.image_id,
        status=info.state.status, exit_code=info.state.exit_code, health=health,
        restart=spec.restart.name if spec and spec.restart else "no",
        networks=sorted({ep.network or k for k, ep in info.networks.items()} if info.networks
                        else (spec.networks if spec else {})),
        spec=spec)


def observe(engine: Any, desired: Any, images: bool = True) -> Observed:
    """Query the engine for everything labelled with the project, plus the images and
    external networks/volumes the desired state refers to."""
    project = desired.project
    flt = L.project_filter(project)
    obs = Observed(project)
    obs.containers = [_container(c) for c in engine.containers.list(all=True, filters=flt)
                      if c.labels.get(L.PROJECT) == project]
    try:
        networks = engine.networks.list(filters=flt)
    except UNAVAILABLE:
        if desired.networks:
            raise
        networks = []  # an engine without networks has none of ours; services use network_mode none/host
    for n in networks:
        if n.labels.get(L.PROJECT) == project:
            obs.networks[n.name] = ObservedNetwork(n.name, n.id, n.labels.get(L.NETWORK, ""),
                                                   n.labels.get(L.CONFIG_HASH, ""))
    for v in engine.volumes.list(filters=flt):
        if v.labels.get(L.PROJECT) == project:
            obs.volumes[v.name] = ObservedVolume(v.name, v.labels.get(L.VOLUME, ""), v.labels.get(L.CONFIG_HASH, ""))
    for net in desired.networks.values():
        if net.external and net.name not in obs.networks:
            try:
                info = engine.networks.inspect(net.name)
                obs.networks[net.name] = ObservedNetwork(net.name, info.id, net.key, "", labelled=False)
            except NotFound:
                pass
    for vol in desired.volumes.values():
        if vol.external and vol.name not in obs.volumes:
            try:
                engine.volumes.inspect(vol.name)
                obs.volumes[vol.name] = ObservedVolume(vol.name, vol.key, "", labelled=False)
            except NotFound:
                pass
    if images:
        for ref in desired.images:
            try:
                obs.images[ref] = engine.images.inspect(ref).id
            except NotFound:
                obs.images[ref] = None
    return obs
