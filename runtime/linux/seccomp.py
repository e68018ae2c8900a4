"""Seccomp filters through libseccomp (ctypes), from an OCI `linux.seccomp` object.

The filter is built and loaded in the container's init right before exec. libseccomp's own
"set no_new_privs on load" is switched off: NNP is the spec's process.noNewPrivileges.
"""

from __future__ import annotations

import ctypes
import errno as _errno

_lib: ctypes.CDLL | None = None

ACT_KILL_THREAD = 0x00000000
ACT_KILL_PROCESS = 0x80000000
ACT_TRAP = 0x00030000
ACT_ERRNO = 0x00050000
ACT_TRACE = 0x7FF00000
ACT_LOG = 0x7FFC0000
ACT_ALLOW = 0x7FFF0000
ACT_NOTIFY = 0x7FC00000
_FLTATR_CTL_NNP = 3
_FLTATR_CTL_LOG = 6
_FLTATR_CTL_SSB = 7

OPS = {"SCMP_CMP_NE": 1, "SCMP_CMP_LT": 2, "SCMP_CMP_LE": 3, "SCMP_CMP_EQ": 4, "SCMP_CMP_GE": 5,
       "SCMP_CMP_GT": 6, "SCMP_CMP_MASKED_EQ": 7}
ARCHES = {"SCMP_ARCH_X86": "x86", "SCMP_ARCH_X86_64": "x86_64", "SCMP_ARCH_X32": "x32",
          "SCMP_ARCH_ARM": "arm", "SCMP_ARCH_AARCH64": "aarch64", "SCMP_ARCH_MIPS": "mips",
          "SCMP_ARCH_MIPS64": "mips64", "SCMP_ARCH_MIPS64N32": "mips64n32", "SCMP_ARCH_MIPSEL": "mipsel",
          "SCMP_ARCH_MIPSEL64": "mipsel64", "SCMP_ARCH_MIPSEL64N32": "mipsel64n32", "SCMP_ARCH_PPC": "ppc",
          "SCMP_ARCH_PPC64": "ppc64", "SCMP_ARCH_PPC64LE": "ppc64le", "SCMP_ARCH_S390": "s390",
          "SCMP_ARCH_S390X": "s390x", "SCMP_ARCH_RISCV64": "riscv64"}
ACTIONS = ("SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP",
           "SCMP_ACT_ERRNO", "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY")

# What Wharf's default profile refuses with EPERM (the syscalls Docker's profile leaves out of its
# allow-list for a container with the default capabilities).
DEFAULT_DENY = (
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module", "delete_module",
    "finit_module", "fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms", "get_mempolicy",
    "init_module", "ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl", "lookup_dcookie",
    "mbind", "mount", "mount_setattr", "move_mount", "move_pages", "name_to_handle_at", "nfsservctl",
    "open_by_handle_at", "open_tree", "perf_event_open", "pivot_root", "process_vm_readv",
    "process_vm_writev", "ptrace", "query_module", "quotactl", "reboot", "request_key", "set_mempolicy",
    "setns", "settimeofday", "stime", "swapoff", "swapon", "sysfs", "_sysctl", "umount", "umount2",
    "unshare", "uselib", "userfaultfd", "ustat", "vm86", "vm86old",
)


def default_profile() -> dict:
    """A modest OCI seccomp object: allow everything but DEFAULT_DENY (EPERM)."""
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": list(DEFAULT_DENY), "action": "SCMP_ACT_ERRNO", "errnoRet": _errno.EPERM}],
    }


class _ArgCmp(ctypes.Structure):
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


def library() -> ctypes.CDLL:
    global _lib
    if _lib is None:
        lib = ctypes.CDLL("libseccomp.so.2", use_errno=True)
        lib.seccomp_init.restype = ctypes.c_void_p
        lib.seccomp_init.argtypes = [ctypes.c_uint32]
        lib.seccomp_release.argtypes = [ctypes.c_void_p]
        lib.seccomp_load.argtypes = [ctypes.c_void_p]
        lib.seccomp_attr_set.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_uint32]
        lib.seccomp_arch_add.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
        lib.seccomp_arch_resolve_name.restype = ctypes.c_uint32
        lib.seccomp_arch_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_syscall_resolve_name.argtypes = [ctypes.c_char_p]
        lib.seccomp_rule_add_array.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                               ctypes.POINTER(_ArgCmp)]
        _lib = lib
    return _lib


def action(name: str, errno_ret: int | None = None, default_errno: int | None = None) -> int:
    """An OCI action name (SCMP_ACT_ERRNO ...) -> libseccomp's action value."""
    if name in ("SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD"):
        return ACT_KILL_THREAD
    if name == "SCMP_ACT_KILL_PROCESS":
        return ACT_KILL_PROCESS
    if name == "SCMP_ACT_TRAP":
        return ACT_TRAP
    if name == "SCMP_ACT_ERRNO":
        e = errno_ret if errno_ret is not None else (default_errno if default_errno is not None
                                                     else _errno.EPERM)
        return ACT_ERRNO | (e & 0xFFFF)
    if name == "SCMP_ACT_TRACE":
        e = errno_ret if errno_ret is not None else _errno.EPERM
        return ACT_TRACE | (e & 0xFFFF)
    if name == "SCMP_ACT_ALLOW":
        return ACT_ALLOW
    if name == "SCMP_ACT_LOG":
        return ACT_LOG
    if name == "SCMP_ACT_NOTIFY":
        return ACT_NOTIFY
    raise ValueError(f"unknown seccomp action {name!r}")


def load(profile: dict) -> None:
    """Build and load the filter described by an OCI linux.seccomp object into the calling thread."""
    lib = library()
    default_errno = profile.get("defaultErrnoRet")
    default = action(profile.get("defaultAction", "SCMP_ACT_ALLOW"), default_errno)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(_errno.EINVAL, "seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0)
        flags = profile.get("flags") or []
        if "SECCOMP_FILTER_FLAG_LOG" in flags:
            lib.seccomp_attr_set(ctx, _FLTATR_CTL_LOG, 1)
        if "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in flags:
            lib.seccomp_attr_set(ctx, _FLTATR_CTL_SSB, 1)
        for arch in profile.get("architectures") or ():
            token = lib.seccomp_arch_resolve_name(ARCHES.get(arch, arch.lower()).encode())
            if token == 0:
                raise ValueError(f"unknown seccomp architecture {arch!r}")
            rc = lib.seccomp_arch_add(ctx, token)
            if rc < 0 and rc != -_errno.EEXIST:
                raise OSError(-rc, f"seccomp_arch_add({arch}): {_errno.errorcode.get(-rc, rc)}")
        for rule in profile.get("syscalls") or ():
            act = action(rule.get("action", ""), rule.get("errnoRet"), default_errno)
            if act == default:
                continue
            args = rule.get("args") or []
            for name in rule.get("names") or ():
                nr = lib.seccomp_syscall_resolve_name(name.encode())
                if nr == -1:  # unknown to libseccomp on every architecture: nothing to filter
                    continue
                _add(lib, ctx, act, nr, name, args)
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {_errno.errorcode.get(-rc, rc)}")
    finally:
        lib.seccomp_release(ctx)


def _add(lib: ctypes.CDLL, ctx: int, act: int, nr: int, name: str, args: list[dict]) -> None:
    # comparisons on the same argument cannot share one rule (libseccomp ANDs them): split them
    groups: list[list[dict]] = [[]]
    seen: set[int] = set()
    for a in args:
        if a["index"] in seen:
            groups.append([])
            seen = set()
        groups[-1].append(a)
        seen.add(a["index"])
    for g in groups:
        arr = (_ArgCmp * max(len(g), 1))()
        for i, a in enumerate(g):
            if a.get("op") not in OPS:
                raise ValueError(f"seccomp rule for {name}: unknown op {a.get('op')!r}")
            arr[i] = _ArgCmp(a["index"], OPS[a["op"]], a.get("value", 0), a.get("valueTwo", 0))
        rc = lib.seccomp_rule_add_array(ctx, act, nr, len(g), arr)
        if rc < 0:
            raise OSError(-rc, f"seccomp rule for {name}: {_errno.errorcode.get(-rc, rc)}")
