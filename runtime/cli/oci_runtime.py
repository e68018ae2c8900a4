"""`wharf-runtime`: the built-in OCI runtime with runc's command-line shape (runtime/oci/cli.py)."""

from __future__ import annotations

import sys


def main() -> None:
    from runtime.oci.cli import main as run

    sys.exit(run())
