"""`docker export`: a container's merged filesystem as one tar (the containers area calls this)."""

from __future__ import annotations

import os
from typing import BinaryIO

from runtime.images.pack import write_tree


def export_tree(path: str | os.PathLike[str], out: BinaryIO) -> None:
    """Write the tree at `path` (the mounted rootfs) to `out` as a tar: sorted, numeric owners, xattrs."""
    write_tree(path, out)
