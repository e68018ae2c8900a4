"""The event log for the container modules: it lives in runtime/util/events.py (images, volumes and
networks, below this layer, write it too); the names are the same here."""

from runtime.util.events import emit, events_path, read_events

__all__ = ["emit", "events_path", "read_events"]
