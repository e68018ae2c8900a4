"""The one place that runs the `nft` binary: scripts through `nft -f -`, listings through `nft -j`.

Wharf keeps every rule in tables of its own (`ip wharf_n<id>` per network, `ip wharf_p<id>`
per container with published ports), so removing an object is deleting its table.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

from runtime.errors import RuntimeFailure

TABLE_PREFIX = "wharf_"


def _nft() -> str:
    path = shutil.which("nft") or "/usr/sbin/nft"
    return path


def apply(script: str, what: str) -> None:
    """Run an nft script atomically (one transaction); raise RuntimeFailure naming `what`."""
    try:
        proc = subprocess.run([_nft(), "-f", "-"], input=script.encode(), capture_output=True)
    except FileNotFoundError:
        raise RuntimeFailure("nft is not installed", hint="apt-get install -y nftables") from None
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeFailure(f"nftables rejected the rules for {what}: {err[0] if err else 'exit ' + str(proc.returncode)}",
                             hint="is the nf_tables kernel module available?")


def replace_script(name: str, body: str, family: str = "ip") -> str:
    """nft script text that (re)creates `table FAMILY NAME` with `body` (idempotent)."""
    return f"{delete_script(name, family)}table {family} {name} {{\n{body}\n}}\n"


def delete_script(name: str, family: str = "ip") -> str:
    """nft script text that deletes `table FAMILY NAME` if it exists."""
    return f"add table {family} {name}\ndelete table {family} {name}\n"


def replace_table(name: str, body: str, what: str) -> None:
    """(Re)create `table ip NAME` with `body` in one transaction (idempotent)."""
    apply(replace_script(name, body), what)


def delete_table(name: str) -> None:
    """Delete `table ip NAME` if it exists."""
    apply(delete_script(name), f"table {name}")


def list_ruleset() -> list[dict[str, Any]]:
    proc = subprocess.run([_nft(), "-j", "list", "ruleset", "ip"], capture_output=True)
    if proc.returncode != 0:
        return []
    return json.loads(proc.stdout or b"{}").get("nftables", [])


def tables(prefix: str = TABLE_PREFIX) -> list[str]:
    """Names of the tables (ip and bridge families) whose name starts with prefix."""
    proc = subprocess.run([_nft(), "-j", "list", "tables"], capture_output=True)
    if proc.returncode != 0:
        return []
    items = json.loads(proc.stdout or b"{}").get("nftables", [])
    return [i["table"]["name"] for i in items if "table" in i and i["table"]["name"].startswith(prefix)]


def rule_comments(prefix: str) -> list[tuple[str, str]]:
    """(table, comment) of every rule with a comment in the ip tables whose name starts with prefix."""
    out = []
    for item in list_ruleset():
        rule = item.get("rule")
        if rule and rule.get("table", "").startswith(prefix) and rule.get("comment"):
            out.append((rule["table"], rule["comment"]))
    return out
