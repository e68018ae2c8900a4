"""`docker diff` from an overlay upper dir: A (added), C (changed), D (deleted), sorted by path."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from runtime.images.pack import is_opaque, is_whiteout


def _in_lowers(rel: str, lowers: list[Path]) -> bool:
    """Does `rel` exist in the merged view of `lowers` (top first), honouring whiteouts and opaque dirs?"""
    parts = rel.split("/")
    for lower in lowers:
        path = str(lower)
        opaque = False
        for i, comp in enumerate(parts):
            path = os.path.join(path, comp)
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                break
            if is_whiteout(st):
                return False
            if i == len(parts) - 1:
                return True
            if not stat.S_ISDIR(st.st_mode):
                return False
            opaque = opaque or is_opaque(path)
        if opaque:
            return False  # an opaque dir in this layer hides everything below it
    return False


def _lower_names(rel: str, lowers: list[Path]) -> list[str]:
    names: set[str] = set()
    for lower in lowers:
        try:
            names.update(os.listdir(os.path.join(lower, rel)))
        except (FileNotFoundError, NotADirectoryError):
            continue
    return sorted(n for n in names if _in_lowers(f"{rel}/{n}", lowers))


def changes(upper: Path, lowers: list[Path]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []

    def walk(rel: str, below_new: bool) -> None:
        base = os.path.join(upper, rel) if rel else str(upper)
        with os.scandir(base) as it:
            entries = sorted(it, key=lambda e: e.name)
        for e in entries:
            r = f"{rel}/{e.name}" if rel else e.name
            st = e.stat(follow_symlinks=False)
            if is_whiteout(st):
                if not below_new and _in_lowers(r, lowers):
                    out.append(("D", "/" + r))
                continue
            existed = not below_new and _in_lowers(r, lowers)
            out.append(("C" if existed else "A", "/" + r))
            if stat.S_ISDIR(st.st_mode):
                opaque = is_opaque(e.path)
                if existed and opaque:  # everything the lower layers had in it is gone
                    have = set(os.listdir(e.path))
                    out.extend(("D", f"/{r}/{n}") for n in _lower_names(r, lowers) if n not in have)
                walk(r, below_new or not existed or opaque)

    walk("", False)
    return sorted(out, key=lambda c: c[1])
