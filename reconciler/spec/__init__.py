"""The compose-compatible spec: pydantic models and the loader (files, interpolation,
merge, include, extends, profiles). Import `load_project` from here."""

from __future__ import annotations

from .loader import LoadedProject, find_files, load_project

__all__ = ["LoadedProject", "find_files", "load_project"]
