"""Which OCI runtime binary the engine drives: the built-in one, runc or crun (same CLI shape)."""

from __future__ import annotations

import os
import shutil
import sys

DEFAULT_RUNTIME = os.environ.get("WHARF_RUNTIME", "builtin")
CLI = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cli.py")


def runtime_argv(name: str | None = None) -> list[str]:
    """argv prefix for a runtime: "builtin" -> [python, -S, .../runtime/oci/cli.py]; "runc"/"crun"
    or a path -> [its path]. `-S` skips site-packages: the built-in runtime is stdlib-only."""
    name = name or DEFAULT_RUNTIME
    if name in ("builtin", "wharf", "wharf-runtime"):
        return [sys.executable, "-S", CLI]
    path = name if "/" in name else shutil.which(name)
    if not path:
        from runtime.errors import NotFound

        raise NotFound(f"OCI runtime {name!r} is not installed", hint="use builtin, runc or crun")
    return [path]
