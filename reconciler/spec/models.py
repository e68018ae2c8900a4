"""Pydantic models of a compose-compatible file, in their canonical (long) form.

Short syntaxes are accepted on input (the JSON Schema says so) and normalised by the
validators: ports and volumes become long-syntax objects, durations seconds, sizes bytes,
commands lists. Keys Wharf does not support are rejected (extra="forbid"); the loader
turns that into "unsupported key" errors with file:line. `x-*` keys are allowed anywhere
a model is and ignored, except top-level `x-wharf` which holds Wharf's own settings.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from . import units

Str = Annotated[str, BeforeValidator(lambda v: _scalar_str(v), json_schema_input_type=str | int | float | bool)]
OptStrMap = dict[str, Str | None]


def _scalar_str(v: Any) -> Any:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    return v


def _str_list(v: Any) -> Any:
    if isinstance(v, (str, int)):
        return [str(v)]
    if isinstance(v, list):
        return [_scalar_str(x) for x in v]
    return v


def _expose_entry(v: str) -> str:
    import re

    if not re.fullmatch(r"\d{1,5}(-\d{1,5})?(/(tcp|udp|sctp))?", v):
        raise ValueError(f"invalid expose entry {v!r} (PORT[-PORT][/PROTO])")
    return v


def _kv(v: Any) -> Any:
    if isinstance(v, list):
        out: dict[str, Any] = {}
        for item in v:
            k, sep, val = str(item).partition("=")
            out[k] = val if sep else None
        return out
    return v


Duration = Annotated[float, BeforeValidator(units.duration, json_schema_input_type=str | int | float)]
Bytes = Annotated[int, BeforeValidator(units.byte_size, json_schema_input_type=str | int)]
StrList = Annotated[list[str], BeforeValidator(_str_list, json_schema_input_type=str | list[str | int])]
Command = Annotated[list[str] | None, BeforeValidator(units.command, json_schema_input_type=str | list[str] | None)]
KV = Annotated[OptStrMap, BeforeValidator(_kv, json_schema_input_type=list[str] | OptStrMap)]


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_extensions(cls, data: Any) -> Any:
        if isinstance(data, dict):
            keep = {f.alias or n for n, f in cls.model_fields.items()}
            return {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-") and k not in keep)}
        return data


# ---------------------------------------------------------------- service parts


class Build(Model):
    context: str = "."
    dockerfile: str = "Dockerfile"
    args: KV = Field(default_factory=dict)
    target: str | None = None
    labels: KV = Field(default_factory=dict)


def _build(v: Any) -> Any:
    return {"context": v} if isinstance(v, str) else v


BuildField = Annotated[Build | None, BeforeValidator(_build, json_schema_input_type=str | Build | None)]


class EnvFile(Model):
    path: str
    required: bool = True
    format: Literal["raw"] | None = None


def _env_files(v: Any) -> Any:
    if isinstance(v, str):
        v = [v]
    if isinstance(v, list):
        return [{"path": x} if isinstance(x, str) else x for x in v]
    return v


class Port(Model):
    target: int = Field(ge=1, le=65535)
    published: int | None = Field(default=None, ge=0, le=65535)
    host_ip: str = ""
    protocol: Literal["tcp", "udp", "sctp"] = "tcp"
    mode: Literal["host", "ingress"] = "host"
    name: str | None = None
    app_protocol: str | None = None

    @field_validator("published", mode="before")
    @classmethod
    def _pub(cls, v: Any) -> Any:
        if isinstance(v, str):
            if not v.isdigit():
                raise ValueError(f"invalid published port {v!r} (a port number; ranges only in the short syntax)")
            return int(v)
        return v


def _ports(v: Any) -> Any:
    if not isinstance(v, list):
        return v
    out: list[Any] = []
    for item in v:
        out.extend(units.parse_port(item))
    return out


class BindOptions(Model):
    propagation: Literal["rprivate", "private", "rshared", "shared", "rslave", "slave"] | None = None
    create_host_path: bool = True
    selinux: str | None = None


class VolumeOptions(Model):
    nocopy: bool = False
    subpath: str | None = None


class TmpfsOptions(Model):
    size: Bytes | None = None
    mode: int | None = None


class ServiceVolume(Model):
    type: Literal["volume", "bind", "tmpfs"] = "volume"
    source: str | None = None
    target: str
    read_only: bool = False
    bind: BindOptions | None = None
    volume: VolumeOptions | None = None
    tmpfs: TmpfsOptions | None = None
    consistency: str | None = None

    @field_validator("target")
    @classmethod
    def _abs(cls, v: str) -> str:
        if not v.startswith("/"):
            raise ValueError(f"target {v!r} must be an absolute path")
        return v


def _volumes(v: Any) -> Any:
    return [units.parse_volume(x) for x in v] if isinstance(v, list) else v


class ServiceNetwork(Model):
    aliases: list[str] = Field(default_factory=list)
    ipv4_address: str | None = None
    priority: int = 0


class DependsOn(Model):
    condition: Literal["service_started", "service_healthy", "service_completed_successfully"] = "service_started"
    restart: bool = False
    required: bool = True


def _depends(v: Any) -> Any:
    if isinstance(v, list):
        return {str(x): {} for x in v}
    return v


class Healthcheck(Model):
    test: Command = None
    interval: Duration | None = None
    timeout: Duration | None = None
    retries: int | None = None
    start_period: Duration | None = None
    start_interval: Duration | None = None
    disable: bool = False

    @field_validator("test", mode="before")
    @classmethod
    def _test(cls, v: Any) -> Any:
        if isinstance(v, str):
            return ["CMD-SHELL", v]
        if isinstance(v, list) and v and v[0] not in ("CMD", "CMD-SHELL", "NONE"):
            raise ValueError("a healthcheck test list starts with CMD, CMD-SHELL or NONE")
        return v


class Limits(Model):
    cpus: float | None = None
    memory: Bytes | None = None
    pids: int | None = None

    @field_validator("cpus", mode="before")
    @classmethod
    def _cpus(cls, v: Any) -> Any:
        return float(v) if isinstance(v, str) else v


class Resources(Model):
    limits: Limits | None = None
    reservations: Limits | None = None


class RestartPolicy(Model):
    condition: Literal["none", "on-failure", "any"] = "any"
    delay: Duration | None = None
    max_attempts: int | None = None
    window: Duration | None = None


class UpdateConfig(Model):
    parallelism: int = 1
    delay: Duration | None = None
    order: Literal["stop-first", "start-first"] = "stop-first"
    failure_action: Literal["continue", "rollback", "pause"] = "pause"
    monitor: Duration | None = None
    max_failure_ratio: float = 0.0


class Deploy(Model):
    mode: Literal["replicated"] = "replicated"
    replicas: int | None = Field(default=None, ge=0)
    resources: Resources | None = None
    restart_policy: RestartPolicy | None = None
    update_config: UpdateConfig | None = None
    labels: KV = Field(default_factory=dict)


class Ulimit(Model):
    soft: int
    hard: int


def _ulimits(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: ({"soft": x, "hard": x} if isinstance(x, int) else x) for k, x in v.items()}
    return v


class Logging(Model):
    driver: str | None = None
    options: OptStrMap = Field(default_factory=dict)


class Extends(Model):
    service: str
    file: str | None = None


class FileRef(Model):
    """A service's use of a top-level config or secret."""

    source: str
    target: str | None = None
    uid: str | None = None
    gid: str | None = None
    mode: int | None = None


def _file_refs(v: Any) -> Any:
    return [{"source": x} if isinstance(x, str) else x for x in v] if isinstance(v, list) else v


def _restart(v: Any) -> Any:
    if v is False:
        return "no"
    if isinstance(v, str):
        name, _, count = v.partition(":")
        if name not in ("no", "always", "on-failure", "unless-stopped") or (count and (name != "on-failure"
                                                                                      or not count.isdigit())):
            raise ValueError(f"invalid restart policy {v!r} (no, always, on-failure[:N], unless-stopped)")
    return v


def _extra_hosts(v: Any) -> Any:
    if isinstance(v, list):
        out = {}
        for item in v:
            k, sep, val = str(item).partition("=")
            if not sep:
                k, sep, val = str(item).partition(":")
            if not sep:
                raise ValueError(f"invalid extra_hosts entry {item!r} (use host:ip or host=ip)")
            out[k] = val
        return out
    if isinstance(v, dict):
        return {k: ",".join(x) if isinstance(x, list) else x for k, x in v.items()}
    return v


def _networks(v: Any) -> Any:
    return {str(x): None for x in v} if isinstance(v, list) else v


class Service(Model):
    image: str | None = None
    build: BuildField = None
    pull_policy: Literal["always", "never", "missing", "if_not_present", "build"] = "missing"
    platform: str | None = None
    command: Command = None
    entrypoint: Command = None
    environment: KV = Field(default_factory=dict)
    env_file: Annotated[list[EnvFile], BeforeValidator(_env_files, json_schema_input_type=str | list[str | EnvFile])] \
        = Field(default_factory=list)
    ports: Annotated[list[Port], BeforeValidator(_ports, json_schema_input_type=list[str | int | Port])] \
        = Field(default_factory=list)
    expose: Annotated[list[Annotated[str, AfterValidator(_expose_entry)]], BeforeValidator(
        _str_list, json_schema_input_type=str | list[str | int])] = Field(default_factory=list)
    volumes: Annotated[list[ServiceVolume], BeforeValidator(_volumes, json_schema_input_type=list[str | ServiceVolume])] \
        = Field(default_factory=list)
    tmpfs: StrList = Field(default_factory=list)
    networks: Annotated[dict[str, ServiceNetwork | None], BeforeValidator(
        _networks, json_schema_input_type=list[str] | dict[str, ServiceNetwork | None])] = Field(default_factory=dict)
    network_mode: str | None = None
    depends_on: Annotated[dict[str, DependsOn], BeforeValidator(
        _depends, json_schema_input_type=list[str] | dict[str, DependsOn])] = Field(default_factory=dict)
    healthcheck: Healthcheck | None = None
    restart: Annotated[str, BeforeValidator(_restart, json_schema_input_type=str)] = "no"
    deploy: Deploy | None = None
    scale: int | None = Field(default=None, ge=0)
    labels: KV = Field(default_factory=dict)
    working_dir: str | None = None
    user: Str | None = None
    hostname: str | None = None
    domainname: str | None = None
    container_name: str | None = None
    cap_add: list[str] = Field(default_factory=list)
    cap_drop: list[str] = Field(default_factory=list)
    group_add: list[Str] = Field(default_factory=list)
    read_only: bool = False
    privileged: bool = False
    init: bool = False
    tty: bool = False
    stdin_open: bool = False
    stop_signal: str | None = None
    stop_grace_period: Duration | None = None
    ulimits: Annotated[dict[str, Ulimit], BeforeValidator(_ulimits, json_schema_input_type=dict[str, int | Ulimit])] \
        = Field(default_factory=dict)
    extra_hosts: Annotated[dict[str, str], BeforeValidator(
        _extra_hosts, json_schema_input_type=list[str] | dict[str, str | list[str]])] = Field(default_factory=dict)
    dns: StrList = Field(default_factory=list)
    dns_search: StrList = Field(default_factory=list)
    dns_opt: list[str] = Field(default_factory=list)
    sysctls: KV = Field(default_factory=dict)
    security_opt: list[str] = Field(default_factory=list)
    mem_limit: Bytes | None = None
    memswap_limit: Bytes | None = None
    mem_reservation: Bytes | None = None
    cpus: float | None = None
    cpu_shares: int | None = None
    cpuset: str | None = None
    pids_limit: int | None = None
    runtime: str | None = None
    logging: Logging | None = None
    profiles: StrList = Field(default_factory=list)
    extends: Annotated[Extends | None, BeforeValidator(
        lambda v: {"service": v} if isinstance(v, str) else v, json_schema_input_type=str | Extends | None)] = None
    secrets: Annotated[list[FileRef], BeforeValidator(_file_refs, json_schema_input_type=list[str | FileRef])] \
        = Field(default_factory=list)
    configs: Annotated[list[FileRef], BeforeValidator(_file_refs, json_schema_input_type=list[str | FileRef])] \
        = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> Service:
        if self.image is None and self.build is None:
            raise ValueError("a service needs 'image' or 'build'")
        if self.network_mode and self.networks:
            raise ValueError("'network_mode' and 'networks' cannot be used together")
        return self

    @property
    def replicas(self) -> int:
        if self.deploy and self.deploy.replicas is not None:
            return self.deploy.replicas
        return 1 if self.scale is None else self.scale


# ---------------------------------------------------------------- top-level resources


class IpamConfig(Model):
    subnet: str | None = None
    gateway: str | None = None
    ip_range: str | None = None


class Ipam(Model):
    driver: str | None = None
    config: list[IpamConfig] = Field(default_factory=list)


class Network(Model):
    name: str | None = None
    driver: str = "bridge"
    driver_opts: OptStrMap = Field(default_factory=dict)
    ipam: Ipam | None = None
    internal: bool = False
    attachable: bool = False
    labels: KV = Field(default_factory=dict)
    external: bool = False


class Volume(Model):
    name: str | None = None
    driver: str = "local"
    driver_opts: OptStrMap = Field(default_factory=dict)
    labels: KV = Field(default_factory=dict)
    external: bool = False


class FileObject(Model):
    """A top-level config or secret: from a file, inline content, or an environment variable."""

    name: str | None = None
    file: str | None = None
    content: str | None = None
    environment: str | None = None
    external: bool = False

    @model_validator(mode="after")
    def _one_source(self) -> FileObject:
        if self.external:
            raise ValueError("external configs/secrets need a swarm; use 'file' or 'content'")
        if sum(x is not None for x in (self.file, self.content, self.environment)) != 1:
            raise ValueError("set exactly one of 'file', 'content' or 'environment'")
        return self


class ImageEntry(Model):
    """An image to have on the machine although no service uses it (yet)."""

    image: str
    build: BuildField = None
    pull_policy: Literal["always", "never", "missing", "if_not_present", "build"] = "missing"
    platform: str | None = None


class WharfSettings(Model):
    images: list[ImageEntry] = Field(default_factory=list)
    stop_timeout: Duration | None = None


def _none_to_empty(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: ({} if x is None else x) for k, x in v.items()}
    return v


class Project(Model):
    """The resolved compose model (after merge, extends, interpolation and profiles)."""

    name: str
    version: str | None = None
    services: dict[str, Service] = Field(default_factory=dict)
    networks: Annotated[dict[str, Network], BeforeValidator(_none_to_empty, json_schema_input_type=dict[str, Network | None])] \
        = Field(default_factory=dict)
    volumes: Annotated[dict[str, Volume], BeforeValidator(_none_to_empty, json_schema_input_type=dict[str, Volume | None])] \
        = Field(default_factory=dict)
    configs: dict[str, FileObject] = Field(default_factory=dict)
    secrets: dict[str, FileObject] = Field(default_factory=dict)
    x_wharf: WharfSettings = Field(default_factory=WharfSettings, alias="x-wharf")


class ComposeFile(Project):
    """One compose file as written (JSON Schema of `schemas/compose.schema.json`)."""

    name: str | None = None  # type: ignore[assignment]
    include: list[Any] = Field(default_factory=list)
