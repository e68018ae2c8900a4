"""Entry point of the supervisor process (the code is in supervisord.py).

Started by the engine as `python -I .../runtime/containers/supervise.py WHARF_RUN READY_FD` (with
site-packages: the `run` workers it forks need them), and by itself at a hand-off as
`... supervise.py WHARF_RUN --adopt FILE`. Kept this small on
purpose: a script run as __main__ is compiled from source at every start (no .pyc).
"""

import os
import sys

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    from runtime.containers.supervisord import main

    sys.exit(main(sys.argv))
