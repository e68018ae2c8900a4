"""Lean handlers for hot verbs (no typer/rich/pydantic): `wharf ps`, `logs`, `stop`, `rm`, `start`,
`run`, `pull -q`.

reconciler/cli/app.py's main() calls `dispatch(args)` first; it returns None when the flags
are not simple ones it knows, and the typer app handles the command as usual.
"""

from __future__ import annotations

import os
import sys

from runtime.errors import WharfError

TYPE_CHECKING = False
if TYPE_CHECKING:  # on the `wharf ps` path: no typing import at run time
    from typing import Any


def _remote() -> bool:
    """An engine API was chosen (--host sets WHARF_HOST; DOCKER_HOST as the docker CLI reads it)."""
    return bool(os.environ.get("WHARF_HOST") or os.environ.get("DOCKER_HOST"))


def _records(all_: bool, filters: dict[str, list[str]] | None) -> list[tuple[dict, dict]]:
    from runtime.containers.filters import match_container
    from runtime.containers.store import ContainerStore, shim_alive

    store = ContainerStore()
    out = []
    for cid in store.ids():
        try:
            rec = store.load(cid)
        except WharfError:
            continue
        st = store.load_state(cid)
        if st.get("status") in ("running", "restarting") and not shim_alive(st):
            from runtime.containers.manager import LocalContainers

            st = LocalContainers(store)._mark_dead(cid, st)
        if rec["spec"].get("auto_remove") and st.get("status") == "exited" and not shim_alive(st):
            from runtime.containers.manager import LocalContainers

            if LocalContainers(store).reap_auto_removed(rec, st):
                continue
        if not all_ and st.get("status") not in ("running", "paused", "restarting") \
                and not (filters and "status" in filters):
            continue
        if filters and not match_container(rec, st, filters):
            continue
        out.append((rec, st))
    out.sort(key=lambda rs: rs[0]["created"], reverse=True)
    return out


def ps_output(all_: bool = False, quiet: bool = False, latest: bool = False, last: int = -1,
              filters: dict[str, list[str]] | None = None, no_trunc: bool = False, fmt: str | None = None) -> str:
    from runtime.containers.views import PS_COLUMNS, ps_row, table

    if latest:
        last = 1
    if last >= 0:
        all_ = True
    if _remote():
        from runtime.cli.remote_fast import ps_records

        recs = ps_records(all_, filters, ids_only=quiet)
    else:
        recs = _records(all_, filters)
    if last >= 0:
        recs = recs[:last]
    if quiet:
        return "".join((r["id"] if no_trunc else r["id"][:12]) + "\n" for r, _ in recs)
    rows = [ps_row(r, s, no_trunc) for r, s in recs]
    if fmt == "json":
        import json

        return "".join(json.dumps(row) + "\n" for row in rows)
    if fmt and fmt.startswith("table "):
        from runtime.containers.gotemplate import columns

        return table(rows, columns(fmt[6:])) + "\n"
    if fmt:
        from runtime.containers.gotemplate import render

        return "".join(render(fmt, row) + "\n" for row in rows)
    return table(rows, PS_COLUMNS) + "\n"


def print_logs(cs, ref: str, follow: bool, timestamps: bool, since: float | None, until: float | None,
               tail: int | None) -> None:
    out, err = sys.stdout.buffer, sys.stderr.buffer
    for stream_name, line, t in cs.log_entries(ref, follow, since, until, tail):
        w = out if stream_name == "stdout" else err
        w.write((t.encode() + b" " + line) if timestamps else line)
        if follow:
            w.flush()
    out.flush()


def inspect_docs(refs: list[str], type_: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Docker-shaped JSON for each ref: containers first, then volumes, images, networks."""
    from runtime.containers.store import ContainerStore
    from runtime.containers.views import inspect_json

    store = ContainerStore()
    docs, missing = [], []
    for ref in refs:
        doc = None
        if type_ in (None, "container"):
            try:
                cid = store.resolve(ref)
                from runtime.containers.manager import LocalContainers

                info_st = LocalContainers(store)._info(store.load(cid))
                st = store.load_state(cid)
                st["status"] = info_st.state.status
                doc = inspect_json(store.load(cid), st)
            except WharfError:
                doc = None
        if doc is None and type_ in (None, "volume"):
            doc = _volume_doc(ref)
        if doc is None and type_ in (None, "image"):
            doc = _other_doc("images", ref)
        if doc is None and type_ in (None, "network"):
            doc = _other_doc("networks", ref)
        if doc is None:
            missing.append(ref)
        else:
            docs.append(doc)
    return docs, missing


def _volume_doc(ref: str) -> dict[str, Any] | None:
    from runtime.volumes.store import VolumeStore

    try:
        v = VolumeStore().inspect(ref)
    except WharfError:
        return None
    return volume_json(v)


def volume_json(v) -> dict[str, Any]:
    return {"CreatedAt": v.created, "Driver": v.driver, "Labels": v.labels, "Mountpoint": v.mountpoint,
            "Name": v.name, "Options": v.options, "Scope": "local"}


def _other_doc(kind: str, ref: str) -> dict[str, Any] | None:
    """Images and networks in the JSON their own `inspect` verbs print."""
    try:
        if kind == "images":
            from runtime.images import views
            from runtime.images.store import ImageStore

            store = ImageStore()
            return views.inspect(store, store.resolve(ref))
        from runtime.api.networks import network_json
        from runtime.local_engine import LocalEngine

        return network_json(LocalEngine().networks.inspect(ref))
    except (WharfError, ImportError):
        return None


# ------------------------------------------------------------------ the fast dispatcher

def _parse(args: list[str], flags: dict[str, str], valued: dict[str, str]) -> tuple[dict[str, Any], list[str]] | None:
    """Tiny getopt: flags -> True, valued -> list of values; None when something is unknown."""
    opts: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            rest += args[i + 1:]
            break
        if a.startswith("--") and "=" in a:
            k, v = a.split("=", 1)
            if k not in valued:
                return None
            opts.setdefault(valued[k], []).append(v)
        elif a in flags:
            opts[flags[a]] = True
        elif a in valued:
            if i + 1 >= len(args):
                return None
            opts.setdefault(valued[a], []).append(args[i + 1])
            i += 1
        elif a.startswith("-") and len(a) > 1:
            if a[1] != "-" and all(f"-{c}" in flags for c in a[1:]):
                for c in a[1:]:
                    opts[flags[f"-{c}"]] = True
            else:
                return None
        else:
            rest.append(a)
        i += 1
    return opts, rest


def _ps(args: list[str]) -> int | None:
    p = _parse(args, {"-a": "all", "--all": "all", "-q": "quiet", "--quiet": "quiet", "-l": "latest",
                      "--latest": "latest", "--no-trunc": "no_trunc"},
               {"-n": "last", "--last": "last", "-f": "filter", "--filter": "filter", "--format": "format"})
    if p is None or p[1]:
        return None
    o, _ = p
    filters: dict[str, list[str]] = {}
    for f in o.get("filter", []):
        k, sep, v = f.partition("=")
        if not sep:
            return None
        filters.setdefault(k, []).append(v)
    try:
        last = int(o["last"][-1]) if "last" in o else -1
    except ValueError:
        return None
    sys.stdout.write(ps_output(bool(o.get("all")), bool(o.get("quiet")), bool(o.get("latest")), last,
                               filters, bool(o.get("no_trunc")), (o.get("format") or [None])[-1]))
    return 0


def _each(refs: list[str], fn) -> int:
    rc = 0
    for r in refs:
        try:
            fn(r)
            print(r)
        except WharfError as e:
            if len(refs) == 1:
                raise
            print(f"wharf: error: {e}", file=sys.stderr)
            rc = 1
    return rc


def _simple_multi(args: list[str], verb: str, cs=None) -> int | None:
    """rm/stop/start of each ref on `cs` (LocalContainers, or remote_fast's LeanContainers)."""
    if verb == "rm":
        p = _parse(args, {"-f": "force", "--force": "force", "-v": "volumes", "--volumes": "volumes"}, {})
    elif verb == "stop":
        p = _parse(args, {}, {"-t": "time", "--time": "time", "--timeout": "time"})
    else:
        p = _parse(args, {}, {})
    if p is None or not p[1]:
        return None
    o, refs = p
    if cs is None:
        from runtime.containers.manager import LocalContainers

        cs = LocalContainers()
    if verb == "rm":
        return _each(refs, lambda r: cs.remove(r, force=bool(o.get("force")), volumes=bool(o.get("volumes"))))
    if verb == "stop":
        try:
            t = int(o["time"][-1]) if "time" in o else None
        except ValueError:
            return None
        return _each(refs, lambda r: cs.stop(r, t))
    return _each(refs, cs.start)


def _logs(args: list[str]) -> int | None:
    p = _parse(args, {"-f": "follow", "--follow": "follow", "-t": "timestamps", "--timestamps": "timestamps"},
               {"-n": "tail", "--tail": "tail"})
    if p is None or len(p[1]) != 1:
        return None
    o, refs = p
    tail = (o.get("tail") or ["all"])[-1]
    if tail != "all" and not tail.isdigit():
        return None
    from runtime.containers.manager import LocalContainers

    print_logs(LocalContainers(), refs[0], bool(o.get("follow")), bool(o.get("timestamps")), None, None,
               None if tail == "all" else int(tail))
    return 0


def run_container(cs, spec, detach: bool) -> int:
    """`run` after flag parsing (typer and fast path): create, start, attach or print the id."""
    try:
        if spec.image and not spec.rootfs:
            from runtime.containers.imagesrc import pull_if_missing

            pull_if_missing(spec.image)
        info = cs.create(spec)
    except WharfError as e:
        raise _run_error(e) from None
    tty_size = None
    if spec.tty:
        from runtime.containers import attach

        tty_size = attach.terminal_size(0) or attach.terminal_size(1)
    try:
        cs.start(info.id, wait_attach=not detach, tty_size=tty_size)
    except WharfError as e:
        if spec.auto_remove:
            cs.remove(info.id, force=True, volumes=True)
        raise _run_error(e) from None
    if detach:
        print(info.id)
        return 0
    from runtime.containers import attach, stream  # not on the `run -d` path (socket, signal, json)
    from runtime.containers.store import wait_shim_exit

    sock = stream.connect(cs.store.run_dir(info.id) / "attach.sock",
                          {"op": "attach", "stdin": spec.stdin_open, "start": True, "remove": spec.auto_remove})
    with sock:
        code = attach.pump(sock, spec.stdin_open, spec.tty)
    if code == attach.DETACHED:
        return 0
    if code is None:
        code = cs.inspect(info.id).state.exit_code
    if spec.auto_remove:
        st = cs.store.load_state(info.id) if cs.store.dir(info.id).exists() else {}
        wait_shim_exit(st, 30)
        if cs.store.dir(info.id).exists():
            cs.destroy(info.id, cs.store.load(info.id), volumes=True)
    return code


def _run_error(e: WharfError) -> WharfError:
    if e.exit_code == 1:
        e.exit_code = 125
    return e


_RUN_FLAGS = {"-d": "detach", "--detach": "detach", "--rm": "rm", "-i": "interactive", "--interactive": "interactive",
              "-t": "tty", "--tty": "tty", "--init": "init", "--read-only": "read_only", "--privileged": "privileged"}
_RUN_VALUED = {"--name": "name", "-e": "env", "--env": "env", "--network": "network", "--net": "network",
               "-w": "workdir", "--workdir": "workdir", "-u": "user", "--user": "user", "--hostname": "hostname",
               "-l": "label", "--label": "label", "--runtime": "runtime"}


def _run_opts(args: list[str]) -> tuple[dict[str, Any], str, list[str]] | None:
    """(options as lists, image, command) of a `run` with only simple flags; None for anything else.
    The remote path's (runtime/cli/remote_fast.py): these it turns into a create body itself."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1 if args[i] in _RUN_FLAGS or "=" in args[i] or (
            args[i][1:2] != "-" and all(f"-{c}" in _RUN_FLAGS for c in args[i][1:])) else 2
    if i >= len(args):
        return None
    p = _parse(args[:i], _RUN_FLAGS, _RUN_VALUED)
    if p is None or p[1]:
        return None
    o, _ = p
    network = (o.get("network") or ["bridge"])[-1]
    if network not in ("bridge", "host", "none") and not network.startswith("container:"):
        return None  # user networks: typer path builds the endpoint spec
    return o, args[i], args[i + 1:]


def _run(args: list[str]) -> int | None:
    """`run` with any flag of runtime/cli/run_flags.py's table; None (typer) for what it does not know."""
    from runtime.cli import run_flags

    p = run_flags.parse(args)
    if p is None:
        return None
    o, image, command = p
    from runtime.containers.manager import LocalContainers

    try:
        spec = run_flags.build_spec(image, command, o)
    except WharfError as e:
        raise _run_error(e) from None
    return run_container(LocalContainers(), spec, bool(o["detach"]))


def run_in_worker(args: list[str]) -> int:
    """`wharf run ARGS` in a worker the supervisor forked for us (runtime/containers/supervisord.py):
    what _run does here, with the client's stdio, environment and directory. Returns the exit code."""
    try:
        rv = _run(args)
    except WharfError as e:
        print(f"wharf: error: {e}", file=sys.stderr)
        return e.exit_code
    except BrokenPipeError:
        return 0
    return 125 if rv is None else rv


def take_host(args: list[str]) -> list[str]:
    """The command line without the root's `-H/--host URL` (before the verb), which becomes
    WHARF_HOST as the typer root callback makes it."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-H", "--host") and i + 1 < len(args):
            os.environ["WHARF_HOST"] = args[i + 1]
            i += 2
        elif a.startswith("--host="):
            os.environ["WHARF_HOST"] = a[len("--host="):]
            i += 1
        else:
            break
    return args[i:] if i else args


def dispatch(args: list[str]) -> int | None:
    """Handle a hot verb without typer, or return None to let the full CLI do it."""
    args = take_host(args)
    if not args:
        return None
    verb, rest = args[0], args[1:]
    if "-h" in rest or "--help" in rest:
        return None
    if _remote():
        if verb == "ps":
            return _ps(rest)
        if verb == "pull":
            return _pull_quiet(rest)
        from runtime.cli.remote_fast import dispatch as remote_dispatch

        return remote_dispatch(verb, rest)
    if verb == "ps":
        return _ps(rest)
    if verb in ("rm", "stop", "start"):
        return _simple_multi(rest, verb)
    if verb == "logs":
        return _logs(rest)
    if verb == "run":
        from runtime.cli import run_flags

        if run_flags.parse(rest) is None:  # (a bad number is an error here already, as docker's)
            return None
        if not os.environ.get("WHARF_RUN_HERE"):  # (WHARF_RUN_HERE=1: in this process, e.g. to profile it)
            from runtime.containers.supervision import run_remote

            rv = run_remote(rest)  # in a worker forked by the warm supervisor: no imports to pay here
            if rv is not None:
                return rv
        return _run(rest)
    if verb == "pull":
        return _pull_quiet(rest)
    return None


def _pull_quiet(rest: list[str]) -> int | None:
    """`wharf pull -q NAME`: no progress to draw, so no typer/rich start-up before the download."""
    flags = [a for a in rest if a.startswith("-")]
    names = [a for a in rest if not a.startswith("-")]
    if len(names) != 1 or not flags or any(f not in ("-q", "--quiet") for f in flags):
        return None
    from runtime.engine import connect
    from runtime.images.reference import familiar

    connect().images.pull(names[0])
    print(familiar(names[0]))
    return 0
