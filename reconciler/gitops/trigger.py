"""Wake a gitops watcher as soon as a branch of a local repository moves (inotify, through
watchdog), instead of at the next --interval. Remote repositories are polled only."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any


def local_git_dir(url: str) -> Path | None:
    """The git directory of a local repository (a path or file:// URL), or None."""
    if url.startswith("file://"):
        path = url.removeprefix("file://")
    elif url.startswith("/"):
        path = url
    else:
        return None
    p = Path(path)
    if (p / ".git").is_dir():
        return p / ".git"
    if (p / "HEAD").is_file() and (p / "refs").is_dir():  # a bare repository
        return p
    return None  # e.g. a linked worktree (.git is a file): polled


class RefWatcher:
    """Sets `event` when HEAD, packed-refs or anything under refs/heads of `git_dir` changes
    (git's lock files are ignored: the rename that follows them is the change)."""

    def __init__(self, git_dir: Path, event: threading.Event) -> None:
        self.git_dir, self.event = git_dir, event
        self.observer: Any = None

    def _hit(self, path: str) -> bool:
        if not path or path.endswith(".lock"):
            return False
        try:
            rel = Path(path).relative_to(self.git_dir).as_posix()
        except ValueError:
            return False
        return rel in ("HEAD", "packed-refs") or rel.startswith("refs/heads/")

    def dispatch(self, event: Any) -> None:  # watchdog handler protocol
        if event.is_directory or event.event_type not in ("modified", "created", "moved", "deleted", "closed"):
            return
        if self._hit(getattr(event, "src_path", "")) or self._hit(getattr(event, "dest_path", "")):
            self.event.set()

    def start(self) -> None:
        from watchdog.observers import Observer

        self.observer = Observer()
        self.observer.schedule(self, str(self.git_dir), recursive=False)
        heads = self.git_dir / "refs" / "heads"
        if heads.is_dir():
            self.observer.schedule(self, str(heads), recursive=True)
        self.observer.start()

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=2)
            self.observer = None


__all__ = ["RefWatcher", "local_git_dir"]
