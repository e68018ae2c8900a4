"""The one `wharf` app: the reconciler's verbs plus runtime/cli's docker-like verbs.

Each verb module exposes `register(app)`; this file only wires them and turns
WharfError into one clear line on stderr with its exit code (DESIGN decision 9).
"""

from __future__ import annotations

import sys

# (module, attribute) pairs: each module's register(app) adds its verbs.
VERB_MODULES = (
    "runtime.cli.system",
    "runtime.cli.containers",
    "runtime.cli.images",
    "runtime.cli.volumes",
    "runtime.cli.network",
    "runtime.cli.registry",
    "runtime.cli.build",
    "runtime.cli.serve",
    "reconciler.cli.stack",
    "reconciler.cli.gitops",
)


def _verb(args: list[str]) -> str | None:
    """The verb the command line names, skipping the root's own options (-H/--host URL)."""
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-H", "--host"):
            i += 2
            continue
        if a.startswith("--host="):
            i += 1
            continue
        return None if a.startswith("-") else a
    return None


def _keep_only(app, verb: str) -> None:
    """Drop every command but `verb`: typer converts each registered command (with pydantic
    adapters per option) on every call, which costs ~0.15 s for the whole app."""
    def name_of(info) -> str:
        if info.name:
            return info.name
        cb = getattr(info, "callback", None)
        if cb is None and getattr(info, "typer_instance", None) is not None:
            return info.typer_instance.info.name or ""
        return (cb.__name__ if cb else "").replace("_", "-")

    cmds = [c for c in app.registered_commands if name_of(c) == verb]
    groups = [g for g in app.registered_groups if name_of(g) == verb]
    if cmds or groups:  # unknown verb: keep everything so the usage error lists them
        app.registered_commands[:] = cmds
        app.registered_groups[:] = groups


def build_app(verb: str | None = None):
    import importlib

    import typer

    app = typer.Typer(
        name="wharf",
        help="Wharf: a container engine and a declarative, compose-like reconciler.",
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )

    def _version(value: bool) -> None:
        if value:  # `docker -v`: the client's version line, as `wharf version`
            from runtime.cli.system import version_line

            typer.echo(version_line())
            raise typer.Exit()

    @app.callback()
    def _root(host: str = typer.Option(None, "--host", "-H", help="Engine API to use (unix://..., tcp://...); "
                                       "default: WHARF_HOST, DOCKER_HOST, else the embedded engine."),
              version: bool = typer.Option(False, "--version", "-v", is_eager=True, callback=_version,
                                           help="Print the version and exit.")) -> None:
        if host:
            import os

            os.environ["WHARF_HOST"] = host

    for name in VERB_MODULES:
        importlib.import_module(name).register(app)
    if verb:
        _keep_only(app, verb)
    return app


def _exit_now(code: int) -> None:
    """End a fast-path command without the interpreter's teardown (~3 ms of `wharf run`'s wall
    time): nothing is left to run at exit there but flushing stdout and stderr."""
    import os

    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BrokenPipeError:
        pass
    os._exit(code)


def main(argv: list[str] | None = None) -> None:
    from runtime.errors import WharfError

    args = sys.argv[1:] if argv is None else argv
    try:  # hot verbs (ps, logs, stop, rm, start) with simple flags skip typer's import cost
        from runtime.cli.fast import dispatch

        rv = dispatch(args)
        if rv is None:  # diff/apply/up/down with simple flags: no typer, cached project
            from reconciler.cli.fast import dispatch as dispatch_stack

            rv = dispatch_stack(args)
    except WharfError as e:
        print(f"wharf: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except BrokenPipeError:
        sys.exit(0)
    if rv is not None:
        if argv is None:  # the `wharf` process itself (not a caller's in-process main([...]))
            _exit_now(rv)
        sys.exit(rv)
    import typer

    try:
        app = build_app(_verb(args))
        from reconciler.cli import goflags

        if goflags.has_candidates(args):  # docker's `--no-cache=true`, `--icc=false`
            args = goflags.bool_values(typer.main.get_command(app), args)
        rv = app(args=args, prog_name="wharf", standalone_mode=False)
    except WharfError as e:
        print(f"wharf: error: {e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except typer.TyperException as e:  # usage errors, bad parameters (typer vendors click)
        show = getattr(e, "show", None)
        show() if show else print(f"wharf: error: {e.format_message()}", file=sys.stderr)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        print("", file=sys.stderr)
        sys.exit(130)
    except BrokenPipeError:
        sys.exit(0)
    sys.exit(rv if isinstance(rv, int) else 0)


if __name__ == "__main__":
    main()
