"""OCI hooks: run each with the container state as JSON on stdin, in order, with its timeout."""

from __future__ import annotations

import os

from runtime.errors import RuntimeFailure
from runtime.oci import fastjson


def run(kind: str, hooks: list[dict], state: dict, cwd: str | None = None) -> None:
    """Run hooks of one kind (in `cwd`, default ours); the first that fails (exit != 0, timeout)
    raises RuntimeFailure."""
    if not hooks:
        return
    import subprocess

    data = fastjson.dumps(state).encode()
    for i, h in enumerate(hooks):
        args = h.get("args") or [h["path"]]
        env = dict(e.split("=", 1) for e in h.get("env", []) if "=" in e)
        try:
            p = subprocess.run(args, executable=h["path"], input=data, env=env, timeout=h.get("timeout"),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, close_fds=True, cwd=cwd)
        except subprocess.TimeoutExpired:
            raise RuntimeFailure(f"hooks.{kind}[{i}] ({h['path']}) timed out after {h['timeout']}s") from None
        except OSError as e:
            raise RuntimeFailure(f"hooks.{kind}[{i}] ({h['path']}): {e.strerror}") from None
        if p.returncode != 0:
            msg = p.stderr.decode(errors="replace").strip().splitlines()
            raise RuntimeFailure(f"hooks.{kind}[{i}] ({h['path']}) exited with {p.returncode}"
                                 + (f": {msg[-1]}" if msg else ""))


def run_quiet(kind: str, hooks: list[dict], state: dict) -> None:
    """poststart/poststop: a failing hook is reported on stderr but does not fail the command."""
    try:
        run(kind, hooks, state)
    except RuntimeFailure as e:
        os.write(2, f"wharf-runtime: warning: {e}\n".encode())
