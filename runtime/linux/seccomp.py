"""Seccomp filters through libseccomp (ctypes), from an OCI `linux.seccomp` object.

The filter is built and loaded in the container's init right before exec. libseccomp's own
"set no_new_privs on load" is switched off: NNP is the spec's process.noNewPrivileges. The
filter is a binary search over syscall numbers (libseccomp's optimize level 2), so a long
allowlist costs each syscall a few comparisons, not one per listed name. Wharf's default
profile is in runtime/oci/seccomp_profile.py.
"""

from __future__ import annotations

import ctypes
import errno as _errno
import os

from runtime.linux.libc import libc

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
_MAGIC = b"wharf-seccomp-2\n"  # cache files: magic, flags, length of the key text, key text, BPF
_SET_MODE_FILTER = 1
_BPF_LD_W_ABS, _BPF_JEQ_K, _BPF_JGT_K, _BPF_JSET_K, _BPF_RET_K = 0x20, 0x15, 0x25, 0x45, 0x06
_ARCH_X86_64, _ARCH_X32, _X32_BIT = 0xC000003E, 0x4000003E, 0x40000000
_DENYING = ("SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP")
_FLAG_LOG, _FLAG_SPEC_ALLOW = 2, 4  # SECCOMP_FILTER_FLAG_*
_NR_SECCOMP = {"x86_64": 317, "aarch64": 277, "riscv64": 277, "s390x": 348, "ppc64le": 358}
_FLTATR_CTL_OPTIMIZE = 8  # libseccomp >= 2.5: 2 = a binary tree of syscall numbers instead of a linear list

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

class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


class _Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


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
        lib.seccomp_syscall_resolve_name_arch.argtypes = [ctypes.c_uint32, ctypes.c_char_p]
        lib.seccomp_export_bpf.argtypes = [ctypes.c_void_p, ctypes.c_int]
        lib.seccomp_version.restype = ctypes.POINTER(_Version)
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


def _context(profile: dict) -> int:
    """A libseccomp filter context holding `profile`'s rules (the caller releases it)."""
    lib = library()
    default_errno = profile.get("defaultErrnoRet")
    default = action(profile.get("defaultAction", "SCMP_ACT_ALLOW"), default_errno)
    ctx = lib.seccomp_init(default)
    if not ctx:
        raise OSError(_errno.EINVAL, "seccomp_init failed")
    try:
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_NNP, 0)
        lib.seccomp_attr_set(ctx, _FLTATR_CTL_OPTIMIZE, 2)  # an older libseccomp refuses: its linear filter
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
    except BaseException:
        lib.seccomp_release(ctx)
        raise
    return ctx


def load(profile: dict) -> None:
    """Build and load the filter described by an OCI linux.seccomp object into the calling thread."""
    lib = library()
    ctx = _context(profile)
    try:
        rc = lib.seccomp_load(ctx)
        if rc < 0:
            raise OSError(-rc, f"seccomp_load: {_errno.errorcode.get(-rc, rc)}")
    finally:
        lib.seccomp_release(ctx)


class Program:
    """A compiled filter: BPF instructions and the seccomp(2) flags to install them with."""

    __slots__ = ("bpf", "flags")

    def __init__(self, bpf: bytes, flags: int) -> None:
        self.bpf, self.flags = bpf, flags


def compile_filter(profile: dict) -> Program:
    """The BPF program for `profile`: libseccomp's filter behind the ENOSYS stub for newer syscalls."""
    lib = library()
    ctx = _context(profile)
    try:
        fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
        try:
            rc = lib.seccomp_export_bpf(ctx, fd)
            if rc < 0:
                raise OSError(-rc, f"seccomp_export_bpf: {_errno.errorcode.get(-rc, rc)}")
            bpf = os.pread(fd, os.fstat(fd).st_size, 0)
        finally:
            os.close(fd)
    finally:
        lib.seccomp_release(ctx)
    bpf = _enosys_stub(profile) + bpf
    flags = profile.get("flags") or []
    return Program(bpf, (_FLAG_LOG if "SECCOMP_FILTER_FLAG_LOG" in flags else 0)
                   | (_FLAG_SPEC_ALLOW if "SECCOMP_FILTER_FLAG_SPEC_ALLOW" in flags else 0))


def _insn(code: int, k: int, jt: int = 0, jf: int = 0) -> bytes:
    return code.to_bytes(2, "little") + bytes((jt, jf)) + (k & 0xFFFFFFFF).to_bytes(4, "little")


def _enosys_stub(profile: dict) -> bytes:
    """BPF that runs before libseccomp's: a syscall numbered above all that the profile names (per
    architecture) is newer than the profile and fails with ENOSYS, so programs fall back as on an older
    kernel (as runc does) instead of seeing EPERM. Only for profiles that deny by default."""
    if profile.get("defaultAction") not in _DENYING:
        return b""
    lib = library()
    names = {n for r in profile.get("syscalls") or () for n in r.get("names") or ()}
    ld_arch, ld_nr, ret = _insn(_BPF_LD_W_ABS, 4), _insn(_BPF_LD_W_ABS, 0), _insn(_BPF_RET_K, ACT_ERRNO | _errno.ENOSYS)
    out = b""
    for arch in profile.get("architectures") or ():
        token = lib.seccomp_arch_resolve_name(ARCHES.get(arch, arch.lower()).encode())
        if token in (0, _ARCH_X32):  # x32 calls come as x86_64 with bit 30 set: left to libseccomp's filter
            continue
        top = max((nr for n in names if (nr := lib.seccomp_syscall_resolve_name_arch(token, n.encode())) >= 0),
                  default=-1)
        if top < 0:
            continue
        if token == _ARCH_X86_64:
            out += (ld_arch + _insn(_BPF_JEQ_K, token, 0, 4) + ld_nr + _insn(_BPF_JSET_K, _X32_BIT, 2, 0)
                    + _insn(_BPF_JGT_K, top, 0, 1) + ret)
        else:
            out += ld_arch + _insn(_BPF_JEQ_K, token, 0, 3) + ld_nr + _insn(_BPF_JGT_K, top, 0, 1) + ret
    return out


def cached_program(profile: dict, cache_dir: str) -> Program | None:
    """`profile` compiled, from `cache_dir` when this profile was compiled before (a file named by a
    checksum that holds the profile's full text, compared exactly, with libseccomp's version and the
    machine); None for profiles that need libseccomp at load time (SCMP_ACT_NOTIFY)."""
    import zlib

    if any(r.get("action") == "SCMP_ACT_NOTIFY" for r in profile.get("syscalls") or ()) \
            or profile.get("defaultAction") == "SCMP_ACT_NOTIFY" or os.uname().machine not in _NR_SECCOMP:
        return None
    v = library().seccomp_version().contents
    text = repr((profile, v.major, v.minor, v.micro, os.uname().machine)).encode()
    path = os.path.join(cache_dir, f"{zlib.crc32(text):08x}-{len(text)}")
    head = len(_MAGIC) + 8
    try:
        with open(path, "rb") as f:
            data = f.read()
        if data[:len(_MAGIC)] == _MAGIC and data[head:head + len(text)] == text:
            return Program(data[head + len(text):], int.from_bytes(data[len(_MAGIC):len(_MAGIC) + 4], "little"))
    except OSError:
        pass
    prog = compile_filter(profile)
    try:
        os.makedirs(cache_dir, 0o700, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "wb") as f:
            f.write(_MAGIC + prog.flags.to_bytes(4, "little") + len(text).to_bytes(4, "little") + text + prog.bpf)
        os.rename(tmp, path)
    except OSError:
        pass  # a read-only or full cache dir costs a compile next time, nothing else
    return prog


def install(prog: Program) -> None:
    """Install a compiled filter on the calling thread: seccomp(SECCOMP_SET_MODE_FILTER) (as seccomp_load)."""
    buf = ctypes.create_string_buffer(prog.bpf, len(prog.bpf))
    fprog = _SockFprog(len(prog.bpf) // 8, ctypes.cast(buf, ctypes.c_void_p))
    nr = _NR_SECCOMP[os.uname().machine]
    if libc.syscall(nr, _SET_MODE_FILTER, prog.flags, ctypes.byref(fprog)) < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"seccomp(SECCOMP_SET_MODE_FILTER): {os.strerror(err)}")


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
        if rc < 0 and rc != -_errno.EEXIST:  # the same rule twice (a profile's overlapping groups)
            raise OSError(-rc, f"seccomp rule for {name}: {_errno.errorcode.get(-rc, rc)}")
