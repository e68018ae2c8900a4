"""setrlimit(2) by the names the OCI runtime-spec uses (RLIMIT_NOFILE ...)."""

from __future__ import annotations

import resource

NAMES = {
    "RLIMIT_CPU": resource.RLIMIT_CPU, "RLIMIT_FSIZE": resource.RLIMIT_FSIZE,
    "RLIMIT_DATA": resource.RLIMIT_DATA, "RLIMIT_STACK": resource.RLIMIT_STACK,
    "RLIMIT_CORE": resource.RLIMIT_CORE, "RLIMIT_RSS": resource.RLIMIT_RSS,
    "RLIMIT_NPROC": resource.RLIMIT_NPROC, "RLIMIT_NOFILE": resource.RLIMIT_NOFILE,
    "RLIMIT_MEMLOCK": resource.RLIMIT_MEMLOCK, "RLIMIT_AS": resource.RLIMIT_AS,
    "RLIMIT_LOCKS": 10, "RLIMIT_SIGPENDING": resource.RLIMIT_SIGPENDING,
    "RLIMIT_MSGQUEUE": resource.RLIMIT_MSGQUEUE, "RLIMIT_NICE": resource.RLIMIT_NICE,
    "RLIMIT_RTPRIO": resource.RLIMIT_RTPRIO, "RLIMIT_RTTIME": resource.RLIMIT_RTTIME,
}
INFINITY = 2**64 - 1


def _v(x: int) -> int:
    return resource.RLIM_INFINITY if x >= INFINITY or x < 0 else x


def setrlimit(name: str, soft: int, hard: int) -> None:
    if name not in NAMES:
        raise ValueError(f"unknown rlimit type {name!r}")
    resource.setrlimit(NAMES[name], (_v(soft), _v(hard)))


def getrlimit(name: str) -> tuple[int, int]:
    return resource.getrlimit(NAMES[name])
