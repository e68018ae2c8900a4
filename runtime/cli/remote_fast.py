"""The hot verbs over an Engine API without typer (`wharf --host URL ps|run|rm|stop|start|logs|
inspect`, or WHARF_HOST / DOCKER_HOST): runtime/cli/fast.py's dispatch sends them here when an
engine address is set (`images` too). Each prints what the typer verb prints (they share ps_output, run_body,
inspect_docs); a flag this does not know sends the command to typer (None).

The lean client (runtime.api.remote_http) serves unix:// and plain tcp://; with TLS the verbs
use RemoteEngine's client (same call shapes).
"""

from __future__ import annotations

import json
import os
import sys

from runtime.errors import InvalidArgument, NotFound, WharfError

TYPE_CHECKING = False
if TYPE_CHECKING:  # on the fast path: no typing import at run time
    from typing import Any


# ---------------------------------------------------------------- ps


def records_from_inspect(d: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A Docker ContainerJSON in the raw (config, state) shape runtime.containers.views reads
    (what RemoteEngine's ContainerInfo gave, without building one)."""
    cfg = d.get("Config") or {}
    hc = d.get("HostConfig") or {}
    s = d.get("State") or {}
    cmd = cfg.get("Cmd")
    entry = cfg.get("Entrypoint")
    if isinstance(cmd, str) or isinstance(entry, str):
        import shlex

        cmd = shlex.split(cmd) if isinstance(cmd, str) else cmd
        entry = shlex.split(entry) if isinstance(entry, str) else entry
    if entry == [""]:
        entry = []
    mode = hc.get("NetworkMode") or "bridge"
    mode = "bridge" if mode == "default" else ("none" if cfg.get("NetworkDisabled") else mode)
    mounts = [{"type": m.get("Type", "volume"), "source": m.get("Name") or m.get("Source", ""),
               "target": m.get("Destination", ""), "read_only": not m.get("RW", True)} for m in d.get("Mounts") or []]
    mounts += [{"type": "tmpfs", "source": "", "target": t, "read_only": False} for t in hc.get("Tmpfs") or {}]
    ns = d.get("NetworkSettings") or {}
    ports = []
    for key, binds in (ns.get("Ports") or {}).items():
        port, _, proto = key.partition("/")
        for b in binds or []:
            ports.append({"container_port": int(port), "protocol": proto or "tcp", "host_ip": b.get("HostIp", ""),
                          "host_port": int(b.get("HostPort") or 0)})
    labels = {str(k): "" if v is None else str(v) for k, v in (cfg.get("Labels") or {}).items()}
    rec = {"id": d["Id"], "name": (d.get("Name") or "").lstrip("/"), "image": cfg.get("Image", ""),
           "image_id": d.get("Image", ""), "created": d.get("Created", ""),
           "spec": {"command": cmd, "entrypoint": entry, "labels": labels, "network_mode": mode},
           "ports": ports, "networks": {n: {"network_id": (e or {}).get("NetworkID", "")}
                                        for n, e in (ns.get("Networks") or {}).items()},
           "mounts": mounts}
    zero = "0001-01-01T00:00:00Z"
    health = s.get("Health")
    st = {"status": s.get("Status", "created"), "pid": s.get("Pid", 0), "exit_code": s.get("ExitCode", 0),
          "started_at": "" if s.get("StartedAt", zero).startswith("0001") else s.get("StartedAt", ""),
          "finished_at": "" if s.get("FinishedAt", zero).startswith("0001") else s.get("FinishedAt", ""),
          "health": {"status": health.get("Status", "")} if health else None,
          "restart_count": d.get("RestartCount", 0)}
    return rec, st


def ps_records(all_: bool, filters: dict[str, list[str]] | None, ids_only: bool = False
               ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """The engine's containers as (config, state), newest first as it lists them: one list call,
    then every inspect pipelined on one connection (`ids_only`: the list alone, for ps -q)."""
    from runtime.api.remote_http import Http
    from runtime.cli.remote_verbs import client

    c = client()
    rows = c.call("GET", "/containers/json", {"all": int(all_), "filters": json.dumps(filters or {})}) or []
    if ids_only:
        return [({"id": r["Id"]}, {}) for r in rows]
    paths = [f"/containers/{r['Id']}/json" for r in rows]
    if isinstance(c, Http):
        docs = c.call_many(paths)
    else:
        docs = []
        for p in paths:
            try:
                docs.append(c.call("GET", p))
            except NotFound as e:
                docs.append(e)
    out = []
    for d in docs:
        if isinstance(d, NotFound):
            continue  # removed meanwhile
        if isinstance(d, WharfError):
            raise d
        out.append(records_from_inspect(d))
    return out


# ---------------------------------------------------------------- run


def simple_body(o: dict[str, Any], image: str, command: list[str]) -> dict[str, Any]:
    """The create body of a `run` with fast.py's simple flags (fast._run_opts): what
    container_json.create_body gives for the ContainerSpec the typer verb builds from them."""
    def last(key: str, default: str = "") -> str:
        return (o.get(key) or [default])[-1]

    env = []
    for v in o.get("env", []):
        if "=" in v:
            env.append(v)
        elif v in os.environ:  # `-e NAME` passes the caller's value
            env.append(f"{v}={os.environ[v]}")
    labels = {}
    for v in o.get("label", []):
        k, _, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"invalid label {v!r}", hint="use --label key=value", exit_code=125)
        labels[k] = val
    hc: dict[str, Any] = {
        "Binds": [], "Mounts": [], "Tmpfs": {}, "PortBindings": {}, "PublishAllPorts": False,
        "NetworkMode": last("network", "bridge") or "bridge", "RestartPolicy": {"Name": "", "MaximumRetryCount": 0},
        "CapAdd": None, "CapDrop": None, "GroupAdd": None, "Privileged": bool(o.get("privileged")),
        "ReadonlyRootfs": bool(o.get("read_only")), "Init": True if o.get("init") else None, "Dns": [],
        "DnsSearch": [], "DnsOptions": [], "ExtraHosts": None, "Sysctls": None, "SecurityOpt": None,
        "AutoRemove": bool(o.get("rm")), "LogConfig": {"Type": "json-file", "Config": {}},
    }
    if last("runtime"):
        hc["Runtime"] = last("runtime")
    interactive = bool(o.get("interactive"))
    body = {"Image": image, "Cmd": list(command) if command else None, "Env": env, "Labels": labels,
            "WorkingDir": last("workdir"), "User": last("user"), "Hostname": last("hostname"), "Domainname": "",
            "Tty": bool(o.get("tty")), "OpenStdin": interactive, "StdinOnce": interactive and not o.get("detach"),
            "AttachStdin": False, "AttachStdout": False, "AttachStderr": False, "HostConfig": hc}
    return {k: v for k, v in body.items() if v is not None}


def _run(args: list[str]) -> int | None:
    from runtime.cli import remote_verbs as rv
    from runtime.cli.fast import _run_opts

    p = _run_opts(args)
    if p is None:
        return None
    o, image, command = p
    body = simple_body(o, image, command)
    return rv.run_body(body, (o.get("name") or [""])[-1] or None, image, bool(o.get("detach")))


# ---------------------------------------------------------------- rm, stop, start, logs, inspect


class LeanContainers:
    """rm/stop/start as fast._simple_multi calls them, as the engine API calls RemoteContainers makes."""

    def __init__(self, c) -> None:
        self.c = c

    def _path(self, ref: str) -> str:
        from runtime.api.remote_http import quote

        return f"/containers/{quote(ref, '/')}"

    def remove(self, ref: str, force: bool = False, volumes: bool = False) -> None:
        self.c.call("DELETE", self._path(ref), {"force": int(force), "v": int(volumes)}, what=f"remove {ref}")

    def stop(self, ref: str, timeout: int | None = None) -> None:
        self.c.call("POST", self._path(ref) + "/stop", {"t": timeout}, what=f"stop {ref}")

    def start(self, ref: str) -> None:
        self.c.call("POST", self._path(ref) + "/start", what=f"start {ref}")


def _logs(args: list[str]) -> int | None:
    from runtime.api.remote_http import quote
    from runtime.cli.fast import _parse
    from runtime.cli.remote_verbs import client

    p = _parse(args, {"-f": "follow", "--follow": "follow", "-t": "timestamps", "--timestamps": "timestamps"},
               {"-n": "tail", "--tail": "tail"})
    if p is None or len(p[1]) != 1:
        return None
    o, (ref,) = p
    tail = (o.get("tail") or ["all"])[-1]
    if tail != "all" and not tail.isdigit():
        return None
    follow = bool(o.get("follow"))
    c = client()
    tty = bool(((c.call("GET", f"/containers/{quote(ref, '/')}/json") or {}).get("Config") or {}).get("Tty"))
    q = {"follow": int(follow), "stdout": 1, "stderr": 1, "timestamps": int(bool(o.get("timestamps"))),
         "tail": tail if tail == "all" else int(tail)}
    resp = c.open("GET", f"/containers/{quote(ref, '/')}/logs", q, stream=True, what=f"logs {ref}")
    out, err = sys.stdout.buffer, sys.stderr.buffer
    try:
        for kind, data in _frames(resp, tty):
            w = err if kind == 2 else out
            w.write(data)
            if follow:
                w.flush()
    finally:
        resp.close()
    return 0


def _frames(resp, tty: bool):
    """Docker's multiplexed stream -> (1|2, bytes); raw bytes (1) for a tty."""
    read = resp.read1
    if tty:
        while chunk := read():
            yield 1, chunk
        return
    buf = b""
    while chunk := read():
        buf += chunk
        while len(buf) >= 8:
            size = int.from_bytes(buf[4:8], "big")
            if len(buf) < 8 + size:
                break
            yield (2 if buf[0] == 2 else 1), buf[8:8 + size]
            buf = buf[8 + size:]


def _inspect(args: list[str]) -> int | None:
    from runtime.cli.fast import _parse
    from runtime.cli.remote_verbs import inspect_docs

    p = _parse(args, {}, {"-f": "format", "--format": "format", "--type": "type"})
    if p is None or not p[1]:
        return None
    o, refs = p
    fmt = (o.get("format") or [None])[-1]
    docs, missing = inspect_docs(refs, (o.get("type") or [None])[-1])
    print_docs(docs, fmt)
    for m in missing:
        print(f"wharf: error: no such object: {m}", file=sys.stderr)
    return 1 if missing else 0


def print_docs(docs: list[dict[str, Any]], fmt: str | None) -> None:
    """`inspect`'s output: the JSON array, or each doc through a Go template."""
    if fmt in (None, "", "json"):
        print(json.dumps(docs, indent=4))
        return
    from runtime.containers.gotemplate import render

    for d in docs:
        print(render(fmt, d))


class _Summary:
    """An ImageSummary with the attributes runtime.images.views.rows reads (as runtime/cli/images.py's)."""

    def __init__(self, d: dict[str, Any]) -> None:
        import datetime as dt

        self.id = d.get("Id") or ""
        self.repo_tags = [t for t in d.get("RepoTags") or [] if t != "<none>:<none>"]
        self.repo_digests = [t for t in d.get("RepoDigests") or [] if t != "<none>@<none>"]
        t = d.get("Created")
        self.created = dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z") \
            if isinstance(t, int | float) and t > 0 else t if isinstance(t, str) else ""
        self.size = int(d.get("Size") or 0)
        self.short_id = self.id.removeprefix("sha256:")[:12]


def _images(args: list[str]) -> int | None:
    """`images [-a] [-q] [--no-trunc] [--digests] [REPOSITORY]` (--filter and --format: typer)."""
    from runtime.cli.fast import _parse
    from runtime.cli.remote_verbs import client
    from runtime.containers.views import table

    p = _parse(args, {"-a": "all", "--all": "all", "-q": "quiet", "--quiet": "quiet", "--no-trunc": "no_trunc",
                      "--digests": "digests"}, {})
    if p is None or len(p[1]) > 1:
        return None
    o, repo = p
    filters = {"reference": repo} if repo else {}
    selected = [_Summary(d) for d in client().call("GET", "/images/json", {"filters": json.dumps(filters)},
                                                    what="images") or []]
    no_trunc = bool(o.get("no_trunc"))
    if o.get("quiet"):
        seen: list[str] = []
        for i in selected:
            short = i.id if no_trunc else i.short_id
            if short not in seen:
                seen.append(short)
                print(short)
        return 0
    import fnmatch

    from runtime.images import views

    digests = bool(o.get("digests"))
    rows = []
    for i in selected:
        for r in views.rows(i, digests):
            if no_trunc:
                r["ID"] = i.id
            if not repo or fnmatch.fnmatchcase(f"{r['Repository']}:{r['Tag']}", repo[0]) \
                    or fnmatch.fnmatchcase(r["Repository"], repo[0]):
                rows.append(r)
    cols = [("REPOSITORY", "Repository"), ("TAG", "Tag")] + ([("DIGEST", "Digest")] if digests else []) + \
        [("IMAGE ID", "ID"), ("CREATED", "CreatedSince"), ("SIZE", "Size")]
    print(table(rows, cols))
    return 0


def dispatch(verb: str, rest: list[str]) -> int | None:
    """A hot verb over the engine API, or None to let typer do it."""
    if verb == "run":
        return _run(rest)
    if verb in ("rm", "stop", "start"):
        from runtime.cli.fast import _simple_multi
        from runtime.cli.remote_verbs import client

        return _simple_multi(rest, verb, LeanContainers(client()))
    if verb == "logs":
        return _logs(rest)
    if verb == "inspect":
        return _inspect(rest)
    if verb == "images":
        return _images(rest)
    return None
