"""Container records on disk: paths.root()/containers/<id>/{config.json,state.json}.

config.json is written by the engine (spec, image, resolved mounts/ports/networks);
state.json by the engine and the shim, always under the container's lock and
atomically (runtime.util.fs). Names are symlinks in containers/names/<name> -> id:
os.symlink is atomic, so two `wharf run --name x` at once cannot both win.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from runtime import paths
from runtime.containers.lean import Locked, read_json
from runtime.errors import Conflict, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:  # `wharf ps` reads through here: no typing/json/contextlib imports at run time
    from typing import Any

RUNNING = ("running", "paused", "restarting")  # statuses with a live supervision
_ADJ = ("admiring", "bold", "brave", "calm", "clever", "eager", "focused", "gallant", "happy", "jolly",
        "keen", "lucid", "nifty", "quirky", "serene", "sharp", "stoic", "vibrant", "wizardly", "zen")
_NAMES = ("babbage", "curie", "darwin", "euler", "fermi", "galois", "hopper", "hypatia", "kepler",
          "lovelace", "meitner", "noether", "pascal", "ritchie", "shannon", "tesla", "turing", "wozniak")


def now_rfc3339() -> str:
    t = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def valid_name(name: str) -> str:
    name = name.lstrip("/")
    ok = name and name[0].isalnum() and all(c.isalnum() or c in "_.-" for c in name)
    if not ok:
        raise InvalidArgument(f"invalid container name {name!r}",
                              hint="use [a-zA-Z0-9][a-zA-Z0-9_.-]*")
    return name


class ContainerStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or paths.root() / "containers"
        self.names = self.root / "names"

    # ------------------------------------------------------------ paths
    def dir(self, cid: str) -> Path:
        return self.root / cid

    def run_dir(self, cid: str) -> Path:
        return paths.run_dir() / "containers" / cid

    def log_path(self, cid: str) -> Path:
        return self.dir(cid) / f"{cid}-json.log"

    def lock(self, cid: str) -> Locked:
        """The container's lock (the same flock runtime.util.fs.file_lock takes)."""
        return Locked(str(self.dir(cid) / ".lock"))

    # ------------------------------------------------------------ names and ids
    def new_id(self) -> str:
        import secrets

        while True:
            cid = secrets.token_hex(32)
            if not cid[:12].isdigit() and not self.dir(cid).exists():
                return cid

    def reserve_name(self, name: str | None, cid: str) -> str:
        self.names.mkdir(parents=True, exist_ok=True)
        if name:
            name = valid_name(name)
            try:
                os.symlink(cid, self.names / name)
            except FileExistsError:
                other = self._name_target(name)
                raise Conflict(f'container name "/{name}" is already in use by container "{other}"',
                               hint="remove or rename that container, or choose another --name") from None
            return name
        import random

        while True:
            name = f"{random.choice(_ADJ)}_{random.choice(_NAMES)}"
            try:
                os.symlink(cid, self.names / name)
                return name
            except FileExistsError:
                continue

    def release_name(self, name: str, cid: str) -> None:
        if self._name_target(name) == cid:
            try:
                os.unlink(self.names / name)
            except FileNotFoundError:
                pass

    def _name_target(self, name: str) -> str:
        try:
            return os.readlink(self.names / name)
        except OSError:
            return ""

    def ids(self) -> list[str]:
        try:
            return [e.name for e in os.scandir(self.root) if len(e.name) == 64 and e.is_dir()]
        except FileNotFoundError:
            return []

    def resolve(self, ref: str) -> str:
        """Full id from an id, a unique id prefix or a name (with or without a leading /)."""
        ref = ref.strip()
        if not ref:
            raise InvalidArgument("empty container name or id")
        if len(ref) == 64 and (self.dir(ref) / "config.json").exists():
            return ref
        cid = self._name_target(ref.lstrip("/")) if "/" not in ref.lstrip("/") else ""
        if cid and (self.dir(cid) / "config.json").exists():
            return cid
        matches = [i for i in self.ids() if i.startswith(ref.lower())] if ref.isalnum() else []
        matches = [i for i in matches if (self.dir(i) / "config.json").exists()]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"container id prefix {ref!r} is ambiguous", hint="give more characters")
        raise NotFound(f"no such container: {ref}", hint="see `wharf ps -a`")

    # ------------------------------------------------------------ records
    def load(self, cid: str) -> dict[str, Any]:
        rec = read_json(str(self.dir(cid) / "config.json"))
        if rec is None:
            raise NotFound(f"no such container: {cid}")
        return rec

    def save(self, cid: str, rec: dict[str, Any]) -> None:
        from runtime.util.fs import atomic_write_json

        atomic_write_json(self.dir(cid) / "config.json", rec)

    def load_state(self, cid: str) -> dict[str, Any]:
        return read_json(str(self.dir(cid) / "state.json"), {"status": "created"})

    def save_state(self, cid: str, state: dict[str, Any]) -> None:
        from runtime.util.fs import atomic_write_json

        atomic_write_json(self.dir(cid) / "state.json", state)

    def update_state(self, cid: str, **changes: Any) -> dict[str, Any]:
        with self.lock(cid):
            st = self.load_state(cid)
            st.update(changes)
            self.save_state(cid, st)
            return st

    def delete(self, cid: str, name: str) -> None:
        import shutil

        self.release_name(name, cid)
        shutil.rmtree(self.dir(cid), ignore_errors=True)
        shutil.rmtree(self.run_dir(cid), ignore_errors=True)


def shim_alive(st: dict[str, Any]) -> bool:
    """Is the container's supervision (incl. its cleanup) going on? The supervisor holds an
    exclusive flock on st["shim_lock"] for exactly that long; the kernel drops it if it dies."""
    path = st.get("shim_lock")
    if not path:
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def wait_shim_exit(st: dict[str, Any], timeout: float | None) -> bool:
    """True when the container's supervision (incl. cleanup) is over within `timeout`."""
    path = st.get("shim_lock")
    if not path:
        return True
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        os.close(fd)
        return True
    except BlockingIOError:
        pass
    import threading

    got = threading.Event()

    def acquire() -> None:  # flock(2) has no timeout: a thread blocks in it, and is left there on timeout
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            got.set()
        finally:
            os.close(fd)

    threading.Thread(target=acquire, daemon=True).start()
    return got.wait(timeout)


def wait_pid_exit(pid: int, timeout: float | None) -> bool:
    """True when `pid` (any process, not only a child) is gone within `timeout`."""
    import select

    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        p = select.poll()
        p.register(fd, select.POLLIN)
        return bool(p.poll(None if timeout is None else int(timeout * 1000)))
    finally:
        os.close(fd)
