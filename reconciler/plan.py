"""plan(desired, observed) -> Plan: a pure, deterministic, ordered list of Operations
with reasons (DESIGN decision 7). `Plan.text()` is the stable form golden tests use."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from runtime.errors import InvalidArgument

from . import labels as L
from .desired import Desired, DesiredService, build_desired
from .observe import Observed, ObservedContainer

SYMBOLS = {"pull": ">", "build": ">", "create-network": "+", "create-volume": "+", "create": "+",
           "recreate": "-/+", "start": "~", "restart": "~", "connect": "~", "rename": "~", "remove": "-",
           "remove-network": "-", "remove-volume": "-"}
PHASE = {"pull": 0, "build": 0, "create-network": 1, "create-volume": 1, "remove": 2, "rename": 3,
         "recreate": 3, "create": 3, "start": 3, "restart": 3, "connect": 3, "remove-network": 4, "remove-volume": 4}


@dataclass
class Operation:
    kind: str  # see SYMBOLS
    resource: str  # "image:busybox:latest", "network:demo_default", "container:web:1", ...
    cause: str
    depends_on: tuple[str, ...] = ()
    service: str = ""
    replica: int = 0
    target: str = ""  # existing object: container id, network/volume name, image ref

    @property
    def symbol(self) -> str:
        return SYMBOLS[self.kind]

    def line(self) -> str:
        return f"{self.symbol} {self.kind} {self.resource} ({self.cause})"


@dataclass
class Plan:
    project: str
    operations: list[Operation] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    fingerprint: str = ""

    @property
    def empty(self) -> bool:
        return not self.operations

    def text(self) -> str:
        return "".join(op.line() + "\n" for op in self.operations)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for op in self.operations:
            word = {"+": "to create", "-/+": "to recreate", "~": "to update", "-": "to remove",
                    ">": "to pull/build"}[op.symbol]
            counts[word] = counts.get(word, 0) + 1
        if not counts:
            return "nothing to do"
        return ", ".join(f"{n} {w}" for w, n in counts.items())

    def to_dict(self) -> dict[str, Any]:
        return {"project": self.project, "fingerprint": self.fingerprint, "warnings": list(self.warnings),
                "operations": [asdict(op) | {"depends_on": list(op.depends_on)} for op in self.operations]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Plan:
        ops = [Operation(**{**o, "depends_on": tuple(o.get("depends_on", ()))}) for o in d["operations"]]
        return cls(d["project"], ops, list(d.get("warnings", [])), d.get("fingerprint", ""))


def plan(desired: Any, observed: Observed, prune: bool = False) -> Plan:
    """Desired (or a LoadedProject) + Observed -> Plan. Reads nothing, changes nothing."""
    if not isinstance(desired, Desired):
        desired = build_desired(desired.project, desired.file_digests, desired.project_dir)
    return _Planner(desired, observed, prune).run()


def container_resource(service: str, replica: int) -> str:
    return f"container:{service}:{replica}"


class _Planner:
    def __init__(self, desired: Desired, observed: Observed, prune: bool) -> None:
        self.d, self.o, self.prune = desired, observed, prune
        self.ops: list[Operation] = []
        self.warnings: list[str] = []
        self.image_ops: dict[str, str] = {}  # ref -> resource of its pull/build op
        self.net_ops: dict[str, str] = {}  # key -> resource
        self.vol_ops: dict[str, str] = {}
        self.recreated_volumes: set[str] = set()  # volume names re-created (drift)
        self.missing_networks: set[str] = set()

    def run(self) -> Plan:
        self._images()
        self._networks()
        self._volumes()
        observed = self.o.by_service()
        for name in self.d.order:
            self._service(self.d.services[name], observed.get(name, []))
        self._restarts(observed)
        self._orphans(observed)
        order = {n: i for i, n in enumerate(self.d.order)}
        self.ops.sort(key=lambda op: (PHASE[op.kind], order.get(op.service, len(order)), op.service,
                                      op.replica, op.resource))
        return Plan(self.d.project, self.ops, self.warnings, self.o.fingerprint())

    # ------------------------------------------------------------ images, networks, volumes

    def _images(self) -> None:
        for ref, img in sorted(self.d.images.items()):
            present = self.o.images.get(ref)
            policy = img.pull_policy
            res = f"image:{ref}"
            if img.build is not None and (policy == "build" or (present is None and policy != "always")):
                cause = "pull_policy: build" if policy == "build" else "not present"
                self.ops.append(Operation("build", res, cause, target=ref))
            elif policy == "always":
                self.ops.append(Operation("pull", res, "pull_policy: always", target=ref))
            elif present is None:
                if policy == "never":
                    raise InvalidArgument(f"image {ref} is not present and pull_policy is 'never'",
                                          where=f"services.{img.services[0]}" if img.services else "x-wharf.images",
                                          hint=f"wharf pull {ref}")
                self.ops.append(Operation("pull", res, "not present", target=ref))
            else:
                continue
            self.image_ops[ref] = res

    def _networks(self) -> None:
        used_by_containers = {n for c in self.o.containers for n in c.networks}
        for key, net in sorted(self.d.networks.items()):
            obs = self.o.networks.get(net.name)
            if net.external:
                if obs is None:
                    raise InvalidArgument(f"external network {net.name} does not exist",
                                          where=f"networks.{key}", hint=f"wharf network create {net.name}")
                continue
            if obs is None:
                res = f"network:{net.name}"
                drift = net.name in used_by_containers or any(
                    c.service in self.d.services and key in self.d.services[c.service].networks
                    for c in self.o.containers)
                self.ops.append(Operation("create-network", res, "drift: removed" if drift else "new", target=net.name))
                self.net_ops[key] = res
                self.missing_networks.add(key)
            elif obs.config_hash and obs.config_hash != net.config_hash:
                self.warnings.append(f"network {net.name} was created with another configuration; "
                                     f"`wharf down` then apply to recreate it")

    def _volumes(self) -> None:
        mounted = {src for c in self.o.containers for src in c.volume_sources()}
        for key, vol in sorted(self.d.volumes.items()):
            obs = self.o.volumes.get(vol.name)
            if vol.external:
                if obs is None:
                    raise InvalidArgument(f"external volume {vol.name} does not exist", where=f"volumes.{key}",
                                          hint=f"wharf volume create {vol.name}")
                continue
            if obs is None:
                drift = vol.name in mounted
                res = f"volume:{vol.name}"
                self.ops.append(Operation("create-volume", res, "drift: removed" if drift else "new", target=vol.name))
                self.vol_ops[key] = res
                if drift:
                    self.recreated_volumes.add(key)
            elif obs.config_hash and obs.config_hash != vol.config_hash:
                self.warnings.append(f"volume {vol.name} was created with another configuration; "
                                     f"remove it (`wharf down -v`) to recreate it")

    # ------------------------------------------------------------ services

    def _deps(self, svc: DesiredService) -> tuple[str, ...]:
        deps = []
        if svc.image in self.image_ops:
            deps.append(self.image_ops[svc.image])
        deps += [self.net_ops[k] for k in svc.networks if k in self.net_ops]
        deps += [self.vol_ops[k] for k in svc.volumes if k in self.vol_ops]
        for dep in sorted(svc.depends_on):
            if dep in self.d.services:
                deps += [container_resource(dep, r) for r in range(1, self.d.services[dep].replicas + 1)]
        return tuple(deps)

    def _service(self, svc: DesiredService, observed: list[ObservedContainer]) -> None:
        image_id = self.o.images.get(svc.image) or ""
        want_hash = svc.config_hash(image_id)
        deps = self._deps(svc)
        by_replica: dict[int, list[ObservedContainer]] = {}
        for c in observed:
            by_replica.setdefault(c.replica, []).append(c)
        for replica in range(1, svc.replicas + 1):
            res = container_resource(svc.name, replica)
            name = svc.container_name_for(self.d.project, replica)
            found = by_replica.get(replica, [])
            if not found:
                if observed:
                    cause = (f"scale {len(by_replica)} -> {svc.replicas}" if replica > max(by_replica)
                             else "drift: removed")
                else:  # labels cannot tell a removed container from a new service once the project exists
                    cause = "missing (drift: removed, or new)" if self.o.containers else "new"
                self.ops.append(Operation("create", res, cause, deps, svc.name, replica))
                continue
            keep = sorted(found, key=lambda c: (c.config_hash != want_hash, not c.running, c.name != name, c.id))
            best, extra = keep[0], keep[1:]
            for c in extra:
                self.ops.append(Operation("remove", f"container:{c.name}", "duplicate replica (interrupted apply)",
                                          (), svc.name, replica, c.id))
            reasons = self._why_recreate(svc, best, want_hash, image_id)
            if reasons:
                rolled = [op.resource for op in self.ops if op.kind == "recreate" and op.service == svc.name]
                wait_for = (rolled[-svc.rolling],) if svc.rolling and len(rolled) >= svc.rolling else ()
                self.ops.append(Operation("recreate", res, "because: " + "; ".join(reasons), deps + wait_for,
                                          svc.name, replica, best.id))
                continue
            if best.name != name:
                self.ops.append(Operation("rename", res, f"interrupted apply: named {best.name}", (), svc.name,
                                          replica, best.id))
            missing = [k for k in svc.networks if self.d.networks[k].name not in best.networks]
            for key in missing:
                net = self.d.networks[key].name
                self.ops.append(Operation("connect", f"{res}@{net}", f"drift: not connected to {net}",
                                          tuple(x for x in (self.net_ops.get(key),) if x), svc.name, replica, best.id))
            if not best.running and not (best.status == "exited" and best.exit_code == 0 and svc.oneshot()):
                state = best.status if best.status != "exited" else f"exited ({best.exit_code})"
                self.ops.append(Operation("start", res, f"drift: {state}", deps, svc.name, replica, best.id))
        for replica in sorted(r for r in by_replica if r > svc.replicas or r < 1):
            for c in by_replica[replica]:
                self.ops.append(Operation("remove", container_resource(svc.name, replica),
                                          f"scale {len(by_replica)} -> {svc.replicas}"
                                          if replica > svc.replicas else "invalid replica label",
                                          (), svc.name, replica, c.id))

    def _why_recreate(self, svc: DesiredService, c: ObservedContainer, want_hash: str, image_id: str) -> list[str]:
        reasons: list[str] = []
        if svc.volumes and self.recreated_volumes.intersection(svc.volumes):
            reasons.append("drift: volume " + ", ".join(sorted(self.recreated_volumes & set(svc.volumes)))
                           + " was removed")
        if c.config_hash == want_hash:
            return reasons
        if svc.image in self.image_ops and not image_id:
            verb = "built" if any(op.kind == "build" and op.target == svc.image for op in self.ops) else "pulled"
            reasons.append(f"image {svc.image} will be {verb}")
        elif c.image_id != image_id:
            reasons.append(f"image {svc.image} {L.short(c.image_id)} -> {L.short(image_id)}")
        if c.files_hash and c.files_hash != svc.files_hash[:16]:
            reasons.append("config/secret file content changed")
        reasons += spec_changes(c.spec_dict(), asdict(svc.spec_for(self.d.project, c.replica, image_id)))
        return reasons or ["configuration changed"]

    def _restarts(self, observed: dict[str, list[ObservedContainer]]) -> None:
        """depends_on `restart: true`: restart a service whose dependency is recreated."""
        changed = {op.service for op in self.ops if op.kind == "recreate"}
        for name in self.d.order:
            svc = self.d.services[name]
            hit = [d for d in svc.restart_with if d in changed]
            if not hit or any(op.service == name for op in self.ops):
                continue
            deps = tuple(op.resource for op in self.ops if op.service in hit and op.kind == "recreate")
            for c in sorted(observed.get(name, []), key=lambda c: c.replica):
                if c.running and 1 <= c.replica <= svc.replicas:
                    self.ops.append(Operation("restart", container_resource(name, c.replica),
                                              f"dependency {', '.join(hit)} recreated", deps, name, c.replica, c.id))
            changed.add(name)

    def _orphans(self, observed: dict[str, list[ObservedContainer]]) -> None:
        for service in sorted(set(observed) - set(self.d.services)):
            for c in sorted(observed[service], key=lambda c: (c.replica, c.name)):
                if self.prune:
                    self.ops.append(Operation("remove", f"container:{c.name}", "orphan: service not in the spec",
                                              (), service, c.replica, c.id))
                else:
                    self.warnings.append(f"container {c.name} belongs to service {service!r} which is no longer "
                                         f"in the spec (--prune removes it)")
        wanted_nets = {n.name for n in self.d.networks.values()}
        orphan_container_ops = tuple(op.resource for op in self.ops if op.kind == "remove")
        for name in sorted(set(self.o.networks) - wanted_nets):
            if not self.o.networks[name].labelled:
                continue
            if self.prune:
                self.ops.append(Operation("remove-network", f"network:{name}", "orphan: not in the spec",
                                          orphan_container_ops, target=name))
            else:
                self.warnings.append(f"network {name} is no longer in the spec (--prune removes it)")
        wanted_vols = {v.name for v in self.d.volumes.values()}
        for name in sorted(set(self.o.volumes) - wanted_vols):
            if not self.o.volumes[name].labelled:
                continue
            if self.prune:
                self.ops.append(Operation("remove-volume", f"volume:{name}", "orphan: not in the spec",
                                          orphan_container_ops, target=name))
            else:
                self.warnings.append(f"volume {name} is no longer in the spec (--prune removes it)")


def _env(spec: dict[str, Any]) -> dict[str, str]:
    out = {}
    for item in spec.get("env") or []:
        k, _, v = item.partition("=")
        out[k] = v
    return out


def _ports(spec: dict[str, Any]) -> set[str]:
    out = set()
    for p in spec.get("ports") or []:
        host = f"{p.get('host_ip') + ':' if p.get('host_ip') else ''}{p.get('host_port') or ''}"
        out.add(f"{host + ':' if host else ''}{p['container_port']}/{p.get('protocol', 'tcp')}")
    return out


_SKIP = {"name", "labels", "env", "ports", "mounts", "image", "networks", "network_mode"}


def spec_changes(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Human reasons for the differences between an observed and a desired ContainerSpec."""
    if not old:
        return []
    out: list[str] = []
    eo, en = _env(old), _env(new)
    for k in sorted(set(eo) | set(en)):
        if k not in eo:
            out.append(f"env {k} added")
        elif k not in en:
            out.append(f"env {k} removed")
        elif eo[k] != en[k]:
            out.append(f"env {k} changed")
    po, pn = _ports(old), _ports(new)
    out += [f"port {p} added" for p in sorted(pn - po)] + [f"port {p} removed" for p in sorted(po - pn)]
    mo = {m["target"]: m for m in old.get("mounts") or []}
    mn = {m["target"]: m for m in new.get("mounts") or []}
    for t in sorted(set(mo) | set(mn)):
        if t not in mo:
            out.append(f"mount {t} added")
        elif t not in mn:
            out.append(f"mount {t} removed")
        elif (mo[t].get("source"), mo[t].get("type"), mo[t].get("read_only")) != (
                mn[t].get("source"), mn[t].get("type"), mn[t].get("read_only")):
            out.append(f"mount {t} changed")
    lo = {k: v for k, v in (old.get("labels") or {}).items() if k not in L.MANAGED}
    ln = {k: v for k, v in (new.get("labels") or {}).items() if k not in L.MANAGED}
    if lo != ln:
        out.append("labels changed")
    if sorted(old.get("networks") or {}) != sorted(new.get("networks") or {}):
        out.append("networks changed")
    if old.get("image") != new.get("image"):
        out.append(f"image {old.get('image')} -> {new.get('image')}")
    for k in sorted(new):
        if k in _SKIP or k not in old:
            continue
        if old[k] != new[k]:
            out.append(f"{k} changed")
    return out
