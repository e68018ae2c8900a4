"""Where Wharf keeps its state: WHARF_ROOT (persistent) and WHARF_RUN (volatile)."""

from __future__ import annotations

import os
from pathlib import Path


def root() -> Path:
    """Persistent state: images, containers, volumes, networks (default /var/lib/wharf)."""
    return Path(os.environ.get("WHARF_ROOT", "/var/lib/wharf"))


def run_dir() -> Path:
    """Volatile state: sockets, runtime state, lock files (default /run/wharf)."""
    return Path(os.environ.get("WHARF_RUN", "/run/wharf"))
