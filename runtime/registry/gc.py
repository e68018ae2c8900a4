"""Garbage collection of a registry root: delete the blobs no manifest refers to.

Mark: every manifest revision of every repository (with --delete-untagged only those reachable
from a tag, through index children and OCI referrers) and the blobs it names. Sweep: blobs not
marked, their repository links, and upload sessions older than a day. Run it while nobody
pushes (as with distribution's garbage-collect): a blob uploaded for a manifest that is not
yet PUT counts as unreferenced, unless it is younger than `min_age` seconds.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from runtime.registry import manifests
from runtime.registry.storage import Storage


@dataclass
class GcResult:
    blobs: list[str] = field(default_factory=list)       # deleted (or, dry run, deletable) blobs
    manifests: list[str] = field(default_factory=list)   # "repo@digest" of untagged manifests removed
    freed: int = 0                                       # bytes


def _digests_under(base: Path) -> list[str]:
    out = []
    for alg in sorted(os.listdir(base)) if base.is_dir() else []:
        out += [f"{alg}:{h}" for h in sorted(os.listdir(base / alg)) if not h.startswith(".")]
    return out


def _refs(st: Storage, digest: str) -> tuple[list[str], list[str]]:
    """(blobs, child manifests) named by manifest `digest`."""
    try:
        m = manifests.parse(st.blob_path(digest).read_bytes())
    except (OSError, manifests.ManifestError):
        return [], []
    return [d["digest"] for d in manifests.stored_blobs(m)], [d["digest"] for d in m.manifests]


def collect(root: str | os.PathLike[str], dry_run: bool = False, delete_untagged: bool = False,
            min_age: float = 0.0) -> GcResult:
    st = Storage(root)
    result = GcResult()
    marked: set[str] = set()
    for repo in st.catalog():
        rdir = st.repo_dir(repo)
        revisions = _digests_under(rdir / "_manifests" / "revisions")
        keep = set(revisions)
        if delete_untagged:
            subjects: dict[str, list[str]] = {}
            for subject in _digests_under(rdir / "_referrers"):
                subjects[subject] = _digests_under(rdir / "_referrers" / subject.replace(":", "/", 1))
            todo = [(rdir / "_manifests" / "tags" / t).read_text().strip() for t in st.tags(repo)]
            keep = set()
            while todo:
                d = todo.pop()
                if d in keep:
                    continue
                keep.add(d)
                todo += _refs(st, d)[1] + subjects.get(d, [])
            for d in revisions:
                if d not in keep:
                    result.manifests.append(f"{repo}@{d}")
                    if not dry_run:
                        (rdir / "_manifests" / "revisions" / d.replace(":", "/", 1)).unlink(missing_ok=True)
        for d in keep:
            marked.add(d)
            marked.update(_refs(st, d)[0])
    now = time.time()
    for d in _digests_under(st.root / "blobs"):
        path = st.blob_path(d)
        if d in marked or now - path.stat().st_mtime < min_age:
            continue
        result.blobs.append(d)
        result.freed += path.stat().st_size
        if not dry_run:
            path.unlink(missing_ok=True)
    if not dry_run:
        gone = set(result.blobs)
        for repo in st.catalog():
            for d in _digests_under(st.repo_dir(repo) / "_layers"):
                if d in gone:
                    (st.repo_dir(repo) / "_layers" / d.replace(":", "/", 1)).unlink(missing_ok=True)
        for p in (st.root / "uploads").iterdir():
            if now - p.stat().st_mtime > 86400:
                p.unlink(missing_ok=True)
    return result

