"""Docker-style progress messages ({"status", "id", "progressDetail"}) sent to a callback."""

from __future__ import annotations

from typing import Any


def emit(progress, **msg: Any) -> None:
    if progress is not None:
        progress(msg)
