"""`wharf pull/push/login/logout/search` and `wharf registry serve|gc` (docker-like)."""

from __future__ import annotations

import sys
from typing import Any

import typer


class _Progress:
    """Renders docker-style progress messages: rich bars per layer on a terminal, lines otherwise."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.live = not quiet and sys.stderr.isatty()
        self.tasks: dict[str, Any] = {}
        self.totals: dict[str, int] = {}
        self.bars = None

    def __enter__(self) -> _Progress:
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

            self.bars = Progress(TextColumn("{task.fields[layer]}"), TextColumn("{task.description:<18}"),
                                 BarColumn(), DownloadColumn(), TransferSpeedColumn(),
                                 console=Console(stderr=True, highlight=False), transient=False)
            self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bars is not None:
            self.bars.stop()

    def __call__(self, msg: dict[str, Any]) -> None:
        if self.quiet:
            return
        status, layer = msg.get("status", ""), msg.get("id")
        detail = msg.get("progressDetail") or {}
        if self.bars is None:
            if status not in ("Downloading", "Pushing"):
                print(f"{layer}: {status}" if layer else status, file=sys.stderr)
            return
        if not layer or len(layer) != 12:
            self.bars.console.print(f"{layer}: {status}" if layer else status)
            return
        if layer not in self.tasks:
            self.tasks[layer] = self.bars.add_task(status, layer=layer, total=None)
        task = self.tasks[layer]
        total = detail.get("total") or self.totals.get(layer)
        if total:
            self.totals[layer] = total
        done = status in ("Download complete", "Pull complete", "Pushed", "Already exists",
                          "Layer already exists") or status.startswith("Mounted")
        current = total if done and total else detail.get("current")
        self.bars.update(task, description=status, completed=current, total=total)


def _engine():
    from runtime.engine import connect

    return connect()


def pull(
    name: str = typer.Argument(..., help="Image: NAME[:TAG|@DIGEST]."),
    platform: str = typer.Option(None, "--platform", help="os/arch or os/arch/variant to pick from a multi-platform image."),
    all_tags: bool = typer.Option(False, "--all-tags", "-a", help="Pull every tag of the repository."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image reference."),
) -> None:
    """Download an image from a registry."""
    from runtime.images.reference import familiar, parse
    from runtime.registry.client import list_tags

    refs = [name]
    if all_tags:
        r = parse(name)
        if r.tag or r.digest:
            from runtime.errors import InvalidArgument

            raise InvalidArgument("--all-tags takes a repository name without a tag or digest")
        refs = [f"{r.name}:{t}" for t in list_tags(name)]
    engine = _engine()
    with _Progress(quiet) as progress:
        for ref in refs:
            engine.images.pull(ref, platform=platform, progress=progress)
    for ref in refs:
        print(familiar(ref))


def push(
    name: str = typer.Argument(..., help="Image: NAME[:TAG]."),
    all_tags: bool = typer.Option(False, "--all-tags", "-a", help="Push every local tag of the repository."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
) -> None:
    """Upload an image to a registry."""
    from runtime.images.reference import familiar, normalize, parse

    refs = [name]
    engine = _engine()
    if all_tags:
        r = parse(name)
        if r.tag or r.digest:
            from runtime.errors import InvalidArgument

            raise InvalidArgument("--all-tags takes a repository name without a tag or digest")
        refs = sorted({normalize(t) for img in engine.images.list() for t in img.repo_tags
                       if normalize(t).rsplit(":", 1)[0] == r.name})
        if not refs:
            from runtime.errors import NotFound

            raise NotFound(f"no local tags of {familiar(r.name)}", hint="tag an image first: wharf tag IMAGE NAME:TAG")
    with _Progress(quiet) as progress:
        for ref in refs:
            engine.images.push(ref, progress=progress)


def login(
    server: str = typer.Argument(None, help="Registry HOST[:PORT] (default: Docker Hub)."),
    username: str = typer.Option(None, "--username", "-u", help="User name."),
    password: str = typer.Option(None, "--password", "-p", help="Password (prefer --password-stdin)."),
    password_stdin: bool = typer.Option(False, "--password-stdin", help="Read the password from stdin."),
    email: str = typer.Option(None, "--email", "-e", help="Ignored (docker 1.x's; registries do not use it)."),
) -> None:
    """Log in to a registry (credentials kept in Docker's config.json)."""
    from runtime.errors import InvalidArgument
    from runtime.registry.client import login as do_login

    if email is not None:
        print("WARNING! --email is deprecated and ignored: registries authenticate by user name.", file=sys.stderr)

    if password_stdin:
        if password:
            raise InvalidArgument("--password and --password-stdin are mutually exclusive")
        password = sys.stdin.read().rstrip("\r\n")
    if not username:
        if not sys.stdin.isatty() or password_stdin:
            raise InvalidArgument("a user name is needed", hint="use -u USER")
        username = typer.prompt("Username")
    if not password:
        if not sys.stdin.isatty():
            raise InvalidArgument("a password is needed", hint="use --password-stdin")
        password = typer.prompt("Password", hide_input=True)
    elif not password_stdin:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    from runtime.cli.remote_verbs import engine, remote

    if remote():  # as the docker CLI: the engine checks them (POST /auth), this side keeps them
        from runtime.api.remote import auth
        from runtime.registry import credentials
        from runtime.registry.client import server_domain

        auth(engine().client, server, username, password)
        path = credentials.store(server_domain(server), username, password)
    else:
        path = do_login(server, username, password)
    print(f"Login Succeeded (credentials saved in {path})")


def logout(server: str = typer.Argument(None, help="Registry HOST[:PORT] (default: Docker Hub).")) -> None:
    """Forget the credentials of a registry."""
    from runtime.registry.client import logout as do_logout
    from runtime.registry.client import server_domain

    domain = server_domain(server)
    if do_logout(server):
        print(f"Removing login credentials for {domain}")
    else:
        print(f"Not logged in to {domain}")


def search(
    term: str = typer.Argument(..., help="REGISTRY/TERM: repositories of REGISTRY whose name contains TERM."),
    limit: int = typer.Option(25, "--limit", help="At most this many results."),
    fmt: str = typer.Option(None, "--format", help="json: one JSON array."),
) -> None:
    """Search a registry's catalog for repositories."""
    import json

    from runtime.cli.remote_verbs import engine, remote

    if remote():
        names = engine().images.search(term, limit)
    else:
        from runtime.registry.client import search as do_search

        names = do_search(term, limit)
    if fmt == "json":
        print(json.dumps([{"Name": n} for n in names]))
        return
    print("NAME")
    for n in names:
        print(n)


def _serve(
    addr: str = typer.Option("127.0.0.1:5000", "--addr", help="HOST:PORT to listen on (port 0 picks one)."),
    root: str = typer.Option(..., "--root", help="Directory holding the registry's blobs and repositories."),
    htpasswd: str = typer.Option(None, "--htpasswd", help="htpasswd file (bcrypt) enabling basic auth."),
    tls_cert: str = typer.Option(None, "--tls-cert", help="PEM certificate: serve HTTPS."),
    tls_key: str = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request to stderr."),
    proxy_remote: str = typer.Option(None, "--proxy-remote",
                                     help="Upstream registry URL: serve as a read-only pull-through cache of it."),
    proxy_username: str = typer.Option(None, "--proxy-username", help="User name for the upstream registry."),
    proxy_password: str = typer.Option(None, "--proxy-password", envvar="WHARF_PROXY_PASSWORD",
                                       help="Password for the upstream registry (or WHARF_PROXY_PASSWORD)."),
) -> None:
    """Serve the OCI distribution API (an image registry) from ROOT."""
    import signal

    from runtime.registry.server import RegistryServer

    server = RegistryServer(root, addr, htpasswd=htpasswd, tls_cert=tls_cert, tls_key=tls_key, verbose=verbose,
                            proxy_remote=proxy_remote, proxy_username=proxy_username, proxy_password=proxy_password)
    def _stop(*_) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    print(f"wharf registry listening on {server.url}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


def _gc(
    root: str = typer.Option(..., "--root", help="The registry's root directory."),
    dry_run: bool = typer.Option(False, "--dry-run", "-n", help="Only list what would be deleted."),
    delete_untagged: bool = typer.Option(False, "--delete-untagged", "-m",
                                         help="Also delete manifests no tag reaches."),
    min_age: float = typer.Option(0.0, "--min-age", help="Keep blobs younger than this many seconds."),
) -> None:
    """Delete the blobs no manifest refers to (run it while nobody pushes)."""
    from runtime.registry.gc import collect

    result = collect(root, dry_run=dry_run, delete_untagged=delete_untagged, min_age=min_age)
    verb = "would delete" if dry_run else "deleted"
    for m in result.manifests:
        print(f"{verb} manifest {m}")
    for b in result.blobs:
        print(f"{verb} blob {b}")
    print(f"{verb} {len(result.blobs)} blobs, {len(result.manifests)} manifests, {result.freed} bytes")


def register(app) -> None:
    """Add this module's verbs to the `wharf` typer app."""
    for verb in (pull, push, login, logout, search):
        app.command(verb.__name__)(verb)
    registry = typer.Typer(help="Run an OCI image registry (the distribution API).", no_args_is_help=True)
    registry.command("serve")(_serve)
    registry.command("gc")(_gc)
    app.add_typer(registry, name="registry")
