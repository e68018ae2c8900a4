"""Entry point of the per-container supervisor (the code is in supervisor.py).

Started by the engine as `python -I -S .../runtime/containers/shim.py CONTAINER_DIR READY_FD WAIT_ATTACH`
(`shim.py` in a command line is how `shim_alive` recognises it). Kept this small on purpose:
a script run as __main__ is compiled from source at every start (no .pyc), which costs a few
milliseconds and ~2 MB of compiler memory that stays with every container's shim.
"""

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from runtime.containers.supervisor import main

    sys.exit(main(sys.argv))
