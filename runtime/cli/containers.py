"""`wharf` verbs for containers (docker-like): run, create, start, stop, ps, logs, exec, ..."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import typer

from runtime.cli import remote_verbs as rv
from runtime.cli.run_flags import build_spec
from runtime.errors import InvalidArgument, NotFound, WharfError

RUN_CTX = {"allow_interspersed_args": False}


def _engine():
    from runtime.engine import connect

    return connect()


def _local():
    from runtime.local_engine import LocalEngine

    if os.environ.get("WHARF_HOST"):
        raise InvalidArgument("this verb needs the embedded engine", hint="run it without --host")
    return LocalEngine()


def _run_error(e: WharfError) -> WharfError:
    if e.exit_code == 1:
        e.exit_code = 125
    return e


def _split_filters(values: list[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for f in values:
        k, sep, v = f.partition("=")
        if not sep:
            raise InvalidArgument(f"bad format of filter {f!r}", hint="use --filter key=value")
        out.setdefault(k, []).append(v)
    return out


def _since(value: str | None, flag: str) -> float | None:
    if not value:
        return None
    import time

    from runtime.containers.flags import parse_duration
    from runtime.containers.logs import parse_time

    try:
        return float(value)
    except ValueError:
        pass
    try:
        return parse_time(value)
    except ValueError:
        return time.time() - parse_duration(value, flag)


def _run_opts(verb: str = "") -> dict[str, Any]:
    """typer Options of runtime/cli/run_flags.py's table (with `verb`'s extras)."""
    from runtime.cli.run_flags import EXTRAS, OPTIONS

    return {dest: typer.Option([] if kind == "list" else default, *flags, help=help_)
            for dest, flags, kind, default, help_ in OPTIONS + EXTRAS.get(verb, ())}


def _with_opts(verb: str):
    """Build a function signature for typer from the shared option table (with `verb`'s extras)."""
    import inspect

    def deco(fn):
        params = [inspect.Parameter("image", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str,
                                    default=typer.Argument(..., help="Image (or '-' with --rootfs)")),
                  inspect.Parameter("command", inspect.Parameter.POSITIONAL_OR_KEYWORD,
                                    annotation=list[str] | None, default=typer.Argument(None))]
        from runtime.cli.run_flags import options

        kinds = {dest: (kind, default) for dest, _, kind, default, _ in options(verb)}
        types = {"bool": bool, "list": list[str], "int": int | None, "str": str | None}
        for k, v in _run_opts(verb).items():
            kind, default = kinds[k]
            ann = str if kind == "str" and default is not None else types[kind]
            params.append(inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, annotation=ann, default=v))
        fn.__signature__ = inspect.Signature(params)
        return fn

    return deco


def _tty_size() -> str | None:
    from runtime.containers.attach import terminal_size

    return terminal_size(0) or terminal_size(1)


def _attach_and_wait(eng, cid: str, stdin: bool, tty: bool, start: bool, sig_proxy: bool = True) -> int:
    from runtime.containers import attach, launch

    cs = eng.containers
    sock = launch.shim_sock_connect(cs.store, cid, {"op": "attach", "stdin": stdin, "start": start})
    with sock:
        code = attach.pump(sock, stdin, tty, sig_proxy)
    if code == attach.DETACHED:
        return 0
    if code is None:
        code = cs.inspect(cid).state.exit_code
    return code


def register(app: typer.Typer) -> None:  # noqa: C901 - one registration per verb
    @app.command(context_settings=RUN_CTX)
    @_with_opts("run")
    def run(image, command=None, **o) -> int:
        """Create and run a new container from an image."""
        from runtime.cli.fast import run_container

        if o["rootfs"] and image == "-":
            image = ""
        try:
            spec = build_spec(image, command or [], o)
        except WharfError as e:
            raise _run_error(e) from None
        if rv.remote():
            return rv.run(spec, o["detach"])
        return run_container(_local().containers, spec, o["detach"])

    @app.command(context_settings=RUN_CTX)
    @_with_opts("create")
    def create(image, command=None, **o) -> None:
        """Create a new container."""
        if o["rootfs"] and image == "-":
            image = ""
        try:
            spec = build_spec(image, command or [], o)
            if rv.remote():
                typer.echo(rv.create(rv._engine(), spec).id)
                return
            if spec.image and not spec.rootfs:
                from runtime.containers.imagesrc import pull_if_missing

                pull_if_missing(spec.image)
            info = _local().containers.create(spec)
        except WharfError as e:
            raise _run_error(e) from None
        typer.echo(info.id)

    @app.command()
    def start(containers: list[str], attach: bool = typer.Option(False, "-a", "--attach"),
              interactive: bool = typer.Option(False, "-i", "--interactive")) -> int:
        """Start one or more stopped containers."""
        if rv.remote():
            return rv.start(containers, attach, interactive, _each)
        eng = _local()
        if attach or interactive:
            if len(containers) != 1:
                raise InvalidArgument("you cannot start and attach multiple containers at once")
            info = eng.containers.inspect(containers[0])
            eng.containers.start(info.id, wait_attach=True, tty_size=_tty_size() if info.spec.tty else None)
            return _attach_and_wait(eng, info.id, interactive and info.spec.stdin_open, info.spec.tty, start=True)
        return _each(containers, lambda c: eng.containers.start(c))

    @app.command()
    def stop(containers: list[str], time: int = typer.Option(None, "-t", "--time", "--timeout",
                                                             help="Seconds to wait before killing it")) -> int:
        """Stop one or more running containers."""
        eng = _engine()
        return _each(containers, lambda c: eng.containers.stop(c, time))

    @app.command()
    def restart(containers: list[str], time: int = typer.Option(None, "-t", "--time")) -> int:
        """Restart one or more containers."""
        eng = _engine()
        return _each(containers, lambda c: eng.containers.restart(c, time))

    @app.command()
    def kill(containers: list[str], signal: str = typer.Option("SIGKILL", "-s", "--signal")) -> int:
        """Kill one or more running containers."""
        eng = _engine()
        return _each(containers, lambda c: eng.containers.kill(c, signal))

    @app.command("rm")
    def rm(containers: list[str], force: bool = typer.Option(False, "-f", "--force"),
           volumes: bool = typer.Option(False, "-v", "--volumes"),
           link: bool = typer.Option(False, "-l", "--link", help="Remove a legacy link (Wharf has none)")) -> int:
        """Remove one or more containers."""
        if link:
            raise InvalidArgument("Wharf has no legacy links (docker run --link) to remove",
                                  hint="containers on a user network reach each other by name; "
                                       "`wharf network disconnect NET CONTAINER` cuts that")
        eng = _engine()
        return _each(containers, lambda c: eng.containers.remove(c, force=force, volumes=volumes))

    @app.command()
    def ps(all: bool = typer.Option(False, "-a", "--all"), quiet: bool = typer.Option(False, "-q", "--quiet"),
           latest: bool = typer.Option(False, "-l", "--latest"), last: int = typer.Option(-1, "-n", "--last"),
           filter: list[str] = typer.Option([], "-f", "--filter"),
           no_trunc: bool = typer.Option(False, "--no-trunc"),
           format: str = typer.Option(None, "--format")) -> None:
        """List containers."""
        from runtime.cli.fast import ps_output

        sys.stdout.write(ps_output(all, quiet, latest, last, _split_filters(filter), no_trunc, format))

    @app.command()
    def logs(container: str, follow: bool = typer.Option(False, "-f", "--follow"),
             timestamps: bool = typer.Option(False, "-t", "--timestamps"),
             since: str = typer.Option(None, "--since"), until: str = typer.Option(None, "--until"),
             tail: str = typer.Option("all", "-n", "--tail")) -> None:
        """Fetch the logs of a container."""
        from runtime.cli.fast import print_logs

        n = None if tail == "all" else _int(tail, "--tail")
        if rv.remote():
            out, err = sys.stdout.buffer, sys.stderr.buffer
            for name, line in _engine().containers.logs(container, follow=follow, since=_since(since, "--since"),
                                                         until=_since(until, "--until"), tail=n,
                                                         timestamps=timestamps):
                (out if name == "stdout" else err).write(line)
                if follow:
                    (out if name == "stdout" else err).flush()
            return
        print_logs(_local().containers, container, follow, timestamps, _since(since, "--since"),
                   _since(until, "--until"), n)

    @app.command()
    def attach(container: str, no_stdin: bool = typer.Option(False, "--no-stdin"),
               sig_proxy: bool = typer.Option(True, "--sig-proxy/--no-sig-proxy")) -> int:
        """Attach local standard input, output, and error streams to a running container."""
        if rv.remote():
            return rv.attach(container, no_stdin, sig_proxy)
        eng = _local()
        info = eng.containers.inspect(container)
        if not info.state.running:
            raise WharfError(f"you cannot attach to a stopped container {container}", hint="start it first")
        return _attach_and_wait(eng, info.id, info.spec.stdin_open and not no_stdin, info.spec.tty, start=False,
                                sig_proxy=sig_proxy)

    @app.command("exec", context_settings=RUN_CTX)
    def exec_(container: str, command: list[str],
              interactive: bool = typer.Option(False, "-i", "--interactive"),
              tty: bool = typer.Option(False, "-t", "--tty"), detach: bool = typer.Option(False, "-d", "--detach"),
              env: list[str] = typer.Option([], "-e", "--env"), user: str = typer.Option("", "-u", "--user"),
              workdir: str = typer.Option("", "-w", "--workdir"),
              privileged: bool = typer.Option(False, "--privileged", help="Give extended privileges to the command")
              ) -> int:
        """Execute a command in a running container."""
        from runtime.containers.execio import run_exec
        from runtime.containers.flags import parse_env

        if rv.remote():
            return rv.exec_(container, command, parse_env(env), user, workdir, interactive, tty, detach,
                            privileged=privileged)
        return run_exec(_local().containers, container, command, parse_env(env), user, workdir,
                        interactive, tty, detach, privileged=privileged)

    @app.command()
    def top(container: str) -> None:
        """Display the running processes of a container."""
        from runtime.containers.views import table

        titles, rows = (rv.containers() if rv.remote() else _local().containers).top(container)
        cols = [(t, t) for t in titles]
        typer.echo(table([dict(zip(titles, r, strict=True)) for r in rows], cols))

    @app.command()
    def pause(containers: list[str]) -> int:
        """Pause all processes within one or more containers."""
        eng = _engine()
        return _each(containers, eng.containers.pause)

    @app.command()
    def unpause(containers: list[str]) -> int:
        """Unpause all processes within one or more containers."""
        eng = _engine()
        return _each(containers, eng.containers.unpause)

    @app.command()
    def wait(containers: list[str], condition: str = typer.Option("not-running", "--condition",
                                                                  help="not-running, next-exit or removed")) -> int:
        """Block until one or more containers stop, then print their exit codes."""
        eng = _engine()
        return _each(containers, lambda c: eng.containers.wait(c, condition), echo=True)

    @app.command()
    def rename(container: str, new_name: str) -> None:
        """Rename a container."""
        _engine().containers.rename(container, new_name)

    @app.command()
    def cp(src: str, dest: str, archive: bool = typer.Option(False, "-a", "--archive")) -> None:
        """Copy files/folders between a container and the local filesystem (use - for a tar stream)."""
        from runtime.containers import copy

        if rv.remote():
            return rv.cp(src, dest)
        cs = _local().containers
        if ":" in src and not src.startswith("/") and not src.startswith("."):
            ref, path = src.split(":", 1)
            with cs.with_rootfs(ref) as root:
                if dest == "-":
                    copy.tar_from(root, path, sys.stdout.buffer)
                else:
                    copy.copy_out(root, path, dest)
        elif ":" in dest and not dest.startswith("/") and not dest.startswith("."):
            ref, path = dest.split(":", 1)
            with cs.with_rootfs(ref) as root:
                if src == "-":
                    copy.copy_in(root, sys.stdin.buffer, path)
                else:
                    copy.copy_path_in(root, src, path)
        else:
            raise InvalidArgument("copying between two local paths or two containers is not supported",
                                  hint="one of SRC and DEST must be CONTAINER:PATH")

    def diff(container: str) -> None:
        """Inspect changes to files or directories on a container's filesystem."""
        print_diff(container)

    @app.command()
    def commit(container: str, repository: str = typer.Argument(None),
               author: str = typer.Option("", "-a", "--author"), message: str = typer.Option("", "-m", "--message"),
               change: list[str] = typer.Option([], "-c", "--change"),
               pause: bool = typer.Option(True, "--pause/--no-pause", "-p",
                                          help="Pause the container during the commit")) -> None:
        """Create a new image from a container's changes."""
        cs = rv.containers() if rv.remote() else _local().containers
        img = cs.commit(container, repository, list(change), author, message, pause)
        typer.echo(img.id)

    @app.command()
    def export(container: str, output: str = typer.Option(None, "-o", "--output")) -> None:
        """Export a container's filesystem as a tar archive."""
        from runtime.containers import copy

        if output is None and sys.stdout.isatty():
            raise InvalidArgument("refusing to write a tar archive to a terminal", hint="use -o FILE or redirect")
        if rv.remote():
            return rv.export(container, output)
        with _local().containers.with_rootfs(container, live_view=False) as root:
            if output:
                with open(output, "wb") as f:
                    copy.export(root, f)
            else:
                copy.export(root, sys.stdout.buffer)

    @app.command()
    def port(container: str, private_port: str = typer.Argument(None)) -> None:
        """List port mappings or a specific mapping for the container."""
        info = _engine().containers.inspect(container)
        for p in info.ports:
            key = f"{p.container_port}/{p.protocol}"
            if private_port and private_port not in (key, str(p.container_port)):
                continue
            line = f"{p.host_ip or '0.0.0.0'}:{p.host_port}"
            typer.echo(line if private_port else f"{key} -> {line}")

    @app.command()
    def inspect(objects: list[str], format: str = typer.Option(None, "-f", "--format"),
                type: str = typer.Option(None, "--type")) -> int:
        """Return low-level information on containers (and other objects)."""
        from runtime.cli.fast import inspect_docs

        docs, missing = (rv.inspect_docs if rv.remote() else inspect_docs)(objects, type)
        _print_docs(docs, format)
        for m in missing:
            print(f"wharf: error: no such object: {m}", file=sys.stderr)
        return 1 if missing else 0

    @app.command()
    def stats(containers: list[str] = typer.Argument(None), no_stream: bool = typer.Option(False, "--no-stream"),
              all: bool = typer.Option(False, "-a", "--all"), format: str = typer.Option(None, "--format")) -> None:
        """Display a live stream of container resource usage statistics."""
        import time as _t

        from runtime.containers.procs import stats_table

        cs = rv.containers() if rv.remote() else _local().containers
        ids = containers or [i.id for i in cs.list(all=all)]
        before, t0 = {c: cs.stats(c)["CPUNanos"] for c in ids}, _t.monotonic()
        while True:
            _t.sleep(0.5 if no_stream else 1)  # CPU % needs two samples, as docker's does
            rows = [cs.stats(c) for c in ids]
            now = _t.monotonic()
            for c, r in zip(ids, rows, strict=True):
                r["CPUPerc"] = round(100.0 * (r["CPUNanos"] - before.get(c, 0)) / ((now - t0) * 1e9), 2)
            before, t0 = {c: r["CPUNanos"] for c, r in zip(ids, rows, strict=True)}, now
            if format == "json":
                for r in rows:
                    typer.echo(json.dumps(r))
            else:
                typer.echo(stats_table(rows))
            if no_stream:
                return
            if not containers:
                ids = [i.id for i in cs.list(all=all)]

    @app.command()
    def update(containers: list[str], memory: str = typer.Option(None, "-m", "--memory"),
               memory_swap: str = typer.Option(None, "--memory-swap"), cpus: str = typer.Option(None, "--cpus"),
               cpu_shares: int = typer.Option(None, "-c", "--cpu-shares"),
               cpuset_cpus: str = typer.Option(None, "--cpuset-cpus"),
               pids_limit: int = typer.Option(None, "--pids-limit"),
               restart: str = typer.Option(None, "--restart")) -> int:
        """Update configuration of one or more containers."""
        from runtime.containers import flags as fl
        from runtime.engine import Resources

        res = Resources(memory=fl.parse_bytes(memory, "--memory") if memory else None,
                        memory_swap=fl.parse_bytes(memory_swap, "--memory-swap") if memory_swap else None,
                        nano_cpus=fl.parse_cpus(cpus) if cpus else None, cpu_shares=cpu_shares,
                        cpuset_cpus=cpuset_cpus, pids_limit=pids_limit)
        pol = fl.parse_restart(restart) if restart else None
        cs = rv.containers() if rv.remote() else _local().containers
        return _each(containers, lambda c: cs.update(c, res, pol))

    container_app = typer.Typer(help="Manage containers", no_args_is_help=True)

    @container_app.command("prune")
    def container_prune(force: bool = typer.Option(False, "-f", "--force"),
                        filter: list[str] = typer.Option([], "--filter")) -> None:
        """Remove all stopped containers."""
        if not force and sys.stdin.isatty():
            if not typer.confirm("This will remove all stopped containers. Are you sure you want to continue?"):
                return
        gone = (rv.containers() if rv.remote() else _local().containers).prune(_split_filters(filter))
        if gone:
            typer.echo("Deleted Containers:")
            for g in gone:
                typer.echo(g)
        typer.echo(f"Total reclaimed containers: {len(gone)}")

    for verb in ("ls", "list"):
        container_app.command(verb)(ps)
    for verb, fn in (("diff", diff), ("run", run), ("create", create), ("start", start), ("stop", stop), ("rm", rm),
                     ("logs", logs), ("inspect", inspect), ("exec", exec_), ("kill", kill), ("restart", restart)):
        container_app.command(verb, context_settings=RUN_CTX if verb in ("run", "create", "exec") else None)(fn)
    app.add_typer(container_app, name="container")


def print_diff(container: str) -> None:
    """`container diff` (and `wharf diff CONTAINER`): A/C/D lines of the container's filesystem."""
    for kind, path in (rv.containers() if rv.remote() else _local().containers).diff(container):
        typer.echo(f"{kind} {path}")


def _int(v: str, flag: str) -> int:
    try:
        return int(v)
    except ValueError:
        raise InvalidArgument(f"invalid value {v!r} for {flag}", hint="use a number or 'all'") from None


def _each(refs: list[str], fn, echo: bool = False) -> int:
    """docker's multi-container verbs: print each ref (or result) on success, an error line per failure."""
    rc = 0
    for r in refs:
        try:
            out = fn(r)
            typer.echo(out if echo else r)
        except NotFound as e:
            print(f"wharf: error: {e}", file=sys.stderr)
            rc = 1
        except WharfError as e:
            if len(refs) == 1:
                raise
            print(f"wharf: error: {e}", file=sys.stderr)
            rc = 1
    return rc


def _print_docs(docs: list[dict], fmt: str | None) -> None:
    if fmt in (None, "", "json"):
        typer.echo(json.dumps(docs, indent=4))
        return
    from runtime.containers.gotemplate import render

    for d in docs:
        typer.echo(render(fmt, d))
