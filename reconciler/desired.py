"""The desired state: a loaded Project turned into engine objects (ContainerSpec,
NetworkSpec, volumes, images) with names, ownership labels and config hashes."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.engine import (
    ContainerSpec,
    EndpointSpec,
    HealthCheck,
    MountSpec,
    NetworkSpec,
    PortBinding,
    Resources,
    RestartPolicy,
    Ulimit,
)

from . import labels as L

DEFAULT_NETWORK = "default"
POLICY_RANK = {"never": 0, "missing": 1, "if_not_present": 1, "build": 2, "always": 3}


@dataclass
class DesiredImage:
    ref: str
    services: list[str]
    pull_policy: str = "missing"
    platform: str | None = None
    build: dict[str, Any] | None = None  # context, dockerfile, args, target, labels


@dataclass
class DesiredNetwork:
    key: str
    name: str
    spec: NetworkSpec
    external: bool = False
    config_hash: str = ""


@dataclass
class DesiredVolume:
    key: str
    name: str
    driver: str = "local"
    options: dict[str, str] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)
    external: bool = False
    config_hash: str = ""


@dataclass
class DesiredService:
    name: str
    image: str
    replicas: int
    template: ContainerSpec  # without name; labels without replica/hash
    depends_on: dict[str, str]  # service -> condition
    networks: list[str]  # network keys
    volumes: list[str]  # volume keys
    container_name: str | None
    base_hash: str  # of the template + file contents; the image id is added per apply
    files_hash: str
    stop_timeout: int | None = None
    rolling: int = 0  # deploy.update_config.parallelism: replicas recreated at a time (0: all at once)
    restart_with: tuple[str, ...] = ()  # depends_on entries with `restart: true`

    def container_name_for(self, project: str, replica: int) -> str:
        return self.container_name or f"{project}-{self.name}-{replica}"

    def config_hash(self, image_id: str) -> str:
        return L.digest([self.base_hash, image_id])

    def oneshot(self) -> bool:
        return self.template.restart.name == "no"

    def spec_for(self, project: str, replica: int, image_id: str, name: str | None = None) -> ContainerSpec:
        spec = dataclasses.replace(self.template, name=name or self.container_name_for(project, replica))
        spec.labels = {**self.template.labels, L.REPLICA: str(replica), L.CONFIG_HASH: self.config_hash(image_id)}
        spec.networks = {k: dataclasses.replace(v) for k, v in self.template.networks.items()}
        return spec


@dataclass
class Desired:
    project: str
    services: dict[str, DesiredService]
    networks: dict[str, DesiredNetwork]  # key -> network
    volumes: dict[str, DesiredVolume]
    images: dict[str, DesiredImage]  # ref -> image
    order: list[str]  # services in dependency order
    inline_files: dict[str, bytes] = field(default_factory=dict)  # "configs.x" -> content (no file)

    def network_name(self, key: str) -> str:
        return self.networks[key].name


def _resource_name(project: str, key: str, explicit: str | None) -> str:
    return explicit or f"{project}_{key}"


def _image_ref(project: str, svc_name: str, svc: Any) -> str:
    return normalize_ref(svc.image or f"{project}-{svc_name}")


def normalize_ref(ref: str) -> str:
    """`busybox` and `busybox:latest` are one image: add the default tag (no registry rules here)."""
    if "@" in ref or ":" in ref.rsplit("/", 1)[-1]:
        return ref
    return f"{ref}:latest"


def _tmpfs(entry: str) -> MountSpec:
    target, _, opts = entry.partition(":")
    m = MountSpec(type="tmpfs", target=target)
    for opt in filter(None, opts.split(",")):
        k, _, v = opt.partition("=")
        if k == "size":
            from .spec.units import byte_size

            m.tmpfs_size = byte_size(v)
        elif k == "mode":
            m.tmpfs_mode = int(v, 8)
    return m


def _expose(entries: list[str]) -> list[str]:
    out = []
    for e in entries:
        port, _, proto = e.partition("/")
        lo, _, hi = port.partition("-")
        if lo.isdigit() and (not hi or hi.isdigit()):
            out += [f"{p}/{proto or 'tcp'}" for p in range(int(lo), int(hi or lo) + 1)]
    return out


def _healthcheck(hc: Any) -> HealthCheck | None:
    if hc is None:
        return None
    if hc.disable:
        return HealthCheck(test=["NONE"])
    out = HealthCheck(test=hc.test or ["NONE"])
    for name in ("interval", "timeout", "retries", "start_period", "start_interval"):
        if getattr(hc, name) is not None:
            setattr(out, name, getattr(hc, name))
    return out


def _restart(svc: Any) -> RestartPolicy:
    rp = svc.deploy.restart_policy if svc.deploy else None
    if rp is not None and svc.restart == "no":
        name = {"none": "no", "any": "always", "on-failure": "on-failure"}[rp.condition]
        return RestartPolicy(name, rp.max_attempts or 0)
    name, _, count = svc.restart.partition(":")
    return RestartPolicy(name, int(count) if count else 0)


def _resources(svc: Any) -> Resources:
    r = Resources()
    lim = svc.deploy.resources.limits if svc.deploy and svc.deploy.resources else None
    res = svc.deploy.resources.reservations if svc.deploy and svc.deploy.resources else None
    r.memory = svc.mem_limit or (lim.memory if lim else None)
    cpus = svc.cpus or (lim.cpus if lim else None)
    r.nano_cpus = int(cpus * 1e9) if cpus else None
    r.pids_limit = svc.pids_limit or (lim.pids if lim else None)
    r.memory_reservation = svc.mem_reservation or (res.memory if res else None)
    r.memory_swap = svc.memswap_limit
    r.cpu_shares = svc.cpu_shares
    r.cpuset_cpus = svc.cpuset
    r.ulimits = [Ulimit(k, u.soft, u.hard) for k, u in sorted(svc.ulimits.items())]
    return r


def _file_mounts(project: Any, svc: Any, project_dir: Path) -> list[MountSpec]:
    out = []
    for kind in ("secrets", "configs"):
        for ref in getattr(svc, kind):
            obj = getattr(project, kind)[ref.source]
            if kind == "secrets":
                target = ref.target if ref.target and ref.target.startswith("/") else \
                    f"/run/secrets/{ref.target or ref.source}"
            else:
                target = ref.target or f"/{ref.source}"
            source = obj.file or str(project_dir / ".wharf" / kind / ref.source)
            out.append(MountSpec(type="bind", source=source, target=target, read_only=True))
    return out


def build_desired(project: Any, file_digests: dict[str, str] | None = None,
                  project_dir: str | Path = ".") -> Desired:
    """Project (pydantic) -> Desired (engine dataclasses). Pure: reads no files."""
    pname = project.name
    digests = file_digests or {}
    pdir = Path(project_dir)
    networks: dict[str, DesiredNetwork] = {}
    for key, net in project.networks.items():
        name = _resource_name(pname, key, net.name if net.external or net.name else None)
        cfg = net.ipam.config[0] if net.ipam and net.ipam.config else None
        spec = NetworkSpec(name=name, driver=net.driver, subnet=cfg.subnet if cfg else None,
                           gateway=cfg.gateway if cfg else None, ip_range=cfg.ip_range if cfg else None,
                           internal=net.internal, options={k: v or "" for k, v in net.driver_opts.items()},
                           labels={**{k: v or "" for k, v in net.labels.items()}, L.PROJECT: pname, L.NETWORK: key})
        networks[key] = DesiredNetwork(key, name, spec, net.external, L.digest(dataclasses.asdict(spec)))
    volumes: dict[str, DesiredVolume] = {}
    for key, vol in project.volumes.items():
        name = _resource_name(pname, key, vol.name)
        labels = {**{k: v or "" for k, v in vol.labels.items()}, L.PROJECT: pname, L.VOLUME: key}
        opts = {k: v or "" for k, v in vol.driver_opts.items()}
        volumes[key] = DesiredVolume(key, name, vol.driver, opts, labels, vol.external,
                                     L.digest([vol.driver, opts, labels]))
    images: dict[str, DesiredImage] = {}
    services: dict[str, DesiredService] = {}
    for sname, svc in project.services.items():
        ref = _image_ref(pname, sname, svc)
        img = images.setdefault(ref, DesiredImage(ref, [], svc.pull_policy, svc.platform))
        img.services.append(sname)
        if svc.build is not None and img.build is None:
            img.build = svc.build.model_dump()
        if POLICY_RANK[svc.pull_policy] > POLICY_RANK[img.pull_policy]:  # shared image: the most eager wins
            img.pull_policy = svc.pull_policy
        net_keys: list[str] = []
        endpoints: dict[str, EndpointSpec] = {}
        mode = svc.network_mode
        if not mode:
            wanted = svc.networks or {DEFAULT_NETWORK: None}
            for key, ep in sorted(wanted.items(), key=lambda kv: (-(kv[1].priority if kv[1] else 0), kv[0])):
                if key == DEFAULT_NETWORK and key not in networks:
                    networks[key] = _default_network(pname)
                net_keys.append(key)
                endpoints[networks[key].name] = EndpointSpec(
                    aliases=[sname, *(ep.aliases if ep else [])], ipv4_address=ep.ipv4_address if ep else None)
            mode = networks[net_keys[0]].name
        vol_keys = sorted({v.source for v in svc.volumes if v.type == "volume" and v.source})
        mounts = []
        for v in svc.volumes:
            if v.type == "volume":
                src = volumes[v.source].name if v.source else ""
            else:
                src = v.source or ""
            m = MountSpec(type=v.type, target=v.target, source=src, read_only=v.read_only)
            if v.bind and v.bind.propagation:
                m.propagation = v.bind.propagation
            if v.volume and v.volume.nocopy:
                m.volume_nocopy = True
            if v.tmpfs:
                m.tmpfs_size, m.tmpfs_mode = v.tmpfs.size, v.tmpfs.mode
            mounts.append(m)
        mounts += [_tmpfs(t) for t in svc.tmpfs]
        mounts += _file_mounts(project, svc, pdir)
        user_labels = {k: v or "" for k, v in svc.labels.items()}
        template = ContainerSpec(
            image=ref, command=svc.command, entrypoint=svc.entrypoint,
            env=[f"{k}={v}" for k, v in svc.environment.items()],
            labels={**user_labels, L.PROJECT: pname, L.SERVICE: sname},
            working_dir=svc.working_dir or "", user=svc.user or "", hostname=svc.hostname or "",
            domainname=svc.domainname or "", tty=svc.tty, stdin_open=svc.stdin_open,
            exposed_ports=_expose(svc.expose),
            healthcheck=_healthcheck(svc.healthcheck), stop_signal=svc.stop_signal,
            stop_timeout=int(svc.stop_grace_period) if svc.stop_grace_period is not None else None,
            mounts=mounts,
            ports=[PortBinding(p.target, p.protocol, p.host_ip, p.published or 0) for p in svc.ports],
            network_mode=mode, networks=endpoints, restart=_restart(svc), resources=_resources(svc),
            cap_add=list(svc.cap_add), cap_drop=list(svc.cap_drop), group_add=[str(g) for g in svc.group_add],
            privileged=svc.privileged,
            read_only=svc.read_only, init=svc.init, dns=list(svc.dns), dns_search=list(svc.dns_search),
            dns_options=list(svc.dns_opt), extra_hosts=[f"{h}:{ip}" for h, ip in svc.extra_hosts.items()],
            sysctls={k: v or "" for k, v in svc.sysctls.items()}, security_opt=list(svc.security_opt),
            log_driver=(svc.logging.driver if svc.logging and svc.logging.driver else "json-file"),
            log_options={k: v or "" for k, v in (svc.logging.options if svc.logging else {}).items()},
            runtime=svc.runtime,
        )
        used_files = sorted(f"{kind}.{r.source}" for kind in ("secrets", "configs") for r in getattr(svc, kind))
        files_hash = L.digest([digests.get(f, "") for f in used_files])
        base = L.digest([dataclasses.asdict(template), svc.container_name, files_hash])
        services[sname] = DesiredService(
            name=sname, image=ref, replicas=svc.replicas, template=template,
            depends_on={d: c.condition for d, c in svc.depends_on.items()}, networks=net_keys, volumes=vol_keys,
            container_name=svc.container_name, base_hash=base, files_hash=files_hash,
            stop_timeout=template.stop_timeout,
            rolling=svc.deploy.update_config.parallelism if svc.deploy and svc.deploy.update_config else 0,
            restart_with=tuple(sorted(d for d, c in svc.depends_on.items() if c.restart)))
        template.labels[L.FILES_HASH] = files_hash[:16]
    for entry in project.x_wharf.images:
        ref = normalize_ref(entry.image)
        img = images.setdefault(ref, DesiredImage(ref, [], entry.pull_policy, entry.platform))
        if entry.build is not None and img.build is None:
            img.build = entry.build.model_dump()
    inline = {f"{kind}.{name}": (obj.content or "").encode() for kind in ("configs", "secrets")
              for name, obj in getattr(project, kind).items() if obj.file is None}
    return Desired(pname, services, networks, volumes, images, _order(services), inline)


def _default_network(project: str) -> DesiredNetwork:
    name = f"{project}_{DEFAULT_NETWORK}"
    spec = NetworkSpec(name=name, labels={L.PROJECT: project, L.NETWORK: DEFAULT_NETWORK})
    return DesiredNetwork(DEFAULT_NETWORK, name, spec, False, L.digest(dataclasses.asdict(spec)))


def _order(services: dict[str, DesiredService]) -> list[str]:
    out: list[str] = []
    seen: set[str] = set()

    def visit(n: str) -> None:
        if n in seen:
            return
        seen.add(n)
        for d in sorted(services[n].depends_on):
            if d in services:
                visit(d)
        out.append(n)

    for n in sorted(services):
        visit(n)
    return out
