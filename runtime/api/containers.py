"""Container routes: /containers/... (lifecycle, logs, attach, archive, stats, ...)."""

from __future__ import annotations

import base64
import json
import os
import time
from typing import Any

from runtime.api import attach, container_json
from runtime.api.http import HIJACKED, Reply, Request, Stream
from runtime.api.router import router
from runtime.api.system import SETTINGS, client_gone_probe, client_hung_up_probe
from runtime.api.tarstream import produce, spool_tar
from runtime.containers import stream as frames
from runtime.errors import Conflict, InvalidArgument, NotFound, WharfError

ID = r"/containers/(?P<id>[^/]+)"
RUNNING = ("running", "paused", "restarting")


def _cid(engine, req: Request) -> str:
    return engine.containers.store.resolve(req.params["id"])


@router.route("GET", r"/containers/json")
def list_containers(engine, req: Request) -> list[dict[str, Any]]:
    limit = req.qint("limit")
    return container_json.summaries(engine, all=req.qbool("all") or bool(limit and limit > 0),
                                    filters=req.filters(), limit=limit, size=req.qbool("size"))


@router.route("POST", r"/containers/create")
def create(engine, req: Request) -> Reply:
    name = req.q("name") or None
    defaults = {k: SETTINGS[k] for k in ("dns", "dns_search", "ip") if SETTINGS.get(k)}
    spec = container_json.spec_from_create(req.json(), name, defaults)
    info = engine.containers.create(spec)
    return Reply(201, {"Id": info.id, "Warnings": []})


@router.route("GET", ID + r"/json")
def inspect(engine, req: Request) -> dict[str, Any]:
    d = container_json.inspect(engine, req.params["id"])
    if req.qbool("size"):
        d["SizeRw"], d["SizeRootFs"] = 0, 0
    return d


@router.route("POST", ID + r"/start")
def start(engine, req: Request) -> Reply | None:
    cid = _cid(engine, req)
    if req.q("detachKeys") is not None:
        pass  # detach keys are the client's business on a hijacked stream
    if not attach.start(engine, cid):
        return Reply(304, None)
    return None


@router.route("POST", ID + r"/stop")
def stop(engine, req: Request) -> Reply | None:
    cid = _cid(engine, req)
    if engine.containers.inspect(cid).state.status not in RUNNING:
        return Reply(304, None)
    engine.containers.stop(cid, req.qint("t", req.qint("timeout")))
    return None


@router.route("POST", ID + r"/restart")
def restart(engine, req: Request) -> None:
    engine.containers.restart(_cid(engine, req), req.qint("t", req.qint("timeout")))


@router.route("POST", ID + r"/kill")
def kill(engine, req: Request) -> None:
    engine.containers.kill(_cid(engine, req), req.q("signal") or "SIGKILL")


@router.route("POST", ID + r"/(?P<verb>pause|unpause)")
def pause(engine, req: Request) -> None:
    getattr(engine.containers, req.params["verb"])(_cid(engine, req))


@router.route("POST", ID + r"/rename")
def rename(engine, req: Request) -> None:
    name = req.q("name")
    if not name:
        raise InvalidArgument("rename needs ?name=NEW_NAME")
    engine.containers.rename(_cid(engine, req), name)


@router.route("DELETE", ID)
def remove(engine, req: Request) -> None:
    if req.qbool("link"):
        raise InvalidArgument("legacy links are not supported")
    engine.containers.remove(_cid(engine, req), force=req.qbool("force"), volumes=req.qbool("v"))


@router.route("POST", r"/containers/prune")
def prune(engine, req: Request) -> dict[str, Any]:
    filters = req.filters()
    until = filters.pop("until", None)
    gone = []
    for c in container_json.summaries(engine, all=True, filters=filters):
        if c["State"] not in ("exited", "created", "dead"):
            continue
        if until and c["Created"] >= _until(until[0]):
            continue
        try:
            engine.containers.remove(c["Id"])
            gone.append(c["Id"])
        except (Conflict, NotFound):
            pass
    return {"ContainersDeleted": gone, "SpaceReclaimed": 0}


def _until(v: str) -> float:
    from runtime.containers.flags import parse_duration
    from runtime.containers.logs import parse_time

    try:
        return float(v)
    except ValueError:
        pass
    try:
        return parse_time(v)
    except (ValueError, IndexError):
        return time.time() - parse_duration(v, "until")


@router.route("POST", ID + r"/update")
def update(engine, req: Request) -> dict[str, Any]:
    from runtime.engine import RestartPolicy

    body = req.json()
    resources = container_json.resources_from(body, "body")
    rp = body.get("RestartPolicy")
    restart = None
    if rp is not None:
        if not isinstance(rp, dict):
            raise InvalidArgument("RestartPolicy: expected an object")
        restart = RestartPolicy(name=rp.get("Name") or "no", maximum_retry_count=int(rp.get("MaximumRetryCount") or 0))
    engine.containers.update(_cid(engine, req), resources=resources, restart=restart)
    return {"Warnings": []}


# ---------------------------------------------------------------- wait


@router.route("POST", ID + r"/wait")
def wait(engine, req: Request) -> Stream:
    cid = _cid(engine, req)
    condition = req.q("condition") or "not-running"
    if condition not in ("not-running", "next-exit", "removed"):
        raise InvalidArgument(f"invalid condition {condition!r}", hint="use not-running, next-exit or removed")
    gone = client_gone_probe(req)
    cs = engine.containers
    status = cs.inspect(cid).state.status
    parked = status not in RUNNING and condition in ("next-exit", "removed")
    sock = None
    if status in RUNNING or parked:
        sock = attach.connect_running(engine, cid, {"op": "wait"}) if status in RUNNING else None
    early = attach.PENDING.park(cid, {"op": "wait"}) if parked else None  # before the client can send start

    def gen():
        code: int | None = None
        s = sock
        if s is None and parked:
            s = attach.wait_for_shim(engine, cid, {"op": "wait"}, gone, parked=early)
            if s is None and gone():
                return
        if s is not None:
            code = attach.read_exit(s)
        if code is None:
            try:
                code = cs.inspect(cid).state.exit_code
            except NotFound:
                code = 0
        error = _wait_removed(cs, cid, gone) if condition == "removed" and s is not None else None
        yield json.dumps({"StatusCode": code, "Error": {"Message": error} if error else None}).encode() + b"\n"

    return Stream(gen())


def _wait_removed(cs, cid: str, gone) -> str | None:
    """Until the container's directory is gone (or the client is). The supervisor holds the
    container's supervise lock until its --rm cleanup is done: its release is the moment to look
    again, no polling interval late. A --rm
    container its cleanup left behind is removed here; the error, if that fails too, is returned."""
    from runtime.containers.store import shim_alive, wait_shim_exit

    retried = False
    while cs.store.dir(cid).exists() and not gone():
        st = cs.store.load_state(cid)
        if shim_alive(st):
            wait_shim_exit(st, 0.5)  # the supervisor lets go of the container after its cleanup
            continue
        if not retried and st.get("status") in ("exited", "dead"):
            retried = True
            try:
                if cs.store.load(cid)["spec"].get("auto_remove"):
                    cs.remove(cid, force=True, volumes=True)
                    continue
            except NotFound:
                return None
            except WharfError as e:
                return f"removal of container {cid[:12]} failed: {e.message}"
        time.sleep(0.02)
    return None


# ---------------------------------------------------------------- logs and attach


def _is_tty(engine, cid: str) -> bool:
    return bool(engine.containers.store.load(cid)["spec"].get("tty"))


def _frame(kind: str, data: bytes, tty: bool) -> bytes:
    return data if tty else frames.frame(frames.STDOUT if kind == "stdout" else frames.STDERR, data)


@router.route("GET", ID + r"/logs")
def logs(engine, req: Request) -> Stream:
    from runtime.containers import logs as logfiles
    from runtime.containers.store import shim_alive

    cid = _cid(engine, req)
    cs = engine.containers
    out, err = req.qbool("stdout"), req.qbool("stderr")
    if not out and not err:
        raise InvalidArgument("you must choose at least one stream", hint="pass stdout=1 and/or stderr=1")
    tail_s = req.q("tail") or "all"
    if tail_s != "all" and not tail_s.lstrip("-").isdigit():
        raise InvalidArgument(f"tail={tail_s!r} is not a number")
    tail = None if tail_s == "all" or int(tail_s) < 0 else int(tail_s)
    from runtime.api.system import _ts

    since, until = _ts(req, "since"), _ts(req, "until")
    since = since or None
    ts = req.qbool("timestamps")
    tty = _is_tty(engine, cid)
    path = str(cs.store.log_path(cid))
    if req.qbool("follow"):
        gone = client_gone_probe(req)

        def running() -> bool:
            st = cs.store.load_state(cid)
            return st.get("status") in RUNNING and shim_alive(st) and not gone()

        entries = logfiles.follow_log(path, running, since, until, tail)
    else:
        entries = iter(logfiles.read_log(path, since, until, tail))

    def gen():
        for kind, line, t in entries:
            if (kind == "stdout" and out) or (kind == "stderr" and err):
                yield _frame(kind, (t.encode() + b" " + line) if ts else line, tty)

    ctype = "application/vnd.docker.raw-stream" if tty else "application/vnd.docker.multiplexed-stream"
    return Stream(gen(), ctype)


@router.route("POST", ID + r"/attach")
def attach_route(engine, req: Request):
    from runtime.containers import logs as logfiles

    cid = _cid(engine, req)
    cs = engine.containers
    rec = cs.store.load(cid)
    tty = bool(rec["spec"].get("tty"))
    want_stdin = req.qbool("stdin") and bool(rec["spec"].get("stdin_open"))
    want_out = req.qbool("stdout") or req.qbool("stderr")
    status = cs.inspect(cid).state.status
    if not req.qbool("stream") and not req.qbool("logs"):
        raise InvalidArgument("attach needs stream=1 or logs=1")
    request = {"op": "attach", "stdin": want_stdin, "stream": want_out}
    # parked before the 101 goes out: the client may send start as soon as it has it
    early = attach.PENDING.park(cid, request) if req.qbool("stream") and status not in RUNNING else None
    try:
        client, reader = req.hijack()
    except BaseException:
        if early:
            attach.PENDING.unpark(cid, early)
        raise
    if req.qbool("logs"):
        try:
            for kind, line, _ in logfiles.read_log(str(cs.store.log_path(cid))):
                if (kind == "stdout" and req.qbool("stdout")) or (kind == "stderr" and req.qbool("stderr")):
                    client.sendall(_frame(kind, line, tty))
        except OSError:
            if early:
                attach.PENDING.unpark(cid, early)
            return HIJACKED
    if not req.qbool("stream"):
        return HIJACKED
    gone = client_hung_up_probe(client)
    if status in RUNNING:
        shim = attach.connect_running(engine, cid, request)
    else:
        shim = attach.wait_for_shim(engine, cid, request, gone, parked=early)
    if shim is None:
        return HIJACKED
    attach.pump(shim, client, reader, want_stdin, tty)
    return HIJACKED


@router.route("POST", ID + r"/resize")
def resize(engine, req: Request) -> None:
    cid = _cid(engine, req)
    h, w = req.qint("h", 0), req.qint("w", 0)
    if h is None or w is None or h < 0 or w < 0:
        raise InvalidArgument("resize needs h and w (positive integers)")
    if engine.containers.inspect(cid).state.status not in RUNNING:
        raise Conflict(f"container {cid[:12]} is not running")
    sock = attach.connect_running(engine, cid, {"op": "resize", "stream": False})
    if sock is not None:
        with sock:
            sock.sendall(frames.frame(frames.RESIZE, f"{h} {w}".encode()))


# ---------------------------------------------------------------- inside the container


@router.route("GET", ID + r"/top")
def top(engine, req: Request) -> dict[str, Any]:
    titles, rows = engine.containers.top(_cid(engine, req))
    return {"Titles": titles, "Processes": rows}


@router.route("GET", ID + r"/changes")
def changes(engine, req: Request) -> list[dict[str, Any]]:
    kinds = {"C": 0, "A": 1, "D": 2}
    return [{"Path": p, "Kind": kinds.get(k, 0)} for k, p in engine.containers.diff(_cid(engine, req))]


@router.route("GET", ID + r"/stats")
def stats(engine, req: Request) -> Stream | dict[str, Any]:
    cid = _cid(engine, req)
    cs = engine.containers
    one = not req.qbool("stream", True) or req.qbool("one-shot")
    ncpu = os.cpu_count() or 1

    def sample(prev: dict[str, Any] | None) -> dict[str, Any]:
        s = cs.stats(cid)
        now = time.time()
        cpu = {"cpu_usage": {"total_usage": s["CPUNanos"], "usage_in_kernelmode": 0, "usage_in_usermode": 0},
               "system_cpu_usage": _system_cpu(), "online_cpus": ncpu, "throttling_data": {}}
        return {"read": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z",
                "preread": prev["read"] if prev else "0001-01-01T00:00:00Z",
                "id": cid, "name": "/" + s["Name"],
                "pids_stats": {"current": s["PIDs"]},
                "cpu_stats": cpu, "precpu_stats": prev["cpu_stats"] if prev else {"cpu_usage": {"total_usage": 0},
                                                                                    "throttling_data": {}},
                "memory_stats": {"usage": s["MemUsage"], "limit": s["MemLimit"], "stats": {}},
                "blkio_stats": {}, "networks": {}, "num_procs": 0, "storage_stats": {}}

    if one:
        return sample(None)
    gone = client_gone_probe(req)

    def gen():
        prev = None
        while not gone():
            cur = sample(prev)
            yield json.dumps(cur).encode() + b"\n"
            prev = cur
            if cs.store.load_state(cid).get("status") not in RUNNING:
                return
            for _ in range(10):
                if gone():
                    return
                time.sleep(0.1)

    return Stream(gen())


def _system_cpu() -> int:
    with open("/proc/stat") as f:
        fields = f.readline().split()[1:]
    return int(sum(int(x) for x in fields) * 1e9 / os.sysconf("SC_CLK_TCK"))


@router.route("GET", ID + r"/export")
def export(engine, req: Request) -> Stream:
    from runtime.containers.copy import export as export_tar

    cid = _cid(engine, req)
    cs = engine.containers

    def write(out) -> None:
        with cs.with_rootfs(cid) as root:
            export_tar(root, out)

    return Stream(produce(write), "application/x-tar")


def _stat(host: str, path: str) -> dict[str, Any]:
    import stat as st_mod

    st = os.lstat(host)
    mode = st.st_mode & 0o777 | (st.st_mode & 0o7000)
    gomode = mode
    if st_mod.S_ISDIR(st.st_mode):
        gomode |= 1 << 31
    elif st_mod.S_ISLNK(st.st_mode):
        gomode |= 1 << 27
    return {"name": os.path.basename(path.rstrip("/")) or "/", "size": st.st_size, "mode": gomode,
            "mtime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(st.st_mtime)),
            "linkTarget": os.readlink(host) if st_mod.S_ISLNK(st.st_mode) else ""}


def _stat_header(root: str, path: str) -> str:
    from runtime.containers.copy import resolve_in_root

    host = resolve_in_root(root, path, follow_last=False)
    if not os.path.lexists(host):
        raise NotFound(f"Could not find the file {path} in container")
    return base64.b64encode(json.dumps(_stat(host, path)).encode()).decode()


@router.route("GET", ID + r"/archive")
def archive_get(engine, req: Request) -> Stream | Reply:
    from runtime.containers.copy import tar_from

    cid = _cid(engine, req)
    path = req.q("path")
    if not path:
        raise InvalidArgument("archive needs ?path=")
    cs = engine.containers
    with cs.with_rootfs(cid) as root:
        header = _stat_header(root, path)
    headers = {"X-Docker-Container-Path-Stat": header}
    if req.method == "HEAD":
        return Reply(200, b"", "application/x-tar", headers)

    def write(out) -> None:
        with cs.with_rootfs(cid) as root:
            tar_from(root, path, out)

    return Stream(produce(write), "application/x-tar", headers=headers)


@router.route("PUT", ID + r"/archive")
def archive_put(engine, req: Request) -> None:
    from runtime.containers.copy import copy_in

    cid = _cid(engine, req)
    path = req.q("path")
    if not path:
        raise InvalidArgument("archive needs ?path=")
    cs = engine.containers
    with spool_tar(req.body) as tmp, cs.with_rootfs(cid) as root:
        from runtime.containers.copy import resolve_in_root

        if not os.path.isdir(resolve_in_root(root, path)):
            raise NotFound(f"Could not find the directory {path} in container", hint="cp needs an existing directory")
        copy_in(root, tmp, path)


@router.route("POST", r"/commit")
def commit(engine, req: Request) -> Reply:
    ref = req.q("container")
    if not ref:
        raise InvalidArgument("commit needs ?container=")
    repo, tag = req.q("repo") or "", req.q("tag") or ""
    target = f"{repo}:{tag or 'latest'}" if repo else None
    body = req.json()
    changes = {k: v for k, v in body.items() if v not in (None, "", [], {})} or None
    img = engine.containers.commit(ref, target, changes, author=req.q("author") or "",
                                   message=req.q("comment") or "")
    return Reply(201, {"Id": getattr(img, "id", str(img))})
