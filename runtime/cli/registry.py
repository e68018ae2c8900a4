"""`wharf pull/push/login/logout/search` and `wharf registry serve|gc` (docker-like)."""

from __future__ import annotations

import typer


def _serve(
    addr: str = typer.Option("127.0.0.1:5000", "--addr", help="HOST:PORT to listen on (port 0 picks one)."),
    root: str = typer.Option(..., "--root", help="Directory holding the registry's blobs and repositories."),
    htpasswd: str = typer.Option(None, "--htpasswd", help="htpasswd file (bcrypt) enabling basic auth."),
    tls_cert: str = typer.Option(None, "--tls-cert", help="PEM certificate: serve HTTPS."),
    tls_key: str = typer.Option(None, "--tls-key", help="PEM private key of --tls-cert."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log every request to stderr."),
) -> None:
    """Serve the OCI distribution API (an image registry) from ROOT."""
    import signal

    from runtime.registry.server import RegistryServer

    server = RegistryServer(root, addr, htpasswd=htpasswd, tls_cert=tls_cert, tls_key=tls_key, verbose=verbose)
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
    registry = typer.Typer(help="Run an OCI image registry (the distribution API).", no_args_is_help=True)
    registry.command("serve")(_serve)
    registry.command("gc")(_gc)
    app.add_typer(registry, name="registry")
