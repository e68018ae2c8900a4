"""Docker-style filters (--filter key=value) over raw container records and label maps."""

from __future__ import annotations

from runtime.errors import InvalidArgument
from runtime.util.labels import match_labels

TYPE_CHECKING = False
if TYPE_CHECKING:  # on the `wharf ps` path: no typing import at run time
    from typing import Any

CONTAINER_KEYS = ("label", "status", "name", "id", "ancestor", "exited", "health", "network", "volume")


def match_container(rec: dict[str, Any], st: dict[str, Any], filters: dict[str, list[str]]) -> bool:
    spec = rec["spec"]
    for key, wanted in filters.items():
        if not wanted:
            continue
        if key not in CONTAINER_KEYS:
            raise InvalidArgument(f"invalid filter {key!r}", hint="use " + ", ".join(CONTAINER_KEYS))
        if key == "label" and not match_labels(spec.get("labels", {}), wanted):
            return False
        if key == "status" and st.get("status", "created") not in wanted:
            return False
        if key == "name" and not any(w.lstrip("/") in rec["name"] for w in wanted):
            return False
        if key == "id" and not any(rec["id"].startswith(w) for w in wanted):
            return False
        if key == "ancestor":
            iid = rec.get("image_id", "")
            if not any(w in (rec["image"], iid) or iid.startswith("sha256:" + w) for w in wanted):
                return False
        if key == "exited" and (st.get("status") != "exited" or str(st.get("exit_code", 0)) not in wanted):
            return False
        if key == "health" and ((st.get("health") or {}).get("status") or "none") not in wanted:
            return False
        if key == "network" and not any(w in rec.get("networks", {}) or w == spec.get("network_mode")
                                         for w in wanted):
            return False
        if key == "volume" and not any(w in (m.get("source"), m.get("target"))
                                       for m in rec.get("mounts", []) for w in wanted):
            return False
    return True
