"""`-u user[:group]` -> (uid, gid, additional gids) from the container's /etc/passwd and /etc/group."""

from __future__ import annotations

import os

from runtime.errors import InvalidArgument


def _table(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n").split(":") for line in f if line.strip() and not line.startswith("#")]
    except OSError:
        return []


def resolve_user(rootfs: str, user: str, group_add: list[str] | tuple[str, ...] = ()) -> tuple[int, int, list[int]]:
    """Docker's rules: numeric ids need no passwd entry; names must exist in the image. The
    additional gids are, as Docker's, the primary gid, the groups that list the user, then
    `--group-add` (a gid, or a group name of the image)."""
    name, _, group = (user or "0").partition(":")
    passwd = _table(os.path.join(rootfs, "etc/passwd"))
    groups = _table(os.path.join(rootfs, "etc/group"))
    uid = gid = None
    username = ""
    for row in passwd:
        if len(row) >= 4 and (row[0] == name or (name.isdigit() and row[2] == name)):
            username, uid, gid = row[0], int(row[2]), int(row[3])
            break
    if uid is None:
        if not name.isdigit():
            raise InvalidArgument(f"unable to find user {name}: no matching entries in passwd file",
                                  hint="use a numeric uid or a user that exists in the image")
        uid, gid = int(name), 0
    if group:
        if group.isdigit():
            gid = int(group)
        else:
            found = [int(r[2]) for r in groups if len(r) >= 3 and r[0] == group]
            if not found:
                raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
            gid = found[0]
    extra = [gid]
    if username:
        extra += [int(r[2]) for r in groups if len(r) >= 4 and username in r[3].split(",")]
    for g in group_add:
        if g.isdigit():
            extra.append(int(g))
            continue
        found = [int(r[2]) for r in groups if len(r) >= 3 and r[0] == g]
        if not found:
            raise InvalidArgument(f"--group-add {g}: unable to find group {g}: no matching entries in group file",
                                  hint="use a numeric gid or a group that exists in the image")
        extra.append(found[0])
    return uid, gid, list(dict.fromkeys(extra))
