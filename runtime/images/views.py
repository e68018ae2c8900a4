"""Docker-shaped views of images: `image inspect` JSON, `history` rows, `images` rows, human sizes/times."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from runtime.images.store import Image, ImageStore


def human_size(n: float) -> str:
    """Docker's HumanSizeWithPrecision(n, 3): decimal units, 3 significant digits."""
    units = ["B", "kB", "MB", "GB", "TB", "PB"]
    i = 0
    while n >= 1000 and i < len(units) - 1:
        n /= 1000.0
        i += 1
    return f"{n:.3g}{units[i]}"


def parse_time(ts: str) -> dt.datetime | None:
    if not ts:
        return None
    s = ts.replace("Z", "+00:00")
    if "." in s:  # Python 3.11 takes at most 6 fraction digits
        head, _, rest = s.partition(".")
        frac = "".join(c for c in rest if c.isdigit())
        tz = rest[len(frac):]
        s = f"{head}.{frac[:6]}{tz}"
    try:
        t = dt.datetime.fromisoformat(s)
    except ValueError:
        return None
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


def since(ts: str) -> str:
    """"3 weeks ago" like Docker's HumanDuration."""
    t = parse_time(ts)
    if t is None:
        return "N/A"
    secs = (dt.datetime.now(dt.UTC) - t).total_seconds()
    if secs < 1:
        return "Less than a second ago"
    if secs < 60:
        return f"{int(secs)} seconds ago"
    mins = secs / 60
    if mins < 60:
        return "About a minute ago" if int(mins) == 1 else f"{int(mins)} minutes ago"
    hours = mins / 60
    if hours < 48:
        return "About an hour ago" if round(hours) == 1 else f"{round(hours)} hours ago"
    days = hours / 24
    if days < 14:
        return f"{int(days)} days ago"
    if days < 60:
        return f"{int(days / 7)} weeks ago"
    if days < 365 * 2:
        return f"{int(days / 30)} months ago"
    return f"{int(days / 365)} years ago"


def inspect(store: ImageStore, img: Image) -> dict[str, Any]:
    """`docker image inspect` object."""
    cfg = img.config
    lowers = [str(store.snapshots.fs_path(c)) for c in reversed(img.chain_ids)]
    return {
        "Id": img.id,
        "RepoTags": img.repo_tags,
        "RepoDigests": img.repo_digests,
        "Parent": "",
        "Comment": (cfg.get("history") or [{}])[-1].get("comment", "") if cfg.get("history") else "",
        "Created": img.created,
        "DockerVersion": "",
        "Author": cfg.get("author", ""),
        "Config": cfg.get("config") or {},
        "Architecture": cfg.get("architecture", ""),
        "Os": cfg.get("os", ""),
        "Size": img.size,
        "VirtualSize": img.size,
        "GraphDriver": {"Name": "overlay2", "Data": {
            "LowerDir": ":".join(lowers[1:]) if len(lowers) > 1 else None,
            "UpperDir": lowers[0] if lowers else None}},
        "RootFS": {"Type": "layers", "Layers": img.diff_ids},
        "Metadata": {"LastTagTime": ""},
        **({"Variant": cfg["variant"]} if cfg.get("variant") else {}),
        "Descriptor": {"mediaType": img.media_type, "digest": img.manifest_digest,
                       "size": store.content.size(img.manifest_digest)},
    }


def history(store: ImageStore, img: Image) -> list[dict[str, Any]]:
    """Newest first: {Id, Created, CreatedBy, Tags, Size, Comment} like `docker history`."""
    entries = list(img.config.get("history") or [])
    sizes = []
    for c in img.chain_ids:
        snap = store.snapshots.get(c)
        sizes.append(snap.size if snap else 0)
    rows = []
    layer = 0
    for h in entries:
        size = 0
        if not h.get("empty_layer"):
            size = sizes[layer] if layer < len(sizes) else 0
            layer += 1
        rows.append({"Id": "<missing>", "Created": h.get("created", ""), "CreatedBy": h.get("created_by", ""),
                     "Tags": None, "Size": size, "Comment": h.get("comment", "")})
    while layer < len(sizes):  # layers without a history entry
        rows.append({"Id": "<missing>", "Created": img.created, "CreatedBy": "", "Tags": None,
                     "Size": sizes[layer], "Comment": ""})
        layer += 1
    rows.reverse()
    if rows:
        rows[0]["Id"], rows[0]["Tags"] = img.id, img.repo_tags or None
    else:
        rows.append({"Id": img.id, "Created": img.created, "CreatedBy": "", "Tags": img.repo_tags or None,
                     "Size": 0, "Comment": ""})
    return rows


def rows(img: Image, digests: bool = False) -> list[dict[str, str]]:
    """One `docker images` row per tag (a dangling image gives one <none> row)."""
    out = []
    by_repo: dict[str, list[str]] = {}
    for d in img.repo_digests:
        name, _, digest = d.partition("@")
        by_repo.setdefault(name, []).append(digest)
    base = {"ID": img.short_id, "CreatedAt": img.created, "CreatedSince": since(img.created),
            "Size": human_size(img.size), "VirtualSize": human_size(img.size), "SharedSize": "N/A",
            "UniqueSize": "N/A", "Containers": "N/A"}
    tags = img.repo_tags or []
    for t in tags:
        repo, _, tag = t.rpartition(":")
        out.append({**base, "Repository": repo, "Tag": tag, "Digest": (by_repo.get(repo) or ["<none>"])[0]})
    if digests:
        tagged = {t.rpartition(":")[0] for t in tags}
        for repo, ds in by_repo.items():
            if repo not in tagged:
                out += [{**base, "Repository": repo, "Tag": "<none>", "Digest": d} for d in ds]
    if not out:
        repo = next(iter(by_repo), "<none>")
        out.append({**base, "Repository": repo, "Tag": "<none>", "Digest": (by_repo.get(repo) or ["<none>"])[0]})
    return out



def summary(store: ImageStore, img: Image) -> dict[str, Any]:
    """Docker Engine API `GET /images/json` item (ImageSummary)."""
    t = parse_time(img.created)
    return {"Id": img.id, "ParentId": "", "RepoTags": img.repo_tags, "RepoDigests": img.repo_digests,
            "Created": int(t.timestamp()) if t else 0, "Size": img.size, "SharedSize": -1,
            "VirtualSize": img.size, "Labels": img.labels or None, "Containers": len(store.in_use_by(img.id))}
