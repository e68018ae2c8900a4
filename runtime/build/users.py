"""`--chown=user[:group]` -> numeric ids from the image's /etc/passwd and /etc/group (as Docker does)."""

from __future__ import annotations

from pathlib import Path

from runtime.errors import InvalidArgument


def _entries(rootfs: Path, name: str) -> list[list[str]]:
    path = rootfs / "etc" / name
    try:
        if path.is_symlink():  # never follow a link out of the image
            return []
        text = path.read_text(errors="replace")
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def _lookup(rootfs: Path, table: str, who: str, what: str) -> list[str] | None:
    for fields in _entries(rootfs, table):
        if len(fields) >= 3 and (fields[0] == who or (who.isdigit() and fields[2] == who)):
            return fields
    if who.isdigit():
        return None
    raise InvalidArgument(f"unable to find {what} {who}: no matching entries in {table} file",
                          hint=f"use a numeric id or add {who} to /etc/{table} in an earlier step")


def chown_ids(rootfs: Path, spec: str) -> tuple[int, int]:
    """`--chown=user[:group]`: names from the image; without a group the gid is the uid's number."""
    user, _, group = spec.partition(":")
    entry = _lookup(rootfs, "passwd", user, "user")
    uid = int(entry[2]) if entry else int(user)
    gid = uid
    if group:
        gentry = _lookup(rootfs, "group", group, "group")
        gid = int(gentry[2]) if gentry else int(group)
    return uid, gid
