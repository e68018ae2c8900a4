"""`wharf version`, `info`, `events`, `system df`."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def version(format: str = typer.Option(None, "-f", "--format")) -> None:
        """Show the Wharf version (and, with --host, the engine's)."""
        import platform

        from runtime import __version__
        from runtime.cli import remote_verbs

        server = remote_verbs.engine().client.call("GET", "/version", what="version") if remote_verbs.remote() \
            else None
        if format == "json":
            doc = {"Version": __version__, "GoVersion": "python" + platform.python_version(), "Os": "linux",
                   "Arch": platform.machine()}
            typer.echo(json.dumps({**doc, "Server": server} if server is not None else doc))
            return
        typer.echo(version_line())
        if server is not None:
            name = ((server.get("Platform") or {}).get("Name") or "Engine").strip()
            typer.echo(f"Server: {name} {server.get('Version', '?')} (API {server.get('ApiVersion', '?')}, "
                       f"{server.get('Os', '?')}/{server.get('Arch', '?')}) at {remote_verbs.engine().host}")

    @app.command()
    def info(format: str = typer.Option(None, "-f", "--format")) -> None:
        """Display system-wide information."""
        from runtime.cli import remote_verbs

        if remote_verbs.remote():
            data = remote_verbs.info()
        else:
            from runtime.local_engine import LocalEngine

            data = LocalEngine().info()
        if format == "json":
            typer.echo(json.dumps(data))
            return
        for k, v in data.items():
            typer.echo(f" {k}: {v}")

    @app.command()
    def events(since: str = typer.Option(None, "--since"), until: str = typer.Option(None, "--until"),
               filter: list[str] = typer.Option([], "-f", "--filter"),
               format: str = typer.Option(None, "--format")) -> None:
        """Get real time events from the engine."""
        import datetime

        from runtime.cli import remote_verbs
        from runtime.cli.containers import _since, _split_filters
        from runtime.util.events import read_events

        s, u = _since(since, "--since"), _since(until, "--until")
        if s is None and u is None:  # as docker: without --since/--until only what happens from now on
            import time

            s = time.time()
        stream = remote_verbs.events(s, u, _split_filters(filter)) if remote_verbs.remote() else \
            read_events(s, u, _split_filters(filter), follow=u is None)
        for ev in stream:
            if format == "json":
                typer.echo(json.dumps({"Type": ev.type, "Action": ev.action, "Actor": {
                    "ID": ev.id, "Attributes": ev.attributes}, "time": int(ev.time), "timeNano": int(ev.time * 1e9)}))
                continue
            t = datetime.datetime.fromtimestamp(ev.time).astimezone().isoformat()
            attrs = ", ".join(f"{k}={v}" for k, v in sorted(ev.attributes.items()))
            typer.echo(f"{t} {ev.type} {ev.action} {ev.id} ({attrs})", nl=True)

    system_app = typer.Typer(help="Manage Wharf", no_args_is_help=True)

    @system_app.command("df")
    def df(format: str = typer.Option(None, "--format")) -> None:
        """Show disk usage."""
        from runtime.cli import remote_verbs

        if remote_verbs.remote():
            data = remote_verbs.disk_usage()
        else:
            from runtime.containers.sysinfo import disk_usage
            from runtime.local_engine import LocalEngine

            data = disk_usage(LocalEngine())
        if format == "json":
            typer.echo(json.dumps(data))
            return
        cs = sum(c["SizeRw"] for c in data["Containers"])
        vs = sum(v["UsageData"]["Size"] for v in data["Volumes"])
        typer.echo("TYPE            TOTAL     SIZE")
        typer.echo(f"Images          -         {data['ImagesSize']}")
        typer.echo(f"Containers      {len(data['Containers']):<9} {cs}")
        typer.echo(f"Local Volumes   {len(data['Volumes']):<9} {vs}")

    system_app.command("info")(info)
    system_app.command("events")(events)
    app.add_typer(system_app, name="system")


def version_line() -> str:
    """`wharf version`'s first line (also `wharf -v`, `wharf serve -v`)."""
    import platform

    from runtime import __version__

    return f"Wharf {__version__} (python {platform.python_version()}, {platform.machine()})"
