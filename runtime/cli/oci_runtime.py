"""`wharf-runtime`: the built-in OCI runtime with runc's command-line shape. Filled in by its issue."""

from __future__ import annotations

import sys


def main() -> None:
    print("wharf-runtime: not built yet", file=sys.stderr)
    sys.exit(1)
