"""The Engine protocol: the one facade the CLI, the reconciler and the API daemon use.

Grouped like docker-py's high-level client: `engine.containers`, `engine.images`,
`engine.networks`, `engine.volumes`, plus `events()` and `info()`. Data types are
plain dataclasses (cheap to import; pydantic is only for the user-facing YAML).
Field names follow Docker's API concepts so the API daemon and RemoteEngine only
translate. `LocalEngine` (runtime/local_engine.py) implements it in-process;
`RemoteEngine` (runtime/api/remote.py) over the Docker Engine API.

Errors: methods raise runtime.errors.NotFound / Conflict / InvalidArgument /
RuntimeFailure — never bare OSError for something the user did.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

# ---------------------------------------------------------------- container spec


@dataclass
class PortBinding:
    """`-p [host_ip:][host_port:]container_port[/protocol]`; host_port 0 = pick a free one."""

    container_port: int
    protocol: str = "tcp"
    host_ip: str = ""
    host_port: int = 0


@dataclass
class MountSpec:
    """`-v`, `--mount`, `--tmpfs`. type: bind | volume | tmpfs. A volume with empty source is anonymous."""

    type: str
    target: str
    source: str = ""
    read_only: bool = False
    propagation: str = ""  # rprivate (default), private, rshared, shared, rslave, slave
    tmpfs_size: int | None = None
    tmpfs_mode: int | None = None
    volume_labels: dict[str, str] = field(default_factory=dict)
    volume_nocopy: bool = False


@dataclass
class HealthCheck:
    """test: ["CMD", ...] | ["CMD-SHELL", "cmd"] | ["NONE"]; times in seconds."""

    test: list[str]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0
    start_interval: float = 5.0


@dataclass
class RestartPolicy:
    name: str = "no"  # no | on-failure | always | unless-stopped
    maximum_retry_count: int = 0


@dataclass
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass
class Resources:
    memory: int | None = None  # bytes
    memory_swap: int | None = None  # bytes, memory+swap; -1 unlimited
    memory_reservation: int | None = None
    nano_cpus: int | None = None  # --cpus * 1e9
    cpu_shares: int | None = None
    cpu_quota: int | None = None
    cpu_period: int | None = None
    cpuset_cpus: str | None = None
    cpuset_mems: str | None = None
    pids_limit: int | None = None
    blkio_weight: int | None = None
    ulimits: list[Ulimit] = field(default_factory=list)
    # "DEVICE_PATH:RATE" (bytes/s, or IO/s for the iops ones), docker's --device-read-bps etc.
    device_read_bps: list[str] = field(default_factory=list)
    device_write_bps: list[str] = field(default_factory=list)
    device_read_iops: list[str] = field(default_factory=list)
    device_write_iops: list[str] = field(default_factory=list)


@dataclass
class EndpointSpec:
    """How a container joins one network."""

    aliases: list[str] = field(default_factory=list)
    ipv4_address: str | None = None


@dataclass
class ContainerSpec:
    """Everything `create` needs (docker's Config + HostConfig + NetworkingConfig)."""

    image: str
    name: str | None = None
    command: list[str] | None = None  # None = image CMD
    entrypoint: list[str] | None = None  # None = image ENTRYPOINT; [] = none
    env: list[str] = field(default_factory=list)  # "K=V"
    labels: dict[str, str] = field(default_factory=dict)
    working_dir: str = ""
    user: str = ""
    hostname: str = ""
    domainname: str = ""
    tty: bool = False
    stdin_open: bool = False
    exposed_ports: list[str] = field(default_factory=list)  # "80/tcp"
    healthcheck: HealthCheck | None = None
    stop_signal: str | None = None
    stop_timeout: int | None = None
    # host config
    mounts: list[MountSpec] = field(default_factory=list)
    ports: list[PortBinding] = field(default_factory=list)
    publish_all: bool = False
    network_mode: str = "bridge"  # bridge | host | none | container:<id> | <network name>
    networks: dict[str, EndpointSpec] = field(default_factory=dict)
    restart: RestartPolicy = field(default_factory=RestartPolicy)
    resources: Resources = field(default_factory=Resources)
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    group_add: list[str] = field(default_factory=list)  # gids or group names of the image
    privileged: bool = False
    read_only: bool = False
    init: bool = False
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_options: list[str] = field(default_factory=list)
    extra_hosts: list[str] = field(default_factory=list)  # "host:ip"
    sysctls: dict[str, str] = field(default_factory=dict)
    security_opt: list[str] = field(default_factory=list)
    log_driver: str = "json-file"
    log_options: dict[str, str] = field(default_factory=dict)
    runtime: str | None = None  # builtin | runc | crun; None = engine default
    auto_remove: bool = False
    rootfs: str | None = None  # podman's --rootfs: run this directory instead of an image
    stdin_once: bool = False  # close the container's stdin when the attached client leaves
    devices: list[str] = field(default_factory=list)  # "HOST_PATH[:CONTAINER_PATH[:rwm]]", docker's --device


# ---------------------------------------------------------------- observed state


@dataclass
class HealthState:
    status: str = "starting"  # starting | healthy | unhealthy
    failing_streak: int = 0
    log: list[dict[str, Any]] = field(default_factory=list)  # {Start, End, ExitCode, Output}


@dataclass
class ContainerState:
    status: str = "created"  # created | running | paused | restarting | removing | exited | dead
    pid: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    error: str = ""
    started_at: str = ""  # RFC 3339
    finished_at: str = ""
    health: HealthState | None = None

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")


@dataclass
class EndpointInfo:
    network: str
    network_id: str = ""
    ip_address: str = ""
    prefix_len: int = 0
    gateway: str = ""
    mac_address: str = ""
    aliases: list[str] = field(default_factory=list)


@dataclass
class ContainerInfo:
    id: str
    name: str
    image: str  # the reference the user gave
    image_id: str  # sha256:...
    created: str
    spec: ContainerSpec
    state: ContainerState
    restart_count: int = 0
    ports: list[PortBinding] = field(default_factory=list)  # resolved host ports
    networks: dict[str, EndpointInfo] = field(default_factory=dict)
    mounts: list[MountSpec] = field(default_factory=list)  # resolved sources

    @property
    def labels(self) -> dict[str, str]:
        return self.spec.labels


@dataclass
class ImageInfo:
    id: str  # sha256 of the config
    repo_tags: list[str] = field(default_factory=list)
    repo_digests: list[str] = field(default_factory=list)
    created: str = ""
    size: int = 0
    config: dict[str, Any] = field(default_factory=dict)  # the OCI image config's "config"
    labels: dict[str, str] = field(default_factory=dict)
    architecture: str = "amd64"
    os: str = "linux"


@dataclass
class NetworkSpec:
    name: str
    driver: str = "bridge"
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)  # com.docker.network.bridge.name, ...mtu


@dataclass
class NetworkInfo:
    id: str
    name: str
    driver: str
    subnet: str
    gateway: str
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    containers: dict[str, EndpointInfo] = field(default_factory=dict)  # container id -> endpoint
    created: str = ""


@dataclass
class VolumeInfo:
    name: str
    driver: str = "local"
    mountpoint: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    created: str = ""


@dataclass
class Event:
    type: str  # container | image | network | volume
    action: str  # create | start | die | destroy | oom | health_status: healthy | pull | ...
    id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time: float = 0.0


@dataclass
class ExecResult:
    exit_code: int
    output: bytes = b""


Filters = dict[str, list[str]]  # docker-style: {"label": ["a=b"], "status": ["running"], "name": [...]}
Progress = Callable[[dict[str, Any]], None]  # receives docker-style progress messages


# ---------------------------------------------------------------- protocols


class Containers(Protocol):
    def create(self, spec: ContainerSpec) -> ContainerInfo: ...
    def start(self, ref: str) -> None: ...
    def stop(self, ref: str, timeout: int | None = None) -> None: ...
    def restart(self, ref: str, timeout: int | None = None) -> None: ...
    def kill(self, ref: str, signal: str = "SIGKILL") -> None: ...
    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None: ...
    def wait(self, ref: str, condition: str = "not-running", timeout: float | None = None) -> int: ...
    def inspect(self, ref: str) -> ContainerInfo: ...
    def list(self, all: bool = False, filters: Filters | None = None) -> list[ContainerInfo]: ...
    def logs(self, ref: str, follow: bool = False, stdout: bool = True, stderr: bool = True,
             since: float | None = None, until: float | None = None, tail: int | None = None,
             timestamps: bool = False) -> Iterator[tuple[str, bytes]]: ...  # (stream, line)
    def exec(self, ref: str, cmd: list[str], env: list[str] | None = None, user: str = "",
             workdir: str = "", tty: bool = False) -> ExecResult: ...
    def rename(self, ref: str, new_name: str) -> None: ...
    def pause(self, ref: str) -> None: ...
    def unpause(self, ref: str) -> None: ...


class Images(Protocol):
    def pull(self, ref: str, platform: str | None = None, progress: Progress | None = None) -> ImageInfo: ...
    def push(self, ref: str, progress: Progress | None = None) -> None: ...
    def build(self, context: str, dockerfile: str = "Dockerfile", tags: list[str] | None = None,
              build_args: dict[str, str] | None = None, target: str | None = None,
              labels: dict[str, str] | None = None, no_cache: bool = False,
              progress: Progress | None = None) -> ImageInfo: ...
    def inspect(self, ref: str) -> ImageInfo: ...
    def list(self, all: bool = False, filters: Filters | None = None) -> list[ImageInfo]: ...
    def tag(self, ref: str, new_ref: str) -> None: ...
    def remove(self, ref: str, force: bool = False) -> list[str]: ...


class Networks(Protocol):
    def create(self, spec: NetworkSpec) -> NetworkInfo: ...
    def inspect(self, ref: str) -> NetworkInfo: ...
    def list(self, filters: Filters | None = None) -> list[NetworkInfo]: ...
    def remove(self, ref: str) -> None: ...
    def connect(self, network: str, container: str, endpoint: EndpointSpec | None = None) -> None: ...
    def disconnect(self, network: str, container: str, force: bool = False) -> None: ...


class Volumes(Protocol):
    def create(self, name: str | None = None, driver: str = "local",
               labels: dict[str, str] | None = None, options: dict[str, str] | None = None) -> VolumeInfo: ...
    def inspect(self, name: str) -> VolumeInfo: ...
    def list(self, filters: Filters | None = None) -> list[VolumeInfo]: ...
    def remove(self, name: str, force: bool = False) -> None: ...


class Engine(Protocol):
    containers: Containers
    images: Images
    networks: Networks
    volumes: Volumes

    def events(self, since: float | None = None, until: float | None = None,
               filters: Filters | None = None) -> Iterator[Event]: ...
    def info(self) -> dict[str, Any]: ...


def connect(host: str | None = None) -> Engine:
    """The engine to use: RemoteEngine for --host / WHARF_HOST / DOCKER_HOST, else LocalEngine."""
    import os

    host = host or os.environ.get("WHARF_HOST") or os.environ.get("DOCKER_HOST")
    if host:
        from runtime.api.remote import RemoteEngine

        return RemoteEngine(host)
    from runtime.local_engine import LocalEngine

    return LocalEngine()
