"""Which images a commit must rebuild. `wharf apply` builds an image only when it is missing
(compose's rule); deployed from git, a commit that changes only a build context would then
deploy nothing. So gitops fingerprints each image's build inputs with git's own ids (the tree
of the context, the Dockerfile's blob when it lives outside it, the other build settings) and
asks for a build (pull_policy: build, for that pass) of those whose fingerprint moved."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .git import Mirror


def _in_tree(path: Path, root: Path) -> str | None:
    """`path` relative to `root` as git names it ("" for the root), or None when outside."""
    try:
        rel = Path(os.path.normpath(path)).relative_to(root)
    except ValueError:
        return None
    return "" if rel == Path(".") else rel.as_posix()


def fingerprints(mirror: Mirror, sha: str, root: Path, desired: Any) -> dict[str, str]:
    """image ref -> fingerprint of its build inputs at commit `sha` (checked out at `root`), for
    the images built from inside the repository."""
    wanted: dict[str, list[str]] = {}
    for ref, img in desired.images.items():
        if not img.build or not img.build.get("context"):
            continue
        ctx = Path(img.build["context"])
        paths = [_in_tree(ctx, root)]
        dockerfile = ctx / (img.build.get("dockerfile") or "Dockerfile")
        if _in_tree(dockerfile, ctx) is None:  # outside the context: its own input
            paths.append(_in_tree(dockerfile, root))
        if None not in paths and not any("\n" in p for p in paths if p):  # one path per line to git
            wanted[ref] = [p for p in paths if p is not None]
    ids = mirror.object_ids(sha, sorted({p for ps in wanted.values() for p in ps}))
    out = {}
    for ref, paths in wanted.items():
        if all(p in ids for p in paths):  # a context that is not in git (generated): compose's rule
            settings = {k: v for k, v in desired.images[ref].build.items() if k != "context"}
            text = json.dumps([[ids[p] for p in paths], settings], sort_keys=True, default=str)
            out[ref] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return out


def force_builds(desired: Any, now: dict[str, str], deployed: dict[str, str]) -> list[str]:
    """Mark the images whose inputs changed since `deployed` for a build; returns their refs."""
    changed = sorted(ref for ref, fp in now.items() if deployed.get(ref) != fp)
    for ref in changed:
        desired.images[ref].pull_policy = "build"
    return changed


__all__ = ["fingerprints", "force_builds"]
