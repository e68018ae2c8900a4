"""Container state under --root: <root>/<id>/state.json (+ exec.fifo while created).

state.json holds what later commands need (pid and its start time, bundle, cgroup path,
annotations, hooks). The OCI status is derived, never stored: stopped when the init is gone
(or a zombie, or its pid was reused), created while exec.fifo exists, paused while frozen,
running otherwise.
"""

from __future__ import annotations

import os

from runtime.errors import InvalidArgument, NotFound
from runtime.oci import fastjson

DEFAULT_ROOT = "/run/wharf-runtime"
_ID_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def check_id(cid: str) -> None:
    if not cid or not set(cid) <= _ID_CHARS or cid in (".", ".."):
        raise InvalidArgument(f"invalid container id {cid!r}",
                              hint="use letters, digits and _ + - . only")


def container_dir(root: str, cid: str) -> str:
    check_id(cid)
    return os.path.join(root, cid)


def proc_start_time(pid: int) -> tuple[str, str] | None:
    """(state letter, start time in clock ticks) of /proc/<pid>, None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = data[data.rindex(b")") + 2:].split()
    return fields[0].decode(), fields[19].decode()


def save(d: str, st: dict) -> None:
    tmp = os.path.join(d, ".state.json.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, fastjson.dumps(st).encode())  # no fsync: runtime state does not outlive a reboot
    finally:
        os.close(fd)
    os.rename(tmp, os.path.join(d, "state.json"))


def load(root: str, cid: str) -> dict:
    d = container_dir(root, cid)
    try:
        with open(os.path.join(d, "state.json"), "rb") as f:
            st = fastjson.loads(f.read())
    except FileNotFoundError:
        raise NotFound(f"container {cid!r} does not exist", where=root) from None
    st["_dir"] = d
    return st  # type: ignore[return-value]


def status(st: dict) -> str:
    pid = st.get("pid") or 0
    if pid <= 0:
        return "stopped"
    info = proc_start_time(pid)
    if info is None or info[0] in ("Z", "X") or info[1] != st.get("pid_start"):
        return "stopped"
    if os.path.exists(os.path.join(st["_dir"], "exec.fifo")):
        return "created"
    if st.get("cgroup") and _frozen(st):
        return "paused"
    return "running"


def _frozen(st: dict) -> bool:
    from runtime.linux.cgroups import open_cgroup

    cg = open_cgroup(st["cgroup"])
    try:
        return cg.frozen()  # type: ignore[attr-defined]
    except OSError:
        return False


def oci_state(st: dict, status_: str | None = None) -> dict:
    """The state object of the runtime spec (what `state` prints and hooks read on stdin)."""
    s = status_ or status(st)
    out = {"ociVersion": st.get("ociVersion", "1.0.2"), "id": st["id"], "status": s,
           "pid": st.get("pid", 0) if s != "stopped" else 0, "bundle": st["bundle"]}
    if st.get("annotations"):
        out["annotations"] = st["annotations"]
    return out


def remove_dir(d: str) -> None:
    """Remove a container's state dir (flat: state.json, exec.fifo, temp files); missing is fine."""
    try:
        names = os.listdir(d)
    except FileNotFoundError:
        return
    for n in names:
        try:
            os.unlink(os.path.join(d, n))
        except FileNotFoundError:
            pass
    try:
        os.rmdir(d)
    except FileNotFoundError:
        pass


def list_ids(root: str) -> list[str]:
    try:
        names = os.listdir(root)
    except FileNotFoundError:
        return []
    return sorted(n for n in names if os.path.exists(os.path.join(root, n, "state.json")))
