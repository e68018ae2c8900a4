"""hugetlb and network (net_cls/net_prio) limits; each refuses clearly when the host lacks the controller."""

from __future__ import annotations

from runtime.linux.cgroups.fs import write


def apply_hugetlb(d: str | None, limits: list[dict], v2: bool) -> None:
    if not limits:
        return
    if d is None:
        raise OSError(95, "linux.resources.hugepageLimits needs the hugetlb cgroup controller, "
                          "which this host does not offer")
    for h in limits:
        name = f"hugetlb.{h['pageSize']}." + ("max" if v2 else "limit_in_bytes")
        write(d, name, h["limit"])


def apply_network(cls_dir: str | None, prio_dir: str | None, net: dict) -> None:
    if not net:
        return
    if net.get("classID") is not None:
        if cls_dir is None:
            raise OSError(95, "linux.resources.network.classID needs the net_cls cgroup controller, "
                              "which this host does not mount")
        write(cls_dir, "net_cls.classid", net["classID"])
    for p in net.get("priorities") or ():
        if prio_dir is None:
            raise OSError(95, "linux.resources.network.priorities need the net_prio cgroup controller, "
                              "which this host does not mount")
        write(prio_dir, "net_prio.ifpriomap", f"{p['name']} {p['priority']}")
