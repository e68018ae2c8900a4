"""Write an OCI bundle (config.json next to a rootfs) from default_spec plus changes."""

from __future__ import annotations

import json
import os

from runtime.oci.spec import default_spec


def merge(base: dict, changes: dict) -> dict:
    """Deep-merge `changes` into `base` (dicts merge, anything else replaces; None deletes)."""
    for k, v in changes.items():
        if v is None:
            base.pop(k, None)
        elif isinstance(v, dict) and isinstance(base.get(k), dict):
            merge(base[k], v)
        else:
            base[k] = v
    return base


def write_bundle(bundle: str | os.PathLike[str], rootfs: str | os.PathLike[str], args: list[str],
                 changes: dict | None = None) -> dict:
    """Create `bundle`/config.json for `rootfs` (absolute, or relative to the bundle); returns the spec."""
    os.makedirs(bundle, exist_ok=True)
    spec = merge(default_spec(args, rootfs=os.fspath(rootfs)), changes or {})
    with open(os.path.join(bundle, "config.json"), "w") as f:
        json.dump(spec, f, indent=2)
    return spec
