"""Where Wharf keeps its state: WHARF_ROOT (persistent) and WHARF_RUN (volatile).

pathlib is imported only when a Path is asked for: the lean CLI paths (`wharf run` talking to the
supervisor) need just the string, and pathlib's imports (re, fnmatch, enum) cost ~14 ms.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~9 ms)
if TYPE_CHECKING:
    from pathlib import Path


def root_str() -> str:
    return os.environ.get("WHARF_ROOT", "/var/lib/wharf")


def run_str() -> str:
    return os.environ.get("WHARF_RUN", "/run/wharf")


def root() -> Path:
    """Persistent state: images, containers, volumes, networks (default /var/lib/wharf)."""
    from pathlib import Path

    return Path(root_str())


def run_dir() -> Path:
    """Volatile state: sockets, runtime state, lock files (default /run/wharf)."""
    from pathlib import Path

    return Path(run_str())
