"""RemoteEngine: the Engine protocol over the Docker Engine API (`wharf serve`, dockerd, podman).

Selected by `wharf --host URL`, WHARF_HOST or DOCKER_HOST (runtime.engine.connect). The
transport is http.client over a unix socket or TCP (TLS with DOCKER_CERT_PATH /
DOCKER_TLS_VERIFY as the docker CLI reads them); it imports nothing heavy.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import struct
import tarfile
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlparse

from runtime.api import container_json
from runtime.engine import (
    ContainerInfo,
    ContainerSpec,
    EndpointSpec,
    Event,
    ExecResult,
    Filters,
    ImageInfo,
    NetworkInfo,
    NetworkSpec,
    VolumeInfo,
)
from runtime.errors import Conflict, InvalidArgument, NotFound, RuntimeFailure, WharfError

API = "/v1.41"


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float | None = None) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.timeout is not None:
            s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as e:
            s.close()
            raise RuntimeFailure(f"cannot connect to the engine API at unix://{self.path}: {e.strerror or e}",
                                 hint="is `wharf serve` (or dockerd) running there?") from None
        self.sock = s


def _error(status: int, body: bytes, what: str) -> WharfError:
    try:
        msg = json.loads(body).get("message") or body.decode(errors="replace")
    except (ValueError, AttributeError):
        msg = body.decode(errors="replace").strip() or f"HTTP {status}"
    cls = {400: InvalidArgument, 404: NotFound, 409: Conflict}.get(status, RuntimeFailure)
    return cls(f"{what}: {msg}" if what else msg)


class Client:
    """One keep-alive connection for plain calls; a fresh one per stream."""

    def __init__(self, host: str) -> None:
        u = urlparse(host if "://" in host else "tcp://" + host)
        self.scheme = u.scheme
        self.host = host
        if u.scheme == "unix":
            self.target = u.path
        elif u.scheme in ("tcp", "http", "https"):
            self.target = (u.hostname or "127.0.0.1", u.port or 2375)
        else:
            raise InvalidArgument(f"unsupported engine address {host!r}", hint="use unix:///path or tcp://HOST:PORT")
        self._local = threading.local()  # one keep-alive connection per thread (the reconciler is parallel)

    def _new(self, timeout: float | None = None) -> http.client.HTTPConnection:
        if self.scheme == "unix":
            return _UnixConnection(self.target, timeout)
        host, port = self.target
        cert_path = os.environ.get("DOCKER_CERT_PATH")
        if self.scheme == "https" or os.environ.get("DOCKER_TLS_VERIFY") or cert_path:
            import ssl

            ctx = ssl.create_default_context(cafile=os.path.join(cert_path, "ca.pem") if cert_path else None)
            if cert_path:
                ctx.load_cert_chain(os.path.join(cert_path, "cert.pem"), os.path.join(cert_path, "key.pem"))
            if not os.environ.get("DOCKER_TLS_VERIFY"):
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=ctx)
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def open(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             headers: dict[str, str] | None = None, stream: bool = False, what: str = ""
             ) -> http.client.HTTPResponse:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        url = API + path + ("?" + urlencode(q, doseq=True) if q else "")
        hdrs = dict(headers or {})
        data = body
        if body is not None and not isinstance(body, bytes | bytearray) and not hasattr(body, "read"):
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn = self._new() if stream else (getattr(self._local, "conn", None) or self._new())
        for attempt in (0, 1):
            try:
                conn.request(method, url, body=data, headers=hdrs)
                resp = conn.getresponse()
                break
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError):
                conn.close()
                if attempt or stream or hasattr(body, "read"):
                    raise RuntimeFailure(f"the engine at {self.host} closed the connection") from None
                conn = self._new()
            except OSError as e:
                conn.close()
                raise RuntimeFailure(f"cannot reach the engine at {self.host}: {e}") from None
        if not stream:
            self._local.conn = conn
        if resp.status >= 400:
            err = resp.read()
            if stream:
                conn.close()
            raise _error(resp.status, err, what)
        return resp

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             what: str = "", headers: dict[str, str] | None = None) -> Any:
        resp = self.open(method, path, query, body, headers, what=what)
        data = resp.read()
        if not data or resp.status == 204:
            return None
        if (resp.getheader("Content-Type") or "").startswith("application/json"):
            return json.loads(data)
        return data

    def messages(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                 headers: dict[str, str] | None = None, what: str = "") -> Iterator[dict[str, Any]]:
        """A JSON-lines stream (pull, push, build, events); an in-band error raises."""
        resp = self.open(method, path, query, body, headers, stream=True, what=what)
        try:
            buf = b""
            while chunk := resp.read1(65536) if hasattr(resp, "read1") else resp.read(65536):
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for line in lines:
                    if line.strip():
                        msg = json.loads(line)
                        if msg.get("error"):
                            raise RuntimeFailure(f"{what}: {msg['error']}" if what else msg["error"])
                        yield msg
        finally:
            resp.close()


def _demux(resp, tty: bool) -> Iterator[tuple[str, bytes]]:
    """Docker's multiplexed stream -> (stdout|stderr, bytes); raw bytes for a tty."""
    if tty:
        while chunk := resp.read(65536):
            yield "stdout", chunk
        return
    while True:
        hdr = resp.read(8)
        if len(hdr) < 8:
            return
        kind, size = struct.unpack(">BxxxI", hdr)
        data = resp.read(size)
        yield ("stderr" if kind == 2 else "stdout"), data


class RemoteContainers:
    def __init__(self, c: Client) -> None:
        self.c = c

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        r = self.c.call("POST", "/containers/create", {"name": spec.name}, container_json.create_body(spec),
                        what=f"create {spec.name or spec.image}")
        return self.inspect(r["Id"])

    def start(self, ref: str) -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/start", what=f"start {ref}")

    def stop(self, ref: str, timeout: int | None = None) -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/stop", {"t": timeout}, what=f"stop {ref}")

    def restart(self, ref: str, timeout: int | None = None) -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/restart", {"t": timeout}, what=f"restart {ref}")

    def kill(self, ref: str, signal: str = "SIGKILL") -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/kill", {"signal": signal}, what=f"kill {ref}")

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self.c.call("DELETE", f"/containers/{quote(ref)}", {"force": int(force), "v": int(volumes)},
                    what=f"remove {ref}")

    def wait(self, ref: str, condition: str = "not-running", timeout: float | None = None) -> int:
        conn = self.c._new(timeout)
        try:
            conn.request("POST", f"{API}/containers/{quote(ref)}/wait?condition={condition}")
            resp = conn.getresponse()
            data = resp.read()
        except TimeoutError:
            raise RuntimeFailure(f"timed out waiting for container {ref}") from None
        finally:
            conn.close()
        if resp.status >= 400:
            raise _error(resp.status, data, f"wait {ref}")
        return int(json.loads(data).get("StatusCode", 0))

    def inspect(self, ref: str) -> ContainerInfo:
        return container_json.info_from_inspect(self.c.call("GET", f"/containers/{quote(ref)}/json"))

    def list(self, all: bool = False, filters: Filters | None = None) -> list[ContainerInfo]:
        rows = self.c.call("GET", "/containers/json", {"all": int(all), "filters": json.dumps(filters or {})})
        out = []
        for r in rows or []:
            try:
                out.append(self.inspect(r["Id"]))
            except NotFound:
                continue  # removed meanwhile
        return out

    def logs(self, ref: str, follow: bool = False, stdout: bool = True, stderr: bool = True,
             since: float | None = None, until: float | None = None, tail: int | None = None,
             timestamps: bool = False) -> Iterator[tuple[str, bytes]]:
        tty = self.inspect(ref).spec.tty
        q = {"follow": int(follow), "stdout": int(stdout), "stderr": int(stderr), "timestamps": int(timestamps),
             "since": since, "until": until, "tail": "all" if tail is None else tail}
        resp = self.c.open("GET", f"/containers/{quote(ref)}/logs", q, stream=True, what=f"logs {ref}")
        try:
            yield from _demux(resp, tty)
        finally:
            resp.close()

    def exec(self, ref: str, cmd: list[str], env: list[str] | None = None, user: str = "",
             workdir: str = "", tty: bool = False) -> ExecResult:
        r = self.c.call("POST", f"/containers/{quote(ref)}/exec",
                        body={"Cmd": cmd, "Env": env or [], "User": user, "WorkingDir": workdir, "Tty": tty,
                              "AttachStdout": True, "AttachStderr": True}, what=f"exec in {ref}")
        resp = self.c.open("POST", f"/exec/{r['Id']}/start", body={"Detach": False, "Tty": tty}, stream=True)
        try:
            out = b"".join(data for _, data in _demux(resp, tty))
        finally:
            resp.close()
        info = self.c.call("GET", f"/exec/{r['Id']}/json")
        return ExecResult(exit_code=int(info.get("ExitCode") or 0), output=out)

    def rename(self, ref: str, new_name: str) -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/rename", {"name": new_name}, what=f"rename {ref}")

    def pause(self, ref: str) -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/pause", what=f"pause {ref}")

    def unpause(self, ref: str) -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/unpause", what=f"unpause {ref}")


def image_from_json(d: dict[str, Any]) -> ImageInfo:
    cfg = d.get("Config") or {}
    return ImageInfo(id=d["Id"], repo_tags=d.get("RepoTags") or [], repo_digests=d.get("RepoDigests") or [],
                     created=str(d.get("Created", "")), size=int(d.get("Size") or 0), config=cfg,
                     labels=cfg.get("Labels") or d.get("Labels") or {},
                     architecture=d.get("Architecture", "amd64"), os=d.get("Os", "linux"))


class RemoteImages:
    def __init__(self, c: Client) -> None:
        self.c = c

    def pull(self, ref: str, platform: str | None = None, progress=None) -> ImageInfo:
        for msg in self.c.messages("POST", "/images/create", {"fromImage": ref, "platform": platform},
                                   what=f"pull {ref}"):
            if progress:
                progress(msg)
        return self.inspect(ref)

    def push(self, ref: str, progress=None) -> None:
        import base64

        auth = base64.urlsafe_b64encode(b"{}").decode()
        for msg in self.c.messages("POST", f"/images/{ref}/push", headers={"X-Registry-Auth": auth},
                                   what=f"push {ref}"):
            if progress:
                progress(msg)

    def build(self, context: str, dockerfile: str = "Dockerfile", tags: list[str] | None = None,
              build_args: dict[str, str] | None = None, target: str | None = None,
              labels: dict[str, str] | None = None, no_cache: bool = False, progress=None) -> ImageInfo:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            tar.add(context, arcname=".")
        q = {"t": tags or [], "dockerfile": dockerfile, "buildargs": json.dumps(build_args or {}),
             "labels": json.dumps(labels or {}), "target": target, "nocache": int(no_cache)}
        image_id = ""
        for msg in self.c.messages("POST", "/build", q, buf.getvalue(), {"Content-Type": "application/x-tar"},
                                   what="build"):
            if "aux" in msg and isinstance(msg["aux"], dict):
                image_id = msg["aux"].get("ID", image_id)
            if progress:
                progress(msg.get("stream", msg) if isinstance(msg.get("stream"), str) else msg)
        if not image_id:
            raise RuntimeFailure("build: the engine did not report the image it built")
        return self.inspect(image_id)

    def inspect(self, ref: str) -> ImageInfo:
        return image_from_json(self.c.call("GET", f"/images/{ref}/json"))

    def list(self, all: bool = False, filters: Filters | None = None) -> list[ImageInfo]:
        rows = self.c.call("GET", "/images/json", {"all": int(all), "filters": json.dumps(filters or {})})
        return [ImageInfo(id=r["Id"], repo_tags=r.get("RepoTags") or [], repo_digests=r.get("RepoDigests") or [],
                          created=str(r.get("Created", "")), size=int(r.get("Size") or 0),
                          labels=r.get("Labels") or {}) for r in rows or []]

    def tag(self, ref: str, new_ref: str) -> None:
        repo, tag = new_ref, None
        if ":" in new_ref.rsplit("/", 1)[-1]:
            repo, _, tag = new_ref.rpartition(":")
        self.c.call("POST", f"/images/{ref}/tag", {"repo": repo, "tag": tag}, what=f"tag {ref}")

    def remove(self, ref: str, force: bool = False) -> list[str]:
        rows = self.c.call("DELETE", f"/images/{ref}", {"force": int(force)}, what=f"remove image {ref}") or []
        return [f"{k}: {v}" for r in rows for k, v in r.items()]


class RemoteNetworks:
    def __init__(self, c: Client) -> None:
        self.c = c

    def create(self, spec: NetworkSpec) -> NetworkInfo:
        from runtime.api.networks import spec_to_json

        r = self.c.call("POST", "/networks/create", body=spec_to_json(spec), what=f"network create {spec.name}")
        return self.inspect(r["Id"])

    def inspect(self, ref: str) -> NetworkInfo:
        from runtime.api.networks import network_from_json

        return network_from_json(self.c.call("GET", f"/networks/{quote(ref)}"))

    def list(self, filters: Filters | None = None) -> list[NetworkInfo]:
        from runtime.api.networks import network_from_json

        return [network_from_json(d) for d in self.c.call("GET", "/networks",
                                                          {"filters": json.dumps(filters or {})}) or []]

    def remove(self, ref: str) -> None:
        self.c.call("DELETE", f"/networks/{quote(ref)}", what=f"network rm {ref}")

    def connect(self, network: str, container: str, endpoint: EndpointSpec | None = None) -> None:
        ep = endpoint or EndpointSpec()
        body = {"Container": container, "EndpointConfig": {
            "Aliases": ep.aliases or None, **({"IPAMConfig": {"IPv4Address": ep.ipv4_address}}
                                              if ep.ipv4_address else {})}}
        self.c.call("POST", f"/networks/{quote(network)}/connect", body=body, what=f"network connect {network}")

    def disconnect(self, network: str, container: str, force: bool = False) -> None:
        self.c.call("POST", f"/networks/{quote(network)}/disconnect", body={"Container": container, "Force": force},
                    what=f"network disconnect {network}")

    def prune(self) -> list[str]:
        return (self.c.call("POST", "/networks/prune") or {}).get("NetworksDeleted") or []


class RemoteVolumes:
    def __init__(self, c: Client) -> None:
        self.c = c

    def create(self, name: str | None = None, driver: str = "local", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> VolumeInfo:
        from runtime.api.volumes import volume_from_json

        body = {"Name": name or "", "Driver": driver, "Labels": labels or {}, "DriverOpts": options or {}}
        return volume_from_json(self.c.call("POST", "/volumes/create", body=body, what="volume create"))

    def inspect(self, name: str) -> VolumeInfo:
        from runtime.api.volumes import volume_from_json

        return volume_from_json(self.c.call("GET", f"/volumes/{quote(name)}"))

    def list(self, filters: Filters | None = None) -> list[VolumeInfo]:
        from runtime.api.volumes import volume_from_json

        r = self.c.call("GET", "/volumes", {"filters": json.dumps(filters or {})}) or {}
        return [volume_from_json(d) for d in r.get("Volumes") or []]

    def remove(self, name: str, force: bool = False) -> None:
        self.c.call("DELETE", f"/volumes/{quote(name)}", {"force": int(force)}, what=f"volume rm {name}")

    def prune(self, filters: Filters | None = None, all: bool = False) -> list[str]:
        f = dict(filters or {})
        if all:
            f["all"] = ["true"]
        return (self.c.call("POST", "/volumes/prune", {"filters": json.dumps(f)}) or {}).get("VolumesDeleted") or []


class RemoteEngine:
    def __init__(self, host: str) -> None:
        self.host = host
        self.client = Client(host)
        self.containers = RemoteContainers(self.client)
        self.images = RemoteImages(self.client)
        self.networks = RemoteNetworks(self.client)
        self.volumes = RemoteVolumes(self.client)

    def events(self, since: float | None = None, until: float | None = None,
               filters: Filters | None = None) -> Iterator[Event]:
        q = {"since": since, "until": until, "filters": json.dumps(filters or {})}
        for m in self.client.messages("GET", "/events", q, what="events"):
            actor = m.get("Actor") or {}
            yield Event(type=m.get("Type", ""), action=m.get("Action", ""), id=actor.get("ID", m.get("id", "")),
                        attributes=actor.get("Attributes") or {},
                        time=m.get("timeNano", 0) / 1e9 if m.get("timeNano") else float(m.get("time", 0)))

    def info(self) -> dict[str, Any]:
        return self.client.call("GET", "/info")

    def ping(self) -> str:
        return self.client.call("GET", "/_ping").decode()
