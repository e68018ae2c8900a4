"""A cache of loaded projects (the Target that diff/apply/down converge to), so that a
command on unchanged files skips YAML, interpolation and pydantic entirely.

An entry is found by a key over everything the loader reads besides files: the options
(-f, -p, --profile, --ignore-unsupported, --env-file), the working directory, the whole
environment (but for the shell's own $_, $OLDPWD, $SHLVL), and the loader's own source
files (a new Wharf never reads an old entry).
It is used only if every file the load read (compose files, includes, extends, .env,
env_files, config/secret files — present or absent) still has the same content.
Entries live under WHARF_ROOT/reconciler/cache (root's state: mode 0700, owner checked
before unpickling); a broken or unwritable cache is ignored, never an error.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
from pathlib import Path
from typing import Any

from runtime import paths

FORMAT = 1
MAX_ENTRIES = 64
# Set by the shell per command, not by the user: left out of the key (a project whose files
# name one of them is never cached).
VOLATILE = frozenset({"_", "OLDPWD", "SHLVL"})
_VOLATILE_REF = re.compile(rb"\$\{?(_|OLDPWD|SHLVL)(?![A-Za-z0-9_])")
_HERE = Path(__file__).resolve().parent
# The code whose output an entry holds: a change to any of these invalidates every entry.
_CODE = (_HERE / "spec", _HERE / "desired.py", _HERE / "labels.py", _HERE / "reconcile.py",
         _HERE.parent / "runtime" / "engine.py")


def cache_dir() -> Path:
    return paths.root() / "reconciler" / "cache"


def _code_stamp() -> list[tuple[str, int, int]]:
    out = []
    for p in _CODE:
        entries = sorted(os.scandir(p), key=lambda e: e.name) if p.is_dir() else [p]
        for e in entries:
            name = e.name if isinstance(e, os.DirEntry) else str(e)
            if name.endswith(".py"):
                st = os.stat(e)
                out.append((name, st.st_mtime_ns, st.st_size))
    return out


def _digest(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None
    except IsADirectoryError:
        return "dir"


def key(opts: Any, files: list[Path]) -> str:
    """The entry name for these options (files: the compose files they resolve to)."""
    h = hashlib.sha256()
    h.update(repr((FORMAT, _code_stamp(), [str(f) for f in files], opts.project_name, sorted(opts.profiles),
                   opts.ignore_unsupported, opts.env_file and os.path.abspath(opts.env_file), os.getcwd(),
                   sorted(kv for kv in os.environ.items() if kv[0] not in VOLATILE))).encode())
    return h.hexdigest()[:32]


def get(k: str) -> tuple[Any, list[str]] | None:
    """(target, loader warnings) of a still valid entry, else None."""
    p = cache_dir() / f"{k}.pickle"
    try:
        with open(p, "rb") as f:
            if os.fstat(f.fileno()).st_uid != os.geteuid():
                return None
            entry = pickle.load(f)
        if entry["format"] != FORMAT:
            return None
        for path, digest in entry["files"].items():
            if _digest(path) != digest:
                return None
        return entry["target"], list(entry["warnings"])
    except FileNotFoundError:
        return None
    except Exception:  # noqa: BLE001 - a stale or broken entry is a miss, never an error
        return None


def put(k: str, target: Any, watched: set[Path], warnings: list[str], since: float) -> None:
    """Store an entry, unless a file changed while it was loaded (mtime after `since`, the
    wall clock when the load started, with a second of slack for coarse timestamps)."""
    for p in watched:
        try:
            if os.stat(p).st_mtime >= since - 1.0 or _VOLATILE_REF.search(Path(p).read_bytes()):
                return
        except OSError:
            pass
    if not paths.root().is_dir():  # never the one to create the engine's state dir
        return
    d = cache_dir()
    entry = {"format": FORMAT, "files": {str(p): _digest(str(p)) for p in sorted(watched)},
             "target": target, "warnings": list(warnings)}
    try:
        d.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = d / f".{k}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            pickle.dump(entry, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(d / f"{k}.pickle")
        _trim(d)
    except OSError:
        pass


def _trim(d: Path) -> None:
    entries = sorted(d.glob("*.pickle"), key=lambda p: p.stat().st_mtime)
    for p in entries[:-MAX_ENTRIES]:
        p.unlink(missing_ok=True)
