"""pids: the process-number limit and the current count."""

from __future__ import annotations

from runtime.linux.cgroups.fs import cg_value, read_int, write


def apply(d: str, pids: dict) -> None:
    if "limit" in pids and pids["limit"] is not None:
        write(d, "pids.max", "max" if pids["limit"] <= 0 else cg_value(pids["limit"]))


def stats(d: str, st: object) -> None:
    st.pids_current = read_int(d, "pids.current")
    st.pids_limit = read_int(d, "pids.max")
