"""`wharf volume create|ls|inspect|rm|prune`."""

from __future__ import annotations

import json
import sys

import typer


def register(app: typer.Typer) -> None:
    vol = typer.Typer(help="Manage volumes", no_args_is_help=True)

    def _store():
        from runtime.cli import remote_verbs

        if remote_verbs.remote():
            return remote_verbs.volumes()
        from runtime.volumes.store import VolumeStore

        return VolumeStore()

    @vol.command()
    def create(name: str = typer.Argument(None), driver: str = typer.Option("local", "-d", "--driver"),
               label: list[str] = typer.Option([], "-l", "--label"), opt: list[str] = typer.Option([], "-o", "--opt")
               ) -> None:
        """Create a volume."""
        from runtime.containers.flags import parse_labels

        typer.echo(_store().create(name, driver, parse_labels(label), parse_labels(opt)).name)

    @vol.command("ls")
    def ls(quiet: bool = typer.Option(False, "-q", "--quiet"), filter: list[str] = typer.Option([], "-f", "--filter"),
           format: str = typer.Option(None, "--format")) -> None:
        """List volumes."""
        from runtime.cli.containers import _split_filters
        from runtime.cli.fast import volume_json
        from runtime.containers.views import table

        vols = _store().list(_split_filters(filter))
        if quiet:
            for v in vols:
                typer.echo(v.name)
        elif format == "json":
            for v in vols:
                typer.echo(json.dumps(volume_json(v)))
        else:
            typer.echo(table([{"Driver": v.driver, "Name": v.name} for v in vols],
                             [("DRIVER", "Driver"), ("VOLUME NAME", "Name")]))

    @vol.command()
    def inspect(names: list[str]) -> int:
        """Display detailed information on one or more volumes."""
        from runtime.cli.fast import volume_json
        from runtime.errors import NotFound

        docs, rc = [], 0
        for n in names:
            try:
                docs.append(volume_json(_store().inspect(n)))
            except NotFound as e:
                print(f"wharf: error: {e}", file=sys.stderr)
                rc = 1
        typer.echo(json.dumps(docs, indent=4))
        return rc

    @vol.command("rm")
    def rm(names: list[str], force: bool = typer.Option(False, "-f", "--force")) -> int:
        """Remove one or more volumes."""
        from runtime.cli.containers import _each

        s = _store()
        return _each(names, lambda n: s.remove(n, force))

    @vol.command()
    def prune(force: bool = typer.Option(False, "-f", "--force"), all: bool = typer.Option(False, "-a", "--all"),
              filter: list[str] = typer.Option([], "--filter")) -> None:
        """Remove unused (anonymous, or with -a all) volumes."""
        from runtime.cli.containers import _split_filters

        if not force and sys.stdin.isatty() and not typer.confirm("Remove unused volumes?"):
            return
        gone = _store().prune(all, _split_filters(filter))
        if gone:
            typer.echo("Deleted Volumes:")
            for g in gone:
                typer.echo(g)
        typer.echo(f"Total reclaimed volumes: {len(gone)}")

    app.add_typer(vol, name="volume")
