"""Mount descriptions (what a snapshotter returns; the engine performs them).

Import it as runtime.linux.mount.Mount (kept in its own module so that importing
runtime.linux.mount stays cheap).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from runtime.linux.mount import mount


@dataclass
class Mount:
    """A mount description (what a snapshotter returns; the engine performs it)."""

    type: str
    source: str
    target: str = ""
    options: list[str] = field(default_factory=list)

    def mount(self, target: str | os.PathLike[str] | None = None) -> None:
        mount(self.source, target or self.target, self.type, 0, ",".join(self.options) or None)
