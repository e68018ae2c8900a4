"""The container's filesystem, set up by its init inside the new mount namespace.

prepare(): make the host's mounts slave/private, bind the rootfs onto itself, perform the
spec's mounts (proc, /dev tmpfs, devpts newinstance, shm, mqueue, sysfs, cgroup, binds),
create the standard device nodes (bind-mounted from the host inside a user namespace).
pivot(): pivot_root into it and detach the old root. finish(): sysctls, masked and
read-only paths, read-only root. Paths inside the rootfs never follow a symlink out of it.
"""

from __future__ import annotations

import errno
import os
import stat

from runtime.linux import mount as m

MS_SYNCHRONOUS = 16
MS_MANDLOCK = 64
MS_DIRSYNC = 128
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_RELATIME = 1 << 21

_SET = {"bind": m.MS_BIND, "rbind": m.MS_BIND | m.MS_REC, "ro": m.MS_RDONLY, "nosuid": m.MS_NOSUID,
        "nodev": m.MS_NODEV, "noexec": m.MS_NOEXEC, "sync": MS_SYNCHRONOUS, "dirsync": MS_DIRSYNC,
        "mand": MS_MANDLOCK, "noatime": MS_NOATIME, "nodiratime": MS_NODIRATIME,
        "relatime": MS_RELATIME, "strictatime": m.MS_STRICTATIME, "remount": m.MS_REMOUNT}
_CLEAR = {"rw": m.MS_RDONLY, "suid": m.MS_NOSUID, "dev": m.MS_NODEV, "exec": m.MS_NOEXEC,
          "async": MS_SYNCHRONOUS, "nomand": MS_MANDLOCK, "atime": MS_NOATIME, "diratime": MS_NODIRATIME,
          "norelatime": MS_RELATIME, "nostrictatime": m.MS_STRICTATIME, "defaults": 0}
PROPAGATION = {"private": m.MS_PRIVATE, "rprivate": m.MS_PRIVATE | m.MS_REC, "shared": m.MS_SHARED,
               "rshared": m.MS_SHARED | m.MS_REC, "slave": m.MS_SLAVE, "rslave": m.MS_SLAVE | m.MS_REC,
               "unbindable": m.MS_UNBINDABLE, "runbindable": m.MS_UNBINDABLE | m.MS_REC}

# (name, major, minor) of the nodes every container gets in /dev
DEFAULT_DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9),
                   ("tty", 5, 0))
_DEV_LINKS = (("/proc/self/fd", "fd"), ("/proc/self/fd/0", "stdin"), ("/proc/self/fd/1", "stdout"),
              ("/proc/self/fd/2", "stderr"))


def parse_options(options: list[str]) -> tuple[int, list[int], str]:
    """Mount options -> (flags, propagation flags, data string for the filesystem)."""
    flags, prop, data = 0, [], []
    for o in options:
        if o in _SET:
            flags |= _SET[o]
        elif o in _CLEAR:
            flags &= ~_CLEAR[o]
        elif o in PROPAGATION:
            prop.append(PROPAGATION[o])
        else:
            data.append(o)
    return flags, prop, ",".join(data)


MAX_SYMLINKS = 255  # as runc's filepath-securejoin


def resolve(rootfs: str, path: str, follow_last: bool = True) -> str:
    """Host path of `path` inside `rootfs`, every symlink resolved as if rootfs were / (never escapes).

    The one resolver of container paths (runtime mounts, `cp`, volumes, the builder): `..` stops at
    the root, absolute link targets restart at the root, components that do not exist (yet) are kept
    as they are, so the result is where to create them. follow_last=False leaves a final symlink
    itself. More than MAX_SYMLINKS links raise OSError(ELOOP). Paths are resolved one lookup at a
    time: the caller must not let the container change the tree meanwhile."""
    parts = [p for p in path.split("/") if p and p != "."]
    done: list[str] = []
    hops = 0
    while parts:
        p = parts.pop(0)
        if p == "..":
            if done:
                done.pop()
            continue
        if not parts and not follow_last:
            done.append(p)
            break
        try:
            target = os.readlink(rootfs + "/" + "/".join(done + [p]))
        except OSError:  # not a link, or not there (yet)
            done.append(p)
            continue
        hops += 1
        if hops > MAX_SYMLINKS:
            raise OSError(errno.ELOOP, f"too many levels of symbolic links in {path}")
        if target.startswith("/"):
            done = []
        parts = [x for x in target.split("/") if x and x != "."] + parts
    return rootfs + "/" + "/".join(done) if done else rootfs


def _mkdirs(path: str) -> None:
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except FileExistsError:
        pass


def _touch(path: str) -> None:
    _mkdirs(os.path.dirname(path))
    if not os.path.exists(path):
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))


class Rootfs:
    def __init__(self, spec: dict, rootfs: str, in_userns: bool, cgroup_dirs: dict[str, str]) -> None:
        self.spec = spec
        self.lx = spec.get("linux") or {}
        self.rootfs = rootfs
        self.in_userns = in_userns
        self.cgroup_dirs = cgroup_dirs
        # without a mount namespace of its own the container mounts in the host's (as runc does):
        # no propagation change, chroot instead of pivot_root, `delete` unmounts what is left
        self.own_ns = any(n.get("type") == "mount" for n in self.lx.get("namespaces") or ())

    # ------------------------------------------------------------------ before pivot_root
    def prepare(self) -> None:
        if self.own_ns:
            prop = self.lx.get("rootfsPropagation") or ""
            root_flag = PROPAGATION.get(prop, 0) if prop in ("slave", "rslave", "private", "rprivate") else 0
            m.mount(None, "/", None, root_flag or (m.MS_SLAVE | m.MS_REC))
            m.mount(self.rootfs, self.rootfs, None, m.MS_BIND | m.MS_REC)
            # pivot_root refuses a shared parent: make the rootfs mount private
            m.mount(None, self.rootfs, None, m.MS_PRIVATE)
        dev_bound = False
        for i, mnt in enumerate(self.spec.get("mounts") or ()):
            try:
                self.mount(mnt)
            except OSError as e:
                raise OSError(e.errno, f"mounts[{i}] ({mnt.get('type', 'bind')} on {mnt['destination']}): "
                                       f"{e.strerror}") from None
            if mnt["destination"].rstrip("/") == "/dev" and "bind" in "".join(mnt.get("options") or ()):
                dev_bound = True
        if not dev_bound:
            self.devices()

    def mount(self, mnt: dict) -> None:
        kind = mnt.get("type") or ""
        opts = mnt.get("options") or []
        flags, props, data = parse_options(opts)
        dest = resolve(self.rootfs, mnt["destination"])
        source = mnt.get("source") or kind
        if flags & m.MS_BIND or kind == "bind":
            flags |= m.MS_BIND
            if os.path.isdir(source):
                _mkdirs(dest)
            else:
                _touch(dest)
            m.mount(source, dest, None, flags & (m.MS_BIND | m.MS_REC))
            extra = flags & ~(m.MS_BIND | m.MS_REC | m.MS_REMOUNT)
            if extra:
                self._remount(dest, m.MS_BIND | m.MS_REMOUNT | extra)
        elif kind == "cgroup":
            self._cgroup(dest, flags)
        else:
            _mkdirs(dest)
            try:
                m.mount(source, dest, kind, flags, data or None)
            except PermissionError:
                if kind != "sysfs":
                    raise
                # sysfs of the host's network namespace cannot be mounted from a user namespace
                m.mount("/sys", dest, None, m.MS_BIND | m.MS_REC)
                self._remount(dest, m.MS_BIND | m.MS_REMOUNT | flags)
        for p in props:
            m.mount(None, dest, None, p)

    def _remount(self, dest: str, flags: int) -> None:
        try:
            m.mount(None, dest, None, flags)
        except PermissionError:
            # inside a user namespace the flags the host locked (nodev, nosuid ...) must be kept
            st = os.statvfs(dest)
            locked = 0
            for bit, flag in ((os.ST_NODEV, m.MS_NODEV), (os.ST_NOSUID, m.MS_NOSUID),
                              (os.ST_NOEXEC, m.MS_NOEXEC), (os.ST_RDONLY, m.MS_RDONLY)):
                if st.f_flag & bit:
                    locked |= flag
            m.mount(None, dest, None, flags | locked)

    def _cgroup(self, dest: str, flags: int) -> None:
        """cgroup v2: a cgroup2 mount; v1: a tmpfs with the container's own dir of each hierarchy."""
        _mkdirs(dest)
        if "unified" in self.cgroup_dirs and len(self.cgroup_dirs) == 1:
            try:
                m.mount("cgroup", dest, "cgroup2", flags)
                return
            except PermissionError:
                m.mount(self.cgroup_dirs["unified"], dest, None, m.MS_BIND | m.MS_REC)
                self._remount(dest, m.MS_BIND | m.MS_REMOUNT | flags)
                return
        # as runc: a tmpfs (left writable) holding the container's own dir of each v1 hierarchy
        m.mount("tmpfs", dest, "tmpfs", flags & ~m.MS_RDONLY, "mode=755")
        for ctrl, d in self.cgroup_dirs.items():
            if ctrl == "unified":
                continue
            name = ctrl.replace("name=", "")
            sub = dest + "/" + name
            _mkdirs(sub)
            m.mount(d, sub, None, m.MS_BIND | m.MS_REC)
            self._remount(sub, m.MS_BIND | m.MS_REMOUNT | (flags & ~m.MS_REMOUNT))

    def devices(self) -> None:
        dev = resolve(self.rootfs, "/dev")
        _mkdirs(dev)
        nodes = [{"path": "/dev/" + n, "type": "c", "major": a, "minor": b, "fileMode": 0o666, "uid": 0,
                  "gid": 0} for n, a, b in DEFAULT_DEVICES]
        nodes += list(self.lx.get("devices") or ())
        for d in nodes:
            self._node(d)
        for target, name in _DEV_LINKS:
            try:
                os.symlink(target, dev + "/" + name)
            except FileExistsError:
                pass
        if os.path.exists("/proc/kcore"):
            try:
                os.symlink("/proc/kcore", dev + "/core")
            except FileExistsError:
                pass
        if os.path.isdir(dev + "/pts"):
            try:
                os.unlink(dev + "/ptmx")
            except FileNotFoundError:
                pass
            os.symlink("pts/ptmx", dev + "/ptmx")

    def _node(self, d: dict) -> None:
        path = resolve(self.rootfs, d["path"])
        _mkdirs(os.path.dirname(path))
        if self.in_userns:  # mknod is not allowed in a user namespace: bind the host's node
            _touch(path)
            m.mount(d["path"], path, None, m.MS_BIND)
            return
        kind = {"c": stat.S_IFCHR, "u": stat.S_IFCHR, "b": stat.S_IFBLK, "p": stat.S_IFIFO}[d["type"]]
        mode = d.get("fileMode", 0o666) & 0o7777
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except IsADirectoryError:
            os.rmdir(path)
        os.mknod(path, kind | mode, os.makedev(d.get("major", 0), d.get("minor", 0)))
        os.chmod(path, mode)  # mknod honours the umask; the spec's fileMode does not
        os.chown(path, d.get("uid", 0), d.get("gid", 0))

    # ------------------------------------------------------------------ pivot_root
    def pivot(self) -> None:
        if not self.own_ns:
            os.chdir(self.rootfs)
            os.chroot(".")
            os.chdir("/")
            return
        old = os.open("/", os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        new = os.open(self.rootfs, os.O_DIRECTORY | os.O_RDONLY | os.O_CLOEXEC)
        try:
            os.fchdir(new)
            m.pivot_root(".", ".")
            os.fchdir(old)
            # the old root is stacked under the new one: detach it (slave first, so the umount
            # does not propagate back to the host)
            m.mount(None, ".", None, m.MS_SLAVE | m.MS_REC)
            m.umount(".", m.MNT_DETACH)
            os.chdir("/")
        finally:
            os.close(old)
            os.close(new)

    # ------------------------------------------------------------------ after pivot_root
    def finish(self) -> None:
        for key, value in (self.lx.get("sysctl") or {}).items():
            path = "/proc/sys/" + key.replace(".", "/")
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
            except OSError as e:
                raise OSError(e.errno, f"linux.sysctl.{key}: {e.strerror}") from None
            try:
                os.write(fd, value.encode())
            finally:
                os.close(fd)
        for p in self.lx.get("readonlyPaths") or ():
            try:
                m.mount(p, p, None, m.MS_BIND | m.MS_REC)
            except FileNotFoundError:
                continue
            self._remount(p, m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY | m.MS_NOSUID | m.MS_NODEV | m.MS_NOEXEC)
        for p in self.lx.get("maskedPaths") or ():
            try:
                if os.path.isdir(p):
                    m.mount("tmpfs", p, "tmpfs", m.MS_RDONLY)
                else:
                    m.mount("/dev/null", p, None, m.MS_BIND)
            except FileNotFoundError:
                continue
        prop = self.lx.get("rootfsPropagation") or ""
        if prop in ("shared", "rshared", "unbindable", "runbindable"):
            m.mount(None, "/", None, PROPAGATION[prop])
        if (self.spec.get("root") or {}).get("readonly"):
            self._remount("/", m.MS_BIND | m.MS_REMOUNT | m.MS_RDONLY)
