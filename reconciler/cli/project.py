"""Project options (-f, -p, --profile, ...) and loading them into a Target; no typer here
(the fast path of reconciler/cli/fast.py imports this)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ProjectOptions:
    files: list[str] | None = None
    project_name: str | None = None
    profiles: list[str] = field(default_factory=list)
    ignore_unsupported: bool = False
    env_file: str | None = None

    def load(self, quiet: bool = False) -> Any:
        from reconciler.spec import load_project
        from reconciler.spec.loader import print_warning

        return load_project(self.files or None, project_name=self.project_name, profiles=self.profiles,
                            ignore_unsupported=self.ignore_unsupported, env_file=self.env_file,
                            warn=None if quiet else print_warning)


def load_target(opts: ProjectOptions, cached: bool = False) -> Any:
    """The Target of these options; with `cached`, from reconciler.target_cache when no file
    the project is made of changed (else loaded and stored there)."""
    if not cached:
        from reconciler.reconcile import Target

        return Target.from_loaded(opts.load())
    import time

    from reconciler import target_cache
    from reconciler.spec.files import find_files

    k = target_cache.key(opts, find_files(opts.files or None))
    hit = target_cache.get(k)
    if hit is not None:
        target, warnings = hit
        if warnings:
            from reconciler.spec.loader import print_warning

            for w in warnings:
                print_warning(w)
        return target
    from reconciler.reconcile import Target

    since = time.time()
    loaded = opts.load()
    target = Target.from_loaded(loaded)
    target_cache.put(k, target, loaded.watched, loaded.warnings, since)
    return target
