"""Layer snapshots keyed by chain ID: <root>/sn/<first 16 hex of chain id>/{fs/, meta.json}.

A snapshot is the overlay-form tree of one layer (see apply.py) and is read-only once
published. It is extracted into <root>/sn/.tmp-*, then renamed into place: it exists
complete or not at all, and two processes unpacking the same chain do no harm (the
loser's copy is dropped). Names are short because every lower dir goes into one
overlay mount option string (limited to one page, and overlayfs stacks at most 500
lower dirs): `max_layers(root)` layers mount as they are (86 under /var/lib/wharf).
A deeper chain keeps its top layers and gets the rest as one flattened snapshot
(`flat(...)`, key "flat:<chain id>", files hard-linked, no data copied), so any depth mounts.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import shutil
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from runtime.errors import InvalidArgument
from runtime.util.fs import atomic_write_json

FLAT = "flat:"  # chain-id prefix of flattened snapshots
OVERLAY_MAX_LOWER = 500  # the kernel's OVL_MAX_STACK
MOUNT_DATA_MAX = 4095  # mount(2) copies one page of option data


@dataclass
class SnapshotInfo:
    chain_id: str
    parent: str | None
    diff_id: str
    size: int  # bytes of file data
    diff_size: int  # bytes of the uncompressed layer tar
    path: Path  # the fs/ dir (an overlay lower dir)


class Snapshots:
    def __init__(self, root: Path) -> None:
        self.root = Path(root) / "sn"

    def _dir(self, chain_id: str) -> Path:
        if chain_id.startswith(FLAT):
            return self.root / ("flat-" + chain_id[len(FLAT):].removeprefix("sha256:")[:16])
        return self.root / chain_id.removeprefix("sha256:")[:16]

    def fs_path(self, chain_id: str) -> Path:
        return self._dir(chain_id) / "fs"

    def get(self, chain_id: str) -> SnapshotInfo | None:
        d = self._dir(chain_id)
        try:
            meta = json.loads((d / "meta.json").read_bytes())
        except (FileNotFoundError, ValueError):
            return None
        if meta.get("chain_id") != chain_id:
            return None
        return SnapshotInfo(chain_id, meta.get("parent"), meta["diff_id"], meta["size"], meta["diff_size"],
                            d / "fs")

    def has(self, chain_id: str) -> bool:
        return self.get(chain_id) is not None

    def create(self, chain_id: str, parent: str | None, diff_id: str, blob: BinaryIO,
               compression: str | None, what: str) -> SnapshotInfo:
        """Unpack `blob` (the layer) as snapshot `chain_id`, verifying that its tar hashes to diff_id."""
        from runtime.images.apply import LayerError, apply_tar
        from runtime.images.streams import open_layer

        have = self.get(chain_id)
        if have:
            return have
        tmp = self._tmp()
        try:
            reader = open_layer(blob, compression)
            size = apply_tar(reader, tmp / "fs", what)
            if reader.digest != diff_id:
                raise LayerError(f"{what}: uncompressed content hashes to {reader.digest}, "
                                 f"but the image config says diff_id {diff_id}",
                                 hint="the layer does not belong to this image; fetch it again")
            self._publish(tmp, chain_id, parent, diff_id, size, reader.size)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        info = self.get(chain_id)
        if info is None:
            raise InvalidArgument(f"{what}: snapshot {chain_id} could not be published")
        return info

    def _tmp(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = self.root / f".tmp-{os.getpid()}-{secrets.token_hex(6)}"
        (tmp / "fs").mkdir(parents=True)
        return tmp

    def _publish(self, tmp: Path, chain_id: str, parent: str | None, diff_id: str, size: int,
                 diff_size: int) -> bool:
        """Rename the unpacked `tmp` into place as `chain_id`; False when that snapshot existed already."""
        atomic_write_json(tmp / "meta.json", {"chain_id": chain_id, "parent": parent, "diff_id": diff_id,
                                              "size": size, "diff_size": diff_size})
        final = self._dir(chain_id)
        try:
            os.rename(tmp, final)
        except OSError:
            if self.get(chain_id) is not None:
                return False  # the same snapshot, published by someone else
            shutil.rmtree(final, ignore_errors=True)  # occupied by something that is not this snapshot
            os.rename(tmp, final)
        return True

    def writer(self, what: str) -> SnapshotWriter:
        """A sink for a layer tar being written (e.g. by commit): it is unpacked as it streams by, so the
        snapshot needs no second read of the layer; `publish()` names it once the diff_id is known."""
        return SnapshotWriter(self, what)

    def flat(self, chain_ids: list[str]) -> SnapshotInfo:
        """One snapshot holding the merged tree of `chain_ids` (bottom first), for chains deeper than an
        overlay mount can stack. Files are hard links to the layers' (read-only) files: no data is copied."""
        key = FLAT + chain_ids[-1]
        have = self.get(key)
        if have:
            return have
        tmp = self._tmp()
        try:
            size = 0
            dir_times: dict[str, int] = {}
            for c in chain_ids:
                snap = self.get(c)
                if snap is None:
                    raise InvalidArgument(f"snapshot {c} is missing: cannot flatten the chain")
                size += snap.size
                merge_layer(snap.path, tmp / "fs", dir_times)
            for path, ns in sorted(dir_times.items(), reverse=True):
                if os.path.isdir(path) and not os.path.islink(path):
                    os.utime(path, ns=(ns, ns), follow_symlinks=False)
            atomic_write_json(tmp / "meta.json", {"chain_id": key, "parent": None, "diff_id": "",
                                                  "size": size, "diff_size": 0})
            try:
                os.rename(tmp, self._dir(key))
            except OSError:
                if self.get(key) is None:
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        info = self.get(key)
        assert info is not None
        return info

    def remove(self, chain_id: str) -> None:
        d = self._dir(chain_id)
        if self.get(chain_id) is None:
            return
        trash = self.root / f".tmp-rm-{secrets.token_hex(6)}"
        os.rename(d, trash)  # atomic disappearance, then the slow delete
        shutil.rmtree(trash, ignore_errors=True)

    def walk(self) -> Iterator[str]:
        """Chain ids of all published snapshots."""
        try:
            entries = os.listdir(self.root)
        except FileNotFoundError:
            return
        for name in entries:
            if name.startswith("."):
                continue
            try:
                meta = json.loads((self.root / name / "meta.json").read_bytes())
                yield meta["chain_id"]
            except (OSError, ValueError, KeyError):
                continue

    def sweep(self, older_than: float = 3600.0) -> None:
        """Remove extraction leftovers of crashed processes."""
        now = time.time()
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        for e in entries:
            if e.name.startswith(".tmp-") and now - e.stat(follow_symlinks=False).st_mtime > older_than:
                shutil.rmtree(e.path, ignore_errors=True)


class _Pipe:
    """Bytes from a writer thread to a reader thread, at most `depth` chunks in flight."""

    def __init__(self, depth: int = 8) -> None:
        self._q: queue.Queue[bytes | None] = queue.Queue(depth)
        self._buf = b""
        self._eof = False

    def write(self, data: bytes) -> int:
        self._q.put(bytes(data))
        return len(data)

    def close(self) -> None:
        self._q.put(None)

    def read(self, n: int = -1) -> bytes:
        while not self._buf and not self._eof:
            chunk = self._q.get()
            if chunk is None:
                self._eof = True
            else:
                self._buf = chunk
        if n is None or n < 0 or n >= len(self._buf):
            out, self._buf = self._buf, b""
            return out
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def drain(self) -> None:
        """Swallow the rest (the reader failed: the writer must not block)."""
        while not self._eof:
            self._eof = self._q.get() is None


class SnapshotWriter:
    """write() tar bytes; a thread unpacks them (apply_tar, as `create` does) into a temp snapshot dir."""

    def __init__(self, snapshots: Snapshots, what: str) -> None:
        from runtime.images.streams import HashingReader

        self._snapshots = snapshots
        self._what = what
        self._tmp = snapshots._tmp()
        self._pipe = _Pipe()
        self._reader = HashingReader(self._pipe)
        self._size = 0
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._unpack, name="snapshot-unpack", daemon=True)
        self._thread.start()

    def _unpack(self) -> None:
        from runtime.images.apply import apply_tar

        try:
            self._size = apply_tar(self._reader, self._tmp / "fs", self._what)
        except BaseException as e:
            self._error = e
            self._pipe.drain()

    def write(self, data: bytes) -> int:
        return self._pipe.write(data)

    def _finish(self) -> None:
        if self._thread.is_alive():
            self._pipe.close()
            self._thread.join()

    def publish(self, chain_id: str, parent: str | None, diff_id: str) -> bool:
        """End of the tar: the snapshot becomes `chain_id`; False when it existed already (nothing new)."""
        try:
            self._finish()
            if self._error is not None:
                raise self._error
            if self._reader.digest != diff_id:
                raise InvalidArgument(f"{self._what}: the unpacked tar hashes to {self._reader.digest}, "
                                      f"not {diff_id}")
            return self._snapshots._publish(self._tmp, chain_id, parent, diff_id, self._size, self._reader.size)
        finally:
            self.abort()

    def abort(self) -> None:
        self._finish()
        if self._tmp.exists():
            shutil.rmtree(self._tmp, ignore_errors=True)


def merge_layer(src: Path, dest: Path, dir_times: dict[str, int]) -> None:
    """Apply overlay-form layer `src` onto merged tree `dest` (whiteouts delete, opaque dirs reset)."""
    from runtime.images.pack import is_opaque, is_whiteout

    def remove(p: str) -> None:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p)
        elif os.path.lexists(p):
            os.unlink(p)

    for dirpath, dirs, files in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        out_dir = os.path.join(dest, rel) if rel != "." else os.fspath(dest)
        for name in sorted(dirs + files):
            s = os.path.join(dirpath, name)
            d = os.path.join(out_dir, name)
            st = os.lstat(s)
            if is_whiteout(st):
                remove(d)
                continue
            if stat.S_ISDIR(st.st_mode):
                if not (os.path.isdir(d) and not os.path.islink(d)):
                    remove(d)
                    os.mkdir(d)
                elif is_opaque(s):
                    for child in os.listdir(d):
                        remove(os.path.join(d, child))
                os.lchown(d, st.st_uid, st.st_gid)
                os.chmod(d, stat.S_IMODE(st.st_mode))
                for x in os.listxattr(s, follow_symlinks=False):
                    if not x.startswith("trusted.overlay."):
                        os.setxattr(d, x, os.getxattr(s, x, follow_symlinks=False), follow_symlinks=False)
                dir_times[d] = st.st_mtime_ns
            else:
                remove(d)
                os.link(s, d, follow_symlinks=False)


def max_layers(root: Path, upper_and_work: int = 200) -> int:
    """How many layers an overlay mount stacks without flattening, with snapshots under `root`."""
    per = len(os.fspath(Path(root) / "sn" / ("x" * 16) / "fs")) + 1
    return min(OVERLAY_MAX_LOWER, (MOUNT_DATA_MAX - len("lowerdir=") - upper_and_work) // per)
