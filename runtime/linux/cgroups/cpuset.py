"""cpuset: cpus and mems (same files on v1 and v2)."""

from __future__ import annotations

import os

from runtime.linux.cgroups.fs import read, write


def apply(d: str, cpu: dict) -> None:
    if cpu.get("cpus"):
        write(d, "cpuset.cpus", cpu["cpus"])
    if cpu.get("mems"):
        write(d, "cpuset.mems", cpu["mems"])


def inherit_v1(d: str) -> None:
    """A new v1 cpuset starts empty (no task may join): copy cpus/mems down from the parent."""
    parent = os.path.dirname(d)
    for name in ("cpuset.cpus", "cpuset.mems"):
        if not read(d, name):
            if not read(parent, name):
                inherit_v1(parent)
            write(d, name, read(parent, name))
