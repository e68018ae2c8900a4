"""The image store: images (manifest + config in the content store), tags, snapshots, container rootfs.

On disk, under <root> (default WHARF_ROOT/images):
    blobs/sha256/<hex>        content store (manifests, configs, layer blobs)
    sn/<16 hex>/{fs,meta.json} one snapshot per chain ID (shared between images)
    containers/<key>/{upper,work} a container's writable layer
    empty/                    the lower dir of a FROM-scratch image
    images.json               {"images": {id: {manifest, tags, digests, added}}, "holds": {key: id}}
    lock                      flock for every mutation of images.json
An image's id is its config digest. Tags are stored normalised (docker.io/library/busybox:latest)
and shown familiar (busybox:latest).
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime import paths
from runtime.errors import Conflict, InvalidArgument, NotFound
from runtime.images import oci
from runtime.images.content import ContentStore, sha256_digest
from runtime.images.reference import familiar, is_image_id, parse, with_default_tag
from runtime.images.snapshots import FLAT, MOUNT_DATA_MAX, OVERLAY_MAX_LOWER, Snapshots
from runtime.images.streams import detect
from runtime.linux.mount import MNT_DETACH, Mount, umount
from runtime.util.events import emit_image, emit_image_removal
from runtime.util.fs import atomic_write_json, file_lock, read_json


def now_rfc3339() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Image:
    id: str  # sha256:<config digest hex>
    manifest_digest: str
    config: dict[str, Any]  # the full OCI image config
    repo_tags: list[str] = field(default_factory=list)  # familiar: busybox:latest
    repo_digests: list[str] = field(default_factory=list)  # familiar: busybox@sha256:...
    created: str = ""
    size: int = 0  # uncompressed bytes of all layers' files
    layers: list[dict[str, Any]] = field(default_factory=list)  # manifest layer descriptors
    chain_ids: list[str] = field(default_factory=list)
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]

    @property
    def diff_ids(self) -> list[str]:
        return list(self.config.get("rootfs", {}).get("diff_ids", []))

    @property
    def labels(self) -> dict[str, str]:
        return dict((self.config.get("config") or {}).get("Labels") or {})

    @property
    def media_type(self) -> str:
        return self.manifest.get("mediaType") or oci.OCI_MANIFEST


class ImageStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else paths.root() / "images"
        self.content = ContentStore(self.root)
        self.snapshots = Snapshots(self.root)
        self._db_path = self.root / "images.json"

    # ------------------------------------------------------------ db

    def _read(self) -> dict[str, Any]:
        db = read_json(self._db_path, None) or {}
        db.setdefault("images", {})
        db.setdefault("holds", {})
        return db

    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        """The db under the store lock; written back (fsync) when the block ends without error and
        changed it: re-adding, re-tagging or re-pulling what is there already touches nothing."""
        with file_lock(self.root / "lock"):
            db = self._read()
            before = json.dumps(db, sort_keys=True)
            yield db
            if json.dumps(db, sort_keys=True) != before:
                atomic_write_json(self._db_path, db)

    def _load(self, image_id: str, rec: dict[str, Any]) -> Image:
        manifest = json.loads(self.content.read(rec["manifest"]))
        config = json.loads(self.content.read(image_id))
        diff_ids = config.get("rootfs", {}).get("diff_ids", [])
        chain = oci.chain_ids(diff_ids)
        size = 0
        for c, layer in zip(chain, manifest.get("layers", []), strict=False):
            snap = self.snapshots.get(c)
            size += snap.size if snap else layer.get("size", 0)
        return Image(id=image_id, manifest_digest=rec["manifest"], config=config,
                     repo_tags=[familiar(t) for t in rec.get("tags", [])],
                     repo_digests=[familiar(d) for d in rec.get("digests", [])],
                     created=config.get("created", ""), size=size, layers=manifest.get("layers", []),
                     chain_ids=chain, manifest=manifest)

    def get(self, image_id: str) -> Image:
        rec = self._read()["images"].get(image_id)
        if rec is None:
            raise NotFound(f"image {image_id} not found")
        return self._load(image_id, rec)

    # ------------------------------------------------------------ lookup

    def list(self) -> list[Image]:
        db = self._read()
        out = []
        for image_id, rec in db["images"].items():
            try:
                out.append(self._load(image_id, rec))
            except (NotFound, ValueError):
                continue  # a record whose blobs vanished: gc repairs it
        out.sort(key=lambda i: (i.created, i.id), reverse=True)
        return out

    def _find_id(self, db: dict[str, Any], ref: str) -> str:
        ref = ref.strip()
        images = db["images"]
        if is_image_id(ref):
            full = ref if ref.startswith("sha256:") else "sha256:" + ref
            if full in images:
                return full
            raise NotFound(f"image {ref!r} not found", hint="see `wharf images -a`")
        parse_error: InvalidArgument | None = None
        try:
            r = parse(ref)
        except InvalidArgument as e:
            parse_error, r = e, None
        if r is not None:
            if r.digest:
                want = f"{r.name}@{r.digest}"
                for image_id, rec in images.items():
                    if want in rec.get("digests", []):
                        return image_id
                for image_id, rec in images.items():
                    if rec.get("manifest") == r.digest:
                        return image_id
            else:
                want = str(with_default_tag(r))
                for image_id, rec in images.items():
                    if want in rec.get("tags", []):
                        return image_id
        hexpart = ref.removeprefix("sha256:")
        if hexpart and all(c in "0123456789abcdef" for c in hexpart):
            matches = [i for i in images if i[7:].startswith(hexpart)]
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise InvalidArgument(f"image id prefix {ref!r} is ambiguous ({len(matches)} images)",
                                      hint="give more characters of the id")
        if parse_error is not None:
            raise parse_error
        raise NotFound(f"image {ref!r} not found",
                       hint="pull, load or build it, or `wharf image bootstrap busybox`")

    def resolve(self, ref: str) -> Image:
        """An image by name[:tag][@digest] or (short) id; NotFound / InvalidArgument."""
        image_id = self._find_id(self._read(), ref)
        return self.get(image_id)

    # ------------------------------------------------------------ adding images

    def _check_blob(self, digest: str, what: str) -> None:
        if not self.content.has(digest):
            raise NotFound(f"{what} blob {digest} is missing from the content store",
                           hint="pull or load the image again")

    def ensure_snapshots(self, manifest: dict[str, Any], config: dict[str, Any], what: str = "image"
                         ) -> list[str]:
        """Unpack the layers that have no snapshot yet; returns the chain ids created now."""
        diff_ids = config["rootfs"]["diff_ids"]
        chain = oci.chain_ids(diff_ids)
        created: list[str] = []
        try:
            for i, (layer, diff_id, chain_id) in enumerate(zip(manifest["layers"], diff_ids, chain, strict=True)):
                if self.snapshots.has(chain_id):
                    continue
                compression = oci.LAYER_TYPES.get(layer["mediaType"])
                with self.content.open(layer["digest"]) as blob:
                    self.snapshots.create(chain_id, chain[i - 1] if i else None, diff_id, blob, compression,
                                          f"{what} layer {i} ({layer['digest']})")
                created.append(chain_id)
        except BaseException:
            for c in created:
                self.snapshots.remove(c)
            raise
        return created

    def register(self, manifest: bytes, ref: str | None = None, repo_digest: bool = False) -> Image:
        """Record the image of `manifest` (its config and layer blobs already in `content`).

        Unpacks missing layer snapshots (verifying diff_ids), stores the manifest blob and tags
        `ref`. With repo_digest=True (pulls), `name@<manifest digest>` is recorded as well.
        On any error the store is as before.
        """
        tag_ref = parse(ref) if ref else None  # a bad ref fails before anything is written
        doc = oci.parse_manifest(manifest)
        self._check_blob(doc["config"]["digest"], "config")
        config = oci.parse_config(self.content.read(doc["config"]["digest"]),
                                  f"image config {doc['config']['digest']}")
        diff_ids = config["rootfs"]["diff_ids"]
        if len(diff_ids) != len(doc["layers"]):
            raise InvalidArgument(f"manifest lists {len(doc['layers'])} layers but config "
                                  f"{doc['config']['digest']} has {len(diff_ids)} diff_ids")
        for i, layer in enumerate(doc["layers"]):
            self._check_blob(layer["digest"], f"layer {i}")
        image_id = doc["config"]["digest"]
        created = self.ensure_snapshots(doc, config, f"image {image_id[7:19]}")
        try:
            had_manifest = self.content.has(sha256_digest(manifest))
            manifest_digest = self.content.put(manifest)
            with self._locked() as db:
                for i, layer in enumerate(doc["layers"]):  # a concurrent rmi may have deleted a shared blob
                    self._check_blob(layer["digest"], f"layer {i}")
                self._check_blob(image_id, "config")
                rec = db["images"].setdefault(image_id, {"tags": [], "digests": [], "added": now_rfc3339()})
                rec["manifest"] = manifest_digest
                if tag_ref is not None:
                    if tag_ref.digest is None or tag_ref.tag:
                        self._set_tag(db, image_id, str(with_default_tag(tag_ref)).split("@")[0])
                    if repo_digest or tag_ref.digest:
                        d = f"{tag_ref.name}@{manifest_digest}"
                        if d not in rec["digests"]:
                            rec["digests"].append(d)
        except BaseException:
            for c in created:
                self.snapshots.remove(c)
            if not had_manifest and not self._manifest_used(sha256_digest(manifest)):
                try:
                    self.content.delete(sha256_digest(manifest))
                except NotFound:
                    pass
            raise
        return self.get(image_id)

    def _manifest_used(self, digest: str) -> bool:
        return any(r.get("manifest") == digest for r in self._read()["images"].values())

    def add_image(self, config: dict[str, Any], layers: list[tuple[str, str]], ref: str | None = None) -> Image:
        """Build helper: a config dict and [(layer blob digest, diff_id)] -> a new (OCI) image."""
        config = copy.deepcopy(config)
        config.setdefault("architecture", oci.host_platform()[1])
        config.setdefault("os", "linux")
        config["rootfs"] = {"type": "layers", "diff_ids": [d for _, d in layers]}
        descs = []
        for i, (digest, _diff) in enumerate(layers):
            self._check_blob(digest, f"layer {i}")
            with self.content.open(digest) as f:
                compression = detect(f.read(4))
            mt = {"": oci.OCI_LAYER, "gzip": oci.OCI_LAYER_GZIP, "zstd": oci.OCI_LAYER_ZSTD}[compression]
            descs.append({"mediaType": mt, "digest": digest, "size": self.content.size(digest)})
        config_bytes = oci.dumps(config)
        had_config = self.content.has(sha256_digest(config_bytes))
        config_digest = self.content.put(config_bytes)
        manifest = {"schemaVersion": 2, "mediaType": oci.OCI_MANIFEST,
                    "config": {"mediaType": oci.OCI_CONFIG, "digest": config_digest, "size": len(config_bytes)},
                    "layers": descs}
        try:
            return self.register(oci.dumps(manifest), ref)
        except BaseException:
            if not had_config and config_digest not in self._references(self._read())[0]:
                self.content.delete(config_digest)
            raise

    # ------------------------------------------------------------ tags

    @staticmethod
    def _set_tag(db: dict[str, Any], image_id: str, tag: str) -> None:
        for other_id, rec in db["images"].items():
            if other_id != image_id and tag in rec.get("tags", []):
                rec["tags"].remove(tag)
        tags = db["images"][image_id].setdefault("tags", [])
        if tag not in tags:
            tags.append(tag)

    def tag(self, ref: str, new_ref: str, events: bool = True) -> None:
        r = parse(new_ref)
        if r.digest:
            raise InvalidArgument(f"cannot tag with a digest reference {new_ref!r}", hint="use name:tag")
        tag = str(with_default_tag(r))
        with self._locked() as db:
            image_id = self._find_id(db, ref)
            self._set_tag(db, image_id, tag)
        if events:
            emit_image("tag", image_id, familiar(tag), self._labels(image_id))

    def untag(self, ref: str) -> list[str]:
        r = with_default_tag(parse(ref))
        key = str(r)
        with self._locked() as db:
            for rec in db["images"].values():
                field_ = "digests" if r.digest else "tags"
                if key in rec.get(field_, []):
                    rec[field_].remove(key)
                    return [f"Untagged: {familiar(key)}"]
        raise NotFound(f"no such image tag {ref!r}")

    # ------------------------------------------------------------ removal and gc

    def in_use_by(self, image_id: str) -> list[str]:
        """Keys (container ids) whose rootfs is made from this image."""
        return sorted(k for k, v in self._read()["holds"].items() if v == image_id)

    def hold(self, image_id: str, key: str) -> None:
        with self._locked() as db:
            db["holds"][key] = image_id

    def _labels(self, image_id: str) -> dict[str, str]:
        try:
            return json.loads(self.content.read(image_id)).get("config", {}).get("Labels") or {}
        except (NotFound, ValueError, AttributeError):
            return {}

    def remove(self, ref: str, force: bool = False, events: bool = True) -> list[str]:
        """`docker rmi`: untag a name; delete the image when its last reference goes (or by id).

        A container's image is never deleted from under it: without force that is a Conflict,
        with force the image is untagged and its data stays until the container releases it.
        events=False: no untag/delete events (the builder dropping an intermediate image of its own).
        """
        if not events:
            return self._remove(ref, force)
        image_id = self._find_id(self._read(), ref)
        labels = self._labels(image_id)
        out = self._remove(ref, force)
        emit_image_removal(out, image_id, labels)
        return out

    def _remove(self, ref: str, force: bool) -> list[str]:
        out: list[str] = []
        with self._locked() as db:
            image_id = self._find_id(db, ref)
            rec = db["images"][image_id]
            users = sorted(k for k, v in db["holds"].items() if v == image_id)
            by_name = not (is_image_id(ref) or self._is_id_prefix(ref, image_id))
            refs = rec.get("tags", []) + rec.get("digests", [])
            key = ""
            if by_name:
                r = with_default_tag(parse(ref))
                key = f"{r.name}@{r.digest}" if r.digest else str(r)
                by_name = key in refs  # else name@digest matched only the manifest digest: remove as by id
            if by_name:
                if len(refs) <= 1 and users and not force:
                    raise Conflict(f"unable to remove repository reference {ref!r} (must force): "
                                   f"container {users[0][:12]} is using its referenced image {image_id[7:19]}",
                                   hint="remove the container first, or use -f to untag anyway")
                for f in ("tags", "digests"):
                    if key in rec.get(f, []):
                        rec[f].remove(key)
                        out.append(f"Untagged: {familiar(key)}")
                repo = parse(key).name
                if not any(parse(t).name == repo for t in rec.get("tags", [])):
                    for d in [d for d in rec.get("digests", []) if parse(d).name == repo]:
                        rec["digests"].remove(d)  # as Docker: the repo's digest refs go with its last tag
                        out.append(f"Untagged: {familiar(d)}")
                if rec.get("tags") or rec.get("digests"):
                    return out
            else:
                repos = {parse(x).name for x in refs}
                if len(repos) > 1 and not force:
                    raise Conflict(f"unable to delete {image_id[7:19]} (must be forced): image is referenced "
                                   "in multiple repositories", hint="untag by name, or use -f")
                if users and not force:
                    raise Conflict(f"unable to delete {image_id[7:19]} (must be forced): image is being used by "
                                   f"container {users[0][:12]}", hint="remove the container first")
                for x in refs:
                    out.append(f"Untagged: {familiar(x)}")
                rec["tags"], rec["digests"] = [], []
            if users:
                return out  # forced: stays (dangling) until its containers are gone
            out += self._delete(db, image_id)
        return out

    @staticmethod
    def _is_id_prefix(ref: str, image_id: str) -> bool:
        hexpart = ref.removeprefix("sha256:")
        return bool(hexpart) and image_id[7:].startswith(hexpart) and all(c in "0123456789abcdef" for c in hexpart)

    def _references(self, db: dict[str, Any]) -> tuple[set[str], set[str]]:
        """(blob digests, chain ids) referenced by the images in db."""
        blobs: set[str] = set()
        chains: set[str] = set()
        for image_id, rec in db["images"].items():
            blobs.update((image_id, rec["manifest"]))
            try:
                manifest = json.loads(self.content.read(rec["manifest"]))
                config = json.loads(self.content.read(image_id))
            except (NotFound, ValueError):
                continue
            blobs.update(layer["digest"] for layer in manifest.get("layers", []))
            mine = oci.chain_ids(config.get("rootfs", {}).get("diff_ids", []))
            chains.update(mine)
            chains.update(FLAT + c for c in mine)  # a flattened base lives as long as its chain does
        return blobs, chains

    def _delete(self, db: dict[str, Any], image_id: str) -> list[str]:
        """Drop the image record and whatever blobs/snapshots only it used (caller holds the lock)."""
        rec = db["images"].pop(image_id)
        atomic_write_json(self._db_path, db)  # forget first: a crash below leaves only orphans for gc
        mine_blobs = {image_id, rec["manifest"]}
        mine_chains: list[str] = []
        try:
            manifest = json.loads(self.content.read(rec["manifest"]))
            mine_blobs.update(layer["digest"] for layer in manifest.get("layers", []))
            config = json.loads(self.content.read(image_id))
            mine_chains = oci.chain_ids(config.get("rootfs", {}).get("diff_ids", []))
        except (NotFound, ValueError):
            pass
        blobs, chains = self._references(db)
        out = [f"Deleted: {image_id}"]
        for c in reversed(mine_chains):
            if c not in chains and self.snapshots.has(c):
                self.snapshots.remove(c)
                out.append(f"Deleted: {c}")
            if FLAT + c not in chains:
                self.snapshots.remove(FLAT + c)
        for b in mine_blobs - blobs:
            try:
                self.content.delete(b)
            except NotFound:
                pass
        return out

    def prune(self, all: bool = False, filters: dict[str, list[str]] | None = None) -> tuple[list[str], int]:
        """Remove dangling images (all unused ones with all=True); returns (messages, bytes reclaimed)."""
        from runtime.images.filters import matches

        before = self.disk_usage()["total"]
        out: list[str] = []
        with self._locked() as db:
            held = set(db["holds"].values())
            for image_id in list(db["images"]):
                rec = db["images"][image_id]
                if image_id in held or (not all and (rec.get("tags") or rec.get("digests"))):
                    continue
                if filters:
                    try:
                        img = self._load(image_id, rec)
                    except (NotFound, ValueError):
                        img = None
                    if img is not None and not matches(img, filters, prune=True):
                        continue
                labels = self._labels(image_id)
                gone = [f"Untagged: {familiar(t)}" for t in rec.get("tags", []) + rec.get("digests", [])]
                gone += self._delete(db, image_id)
                emit_image_removal(gone, image_id, labels)
                out += gone
        self.gc()
        return out, max(0, before - self.disk_usage()["total"])

    def gc(self, grace: float = 600.0) -> list[str]:
        """Delete blobs and snapshots no image references (orphans older than `grace` seconds),
        containers' leftover dirs whose key is not held, and crashed-write leftovers."""
        import time

        removed: list[str] = []
        now = time.time()
        with self._locked() as db:
            held = set(db["holds"].values())
            for image_id, rec in list(db["images"].items()):
                if image_id not in held and not (self.content.has(image_id) and self.content.has(rec["manifest"])):
                    del db["images"][image_id]  # its blobs vanished (a crash mid-delete): drop the record
                    removed.append(image_id)
            blobs, chains = self._references(db)
            holds = db["holds"]
            for d in list(self.content.walk()):
                if d in blobs:
                    continue
                try:
                    if now - self.content._blob_path(d).stat().st_mtime < grace:
                        continue
                    self.content.delete(d)
                    removed.append(d)
                except (NotFound, FileNotFoundError):
                    pass
            for c in list(self.snapshots.walk()):
                if c in chains:
                    continue
                meta = self.snapshots.fs_path(c).parent / "meta.json"
                try:
                    if now - meta.stat().st_mtime < grace:
                        continue
                except FileNotFoundError:
                    continue
                self.snapshots.remove(c)
                removed.append(c)
            cdir = self.root / "containers"
            if cdir.is_dir():
                for e in os.scandir(cdir):
                    if e.name not in holds and now - e.stat(follow_symlinks=False).st_mtime > grace:
                        shutil.rmtree(e.path, ignore_errors=True)
        self.content.sweep_ingest(grace)
        self.snapshots.sweep(grace)
        return removed

    def disk_usage(self) -> dict[str, Any]:
        """`system df` data: per-image sizes, shared/unique bytes, container rw sizes, totals."""
        images = self.list()
        counts: dict[str, int] = {}
        for img in images:
            for c in img.chain_ids:
                counts[c] = counts.get(c, 0) + 1
        held = set(self._read()["holds"].values())
        per_image = []
        total = 0
        seen: set[str] = set()
        for img in images:
            shared = unique = 0
            for c in img.chain_ids:
                snap = self.snapshots.get(c)
                n = snap.size if snap else 0
                if counts[c] > 1:
                    shared += n
                else:
                    unique += n
                if c not in seen:
                    seen.add(c)
                    total += n
            per_image.append({"id": img.id, "repo_tags": img.repo_tags, "size": img.size, "shared": shared,
                              "unique": unique, "containers": len(self.in_use_by(img.id)),
                              "created": img.created})
        reclaimable = sum(p["unique"] for p in per_image if p["id"] not in held)
        containers = {}
        cdir = self.root / "containers"
        if cdir.is_dir():
            for e in os.scandir(cdir):
                containers[e.name] = _tree_size(Path(e.path) / "upper")
        return {"images": per_image, "total": total, "reclaimable": reclaimable, "active": len(held),
                "containers": containers}

    # ------------------------------------------------------------ container filesystems

    def container_dir(self, key: str) -> Path:
        if not key or "/" in key or key.startswith(".") or "," in key or ":" in key:
            raise InvalidArgument(f"invalid rootfs key {key!r}")
        return self.root / "containers" / key

    def rootfs_mounts(self, image_id: str, key: str) -> list[Mount]:
        """The overlay (image chain + writable upper of `key`) as a Mount description; never mounts.

        Idempotent: an existing upper dir (a restarted container) is kept; leftovers of a
        crashed mount do not block the next one.
        """
        img = self.resolve(image_id)
        cdir = self.container_dir(key)
        upper, work = cdir / "upper", cdir / "work"
        rest = [f"upperdir={upper}", f"workdir={work}"] + _overlay_extras()
        for p in (str(self.root), str(upper)):
            if "," in p or ":" in p:
                raise InvalidArgument(f"path {p!r} contains ',' or ':', which overlay options cannot carry",
                                      hint="use a WHARF_ROOT without ',' and ':'")
        self.hold(img.id, key)  # first: from now on no rmi/prune/gc takes the image's snapshots away
        try:
            self.ensure_snapshots(img.manifest, img.config, f"image {img.short_id}")
            lowers = self._lowers(img.chain_ids, len(",".join(rest)) + 1)
            options = [f"lowerdir={':'.join(lowers)}"] + rest
        except BaseException:
            if not cdir.exists():
                with self._locked() as db:
                    db["holds"].pop(key, None)
            raise
        upper.mkdir(parents=True, exist_ok=True)
        work.mkdir(parents=True, exist_ok=True)
        return [Mount("overlay", "overlay", options=options)]

    def _lowers(self, chain_ids: list[str], reserved: int) -> list[str]:
        """Lower dirs, top first. A chain deeper than one overlay mount can stack (OVL_MAX_STACK and one page
        of options) keeps its top layers and has the rest merged into one flattened snapshot (hard links)."""
        if not chain_ids:
            empty = self.root / "empty"
            empty.mkdir(parents=True, exist_ok=True)
            return [str(empty)]
        paths = [str(self.snapshots.fs_path(c)) for c in reversed(chain_ids)]
        budget = MOUNT_DATA_MAX - reserved - len("lowerdir=")
        if len(paths) <= OVERLAY_MAX_LOWER and sum(len(p) + 1 for p in paths) <= budget:
            return paths
        flat_len = len(str(self.snapshots.fs_path(FLAT + chain_ids[0])))
        keep, used = 0, flat_len
        while keep < len(paths) - 1 and keep + 1 < OVERLAY_MAX_LOWER and used + len(paths[keep]) + 1 <= budget:
            used += len(paths[keep]) + 1
            keep += 1
        if keep == 0 and used > budget:
            raise InvalidArgument(f"WHARF_ROOT {self.root} is too long for overlay mount options")
        base = chain_ids[: len(chain_ids) - keep]
        return paths[:keep] + [str(self.snapshots.flat(base).path)]

    def release_rootfs(self, key: str) -> None:
        """Forget `key`'s writable layer (upper/work) and its hold on the image; idempotent."""
        cdir = self.container_dir(key)
        with self._locked() as db:
            db["holds"].pop(key, None)
        for target in _mounts_using(cdir / "upper"):  # a crashed engine left the overlay mounted
            umount(target, MNT_DETACH)
        if cdir.exists():
            trash = cdir.with_name(f".rm-{key}")
            shutil.rmtree(trash, ignore_errors=True)
            os.rename(cdir, trash)
            shutil.rmtree(trash, ignore_errors=True)

    def _chain_of_key(self, key: str) -> tuple[Image, Path]:
        image_id = self._read()["holds"].get(key)
        upper = self.container_dir(key) / "upper"
        if image_id is None:
            raise NotFound(f"no container filesystem {key!r} in the image store")
        return self.get(image_id), upper

    def diff(self, key: str) -> list[tuple[str, str]]:
        """`docker diff`: ("A"|"C"|"D", "/path") from the upper dir of `key`, sorted by path."""
        from runtime.images.changeset import changes

        img, upper = self._chain_of_key(key)
        if not upper.is_dir():
            return []
        lowers = [self.snapshots.fs_path(c) for c in reversed(img.chain_ids)]
        return changes(upper, lowers)

    def commit(self, key: str, image_id: str, changes: dict[str, Any] | list[str] | None = None,
               author: str = "", message: str = "", ref: str | None = None,
               compression: str = "gzip", skip: frozenset[str] = frozenset()) -> Image:
        """The upper dir of `key` -> a new layer (OCI whiteouts) on top of `image_id` -> a new image.
        skip: paths ("/etc/hosts") of the upper dir to leave out."""
        from runtime.images.changes import apply_changes
        from runtime.images.pack import write_tree
        from runtime.images.streams import CompressingWriter

        if ref:
            parse(ref)
        base = self.resolve(image_id)
        upper = self.container_dir(key) / "upper"  # missing for a never-started container: an empty layer
        new_config = copy.deepcopy(base.config)
        new_config["config"] = apply_changes(base.config.get("config") or {}, changes)
        created = now_rfc3339()
        new_config["created"] = created
        if author:
            new_config["author"] = author
        else:
            new_config.pop("author", None)
        entry: dict[str, Any] = {"created": created}
        if author:
            entry["author"] = author
        if message:
            entry["comment"] = message
        new_config["history"] = list(base.config.get("history") or []) + [entry]
        # one pass over the upper dir: the tar goes to the (compressed) blob and is unpacked as the new
        # snapshot on the way, exactly as unpacking the blob would; the layer is never read back
        snap = self.snapshots.writer(f"commit of {key}")
        try:
            with self.content.writer() as w:
                cw = CompressingWriter(w, compression)
                out = _Both(cw, snap)
                if upper.is_dir():
                    write_tree(upper, out, overlay=True,  # type: ignore[arg-type]
                               skip=frozenset(p.lstrip("/") for p in skip))
                else:
                    out.write(b"\0" * 1024)  # an empty tar
                cw.close()
                layer_digest = w.commit()
            chain = oci.chain_ids(base.diff_ids + [cw.diff_id])
            new_snapshot = snap.publish(chain[-1], chain[-2] if len(chain) > 1 else None, cw.diff_id)
        finally:
            snap.abort()
        layers = list(zip([x["digest"] for x in base.layers], base.diff_ids, strict=True))
        try:
            return self.add_image(new_config, layers + [(layer_digest, cw.diff_id)], ref)
        except BaseException:
            blobs, chains = self._references(self._read())
            if layer_digest not in blobs:
                self.content.delete(layer_digest)
            if new_snapshot and chain[-1] not in chains:
                self.snapshots.remove(chain[-1])
            raise


class _Both:
    """Writes go to two sinks (the layer blob and the snapshot being unpacked)."""

    def __init__(self, a: Any, b: Any) -> None:
        self._a, self._b = a, b

    def write(self, data: bytes) -> int:
        self._a.write(data)
        self._b.write(data)
        return len(data)


def _overlay_extras() -> list[str]:
    """Pin the overlay features commit/diff understand, where the kernel has the switch."""
    out = []
    for name in ("index", "redirect_dir", "metacopy"):
        if os.path.exists(f"/sys/module/overlay/parameters/{name}"):
            out.append(f"{name}=off")
    return out


def _mounts_using(upper: Path) -> list[str]:
    """Mount points of overlays whose upperdir is `upper` (from /proc/self/mountinfo), deepest first."""
    want = f"upperdir={upper}"
    out = []
    try:
        with open("/proc/self/mountinfo", "rb") as f:
            lines = f.read().decode(errors="replace").splitlines()
    except OSError:
        return out
    for line in lines:
        fields = line.split(" - ", 1)
        if len(fields) == 2 and fields[1].startswith("overlay ") and want in fields[1].split(","):
            point = fields[0].split()[4]
            out.append(point.encode().decode("unicode_escape") if "\\" in point else point)
    return sorted(out, key=len, reverse=True)


def _tree_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dirpath, f)).st_size
            except OSError:
                pass
    return total
