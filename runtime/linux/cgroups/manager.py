"""The CgroupManager protocol and the stats it reports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass
class CgroupStats:
    memory_usage: int = 0          # bytes in use now
    memory_max_usage: int = 0      # peak, when the kernel reports it
    memory_limit: int = 0          # 0 = unlimited
    oom_events: int = 0            # times the limit was hit and the OOM path ran
    oom_kills: int = 0             # processes the OOM killer killed in this cgroup
    cpu_usage_ns: int = 0
    cpu_user_ns: int = 0
    cpu_system_ns: int = 0
    cpu_periods: int = 0           # CFS periods that elapsed with a quota set
    cpu_throttled_periods: int = 0
    cpu_throttled_ns: int = 0
    pids_current: int = 0
    pids_limit: int = 0            # 0 = unlimited
    io_read_bytes: int = 0
    io_write_bytes: int = 0


class CgroupManager(Protocol):
    path: str

    def create(self) -> None: ...
    def add(self, pid: int) -> None: ...
    def apply(self, resources: dict) -> None: ...
    def freeze(self) -> None: ...
    def thaw(self) -> None: ...
    def stats(self) -> CgroupStats: ...
    def pids(self) -> list[int]: ...
    def kill(self) -> None: ...
    def exists(self) -> bool: ...
    def destroy(self) -> None: ...
