"""`make demo`: runs the demo stack offline with the embedded engine."""

from __future__ import annotations

import subprocess
import sys


def main() -> int:
    print("Wharf demo: the engine is being built; for now this shows the CLI.")
    return subprocess.call([sys.executable, "-m", "reconciler.cli.app", "version"])


if __name__ == "__main__":
    sys.exit(main())
