"""The compose-compatible spec: pydantic models and the loader (files, interpolation,
merge, include, extends, profiles). Import `load_project` from here.

The names are imported on first use, so `reconciler.spec.files` stays cheap to import."""

from __future__ import annotations

from typing import Any

__all__ = ["LoadedProject", "find_files", "load_project"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import loader

        return getattr(loader, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
