"""`wharf build` and `wharf builder prune` (docker-like)."""

from __future__ import annotations

import sys

import typer


def _pairs(values: list[str], flag: str, env_fallback: bool = False) -> dict[str, str]:
    import os

    from runtime.errors import InvalidArgument

    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not key:
            raise InvalidArgument(f"{flag} {v!r}: expected KEY=VALUE")
        if not sep:
            if not env_fallback:
                raise InvalidArgument(f"{flag} {v!r}: expected KEY=VALUE")
            if key not in os.environ:  # docker: `--build-arg K` takes K from the environment if set
                continue
            value = os.environ[key]
        out[key] = value
    return out


def _context_and_dockerfile(path: str, file: str | None):
    """(BuildContext, dockerfile name, dockerfile text or None) for PATH / `-` / `-f -`."""
    import os

    from runtime.build.context import BuildContext
    from runtime.errors import InvalidArgument

    if path == "-":
        if file == "-":
            raise InvalidArgument("cannot read both the context and the Dockerfile from stdin")
        data = sys.stdin.buffer.read()
        if _is_archive(data):
            import io

            ctx = BuildContext.from_tar(io.BytesIO(data))
            return ctx, file or "Dockerfile", None
        return BuildContext.empty(), "Dockerfile", data.decode(errors="replace")
    ctx = BuildContext.from_dir(path)
    if file == "-":
        return ctx, "Dockerfile", sys.stdin.read()
    # as docker: -f is relative to the current directory, not to the context
    return ctx, os.path.abspath(file) if file else "Dockerfile", None


def _is_archive(data: bytes) -> bool:
    return (data[257:262] == b"ustar" or data[:2] == b"\x1f\x8b" or data[:3] == b"BZh"
            or data[:6] == b"\xfd7zXZ\x00")


def register(app: typer.Typer) -> None:
    @app.command("build", help="Build an image from a Dockerfile.")
    def build_cmd(
        path: str = typer.Argument(..., help="Build context directory, or - to read a tar context "
                                   "(or a Dockerfile alone) from stdin."),
        tag: list[str] = typer.Option([], "--tag", "-t", help="Name and optionally a tag (name:tag)."),
        file: str = typer.Option(None, "--file", "-f", help="Dockerfile (default: PATH/Dockerfile); - = stdin."),
        build_arg: list[str] = typer.Option([], "--build-arg", help="Set a build-time variable (KEY=VALUE)."),
        target: str = typer.Option(None, "--target", help="Build up to this stage."),
        no_cache: bool = typer.Option(False, "--no-cache", help="Do not use the build cache."),
        pull: bool = typer.Option(False, "--pull", help="Always pull the base images."),
        quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only the image id."),
        label: list[str] = typer.Option([], "--label", help="Set a label on the image (KEY=VALUE)."),
        iidfile: str = typer.Option(None, "--iidfile", help="Write the image id to this file."),
        network: str = typer.Option("host", "--network", help="Network of the RUN steps: host or none."),
        rm: bool = typer.Option(True, "--rm/--no-rm", help="Remove intermediate containers after a successful "
                                "build (always: RUN steps never leave a container behind)."),
        force_rm: bool = typer.Option(False, "--force-rm", help="Always remove intermediate containers (always)."),
    ) -> None:
        if not rm:
            from runtime.errors import InvalidArgument

            raise InvalidArgument("--rm=false is not supported: RUN steps run in throwaway sandboxes, not in "
                                  "containers that could be kept", hint="debug a step with `wharf run` on the "
                                  "image of the step before it")
        args = _pairs(build_arg, "--build-arg", env_fallback=True)
        labels = _pairs(label, "--label")
        from runtime.cli import remote_verbs

        if remote_verbs.remote():
            return remote_verbs.build(path, tag, file, args, target, no_cache, pull, quiet, labels, iidfile)
        from runtime.build.builder import build

        ctx, name, text = _context_and_dockerfile(path, file)
        lines: list[str] = []

        def progress(line: str) -> None:
            if quiet:
                lines.append(line)
            else:
                print(line, flush=True)

        try:
            image = build(None, ctx, dockerfile=name, tags=tag, build_args=args, target=target, labels=labels,
                          no_cache=no_cache, pull=pull, progress=progress, dockerfile_text=text, network=network)
        except Exception:
            if quiet:  # docker -q still shows what went wrong
                sys.stderr.write("".join(line + "\n" for line in lines[-20:]))
            raise
        finally:
            ctx.close()
        if quiet:
            print(image.id)
        if iidfile:
            from runtime.util.fs import atomic_write

            atomic_write(iidfile, image.id)

    builder = typer.Typer(help="Manage the build cache.", no_args_is_help=True)

    @builder.command("prune", help="Remove the build cache index.")
    def prune_cmd(force: bool = typer.Option(False, "--force", "-f", help="Do not prompt.")) -> None:
        from runtime.cli.remote_verbs import builder_prune, remote

        if remote():
            n = builder_prune()
        else:
            from runtime.build.cache import BuildCache

            n = BuildCache().prune()
        print(f"Deleted {n} build cache entries")

    app.add_typer(builder, name="builder")
