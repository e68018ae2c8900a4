"""What `wharf gitops` deployed, per deployment (repo + branch + path + files + project name):
WHARF_ROOT/reconciler/gitops/<id>/state.json, written atomically. The same directory holds
the bare mirror (repo.git), the checked-out tree and a lock taken for each sync pass."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from runtime import paths

FORMAT = 1


def gitops_dir() -> Path:
    return paths.root() / "reconciler" / "gitops"


def private_dir(path: Path) -> Path:
    """Make `path` (under gitops_dir(), which is made 0700: clones of private repositories live
    there) and return it."""
    top = gitops_dir()
    top.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def deployment_id(name: str, key: list[Any]) -> str:
    """`<repo name>-<12 hex>`: readable, and distinct per (url, branch, path, files, project)."""
    h = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return f"{name}-{h}"


@dataclass
class Deployment:
    id: str
    repo: str  # credentials masked
    branch: str | None
    path: str
    files: list[str] = field(default_factory=list)
    project: str | None = None
    commit: str | None = None  # the commit checked out in the tree (and applied, see status)
    subject: str = ""
    tree_ok: bool = False  # False while the tree is being changed: check it out again
    status: str = "new"  # new | applying | deployed | failed
    error: str = ""  # of the last apply, when failed
    deployed_at: float = 0.0
    head: str | None = None  # the branch head at the last fetch
    head_error: str = ""  # why that head is not deployed (invalid spec), or ""
    fetch_error: str = ""
    checked_at: float = 0.0
    source: dict[str, Any] = field(default_factory=dict)  # sync.Source as given (repo masked)
    project_dir: str = ""  # where the project of `commit` is checked out
    builds: dict[str, str] = field(default_factory=dict)  # image ref -> fingerprint of its last built inputs
    format: int = FORMAT

    @property
    def dir(self) -> Path:
        return gitops_dir() / self.id

    def save(self) -> None:
        private_dir(self.dir)
        tmp = self.dir / f"state.json.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            json.dump(asdict(self), f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        tmp.replace(self.dir / "state.json")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Deployment:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def load(dep_id: str) -> Deployment | None:
    try:
        data = json.loads((gitops_dir() / dep_id / "state.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    try:
        return Deployment.from_dict(data)
    except TypeError:
        return None


def all_deployments() -> list[Deployment]:
    try:
        ids = sorted(p.name for p in gitops_dir().iterdir() if p.is_dir())
    except FileNotFoundError:
        return []
    return [d for d in map(load, ids) if d is not None]


def deployed(project: str) -> Deployment | None:
    """The gitops deployment of `project` (the most recent one if several), or None."""
    mine = [d for d in all_deployments() if d.project == project]
    return max(mine, key=lambda d: d.deployed_at, default=None)


def forget(dep: Deployment) -> None:
    """Drop a deployment's record, mirror and tree (its containers are left alone)."""
    import shutil

    with locked(dep.dir):  # not in the middle of a pass
        for p in dep.dir.iterdir():
            if p.name != "lock":
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
    shutil.rmtree(dep.dir, ignore_errors=True)


@contextmanager
def locked(dep_dir: Path) -> Iterator[None]:
    """One sync pass of a deployment at a time (a --once next to a running watcher waits)."""
    private_dir(dep_dir)
    fd = os.open(dep_dir / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


__all__ = ["Deployment", "all_deployments", "deployed", "deployment_id", "forget", "gitops_dir", "load",
           "locked", "private_dir"]
