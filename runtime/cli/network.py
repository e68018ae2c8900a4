"""`wharf network create|ls|inspect|rm|prune|connect|disconnect` (docker-like)."""

from __future__ import annotations

import json
import sys

import typer


def _networks():
    from runtime.engine import connect

    return connect().networks


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    from runtime.errors import InvalidArgument

    out = {}
    for v in values:
        k, sep, val = v.partition("=")
        if not k:
            raise InvalidArgument(f"invalid {flag} {v!r}", hint=f"use {flag} key=value")
        out[k] = val if sep else ""
    return out


def _doc(n) -> dict:
    from runtime.api.networks import network_json

    return network_json(n)


def register(app: typer.Typer) -> None:
    net = typer.Typer(help="Manage networks", no_args_is_help=True)

    @net.command()
    def create(name: str,
               driver: str = typer.Option("bridge", "-d", "--driver", help="only bridge"),
               subnet: str = typer.Option(None, "--subnet", help="CIDR, e.g. 10.20.0.0/16"),
               gateway: str = typer.Option(None, "--gateway"),
               ip_range: str = typer.Option(None, "--ip-range", help="allocate container addresses from this CIDR"),
               internal: bool = typer.Option(False, "--internal", help="no outbound traffic"),
               label: list[str] = typer.Option([], "--label"),
               opt: list[str] = typer.Option([], "-o", "--opt", help="com.docker.network.bridge.name=NAME, "
                                                                      "com.docker.network.driver.mtu=N"),
               ) -> None:
        """Create a network."""
        from runtime.engine import NetworkSpec

        spec = NetworkSpec(name=name, driver=driver, subnet=subnet, gateway=gateway, ip_range=ip_range,
                           internal=internal, labels=_pairs(label, "--label"), options=_pairs(opt, "--opt"))
        typer.echo(_networks().create(spec).id)

    @net.command("ls")
    def ls(quiet: bool = typer.Option(False, "-q", "--quiet"),
           filter: list[str] = typer.Option([], "-f", "--filter"),
           format: str = typer.Option(None, "--format", help="json, or a Go template"),
           no_trunc: bool = typer.Option(False, "--no-trunc")) -> None:
        """List networks."""
        from runtime.cli.containers import _split_filters
        from runtime.containers.views import table

        nets = sorted(_networks().list(_split_filters(filter)), key=lambda n: n.name)
        if quiet:
            for n in nets:
                typer.echo(n.id if no_trunc else n.id[:12])
        elif format == "json":
            for n in nets:
                typer.echo(json.dumps(_doc(n)))
        elif format:
            from runtime.containers.gotemplate import render

            for n in nets:
                typer.echo(render(format, {**_doc(n), "ID": n.id[:12]}))
        else:
            rows = [{"id": n.id if no_trunc else n.id[:12], "name": n.name, "driver": n.driver,
                     "subnet": n.subnet, "scope": "local"} for n in nets]
            typer.echo(table(rows, [("NETWORK ID", "id"), ("NAME", "name"), ("DRIVER", "driver"),
                                    ("SUBNET", "subnet"), ("SCOPE", "scope")]))

    @net.command()
    def inspect(names: list[str], format: str = typer.Option(None, "-f", "--format")) -> int:
        """Display detailed information on one or more networks."""
        from runtime.cli.containers import _print_docs
        from runtime.cli.remote_verbs import inspect_docs, remote
        from runtime.errors import NotFound

        if remote():  # the engine's own JSON (container names, endpoint ids), as `docker network inspect`
            docs, missing = inspect_docs(names, "network")
            for name in missing:
                print(f"wharf: error: no such network: {name}", file=sys.stderr)
            _print_docs(docs, format)
            return 1 if missing else 0
        docs, rc = [], 0
        nets = _networks()
        for name in names:
            try:
                docs.append(_doc(nets.inspect(name)))
            except NotFound as e:
                print(f"wharf: error: {e}", file=sys.stderr)
                rc = 1
        _print_docs(docs, format)
        return rc

    @net.command("rm")
    def rm(names: list[str]) -> int:
        """Remove one or more networks."""
        from runtime.cli.containers import _each

        nets = _networks()
        return _each(names, nets.remove)

    @net.command()
    def prune(force: bool = typer.Option(False, "-f", "--force")) -> None:
        """Remove all networks no container uses."""
        if not force and sys.stdin.isatty() and not typer.confirm("Remove all unused networks?"):
            return
        gone = _networks().prune()
        if gone:
            typer.echo("Deleted Networks:")
            for g in gone:
                typer.echo(getattr(g, "name", g))

    @net.command()
    def connect(network: str, container: str,
                alias: list[str] = typer.Option([], "--alias"),
                ip: str = typer.Option(None, "--ip")) -> None:
        """Connect a running container to a network."""
        from runtime.engine import EndpointSpec

        _networks().connect(network, container, EndpointSpec(aliases=list(alias), ipv4_address=ip))

    @net.command()
    def disconnect(network: str, container: str, force: bool = typer.Option(False, "-f", "--force")) -> None:
        """Disconnect a container from a network."""
        _networks().disconnect(network, container, force=force)

    app.add_typer(net, name="network")
