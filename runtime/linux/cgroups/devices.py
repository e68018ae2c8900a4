"""devices: the device allow-list.

v1 writes devices.deny/devices.allow, in the order of the rules. cgroup v2 has no device
files: the kernel enforces device access only through an eBPF program
(BPF_PROG_TYPE_CGROUP_DEVICE) attached to the cgroup; the v2 driver builds and attaches one
from the same rules (devices_bpf.py). Updating the rules of a running v2 container attaches
another program: all attached programs must allow an access, so updates can only narrow.
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
