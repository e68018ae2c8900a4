"""The OCI runtime-spec config.json as TypedDicts (for type checkers; at run time a Spec is a dict).

Kept apart from spec.py so the runtime's hot path does not import `typing`.
"""

from __future__ import annotations

from typing import TypedDict


class User(TypedDict, total=False):
    uid: int
    gid: int
    umask: int
    additionalGids: list[int]
    username: str


class Capabilities(TypedDict, total=False):
    bounding: list[str]
    effective: list[str]
    inheritable: list[str]
    permitted: list[str]
    ambient: list[str]


class Rlimit(TypedDict):
    type: str
    soft: int
    hard: int


class ConsoleSize(TypedDict):
    height: int
    width: int


class Process(TypedDict, total=False):
    terminal: bool
    consoleSize: ConsoleSize
    user: User
    args: list[str]
    env: list[str]
    cwd: str
    capabilities: Capabilities
    rlimits: list[Rlimit]
    noNewPrivileges: bool
    apparmorProfile: str
    oomScoreAdj: int
    selinuxLabel: str


class Root(TypedDict, total=False):
    path: str
    readonly: bool


class Mount(TypedDict, total=False):
    destination: str
    type: str
    source: str
    options: list[str]


class Hook(TypedDict, total=False):
    path: str
    args: list[str]
    env: list[str]
    timeout: int


class Hooks(TypedDict, total=False):
    prestart: list[Hook]
    createRuntime: list[Hook]
    createContainer: list[Hook]
    startContainer: list[Hook]
    poststart: list[Hook]
    poststop: list[Hook]


class Namespace(TypedDict, total=False):
    type: str
    path: str


class IDMapping(TypedDict):
    containerID: int
    hostID: int
    size: int


class Device(TypedDict, total=False):
    type: str
    path: str
    major: int
    minor: int
    fileMode: int
    uid: int
    gid: int


class DeviceRule(TypedDict, total=False):
    allow: bool
    type: str
    major: int
    minor: int
    access: str


class Resources(TypedDict, total=False):
    devices: list[DeviceRule]
    memory: dict
    cpu: dict
    pids: dict
    blockIO: dict
    hugepageLimits: list[dict]
    network: dict
    unified: dict[str, str]


class Linux(TypedDict, total=False):
    namespaces: list[Namespace]
    uidMappings: list[IDMapping]
    gidMappings: list[IDMapping]
    devices: list[Device]
    cgroupsPath: str
    resources: Resources
    rootfsPropagation: str
    seccomp: dict
    sysctl: dict[str, str]
    maskedPaths: list[str]
    readonlyPaths: list[str]
    mountLabel: str


class Spec(TypedDict, total=False):
    ociVersion: str
    process: Process
    root: Root
    hostname: str
    domainname: str
    mounts: list[Mount]
    hooks: Hooks
    annotations: dict[str, str]
    linux: Linux


class State(TypedDict, total=False):
    ociVersion: str
    id: str
    status: str
    pid: int
    bundle: str
    annotations: dict[str, str]
