"""`python -m runtime.containers.cleanup ID`: what the shim execs when its container is done
(network release, --rm removal). It runs in the shim's pid, so waiters see one process end."""

from __future__ import annotations

import sys

from runtime.containers.manager import LocalContainers
from runtime.errors import WharfError


def main(argv: list[str]) -> int:
    try:
        LocalContainers().cleanup_after_exit(argv[1])
    except WharfError as e:
        print(f"wharf cleanup: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
