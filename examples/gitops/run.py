"""`wharf gitops` from a git repository, offline: makes a repository from the files next to
this script (compose.yaml, site.env), then deploys it, changes it by commits, and shows what
gitops does with each. Run as root after `make install`:

    .venv/bin/python examples/gitops/run.py [--keep]   # --keep: leave the stack running

Each step is the real CLI; the repository lives in a temporary directory.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
PORT = os.environ.get("GITOPS_PORT", "8089")
GIT_ENV = {"GIT_AUTHOR_NAME": "wharf example", "GIT_AUTHOR_EMAIL": "example@wharf.invalid",
           "GIT_COMMITTER_NAME": "wharf example", "GIT_COMMITTER_EMAIL": "example@wharf.invalid"}


def run(*args: str, cwd: Path | None = None, show: bool = True) -> subprocess.CompletedProcess:
    if show:
        print(f"\n$ {' '.join(args)}", flush=True)
    env = {**os.environ, **GIT_ENV, "PYTHONPATH": str(REPO), "GITOPS_PORT": PORT}
    if args[0] == "wharf":
        args = (sys.executable, "-m", "reconciler.cli.app", *args[1:])
    r = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True)
    sys.stdout.write(r.stdout)
    sys.stdout.flush()
    sys.stderr.write(r.stderr)
    sys.stderr.flush()
    return r


def page() -> str:
    deadline = time.monotonic() + 10
    while True:
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{PORT}/", timeout=2).read().decode().strip()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def commit(repo: Path, message: str, env_text: str | None = None, compose: str | None = None) -> None:
    if env_text is not None:
        (repo / "site.env").write_text(env_text)
    if compose is not None:
        (repo / "compose.yaml").write_text(compose)
    run("git", "commit", "-qam", message, cwd=repo)


def main() -> int:
    keep = "--keep" in sys.argv
    with tempfile.TemporaryDirectory(prefix="wharf-gitops-") as tmp:
        repo = Path(tmp) / "shop"
        repo.mkdir()
        compose = (HERE / "compose.yaml").read_text()
        (repo / "compose.yaml").write_text(compose)
        (repo / "site.env").write_text((HERE / "site.env").read_text())
        run("git", "init", "-q", "-b", "main", cwd=repo)
        run("git", "add", ".", cwd=repo)
        run("git", "commit", "-qm", "the shop, first version", cwd=repo)
        if run("wharf", "image", "bootstrap", "busybox").returncode:
            return 1
        try:
            if run("wharf", "gitops", str(repo), "--once", "--wait", "--progress", "plain").returncode:
                return 1
            print(f"\n$ curl http://127.0.0.1:{PORT}/\n{page()}")
            run("wharf", "gitops", str(repo), "--once")  # the same head: nothing to do

            commit(repo, "a new message", env_text="MESSAGE=Hello again, from the second commit\n")
            run("wharf", "gitops", str(repo), "--once", "--wait", "--progress", "plain")
            print(f"\n$ curl http://127.0.0.1:{PORT}/\n{page()}")

            commit(repo, "a typo", compose=compose.replace("env_file:", "envfile:"))
            r = run("wharf", "gitops", str(repo), "--once")
            print(f"(exit {r.returncode}: the stack is left as it was)")
            print(f"\n$ curl http://127.0.0.1:{PORT}/\n{page()}")
            run("wharf", "gitops", "status", "-p", "shop")
        finally:
            if not keep:  # the repository was temporary: drop its deployment too
                run("wharf", "down", "-p", "shop", "-t", "1")
                run("wharf", "gitops", "forget", "-p", "shop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
