"""The container verbs over the Engine API (`wharf --host URL`, WHARF_HOST, DOCKER_HOST), as the
docker CLI does them: run/start -a/attach/exec on hijacked connections, cp through the
archive endpoints, export, top, diff, commit, update, stats, container prune.

runtime/cli/containers.py calls these when `remote()` says an engine address is set.
"""

from __future__ import annotations

import os
import sys

from runtime.errors import InvalidArgument, NotFound, RuntimeFailure, WharfError

TYPE_CHECKING = False
if TYPE_CHECKING:  # run/inspect/... are on the `wharf --host` fast path: no typing import at run time
    from typing import Any


def remote() -> bool:
    """True when the verbs go to an engine API (the same rule as runtime.engine.connect)."""
    return bool(os.environ.get("WHARF_HOST") or os.environ.get("DOCKER_HOST"))


def _engine():
    from runtime.api.remote import RemoteEngine

    return RemoteEngine(os.environ.get("WHARF_HOST") or os.environ["DOCKER_HOST"])


def engine():
    """The RemoteEngine that --host / WHARF_HOST / DOCKER_HOST names."""
    return _engine()


def client():
    """The HTTP client of that engine for raw calls: the lean one (runtime.api.remote_http) when it
    can speak to the address (unix://, tcp:// without TLS), else RemoteEngine's (same call shapes)."""
    from runtime.api.remote_http import Http, lean_host

    host = lean_host()
    return Http(host) if host else _engine().client


def local_only(verb: str, why: str) -> None:
    """Refuse a verb that cannot go through an engine API when one is selected (one line, exit 1)."""
    if remote():
        raise InvalidArgument(f"`wharf {verb}` {why}; it cannot work through --host / WHARF_HOST / DOCKER_HOST",
                              hint="run it without --host (and with WHARF_HOST and DOCKER_HOST unset)")


def _run_error(e: WharfError) -> WharfError:
    if e.exit_code == 1:
        e.exit_code = 125
    return e


def _start_error(e: WharfError) -> WharfError:
    """docker run's exit codes for a command that cannot run: 127 not found, 126 not executable."""
    msg = e.message.lower()
    if e.exit_code == 1 or e.exit_code >= 125:
        if "not found" in msg or "no such file" in msg:
            e.exit_code = 127
        elif "permission denied" in msg or "not executable" in msg:
            e.exit_code = 126
        else:
            e.exit_code = 125
    return e


def _pull_progress(msg: dict[str, Any]) -> None:
    if msg.get("status") and not msg.get("progressDetail"):
        line = f"{msg['id']}: {msg['status']}" if msg.get("id") else msg["status"]
        print(line, file=sys.stderr, flush=True)


def create(eng, spec) -> Any:
    """POST /containers/create; a missing image is pulled first, as `docker run` does."""
    from runtime.api.container_json import create_body

    if spec.rootfs:
        raise _run_error(InvalidArgument("--rootfs needs the embedded engine", hint="run it without --host"))
    return eng.containers.inspect(create_id(eng.client, create_body(spec), spec.name, spec.image))


def create_id(c, body: dict[str, Any], name: str | None, image: str) -> str:
    """POST /containers/create of a Docker create body on client `c`: the new id. A missing image
    is pulled first (its progress on stderr), as `docker run` does; errors exit 125."""
    what = f"create {name or image}"
    try:
        return c.call("POST", "/containers/create", {"name": name}, body, what=what)["Id"]
    except NotFound as e:
        if "image" not in e.message.lower():
            raise _run_error(e) from None
    print(f"Unable to find image '{image}' locally", file=sys.stderr, flush=True)
    try:
        from runtime.api.remote import _name_and_tag, _registry_auth

        repo, tag = _name_and_tag(image)
        for msg in c.messages("POST", "/images/create", {"fromImage": repo, "tag": tag},
                              headers=_registry_auth(image), what=f"pull {image}"):
            _pull_progress(msg)
        c.call("GET", f"/images/{image}/json")
        return c.call("POST", "/containers/create", {"name": name}, body, what=what)["Id"]
    except WharfError as e:
        raise _run_error(e) from None


def _path(cid: str, verb: str) -> str:
    from runtime.api.remote_http import quote

    return f"/containers/{quote(cid, '/')}/{verb}"


def _resize(c, cid: str):
    return lambda rows, cols: c.call("POST", _path(cid, "resize"), {"h": rows, "w": cols}, what=f"resize {cid}")


def _signal(c, cid: str):
    import signal

    def send(signum: int) -> None:
        try:
            c.call("POST", _path(cid, "kill"), {"signal": signal.Signals(signum).name}, what=f"kill {cid}")
        except WharfError:
            pass

    return send


def _tty_on_stdin(stdin: bool, tty: bool) -> None:
    if tty and stdin and not os.isatty(0):
        raise InvalidArgument("the input device is not a TTY", hint="drop -t, or run it from a terminal")


def run(spec, detach: bool, sig_proxy: bool = True, detach_keys: str = "ctrl-p,ctrl-q") -> int:
    """docker's run flow for a ContainerSpec (the typer path): see run_body."""
    from runtime.api.container_json import create_body

    if spec.rootfs:
        raise _run_error(InvalidArgument("--rootfs needs the embedded engine", hint="run it without --host"))
    return run_body(create_body(spec), spec.name, spec.image, detach, sig_proxy, detach_keys)


def run_body(body: dict[str, Any], name: str | None, image: str, detach: bool, sig_proxy: bool = True,
             detach_keys: str = "ctrl-p,ctrl-q") -> int:
    """docker's run flow for a create body (typer and fast path): create, (attach, wait, start,
    pump), the exit code; 125 when the engine refuses, 126/127 when the command cannot run."""
    from runtime.api.remote_http import wait_begin
    from runtime.api.remote_stream import DETACHED, hijack, parse_detach_keys, pump

    stdin_open, tty = bool(body.get("OpenStdin")), bool(body.get("Tty"))
    auto_remove = bool(body["HostConfig"].get("AutoRemove"))
    c = client()
    if not detach:
        try:
            _tty_on_stdin(stdin_open, tty)
        except WharfError as e:
            raise _run_error(e) from None
    keys = parse_detach_keys(detach_keys)
    cid = create_id(c, body, name, image)
    if detach:
        try:
            c.call("POST", _path(cid, "start"), what=f"start {cid}")
        except WharfError as e:
            raise _start_error(e) from None
        print(cid)
        return 0
    try:  # podman prepares (creates) the container at attach: its errors are start errors
        q = {"stream": 1, "stdin": int(stdin_open), "stdout": 1, "stderr": 1, "logs": 0,
             "detachKeys": detach_keys or None}
        sock, first = hijack(c, _path(cid, "attach"), q, what=f"attach {cid}")
    except WharfError as e:
        _remove_quietly(c, cid, auto_remove)
        raise _start_error(e) from None
    try:
        exit_code = wait_begin(c, cid, "next-exit")
        # --rm: also wait for the removal (podman's "removed" answers 0, so the code comes from next-exit)
        removed = wait_begin(c, cid, "removed") if auto_remove else None
    except WharfError as e:
        sock.close()
        raise _run_error(e) from None
    try:
        c.call("POST", _path(cid, "start"), what=f"start {cid}")
    except WharfError as e:
        sock.close()
        _remove_quietly(c, cid, auto_remove)
        raise _start_error(e) from None
    how = pump(sock, first, stdin_open, tty, resize=_resize(c, cid) if tty else None,
               signal_to=_signal(c, cid) if sig_proxy else None, detach_keys=keys)
    if how == DETACHED:
        return 0
    code = exit_code()
    if removed is not None:
        try:
            removed()
        except WharfError:
            pass
    if code is None:
        code = int(((c.call("GET", _path(cid, "json")) or {}).get("State") or {}).get("ExitCode") or 0)
    return code


def _remove_quietly(c, cid: str, auto_remove: bool) -> None:
    if auto_remove:
        from runtime.api.remote_http import quote

        try:
            c.call("DELETE", f"/containers/{quote(cid, '/')}", {"force": 1, "v": 0}, what=f"remove {cid}")
        except WharfError:
            pass


def _attach(eng, cid: str, stdin: bool, tty: bool, sig_proxy: bool, detach_keys: str, logs: bool = False,
            start: bool = False) -> int:
    from runtime.api.remote_stream import DETACHED, parse_detach_keys, pump

    keys = parse_detach_keys(detach_keys)
    cs = eng.containers
    sock, first = cs.attach_stream(cid, stdin, logs=logs, detach_keys=detach_keys)
    exit_code = cs.wait_begin(cid, "next-exit" if start else "not-running")
    if start:
        try:
            cs.start(cid)
        except WharfError as e:
            sock.close()
            raise _start_error(e) from None
    how = pump(sock, first, stdin, tty, resize=_resize(eng.client, cid) if tty else None,
               signal_to=_signal(eng.client, cid) if sig_proxy else None, detach_keys=keys)
    if how == DETACHED:
        return 0
    code = exit_code()
    return cs.inspect(cid).state.exit_code if code is None else code


def attach(container: str, no_stdin: bool, sig_proxy: bool, detach_keys: str = "ctrl-p,ctrl-q") -> int:
    eng = _engine()
    info = eng.containers.inspect(container)
    if not info.state.running:
        raise WharfError(f"you cannot attach to a stopped container {container}", hint="start it first")
    stdin = info.spec.stdin_open and not no_stdin
    _tty_on_stdin(stdin, info.spec.tty)
    return _attach(eng, info.id, stdin, info.spec.tty, sig_proxy and not info.spec.tty, detach_keys)


def start(containers: list[str], attach_out: bool, interactive: bool, each) -> int:
    eng = _engine()
    if attach_out or interactive:
        if len(containers) != 1:
            raise InvalidArgument("you cannot start and attach multiple containers at once")
        info = eng.containers.inspect(containers[0])
        stdin = interactive and info.spec.stdin_open
        _tty_on_stdin(stdin, info.spec.tty)
        return _attach(eng, info.id, stdin, info.spec.tty, not info.spec.tty, "ctrl-p,ctrl-q", start=True)
    return each(containers, eng.containers.start)


def exec_(container: str, command: list[str], env: list[str], user: str, workdir: str, interactive: bool,
          tty: bool, detach: bool, privileged: bool = False, detach_keys: str = "ctrl-p,ctrl-q") -> int:
    from runtime.api.remote_stream import DETACHED, parse_detach_keys, pump

    if not command:
        raise InvalidArgument("exec needs a command", hint="wharf exec CONTAINER COMMAND [ARG...]")
    eng = _engine()
    cs = eng.containers
    keys = parse_detach_keys(detach_keys)
    if not detach:
        _tty_on_stdin(interactive, tty)
    from runtime.api.remote_stream import terminal_size

    size = terminal_size(0 if os.isatty(0) else 1) if tty else None
    eid = cs.exec_create(container, command, env, user, workdir, tty=tty, stdin=interactive and not detach,
                         attach=not detach, privileged=privileged, size=size)
    if detach:
        cs.exec_start_detached(eid, tty)
        return 0
    sock, first = cs.exec_start_stream(eid, tty)
    how = pump(sock, first, interactive, tty,
               resize=(lambda rows, cols: cs.exec_resize(eid, rows, cols)) if tty else None, detach_keys=keys)
    if how == DETACHED:
        return 0
    import time

    deadline = time.monotonic() + 10
    while True:  # the stream ends as the process does; its exit code follows right after
        doc = cs.exec_inspect(eid)
        if not doc.get("Running") and doc.get("ExitCode") is not None or time.monotonic() > deadline:
            return int(doc.get("ExitCode") or 0)
        time.sleep(0.01)


# ---------------------------------------------------------------- cp and export


def _split(arg: str) -> tuple[str, str] | None:
    """`CONTAINER:PATH` -> (container, path); a local path (/x, ./x, x without ':') -> None."""
    if arg.startswith(("/", ".")) or ":" not in arg:
        return None
    ref, path = arg.split(":", 1)
    return (ref, path) if ref else None


def cp(src: str, dest: str) -> None:
    s, d = _split(src), _split(dest)
    if (s is None) == (d is None):
        raise InvalidArgument("copying between two local paths or two containers is not supported",
                              hint="one of SRC and DEST must be CONTAINER:PATH")
    eng = _engine()
    if s is not None:
        _copy_out(eng, *s, dest)
    else:
        _copy_in(eng, src, *d)


def _copy_out(eng, ref: str, path: str, dest: str) -> None:
    import shutil
    import tarfile

    resp, stat = eng.containers.get_archive(ref, path)
    try:
        if dest == "-":
            shutil.copyfileobj(resp, sys.stdout.buffer, 65536)
            sys.stdout.buffer.flush()
            return
        contents = path.endswith("/.") and bool(stat.get("mode", 0) & (1 << 31))
        if contents or os.path.isdir(dest):
            target = dest
            if contents and not os.path.exists(dest):
                os.makedirs(dest)
        else:
            target = os.path.dirname(os.path.abspath(dest))
            if not os.path.isdir(target):
                raise NotFound(f"destination directory {target} does not exist")
        with tarfile.open(fileobj=resp, mode="r|") as tar:
            new_root = os.path.basename(os.path.abspath(dest))
            for m in tar:
                if contents:  # SRC/. : the entries are what SRC holds ("x" from wharf, "./x" from dockerd)
                    m.name = m.name[2:] if m.name.startswith("./") else m.name
                    if m.name in ("", "."):
                        continue
                elif not os.path.isdir(dest):  # DEST names the copy: the top entry is renamed
                    _, sep, rest = m.name.partition("/")
                    m.name = new_root + (sep + rest if sep else "")
                tar.extract(m, target, filter="tar")
    except tarfile.TarError as e:
        raise RuntimeFailure(f"cp {ref}:{path}: bad archive from the engine: {e}") from None
    finally:
        resp.close()


def _copy_in(eng, src: str, ref: str, path: str) -> None:
    import tarfile
    import tempfile

    cs = eng.containers
    if src == "-":
        cs.put_archive(ref, path, sys.stdin.buffer.read())
        return
    if not os.path.lexists(src):
        raise NotFound(f"could not find the file {src} on the host")
    st = cs.path_stat(ref, path)
    is_dir = st is not None and bool(st.get("mode", 0) & (1 << 31))
    contents = src.endswith("/.") and os.path.isdir(src)
    if is_dir:
        into, name = path, os.path.basename(os.path.abspath(src))
    else:
        if path.endswith("/"):
            raise NotFound(f"directory {path} does not exist in container")
        if st is not None and os.path.isdir(src):
            raise InvalidArgument(f"cannot copy a directory to the file {path} in the container")
        into, name = os.path.dirname(path.rstrip("/")) or "/", os.path.basename(path.rstrip("/"))
    with tempfile.TemporaryFile() as buf:
        with tarfile.open(fileobj=buf, mode="w") as tar:
            if contents and is_dir:
                for entry in sorted(os.listdir(src)):
                    tar.add(os.path.join(src, entry), arcname=entry)
            else:
                tar.add(src, arcname=name)
        buf.seek(0)
        cs.put_archive(ref, into, buf)


def export(container: str, output: str | None) -> None:
    import shutil

    if output is None and sys.stdout.isatty():
        raise InvalidArgument("refusing to write a tar archive to a terminal", hint="use -o FILE or redirect")
    resp = _engine().containers.export(container)
    try:
        if output:  # nothing half-written: a temp file next to OUTPUT, renamed at the end
            import tempfile

            fd, tmp = tempfile.mkstemp(prefix=".export-", dir=os.path.dirname(os.path.abspath(output)))
            try:
                with os.fdopen(fd, "wb") as f:
                    shutil.copyfileobj(resp, f, 65536)
                os.replace(tmp, output)
            except BaseException:
                os.unlink(tmp)
                raise
        else:
            shutil.copyfileobj(resp, sys.stdout.buffer, 65536)
            sys.stdout.buffer.flush()
    finally:
        resp.close()


# ---------------------------------------------------------------- the other container verbs


def containers():
    """The RemoteContainers of the selected engine (top, diff, commit, update, prune, stats)."""
    return _engine().containers


# ---------------------------------------------------------------- build


def build(path: str, tags: list[str], file: str | None, build_args: dict[str, str], target: str | None,
          no_cache: bool, pull: bool, quiet: bool, labels: dict[str, str], iidfile: str | None) -> None:
    """`docker build` through the API: the context tar (less .dockerignore) to POST /build, its
    progress stream printed as it comes."""
    from runtime.api.remote_build import context_tar, stdin_context

    if path == "-":
        if file == "-":
            raise InvalidArgument("cannot read both the context and the Dockerfile from stdin")
        tar, name = stdin_context(sys.stdin.buffer.read(), file)
    else:
        text = sys.stdin.read() if file == "-" else None
        tar, name = context_tar(path, None if file in (None, "-") else os.path.abspath(file), text)
    lines: list[str] = []

    def progress(msg) -> None:
        if isinstance(msg, str):
            if quiet:
                lines.append(msg)
            else:
                sys.stdout.write(msg)
                sys.stdout.flush()
        elif not quiet and isinstance(msg, dict) and msg.get("status"):
            print(msg["status"], flush=True)

    try:
        img = _engine().images.build(path, dockerfile=name, tags=tags, build_args=build_args, target=target,
                                     labels=labels, no_cache=no_cache, pull=pull, context_tar=tar,
                                     progress=progress)
    except WharfError:
        if quiet:  # docker -q still shows what went wrong
            sys.stderr.write("".join(lines[-20:]))
        raise
    if quiet:
        print(img.id)
    if iidfile:
        from runtime.util.fs import atomic_write

        atomic_write(iidfile, img.id)


def builder_prune() -> int:
    """POST /build/prune: how many build cache entries the engine deleted."""
    r = _engine().client.call("POST", "/build/prune", what="builder prune") or {}
    return len(r.get("CachesDeleted") or [])


class _RemoteVolumeStore:
    """RemoteVolumes with VolumeStore's call shapes (prune(all, filters)) for `wharf volume ...`."""

    def __init__(self, vols) -> None:
        self.vols = vols
        self.create, self.list, self.inspect, self.remove = vols.create, vols.list, vols.inspect, vols.remove

    def prune(self, all: bool = False, filters=None) -> list[str]:
        return self.vols.prune(filters, all=all)


def volumes():
    return _RemoteVolumeStore(_engine().volumes)


def info() -> dict[str, Any]:
    return _engine().info()


def disk_usage() -> dict[str, Any]:
    """GET /system/df in the shape runtime.containers.sysinfo.disk_usage gives (`wharf system df`)."""
    d = _engine().client.call("GET", "/system/df", what="system df") or {}
    return {"Containers": [{"Id": c.get("Id", ""), "Names": c.get("Names") or [], "SizeRw": int(c.get("SizeRw") or 0)}
                           for c in d.get("Containers") or []],
            "Volumes": [{"Name": v.get("Name", ""), "UsageData": {"Size": max(0, int(
                (v.get("UsageData") or {}).get("Size") or 0))}} for v in d.get("Volumes") or []],
            "ImagesSize": int(d.get("LayersSize") or 0)}


def events(since: float | None, until: float | None, filters: dict[str, list[str]]):
    """The engine's event stream (it ends at `until`, or follows)."""
    return _engine().events(since=since, until=until, filters=filters)


def inspect_docs(refs: list[str], type_: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The engine's own JSON for each ref: containers first, then volumes, images, networks (as docker)."""
    from runtime.api.remote_http import quote

    c = client()
    paths = {"container": "/containers/{}/json", "volume": "/volumes/{}", "image": "/images/{}/json",
             "network": "/networks/{}"}
    kinds = [type_] if type_ else list(paths)
    if type_ and type_ not in paths:
        raise InvalidArgument(f"unknown --type {type_!r}", hint="use container, image, network or volume")
    docs, missing = [], []
    for ref in refs:
        for k in kinds:
            try:
                docs.append(c.call("GET", paths[k].format(quote(ref))))
                break
            except NotFound:
                continue
        else:
            missing.append(ref)
    return docs, missing
