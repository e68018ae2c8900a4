"""Which compose files a project is made of (`-f`, else compose.yaml in the directory or a
parent, plus its override). Cheap to import: the no-op fast path uses it before any YAML."""

from __future__ import annotations

from pathlib import Path

from runtime.errors import InvalidArgument

DEFAULT_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
OVERRIDE_FILES = ("compose.override.yaml", "compose.override.yml", "docker-compose.override.yaml",
                  "docker-compose.override.yml")


def find_files(files: list[str] | None, cwd: Path | None = None) -> list[Path]:
    if files:
        return [Path(f).expanduser().absolute() for f in files]
    here = (cwd or Path.cwd()).absolute()
    for d in (here, *here.parents):
        for name in DEFAULT_FILES:
            if (d / name).is_file():
                out = [d / name]
                out += [d / o for o in OVERRIDE_FILES if (d / o).is_file()][:1]
                return out
    raise InvalidArgument("no compose file found (compose.yaml, docker-compose.yml)",
                          hint="pass one with -f FILE")
