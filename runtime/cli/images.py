"""`wharf` verbs for images (docker-like): images, tag, rmi, history, save, load, import, image ...

They work on the embedded ImageStore (WHARF_ROOT/images), or with `--host` / WHARF_HOST /
DOCKER_HOST on that engine's images through the Engine API (as the docker CLI does), printed
by the same renderers.
"""

from __future__ import annotations

import json
import sys

import typer

from runtime.errors import InvalidArgument, WharfError


def _store():
    from runtime.images.store import ImageStore

    return ImageStore()


def _remote():
    """The RemoteImages of the selected engine API, or None for the embedded store."""
    from runtime.cli.remote_verbs import engine, remote

    return engine().images if remote() else None


class _Summary:
    """An Engine API ImageSummary with the attributes views.rows reads from a store Image."""

    def __init__(self, d: dict) -> None:
        self.id = d.get("Id") or ""
        self.repo_tags = [t for t in d.get("RepoTags") or [] if t != "<none>:<none>"]
        self.repo_digests = [t for t in d.get("RepoDigests") or [] if t != "<none>@<none>"]
        self.created = _iso(d.get("Created"))
        self.size = int(d.get("Size") or 0)
        self.short_id = self.id.removeprefix("sha256:")[:12]


def _iso(t) -> str:
    """An API time (Unix seconds, or already a string) as the store's RFC 3339 text."""
    import datetime as dt

    if isinstance(t, int | float) and t > 0:
        return dt.datetime.fromtimestamp(t, dt.UTC).isoformat().replace("+00:00", "Z")
    return t if isinstance(t, str) else ""


def _trunc(image_id: str, no_trunc: bool) -> str:
    return image_id if no_trunc else image_id.removeprefix("sha256:")[:12]


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _formatted(rows: list[dict], format: str | None) -> bool:
    """Print rows for --format json / a Go template; False when the table should be printed."""
    if not format or format == "table":
        return False
    if format == "json":
        for r in rows:
            typer.echo(json.dumps(r, sort_keys=True))
        return True
    if "{{" not in format:
        raise InvalidArgument(f"unsupported --format {format!r}", hint="use json or a Go template like '{{.ID}}'")
    from runtime.containers.gotemplate import render

    for r in rows:
        typer.echo(render(format, r))
    return True


_NO_TRUNC = typer.Option(False, "--no-trunc", help="Don't truncate output.")
_QUIET = typer.Option(False, "-q", "--quiet", help="Only show image IDs.")


def images(repository: str = typer.Argument(None, help="Show only this REPOSITORY[:TAG]."),
           all: bool = typer.Option(False, "-a", "--all", help="Show all images (no intermediates exist here)."),
           quiet: bool = _QUIET,
           digests: bool = typer.Option(False, "--digests", help="Show digests."),
           no_trunc: bool = _NO_TRUNC,
           filter: list[str] = typer.Option([], "-f", "--filter", help="dangling=, reference=, label=, before=, since="),
           format: str = typer.Option(None, "--format", help="json (one object per line) or a Go template "
                                      "like '{{.Repository}}:{{.Tag}}'.")) -> None:
    """List images."""
    import fnmatch

    from runtime.images import views
    from runtime.images.filters import matches, parse_filters

    filters = parse_filters(filter)
    if repository:
        filters.setdefault("reference", []).append(repository)
    rimages = _remote()
    if rimages is not None:
        selected = [_Summary(d) for d in rimages.summaries(filters)]
    else:
        store = _store()
        imgs = store.list()
        selected = [i for i in imgs if matches(i, filters, store_images=imgs)]
    if quiet:
        seen: list[str] = []
        for i in selected:
            short = _trunc(i.id, no_trunc)
            if short not in seen:
                seen.append(short)
                typer.echo(short)
        return
    rows = []
    for i in selected:
        for r in views.rows(i, digests):
            if no_trunc:
                r["ID"] = i.id
            if not filters.get("reference") or any(
                    fnmatch.fnmatchcase(f"{r['Repository']}:{r['Tag']}", p) or fnmatch.fnmatchcase(r["Repository"], p)
                    for p in filters["reference"]):
                rows.append(r)
    if _formatted(rows, format):
        return
    head = ["REPOSITORY", "TAG"] + (["DIGEST"] if digests else []) + ["IMAGE ID", "CREATED", "SIZE"]
    table = [head] + [[r["Repository"], r["Tag"]] + ([r["Digest"]] if digests else [])
                      + [r["ID"], r["CreatedSince"], r["Size"]] for r in rows]
    _table(table)


def tag(source: str = typer.Argument(..., help="SOURCE_IMAGE[:TAG]"),
        target: str = typer.Argument(..., help="TARGET_IMAGE[:TAG]")) -> None:
    """Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE."""
    rimages = _remote()
    if rimages is not None:
        rimages.tag(source, target)
        return
    _store().tag(source, target)  # (the store writes the image events: `wharf events`)


def rmi(images: list[str] = typer.Argument(..., help="IMAGE..."),
        force: bool = typer.Option(False, "-f", "--force", help="Force removal of the image."),
        no_prune: bool = typer.Option(False, "--no-prune", help="Accepted for compatibility.")) -> None:
    """Remove one or more images."""
    rimages = _remote()
    store = _store() if rimages is None else None
    failed: WharfError | None = None
    for ref in images:
        try:
            if rimages is not None:
                for line in rimages.remove(ref, force=force):
                    typer.echo(line)
                continue
            for line in store.remove(ref, force=force):
                typer.echo(line)
        except WharfError as e:
            print(f"wharf: error: {e}", file=sys.stderr)
            failed = e
    if failed is not None:
        raise typer.Exit(failed.exit_code)


def history(image: str,
            no_trunc: bool = _NO_TRUNC,
            quiet: bool = _QUIET,
            human: bool = typer.Option(True, "-H/--human", help="Human-readable sizes and dates."),
            format: str = typer.Option(None, "--format", help="json (one object per line) or a Go template.")
            ) -> None:
    """Show the history of an image."""
    from runtime.images import views

    rimages = _remote()
    if rimages is not None:
        rows = [{**r, "Created": _iso(r.get("Created")), "Comment": r.get("Comment") or "",
                 "CreatedBy": r.get("CreatedBy") or "", "Size": int(r.get("Size") or 0)}
                for r in rimages.history(image)]
    else:
        store = _store()
        rows = views.history(store, store.resolve(image))
    if quiet:
        for r in rows:
            typer.echo(r["Id"] if no_trunc or r["Id"] == "<missing>" else _trunc(r["Id"], False))
        return
    if _formatted(rows, format):
        return
    table = [["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"]]
    for r in rows:
        by = r["CreatedBy"].replace("\n", " ")
        if not no_trunc and len(by) > 45:
            by = by[:44] + "…"
        table.append([r["Id"] if r["Id"] == "<missing>" else _trunc(r["Id"], no_trunc),
                      views.since(r["Created"]) if human else r["Created"], by,
                      views.human_size(r["Size"]) if human else str(r["Size"]), r["Comment"]])
    _table(table)


def inspect(images: list[str] = typer.Argument(..., help="IMAGE..."),
            format: str = typer.Option(None, "-f", "--format", help="json (default) or a Go template")) -> None:
    """Display detailed information on one or more images."""
    from runtime.images import views

    rimages = _remote()
    store = _store() if rimages is None else None
    docs, failed = [], None
    for r in images:
        try:
            docs.append(rimages.inspect_doc(r) if rimages is not None else views.inspect(store, store.resolve(r)))
        except WharfError as e:
            failed = e
    if format and format != "json":
        _formatted(docs, format)
    elif docs or failed is None:
        typer.echo(json.dumps(docs, indent=4))
    if failed is not None:
        raise failed


def prune(all: bool = typer.Option(False, "-a", "--all", help="Remove all unused images, not just dangling."),
          force: bool = typer.Option(False, "-f", "--force", help="Do not prompt for confirmation."),
          filter: list[str] = typer.Option([], "--filter", help="label=, until=")) -> None:
    """Remove unused images."""
    from runtime.images.filters import parse_filters
    from runtime.images.views import human_size

    filters = parse_filters(filter)
    if not force and sys.stdin.isatty():
        what = "all images without at least one container associated to them" if all else "all dangling images"
        if not typer.confirm(f"WARNING! This will remove {what}.\nAre you sure you want to continue?"):
            raise typer.Exit(0)
    rimages = _remote()
    deleted, reclaimed = (rimages or _store()).prune(all=all, filters=filters)
    if deleted:
        typer.echo("Deleted Images:")
        for line in deleted:
            typer.echo(line[0].lower() + line[1:])
        typer.echo("")
    typer.echo(f"Total reclaimed space: {human_size(reclaimed)}")


def save(images: list[str] = typer.Argument(..., help="IMAGE..."),
         output: str = typer.Option(None, "-o", "--output", help="Write to a file, instead of STDOUT."),
         format: str = typer.Option("docker", "--format", help="docker (docker-archive) or oci (OCI layout).")) -> None:
    """Save one or more images to a tar archive (streamed to STDOUT by default)."""
    import os

    rimages = _remote()
    if rimages is not None and format != "docker":
        raise InvalidArgument(f"--format {format} needs the embedded engine: the Engine API saves docker archives",
                              hint="drop --format, or run it without --host")
    if not output and sys.stdout.isatty():
        raise InvalidArgument("cowardly refusing to save to a terminal", hint="use the -o flag or redirect")

    def write(f) -> None:
        if rimages is None:
            from runtime.images.archive import save as save_images

            save_images(_store(), images, f, format)
            return
        import shutil

        resp = rimages.save(images)
        try:
            shutil.copyfileobj(resp, f, 1 << 16)
        finally:
            resp.close()

    if output:
        tmp = f"{output}.tmp-{os.getpid()}"
        try:
            with open(tmp, "wb") as f:
                write(f)
            os.replace(tmp, output)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return
    write(sys.stdout.buffer)
    sys.stdout.buffer.flush()


def load(input: str = typer.Option(None, "-i", "--input", help="Read from a tar archive file, instead of STDIN."),
         quiet: bool = typer.Option(False, "-q", "--quiet", help="Suppress the load output.")) -> None:
    """Load images from a tar archive (docker-archive or OCI layout, detected)."""
    from runtime.images.archive import load as load_images
    from runtime.images.archive import open_input

    if not input and sys.stdin.isatty():
        raise InvalidArgument("requested load from stdin, but stdin is empty", hint="use -i FILE or redirect")
    f, close = open_input(input, sys.stdin.buffer)
    rimages = _remote()
    try:
        if rimages is not None:
            msgs = rimages.load(f)
        else:
            msgs = load_images(_store(), f, input or "stdin")
    finally:
        close()
    if not quiet:
        for m in msgs:
            typer.echo(m)


def import_(file: str = typer.Argument(..., help="A tar file (plain, gzip or zstd), or - for STDIN."),
            repository: str = typer.Argument(None, help="REPOSITORY[:TAG]"),
            change: list[str] = typer.Option([], "-c", "--change", help="Apply a Dockerfile instruction."),
            message: str = typer.Option("", "-m", "--message", help="Commit message for the image."),
            platform: str = typer.Option(None, "--platform", help="os/arch of the image.")) -> None:
    """Import the contents from a tarball to create a filesystem image."""
    from runtime.images.archive import import_tar, open_input

    f, close = open_input(file, sys.stdin.buffer)
    rimages = _remote()
    try:
        if rimages is not None:
            typer.echo(rimages.import_(f, repository, change, message, platform))
            return
        img = import_tar(_store(), f, repository, change, message, "-" if file == "-" else file, platform)
    finally:
        close()
    typer.echo(img.id)


def bootstrap(kind: str = typer.Argument(..., help="busybox or debian"),
              tag: str = typer.Option(None, "-t", "--tag", help="Name the image (default busybox:latest / "
                                      "debian:<suite>)."),
              suite: str = typer.Option("bookworm", "--suite", help="Debian suite (debian only)."),
              mirror: str = typer.Option(None, "--mirror", help="Debian mirror URL (default: from apt's sources).")
              ) -> None:
    """Build an offline base image: busybox (host's busybox-static) or debian (debootstrap minbase)."""
    from runtime.images import bootstrap as bs

    if _remote() is not None:
        raise InvalidArgument("image bootstrap builds into the embedded engine's store, not through --host",
                              hint="bootstrap without --host, then `wharf save IMAGE | wharf --host URL load`")
    store = _store()
    if kind == "busybox":
        img = bs.bootstrap_busybox(store, tag or "busybox:latest")
    elif kind == "debian":
        img = bs.bootstrap_debian(store, tag or f"debian:{suite}", suite, mirror)
    else:
        raise InvalidArgument(f"unknown base image {kind!r}", hint="use busybox or debian")
    typer.echo(f"{', '.join(img.repo_tags)} {img.id}")


_VERBS = {"images": images, "tag": tag, "rmi": rmi, "history": history, "save": save, "load": load,
          "import": import_}  # `wharf VERB`
_IMAGE_VERBS = {"ls": images, "tag": tag, "rm": rmi, "history": history, "inspect": inspect, "prune": prune,
                "save": save, "load": load, "import": import_, "bootstrap": bootstrap}  # `wharf image VERB`


def register(app: typer.Typer) -> None:
    """Add this module's verbs to the `wharf` typer app."""
    for name, fn in _VERBS.items():
        app.command(name)(fn)
    image = typer.Typer(help="Manage images", no_args_is_help=True)
    image.command("list", hidden=True)(images)
    for name, fn in _IMAGE_VERBS.items():
        image.command(name)(fn)
    from runtime.cli import registry  # `wharf image pull|push` = `wharf pull|push` (registry area's verbs)

    for verb in ("pull", "push"):
        fn = getattr(registry, verb, None)
        if fn is not None:
            image.command(verb)(fn)
    app.add_typer(image, name="image")
