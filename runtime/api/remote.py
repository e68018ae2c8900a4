"""RemoteEngine: the Engine protocol over the Docker Engine API (`wharf serve`, dockerd, podman).

Selected by `wharf --host URL`, WHARF_HOST or DOCKER_HOST (runtime.engine.connect). The
transport is http.client over a unix socket or TCP (TLS with DOCKER_CERT_PATH /
DOCKER_TLS_VERIFY as the docker CLI reads them); it imports nothing heavy.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode, urlparse

from runtime.api import container_json
from runtime.api.remote_http import API_VERSION, step_down
from runtime.api.remote_http import error as _error
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
        self.version = os.environ.get("DOCKER_API_VERSION") or API_VERSION

    def prefix(self) -> str:
        return "/v" + self.version

    def _step_down(self, status: int, body: bytes) -> bool:
        """dockerd refuses a too-new client version with 400 and its maximum: use that one."""
        newer = step_down(status, body, self.version)
        if newer:
            self.version = newer
        return bool(newer)

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

    def raw_socket(self) -> socket.socket:
        """A new connection to the engine (TLS when asked for): a hijacked stream's socket."""
        conn = self._new()
        try:
            conn.connect()
        except OSError as e:
            raise RuntimeFailure(f"cannot reach the engine at {self.host}: {e}") from None
        return conn.sock

    def open(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             headers: dict[str, str] | None = None, stream: bool = False, what: str = ""
             ) -> http.client.HTTPResponse:
        q = {k: v for k, v in (query or {}).items() if v is not None}
        suffix = path + ("?" + urlencode(q, doseq=True) if q else "")
        hdrs = dict(headers or {})
        data = body
        if body is not None and not isinstance(body, bytes | bytearray) and not hasattr(body, "read"):
            data = json.dumps(body).encode()
            hdrs["Content-Type"] = "application/json"
        conn = self._new() if stream else (getattr(self._local, "conn", None) or self._new())
        for attempt in (0, 1):
            try:
                conn.request(method, self.prefix() + suffix, body=data, headers=hdrs)
                resp = conn.getresponse()
                break
            except (ConnectionError, http.client.RemoteDisconnected, BrokenPipeError) as e:
                conn.close()
                if attempt or stream or hasattr(body, "read"):
                    what_happened = "refused the connection" if isinstance(e, ConnectionRefusedError) else \
                        "closed the connection"
                    raise RuntimeFailure(f"the engine at {self.host} {what_happened} ({method} {path})") from None
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
            if self._step_down(resp.status, err) and (not hasattr(body, "read") or hasattr(body, "seek")):
                if hasattr(body, "seek"):
                    body.seek(0)
                return self.open(method, path, query, body, headers, stream, what)
            raise _error(resp.status, err, what)
        return resp

    def call(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
             what: str = "", headers: dict[str, str] | None = None) -> Any:
        from runtime.api.remote_http import decode

        resp = self.open(method, path, query, body, headers, what=what)
        return decode(resp.status, resp.getheader("Content-Type") or "", resp.read(), what or path)

    def messages(self, method: str, path: str, query: dict[str, Any] | None = None, body: Any = None,
                 headers: dict[str, str] | None = None, what: str = "") -> Iterator[dict[str, Any]]:
        """A JSON-lines stream (pull, push, build, events); an in-band error raises."""
        from runtime.api.remote_http import json_lines

        return json_lines(self.open(method, path, query, body, headers, stream=True, what=what), what)

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
            conn.request("POST", f"{self.c.prefix()}/containers/{quote(ref)}/wait?condition={condition}")
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

    # ---------------------------------------------------------- streams (the CLI's run/attach/exec)

    def attach_stream(self, ref: str, stdin: bool, logs: bool = False,
                      detach_keys: str = "ctrl-p,ctrl-q") -> tuple[socket.socket, bytes]:
        from runtime.api.remote_stream import hijack

        q = {"stream": 1, "stdin": int(stdin), "stdout": 1, "stderr": 1, "logs": int(logs),
             "detachKeys": detach_keys or None}
        return hijack(self.c, f"/containers/{quote(ref)}/attach", q, what=f"attach {ref}")

    def wait_begin(self, ref: str, condition: str = "next-exit"):
        """Send `wait` now (before `start`, as the docker CLI does); the returned function reads the
        exit code (None when the engine went away)."""
        from runtime.api.remote_http import wait_begin

        return wait_begin(self.c, ref, condition)

    def resize(self, ref: str, rows: int, cols: int) -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/resize", {"h": rows, "w": cols}, what=f"resize {ref}")

    def exec_create(self, ref: str, cmd: list[str], env: list[str] | None = None, user: str = "",
                    workdir: str = "", tty: bool = False, stdin: bool = False, attach: bool = True,
                    privileged: bool = False, detach_keys: str = "", size: tuple[int, int] | None = None) -> str:
        body: dict[str, Any] = {"Cmd": cmd, "Env": env or [], "User": user, "WorkingDir": workdir, "Tty": tty,
                                "AttachStdin": stdin, "AttachStdout": attach, "AttachStderr": attach,
                                "Privileged": privileged}
        if tty and size:
            body["ConsoleSize"] = list(size)  # API 1.42: the pty has its size before the command runs
        if detach_keys:
            body["DetachKeys"] = detach_keys
        return self.c.call("POST", f"/containers/{quote(ref)}/exec", body=body, what=f"exec in {ref}")["Id"]

    def exec_start_stream(self, exec_id: str, tty: bool) -> tuple[socket.socket, bytes]:
        from runtime.api.remote_stream import hijack

        return hijack(self.c, f"/exec/{exec_id}/start", body={"Detach": False, "Tty": tty}, what="exec")

    def exec_start_detached(self, exec_id: str, tty: bool = False) -> None:
        self.c.call("POST", f"/exec/{exec_id}/start", body={"Detach": True, "Tty": tty}, what="exec")

    def exec_resize(self, exec_id: str, rows: int, cols: int) -> None:
        self.c.call("POST", f"/exec/{exec_id}/resize", {"h": rows, "w": cols}, what="exec resize")

    def exec_inspect(self, exec_id: str) -> dict[str, Any]:
        return self.c.call("GET", f"/exec/{exec_id}/json", what="exec inspect")

    # ---------------------------------------------------------- files (cp, export)

    def path_stat(self, ref: str, path: str) -> dict[str, Any] | None:
        """HEAD /archive: the X-Docker-Container-Path-Stat of `path` (None: it does not exist)."""
        import base64

        try:
            resp = self.c.open("HEAD", f"/containers/{quote(ref)}/archive", {"path": path}, what=f"cp {ref}:{path}")
        except NotFound:
            return None
        resp.read()
        return _path_stat(resp.getheader("X-Docker-Container-Path-Stat") or "", base64)

    def get_archive(self, ref: str, path: str) -> tuple[http.client.HTTPResponse, dict[str, Any]]:
        """A tar stream of `path` (docker's GET /archive) and the path's stat."""
        import base64

        resp = self.c.open("GET", f"/containers/{quote(ref)}/archive", {"path": path}, stream=True,
                           what=f"cp {ref}:{path}")
        return resp, _path_stat(resp.getheader("X-Docker-Container-Path-Stat") or "", base64)

    def put_archive(self, ref: str, path: str, tar: Any) -> None:
        """Extract a tar (bytes or a readable file) into directory `path` of the container."""
        self.c.call("PUT", f"/containers/{quote(ref)}/archive", {"path": path, "noOverwriteDirNonDir": "true"},
                    body=tar, headers={"Content-Type": "application/x-tar"}, what=f"cp to {ref}:{path}")

    def export(self, ref: str) -> http.client.HTTPResponse:
        return self.c.open("GET", f"/containers/{quote(ref)}/export", stream=True, what=f"export {ref}")

    # ---------------------------------------------------------- the rest of docker's container verbs

    def top(self, ref: str) -> tuple[list[str], list[list[str]]]:
        r = self.c.call("GET", f"/containers/{quote(ref)}/top", what=f"top {ref}")
        if not isinstance(r, dict):  # podman answers 200 and nothing for a stopped container
            raise Conflict(f"top {ref}: the engine sent no process list", hint="is the container running?")
        return r.get("Titles") or [], r.get("Processes") or []

    def diff(self, ref: str) -> list[tuple[str, str]]:
        kinds = {0: "C", 1: "A", 2: "D"}
        rows = self.c.call("GET", f"/containers/{quote(ref)}/changes", what=f"diff {ref}") or []
        return [(kinds.get(r.get("Kind"), "C"), r.get("Path", "")) for r in rows]

    def commit(self, ref: str, repository: str | None = None, changes: list[str] | None = None,
               author: str = "", message: str = "", pause: bool = True) -> ImageInfo:
        repo, tag = repository or "", ""
        if repository and ":" in repository.rsplit("/", 1)[-1]:
            repo, _, tag = repository.rpartition(":")
        q = {"container": ref, "repo": repo or None, "tag": tag or None, "author": author or None,
             "comment": message or None, "pause": int(pause), "changes": list(changes or []) or None}
        r = self.c.call("POST", "/commit", q, body={}, what=f"commit {ref}")
        return ImageInfo(id=r["Id"])

    def update(self, ref: str, resources=None, restart=None) -> None:
        body: dict[str, Any] = {}
        if resources is not None:
            for key, attr in (("Memory", "memory"), ("MemorySwap", "memory_swap"), ("NanoCpus", "nano_cpus"),
                              ("CpuShares", "cpu_shares"), ("CpusetCpus", "cpuset_cpus"), ("PidsLimit", "pids_limit")):
                if getattr(resources, attr, None) is not None:
                    body[key] = getattr(resources, attr)
        if restart is not None:
            body["RestartPolicy"] = {"Name": "" if restart.name == "no" else restart.name,
                                     "MaximumRetryCount": restart.maximum_retry_count}
        self.c.call("POST", f"/containers/{quote(ref)}/update", body=body, what=f"update {ref}")

    def stats(self, ref: str) -> dict[str, Any]:
        """One sample in the shape LocalContainers.stats gives (Name, CPUNanos, MemUsage, MemLimit, PIDs)."""
        d = self.c.call("GET", f"/containers/{quote(ref)}/stats", {"stream": 0, "one-shot": 1}, what=f"stats {ref}")
        if not isinstance(d, dict):  # podman: 200 and nothing for a stopped container
            d = {"id": ref}
        mem = d.get("memory_stats") or {}
        usage, limit = int(mem.get("usage") or 0), int(mem.get("limit") or 0)
        blk = {"read": 0, "write": 0}
        for e in (d.get("blkio_stats") or {}).get("io_service_bytes_recursive") or []:
            if (e.get("op") or "").lower() in blk:
                blk[e["op"].lower()] += int(e.get("value") or 0)
        return {"ID": (d.get("id") or ref)[:12], "Name": (d.get("name") or "").lstrip("/"),
                "CPUNanos": int(((d.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage") or 0),
                "MemUsage": usage, "MemLimit": limit, "MemPerc": round(100.0 * usage / limit, 2) if limit else 0.0,
                "PIDs": int((d.get("pids_stats") or {}).get("current") or 0),
                "BlockRead": blk["read"], "BlockWrite": blk["write"]}

    def prune(self, filters: Filters | None = None) -> list[str]:
        r = self.c.call("POST", "/containers/prune", {"filters": json.dumps(filters or {})}) or {}
        return r.get("ContainersDeleted") or []


    def pause(self, ref: str) -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/pause", what=f"pause {ref}")

    def unpause(self, ref: str) -> None:
        self.c.call("POST", f"/containers/{quote(ref)}/unpause", what=f"unpause {ref}")


def _path_stat(header: str, base64) -> dict[str, Any]:
    try:
        return json.loads(base64.b64decode(header)) if header else {}
    except ValueError:
        return {}


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
        name, tag = _name_and_tag(ref)
        for msg in self.c.messages("POST", "/images/create", {"fromImage": name, "tag": tag, "platform": platform},
                                   headers=_registry_auth(ref), what=f"pull {ref}"):
            if progress:
                progress(msg)
        return self.inspect(ref)

    def push(self, ref: str, progress=None) -> None:
        name, tag = _name_and_tag(ref)  # no tag: latest (dockerd pushes every tag for an empty one)
        for msg in self.c.messages("POST", f"/images/{name}/push", {"tag": tag}, headers=_registry_auth(ref),
                                   what=f"push {ref}"):
            if progress:
                progress(msg)

    def build(self, context: str, dockerfile: str = "Dockerfile", tags: list[str] | None = None,
              build_args: dict[str, str] | None = None, target: str | None = None,
              labels: dict[str, str] | None = None, no_cache: bool = False, progress=None,
              pull: bool = False, dockerfile_text: str | None = None, context_tar=None,
              quiet: bool = False) -> ImageInfo:
        """`POST /build` of CONTEXT (a directory: sent without what .dockerignore excludes) or of
        `context_tar` (a tar file object, with `dockerfile` its Dockerfile's name in it)."""
        from runtime.api.remote_build import context_tar as make_tar

        if context_tar is None:
            df = None if dockerfile in (None, "", "Dockerfile") else (
                dockerfile if os.path.isabs(dockerfile) else os.path.join(context, dockerfile))
            tar, name = make_tar(context, df, dockerfile_text)
        else:
            tar, name = context_tar, dockerfile or "Dockerfile"
        q = {"t": tags or [], "dockerfile": name, "buildargs": json.dumps(build_args or {}),
             "labels": json.dumps(labels or {}), "target": target, "nocache": int(no_cache),
             "pull": int(pull) or None, "q": int(quiet) or None, "rm": 1}
        image_id = ""
        tar.seek(0, os.SEEK_END)
        size = tar.tell()
        tar.seek(0)
        try:
            for msg in self.c.messages("POST", "/build", q, tar, {"Content-Type": "application/x-tar",
                                                                    "Content-Length": str(size)}, what="build"):
                if "aux" in msg and isinstance(msg["aux"], dict):
                    image_id = msg["aux"].get("ID", image_id)
                elif isinstance(msg.get("stream"), str) and msg["stream"].startswith("Successfully built "):
                    image_id = image_id or msg["stream"].split()[-1]
                if progress:
                    progress(msg.get("stream", msg) if isinstance(msg.get("stream"), str) else msg)
        finally:
            tar.close()
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

    # ---------------------------------------------------------- the CLI's other image verbs

    def summaries(self, filters: Filters | None = None) -> list[dict[str, Any]]:
        """GET /images/json as the engine sends it (ImageSummary items)."""
        return self.c.call("GET", "/images/json", {"filters": json.dumps(filters or {})}, what="images") or []

    def inspect_doc(self, ref: str) -> dict[str, Any]:
        return self.c.call("GET", f"/images/{ref}/json", what=f"image inspect {ref}")

    def history(self, ref: str) -> list[dict[str, Any]]:
        return self.c.call("GET", f"/images/{ref}/history", what=f"history {ref}") or []

    def prune(self, all: bool = False, filters: Filters | None = None) -> tuple[list[str], int]:
        """POST /images/prune: ("Untagged: x" / "Deleted: y" lines, bytes reclaimed)."""
        f = dict(filters or {})
        if all:
            f["dangling"] = ["false"]
        r = self.c.call("POST", "/images/prune", {"filters": json.dumps(f)}, what="image prune") or {}
        lines = [f"{k}: {v}" for d in r.get("ImagesDeleted") or [] for k, v in d.items()]
        return lines, int(r.get("SpaceReclaimed") or 0)

    def save(self, names: list[str]) -> http.client.HTTPResponse:
        """GET /images/get: a docker-archive tar stream of the images."""
        return self.c.open("GET", "/images/get", {"names": names}, stream=True, what="save")

    def load(self, tar: Any, quiet: bool = False) -> list[str]:
        """POST /images/load of a tar (a readable file): the engine's "Loaded image: ..." lines."""
        out = []
        for m in self.c.messages("POST", "/images/load", {"quiet": int(quiet)}, body=tar,
                                 headers={"Content-Type": "application/x-tar"}, what="load"):
            if isinstance(m.get("stream"), str) and m["stream"].strip():
                out.append(m["stream"].strip())
        return out

    def import_(self, tar: Any, repository: str | None = None, changes: list[str] | None = None,
                message: str = "", platform: str | None = None) -> str:
        """POST /images/create?fromSrc=- with the tar as the body: the new image's id."""
        # the whole NAME:TAG in repo, as the docker CLI sends it (podman ignores a separate tag=)
        q = {"fromSrc": "-", "repo": repository or None, "message": message or None, "platform": platform,
             "changes": list(changes or []) or None}
        image_id = ""
        for m in self.c.messages("POST", "/images/create", q, body=tar,
                                 headers={"Content-Type": "application/x-tar"}, what="import"):
            if isinstance(m.get("status"), str) and m["status"].startswith("sha256:"):
                image_id = m["status"].strip()
        if not image_id:
            raise RuntimeFailure("import: the engine did not report the image it made")
        return image_id

    def search(self, term: str, limit: int = 25) -> list[str]:
        rows = self.c.call("GET", "/images/search", {"term": term, "limit": limit}, what=f"search {term}") or []
        return [r.get("name", "") for r in rows]


def _name_and_tag(ref: str) -> tuple[str, str]:
    """`images/create`'s fromImage and tag (a tag or a digest) for REF; no tag is `latest`, as the
    docker CLI sends it (an empty tag makes dockerd pull every tag of the repository)."""
    name, _, digest = ref.partition("@")
    if ":" in name.rsplit("/", 1)[-1]:
        name, _, tag = name.rpartition(":")
    else:
        tag = "latest"
    return name, digest or tag


def _registry_auth(ref: str) -> dict[str, str]:
    """X-Registry-Auth for `ref`'s registry from the local credential store (what `wharf login`
    keeps), as the docker CLI sends it; an empty object when there are none."""
    import base64

    from runtime.images.reference import parse
    from runtime.registry import credentials

    doc: dict[str, str] = {}
    try:
        domain = parse(ref).domain
        creds = credentials.get(domain)
    except WharfError:  # a bad reference or config.json: the engine says what is wrong with the call
        creds = None
    if creds:
        doc = {"username": creds[0], "password": creds[1], "serveraddress": domain}
    return {"X-Registry-Auth": base64.urlsafe_b64encode(json.dumps(doc).encode()).decode()}


def auth(c: Client, server: str | None, user: str, password: str) -> str:
    """POST /auth: the engine checks the credentials against the registry; its status line."""
    r = c.call("POST", "/auth", body={"username": user, "password": password, "serveraddress": server or ""},
               what="login") or {}
    return r.get("Status") or "Login Succeeded"


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
