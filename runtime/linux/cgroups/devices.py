"""devices: the device allow-list.

v1 writes devices.deny/devices.allow, in the order of the rules. cgroup v2 has no device
files: the kernel enforces device access only through an eBPF program
(BPF_PROG_TYPE_CGROUP_DEVICE) attached to the cgroup. The v2 driver does not load one:
on v2, device access is limited by what the runtime creates in the container's /dev and by
the capability set (no CAP_MKNOD, no CAP_SYS_ADMIN to mount devtmpfs), not by the cgroup.
"""

from __future__ import annotations

from runtime.linux.cgroups.fs import write


def rule_text(rule: dict) -> str:
    """An OCI device rule -> v1 syntax "c 1:3 rwm" ("a" for all)."""
    kind = rule.get("type") or "a"
    if kind == "a" and rule.get("major") is None and rule.get("minor") is None:
        return "a"
    major = "*" if rule.get("major") in (None, -1) else str(rule["major"])
    minor = "*" if rule.get("minor") in (None, -1) else str(rule["minor"])
    return f"{kind} {major}:{minor} {rule.get('access') or 'rwm'}"


def apply_v1(d: str, rules: list[dict]) -> None:
    for rule in rules:
        write(d, "devices.allow" if rule.get("allow") else "devices.deny", rule_text(rule))
