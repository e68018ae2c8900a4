"""What a build stage carries from one instruction to the next."""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.build import meta
from runtime.build import rootfs as rfs

DEFAULT_SHELL = ["/bin/sh", "-c"]


@dataclass
class PendingCommit:
    """A RUN whose container has exited and whose layer is being committed in the background.
    Meanwhile its upper dir is stacked as a lower layer under the next RUN, so the commit of
    one step and the container of the next overlap."""

    future: Future[Any]  # -> the committed Image
    lease: rfs.Lease  # rootfs key of the step (released once committed and no container uses it)
    upper: Path
    base: str  # the image the step ran on: base + upper = the step's result
    where: str
    cache_key: str = ""
    created: str = ""
    index: int = 0  # its slot in StageState.layers


@dataclass
class StageState:
    config: dict[str, Any]  # the full OCI image config
    layers: list[tuple[str, str]]  # (blob digest, diff_id)
    key: str  # cache chain key
    fs_image: str | None  # an image id whose layers are exactly `layers` (None: not written yet)
    args: dict[str, str] = field(default_factory=dict)  # ARGs declared in this stage that have a value
    shell: list[str] = field(default_factory=lambda: list(DEFAULT_SHELL))
    cmd_set: bool = False
    pending: PendingCommit | None = None  # the last RUN, still being committed

    @property
    def cfg(self) -> dict[str, Any]:
        return self.config.setdefault("config", {})

    def env(self) -> dict[str, str]:
        """What substitution sees: stage ARGs, overridden by ENV."""
        return {**self.args, **meta.env_dict(self.cfg.get("Env") or [])}
