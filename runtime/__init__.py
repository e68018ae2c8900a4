"""Wharf's built-in container engine (see DESIGN.md for the layers)."""

__version__ = "0.1.0"
