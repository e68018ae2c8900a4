"""config.json: load and validate (errors name the field), and the default spec.

A Spec is the parsed config.json dict (its shape is typed in spec_types.py). Validation checks
what the runtime relies on, so a bad bundle fails in `create` with one message naming the field,
before anything is created on the host.
"""

from __future__ import annotations

import os

from runtime.errors import InvalidArgument
from runtime.oci import fastjson

TYPE_CHECKING = False
if TYPE_CHECKING:
    from runtime.oci.spec_types import Spec

OCI_VERSION = "1.0.2"
NAMESPACES = ("pid", "network", "mount", "ipc", "uts", "user", "cgroup", "time")
RLIMITS = ("RLIMIT_CPU", "RLIMIT_FSIZE", "RLIMIT_DATA", "RLIMIT_STACK", "RLIMIT_CORE", "RLIMIT_RSS",
           "RLIMIT_NPROC", "RLIMIT_NOFILE", "RLIMIT_MEMLOCK", "RLIMIT_AS", "RLIMIT_LOCKS",
           "RLIMIT_SIGPENDING", "RLIMIT_MSGQUEUE", "RLIMIT_NICE", "RLIMIT_RTPRIO", "RLIMIT_RTTIME")
HOOKS = ("prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop")
PROPAGATIONS = ("", "private", "rprivate", "slave", "rslave", "shared", "rshared", "unbindable",
                "runbindable")

DOCKER_MASKED = ["/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                 "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
                 "/sys/firmware", "/sys/devices/virtual/powercap"]
DOCKER_READONLY = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _dev(kind: str, major: int | None, minor: int | None, access: str = "rwm") -> dict:
    return {"allow": True, "type": kind, "major": major, "minor": minor, "access": access}


# Docker's default device allow-list (deny all, then mknod anything, then the standard nodes)
DOCKER_DEVICE_RULES = [
    {"allow": False, "access": "rwm"},
    _dev("c", None, None, "m"), _dev("b", None, None, "m"),
    _dev("c", 1, 3), _dev("c", 1, 8), _dev("c", 1, 7), _dev("c", 5, 0), _dev("c", 1, 5), _dev("c", 1, 9),
    _dev("c", 136, None), _dev("c", 5, 2), _dev("c", 10, 200),
]


def default_spec(args: list[str], rootfs: str = "rootfs") -> dict:
    """A config.json like `runc spec`'s, with Docker's defaults (caps, masked paths, devices, seccomp)."""
    from runtime.linux.caps import DOCKER_DEFAULT
    from runtime.oci.seccomp_profile import default_profile, resolve

    caps = list(DOCKER_DEFAULT)
    return {
        "ociVersion": OCI_VERSION,
        "process": {
            "terminal": False,
            "user": {"uid": 0, "gid": 0},
            "args": list(args),
            "env": [DEFAULT_PATH, "TERM=xterm"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": False,
        },
        "root": {"path": rootfs, "readonly": False},
        "hostname": "wharf",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]},
        ],
        "linux": {
            "resources": {"devices": [dict(r) for r in DOCKER_DEVICE_RULES]},
            "namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount", "cgroup")],
            "maskedPaths": list(DOCKER_MASKED),
            "readonlyPaths": list(DOCKER_READONLY),
            "seccomp": resolve(default_profile(), caps),
        },
    }


def load_spec(path: str | os.PathLike[str]) -> Spec:
    """Read and validate <bundle>/config.json (or the file itself); InvalidArgument names the field."""
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "config.json")
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise InvalidArgument(f"{path} does not exist", hint="a bundle needs a config.json "
                              "(`wharf-runtime spec` writes a default one)") from None
    except OSError as e:
        raise InvalidArgument(f"cannot read {path}: {e.strerror}") from None
    try:
        spec = fastjson.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"{path} is not valid JSON: {e}") from None
    validate(spec, path)
    return spec  # type: ignore[return-value]


class _V:
    """Type checks that raise InvalidArgument naming the field path."""

    def __init__(self, where: str) -> None:
        self.where = where

    def fail(self, field: str, msg: str) -> None:
        raise InvalidArgument(f"{field}: {msg}", where=self.where)

    def typ(self, field: str, value: object, kind: type | tuple, name: str) -> None:
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            self.fail(field, f"must be {name}, not {_jtype(value)}")

    def obj(self, field: str, value: object) -> dict:
        self.typ(field, value, dict, "an object")
        return value  # type: ignore[return-value]

    def lst(self, field: str, value: object, item: type | None = None, name: str = "") -> list:
        self.typ(field, value, list, "an array")
        if item is not None:
            for i, v in enumerate(value):  # type: ignore[arg-type]
                self.typ(f"{field}[{i}]", v, item, name)
        return value  # type: ignore[return-value]

    def int_(self, field: str, value: object) -> None:
        self.typ(field, value, int, "an integer")

    def str_(self, field: str, value: object, absolute: bool = False) -> None:
        self.typ(field, value, str, "a string")
        if absolute and not str(value).startswith("/"):
            self.fail(field, f"must be an absolute path, not {value!r}")


def _jtype(v: object) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            float: "a number", type(None): "null"}.get(type(v), type(v).__name__)


def validate(spec: object, where: str = "config.json") -> None:
    v = _V(where)
    if not isinstance(spec, dict):
        raise InvalidArgument(f"must be a JSON object, not {_jtype(spec)}", where=where)
    if "ociVersion" not in spec:
        v.fail("ociVersion", "is required")
    v.str_("ociVersion", spec["ociVersion"])
    if "root" not in spec:
        v.fail("root", "is required (root.path names the container's root filesystem)")
    root = v.obj("root", spec["root"])
    if not root.get("path"):
        v.fail("root.path", "is required")
    v.str_("root.path", root["path"])
    if "readonly" in root:
        v.typ("root.readonly", root["readonly"], bool, "a boolean")
    if "process" not in spec:
        v.fail("process", "is required to create a container")
    _process(v, v.obj("process", spec["process"]))
    for k in ("hostname", "domainname"):
        if k in spec:
            v.str_(k, spec[k])
    for i, m in enumerate(v.lst("mounts", spec.get("mounts", []))):
        f = f"mounts[{i}]"
        v.obj(f, m)
        if "destination" not in m:
            v.fail(f + ".destination", "is required")
        v.str_(f + ".destination", m["destination"])
        for k in ("type", "source"):
            if k in m:
                v.str_(f"{f}.{k}", m[k])
        v.lst(f + ".options", m.get("options", []), str, "a string")
    hooks = v.obj("hooks", spec.get("hooks", {}))
    for name, lst in hooks.items():
        if name not in HOOKS:
            v.fail(f"hooks.{name}", f"unknown hook kind (known: {', '.join(HOOKS)})")
        for i, h in enumerate(v.lst(f"hooks.{name}", lst)):
            f = f"hooks.{name}[{i}]"
            v.obj(f, h)
            if "path" not in h:
                v.fail(f + ".path", "is required")
            v.str_(f + ".path", h["path"], absolute=True)
            v.lst(f + ".args", h.get("args", []), str, "a string")
            v.lst(f + ".env", h.get("env", []), str, "a string")
            if "timeout" in h:
                v.int_(f + ".timeout", h["timeout"])
                if h["timeout"] <= 0:
                    v.fail(f + ".timeout", "must be greater than zero")
    ann = v.obj("annotations", spec.get("annotations", {}))
    for k, val in ann.items():
        v.str_(f"annotations.{k}", val)
    _linux(v, v.obj("linux", spec.get("linux", {})), spec)


def _process(v: _V, p: dict) -> None:
    if "args" not in p or not p["args"]:
        v.fail("process.args", "is required and must name the program to run")
    v.lst("process.args", p["args"], str, "a string")
    if "cwd" not in p:
        v.fail("process.cwd", "is required")
    v.str_("process.cwd", p["cwd"], absolute=True)
    v.lst("process.env", p.get("env", []), str, "a string")
    if "terminal" in p:
        v.typ("process.terminal", p["terminal"], bool, "a boolean")
    user = v.obj("process.user", p.get("user", {}))
    for k in ("uid", "gid", "umask"):
        if k in user:
            v.int_(f"process.user.{k}", user[k])
    v.lst("process.user.additionalGids", user.get("additionalGids", []), int, "an integer")
    from runtime.linux.caps import NUMBERS

    caps = v.obj("process.capabilities", p.get("capabilities", {}))
    for kind, names in caps.items():
        for i, n in enumerate(v.lst(f"process.capabilities.{kind}", names, str, "a string")):
            if n.upper() not in NUMBERS:
                v.fail(f"process.capabilities.{kind}[{i}]", f"unknown capability {n!r}")
    seen = set()
    for i, r in enumerate(v.lst("process.rlimits", p.get("rlimits", []))):
        f = f"process.rlimits[{i}]"
        v.obj(f, r)
        if r.get("type") not in RLIMITS:
            v.fail(f + ".type", f"unknown rlimit {r.get('type')!r}")
        if r["type"] in seen:
            v.fail(f + ".type", f"{r['type']} is set twice")
        seen.add(r["type"])
        for k in ("soft", "hard"):
            v.int_(f"{f}.{k}", r.get(k))
    if "noNewPrivileges" in p:
        v.typ("process.noNewPrivileges", p["noNewPrivileges"], bool, "a boolean")
    if "oomScoreAdj" in p:
        v.int_("process.oomScoreAdj", p["oomScoreAdj"])


def _linux(v: _V, lx: dict, spec: dict) -> None:
    kinds = set()
    for i, ns in enumerate(v.lst("linux.namespaces", lx.get("namespaces", []))):
        f = f"linux.namespaces[{i}]"
        v.obj(f, ns)
        t = ns.get("type")
        if t not in NAMESPACES:
            v.fail(f + ".type", f"unknown namespace type {t!r} (known: {', '.join(NAMESPACES)})")
        if t in kinds:
            v.fail(f + ".type", f"namespace {t!r} is listed twice")
        kinds.add(t)
        if "path" in ns:
            v.str_(f + ".path", ns["path"], absolute=True)
    for key in ("uidMappings", "gidMappings"):
        for i, m in enumerate(v.lst(f"linux.{key}", lx.get(key, []))):
            v.obj(f"linux.{key}[{i}]", m)
            for k in ("containerID", "hostID", "size"):
                if k not in m:
                    v.fail(f"linux.{key}[{i}].{k}", "is required")
                v.int_(f"linux.{key}[{i}].{k}", m[k])
    user_new = any(n.get("type") == "user" and not n.get("path") for n in lx.get("namespaces", []))
    if user_new and not (lx.get("uidMappings") and lx.get("gidMappings")):
        v.fail("linux.uidMappings", "a new user namespace needs linux.uidMappings and linux.gidMappings")
    if (lx.get("uidMappings") or lx.get("gidMappings")) and "user" not in kinds:
        v.fail("linux.uidMappings", "id mappings need a user namespace in linux.namespaces")
    if spec.get("hostname") and "uts" not in kinds:
        v.fail("hostname", "setting a hostname needs a \"uts\" namespace in linux.namespaces")
    for i, d in enumerate(v.lst("linux.devices", lx.get("devices", []))):
        f = f"linux.devices[{i}]"
        v.obj(f, d)
        v.str_(f + ".path", d.get("path"), absolute=True)
        if d.get("type") not in ("c", "b", "u", "p"):
            v.fail(f + ".type", f"must be one of c, b, u, p, not {d.get('type')!r}")
        if d["type"] != "p":
            for k in ("major", "minor"):
                v.int_(f"{f}.{k}", d.get(k))
    if "cgroupsPath" in lx:
        v.str_("linux.cgroupsPath", lx["cgroupsPath"])
    _resources(v, v.obj("linux.resources", lx.get("resources", {})))
    if lx.get("rootfsPropagation", "") not in PROPAGATIONS:
        v.fail("linux.rootfsPropagation", f"unknown propagation {lx['rootfsPropagation']!r}")
    for key in ("maskedPaths", "readonlyPaths"):
        for i, pth in enumerate(v.lst(f"linux.{key}", lx.get(key, []), str, "a string")):
            v.str_(f"linux.{key}[{i}]", pth, absolute=True)
    for k, val in v.obj("linux.sysctl", lx.get("sysctl", {})).items():
        v.str_(f"linux.sysctl.{k}", val)
        need = _sysctl_namespace(k)
        if need is None:
            v.fail(f"linux.sysctl.{k}", "is not a namespaced sysctl: setting it would change the host")
        joined = [n["path"] for n in lx.get("namespaces", []) if n.get("type") == need and n.get("path")]
        if need not in kinds or (joined and _is_own_namespace(joined[0], need)):
            v.fail(f"linux.sysctl.{k}", f"needs a \"{need}\" namespace of the container's own in "
                                        "linux.namespaces (else it would change the host's)")
    if "seccomp" in lx:
        _seccomp(v, v.obj("linux.seccomp", lx["seccomp"]))


_IPC_SYSCTLS = ("kernel.msgmax", "kernel.msgmnb", "kernel.msgmni", "kernel.sem", "kernel.shmall",
                "kernel.shmmax", "kernel.shmmni", "kernel.shm_rmid_forced")


def _sysctl_namespace(key: str) -> str | None:
    """The namespace a sysctl belongs to (as runc's validator decides), None if it is global."""
    if key in _IPC_SYSCTLS or key.startswith("fs.mqueue."):
        return "ipc"
    if key.startswith("net."):
        return "network"
    if key in ("kernel.hostname", "kernel.domainname"):
        return "uts"
    return None


def _is_own_namespace(path: str, kind: str) -> bool:
    """Whether the namespace file `path` is the runtime's own (the host's) namespace."""
    name = {"network": "net"}.get(kind, kind)
    try:
        a, b = os.stat(path), os.stat(f"/proc/self/ns/{name}")
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def validate_resources(res: object, where: str = "update") -> None:
    """Check an OCI linux.resources object (create, and `update -r`)."""
    v = _V(where)
    _resources(v, v.obj("linux.resources", res))


def _resources(v: _V, res: dict) -> None:
    for i, r in enumerate(v.lst("linux.resources.devices", res.get("devices", []))):
        f = f"linux.resources.devices[{i}]"
        v.obj(f, r)
        v.typ(f + ".allow", r.get("allow"), bool, "a boolean")
        if r.get("type", "a") not in ("a", "b", "c"):
            v.fail(f + ".type", f"must be a, b or c, not {r.get('type')!r}")
        if set(r.get("access") or "") - set("rwm"):
            v.fail(f + ".access", f"must be letters of \"rwm\", not {r.get('access')!r}")
    for key in ("memory", "cpu", "pids", "blockIO"):
        for k, val in v.obj(f"linux.resources.{key}", res.get(key, {})).items():
            if k not in ("cpus", "mems") and not isinstance(val, (list, bool)):
                v.int_(f"linux.resources.{key}.{k}", val)


def _seccomp(v: _V, sc: dict) -> None:
    from runtime.linux.seccomp import ACTIONS, ARCHES, OPS

    if sc.get("defaultAction") not in ACTIONS:
        v.fail("linux.seccomp.defaultAction", f"unknown action {sc.get('defaultAction')!r}")
    for i, a in enumerate(v.lst("linux.seccomp.architectures", sc.get("architectures", []), str, "a string")):
        if a not in ARCHES:
            v.fail(f"linux.seccomp.architectures[{i}]", f"unknown architecture {a!r}")
    for i, s in enumerate(v.lst("linux.seccomp.syscalls", sc.get("syscalls", []))):
        f = f"linux.seccomp.syscalls[{i}]"
        v.obj(f, s)
        v.lst(f + ".names", s.get("names"), str, "a string")
        if s.get("action") not in ACTIONS:
            v.fail(f + ".action", f"unknown action {s.get('action')!r}")
        for j, a in enumerate(v.lst(f + ".args", s.get("args", []))):
            v.obj(f"{f}.args[{j}]", a)
            if a.get("op") not in OPS:
                v.fail(f"{f}.args[{j}].op", f"unknown operator {a.get('op')!r}")
            v.int_(f"{f}.args[{j}].index", a.get("index"))
