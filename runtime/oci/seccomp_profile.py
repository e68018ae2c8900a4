"""Wharf's default seccomp profile (an allowlist, like Docker's) and what `--security-opt seccomp=...` gives.

Profiles are written in Docker's format: defaultAction, archMap, and syscalls[] rules that may hold
`includes`/`excludes` by capability, architecture (Go names: amd64, arm64...) and minimum kernel.
`resolve()` turns one into the OCI `linux.seccomp` object for a container's capabilities on this
machine, as dockerd does before it calls the runtime, so a user's Docker profile works unchanged.

The default denies with EPERM whatever it does not name. It allows the syscalls of the kernel's own
tables (asm/unistd_64.h, unistd_32.h, unistd_x32.h of Linux 6.1: x86_64 and its i386/x32 ABIs)
except those that reach what a container does not own or that only serve kernel exploits:
- allowed only with the capability that the kernel checks for them anyway (BY_CAPABILITY): the
  mount API, unshare/setns and namespace flags of clone (CAP_SYS_ADMIN), module loading, clock
  setting, reboot, raw I/O ports, NUMA policy, accounting, handle-based opens...;
- never (NEVER): kernel keyrings (not namespaced), kexec, userfaultfd, obsolete or unimplemented calls;
- with arguments: personality only with the Linux personalities (no BSD/SVR4 emulation), clone
  without namespace flags unless CAP_SYS_ADMIN; clone3 (whose flags a filter cannot see) and io_uring
  (which performs I/O the filter never sees) fail with ENOSYS, so libc and runtimes fall back to
  clone and plain syscalls.
Syscalls the profile does not name are denied: an allowlist. Those numbered above every syscall it
names (newer than the tables) fail with ENOSYS instead of EPERM, as under runc, so that programs fall
back as on an older kernel (runtime/linux/seccomp.py puts that check ahead of libseccomp's filter).
"""

from __future__ import annotations

import errno
import json
import os
from typing import Any

from runtime.errors import InvalidArgument

ALLOWED = (
    "_llseek", "_newselect", "accept", "accept4", "access", "adjtimex", "alarm", "arch_prctl", "bind", "brk",
    "capget", "capset", "chdir", "chmod", "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres",
    "clock_getres_time64", "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64",
    "close", "close_range", "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create",
    "epoll_create1", "epoll_ctl", "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old",
    "eventfd", "eventfd2", "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64",
    "fadvise64_64", "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32",
    "fchownat", "fcntl", "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr",
    "fsetxattr", "fstat", "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64",
    "futex", "futex_time64", "futex_waitv", "futimesat", "get_robust_list", "get_thread_area", "getcpu",
    "getcwd", "getdents", "getdents64", "getegid", "getegid32", "geteuid", "geteuid32", "getgid", "getgid32",
    "getgroups", "getgroups32", "getitimer", "getpeername", "getpgid", "getpgrp", "getpid", "getppid",
    "getpriority", "getrandom", "getresgid", "getresgid32", "getresuid", "getresuid32", "getrlimit", "getrusage",
    "getsid", "getsockname", "getsockopt", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "io_destroy",
    "io_getevents", "io_pgetevents", "io_pgetevents_time64", "io_setup", "io_submit", "ioctl", "ioprio_get",
    "ioprio_set", "ipc", "kill", "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self",
    "lchown", "lchown32", "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "lremovexattr",
    "lseek", "lsetxattr", "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret",
    "migrate_pages", "mincore", "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap",
    "mmap2", "modify_ldt", "mprotect", "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive",
    "mq_timedreceive_time64", "mq_timedsend", "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget",
    "msgrcv", "msgsnd", "msync", "munlock", "munlockall", "munmap", "nanosleep", "newfstatat", "nice",
    "oldfstat", "oldlstat", "oldolduname", "oldstat", "olduname", "open", "openat", "openat2", "pause",
    "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free", "pkey_mprotect", "poll",
    "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64", "process_mrelease",
    "process_vm_readv", "process_vm_writev", "pselect6", "pselect6_time64", "ptrace", "pwrite64", "pwritev",
    "pwritev2", "read", "readahead", "readdir", "readlink", "readlinkat", "readv", "recvfrom", "recvmmsg",
    "recvmmsg_time64", "recvmsg", "remap_file_pages", "removexattr", "rename", "renameat", "renameat2",
    "restart_syscall", "rmdir", "rseq", "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo",
    "rt_sigreturn", "rt_sigsuspend", "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo",
    "sched_get_priority_max", "sched_get_priority_min", "sched_getaffinity", "sched_getattr", "sched_getparam",
    "sched_getscheduler", "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity",
    "sched_setattr", "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl",
    "semget", "semop", "semtimedop", "semtimedop_time64", "sendfile", "sendfile64", "sendmmsg", "sendmsg",
    "sendto", "set_robust_list", "set_thread_area", "set_tid_address", "setdomainname", "setfsgid", "setfsgid32",
    "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32", "sethostname", "setitimer",
    "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid", "setresuid32",
    "setreuid", "setreuid32", "setrlimit", "setsid", "setsockopt", "setuid", "setuid32", "setxattr", "sgetmask",
    "shmat", "shmctl", "shmdt", "shmget", "shutdown", "sigaction", "sigaltstack", "signal", "signalfd",
    "signalfd4", "sigpending", "sigprocmask", "sigreturn", "sigsuspend", "socket", "socketcall", "socketpair",
    "splice", "ssetmask", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64", "timerfd_create",
    "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times", "tkill", "truncate",
    "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime", "utimensat", "utimensat_time64",
    "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write", "writev",
)

BY_CAPABILITY: dict[str, tuple[str, ...]] = {
    "CAP_SYS_ADMIN": ("bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                      "lookup_dcookie", "mount", "mount_setattr", "move_mount", "open_tree", "perf_event_open",
                      "pivot_root", "quotactl", "quotactl_fd", "setns", "swapoff", "swapon", "syslog", "umount",
                      "umount2", "unshare"),
    "CAP_BPF": ("bpf",),
    "CAP_DAC_READ_SEARCH": ("name_to_handle_at", "open_by_handle_at"),
    "CAP_PERFMON": ("perf_event_open",),
    "CAP_SYSLOG": ("syslog",),
    "CAP_SYS_BOOT": ("reboot",),
    "CAP_SYS_CHROOT": ("chroot",),
    "CAP_SYS_MODULE": ("delete_module", "finit_module", "init_module"),
    "CAP_SYS_NICE": ("get_mempolicy", "mbind", "move_pages", "set_mempolicy", "set_mempolicy_home_node"),
    "CAP_SYS_PACCT": ("acct",),
    "CAP_SYS_PTRACE": ("kcmp", "pidfd_getfd", "process_madvise"),
    "CAP_SYS_RAWIO": ("ioperm", "iopl"),
    "CAP_SYS_TIME": ("clock_settime", "clock_settime64", "settimeofday", "stime"),
    "CAP_SYS_TTY_CONFIG": ("vhangup",),
}

NEVER = (
    "add_key", "keyctl", "request_key",  # kernel keyrings are not namespaced
    "kexec_file_load", "kexec_load", "userfaultfd", "vm86", "vm86old",
    "_sysctl", "create_module", "get_kernel_syms", "nfsservctl", "query_module", "sysfs", "uselib", "ustat",
    "afs_syscall", "bdflush", "break", "ftime", "getpmsg", "gtty", "idle", "lock", "mpx", "prof", "profil",
    "putpmsg", "security", "stty", "tuxcall", "ulimit", "vserver",  # unimplemented on x86
)
IO_URING = ("io_uring_enter", "io_uring_register", "io_uring_setup")
# PER_LINUX, PER_LINUX32, UNAME26, UNAME26|PER_LINUX32, and 0xffffffff (a query: changes nothing)
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)
CLONE_NAMESPACE_FLAGS = 0x7E020000  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET

ARCH_MAP = [
    {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
    {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
]
# uname -m -> (libseccomp architecture, Go's name as profiles' includes/excludes.arches use it)
_MACHINES = {"x86_64": ("SCMP_ARCH_X86_64", "amd64"), "aarch64": ("SCMP_ARCH_AARCH64", "arm64"),
             "i686": ("SCMP_ARCH_X86", "386"), "armv7l": ("SCMP_ARCH_ARM", "arm"),
             "s390x": ("SCMP_ARCH_S390X", "s390x"), "ppc64le": ("SCMP_ARCH_PPC64LE", "ppc64le"),
             "riscv64": ("SCMP_ARCH_RISCV64", "riscv64")}


def default_profile() -> dict[str, Any]:
    """Wharf's default, in Docker's profile format (see the module doc)."""
    rules: list[dict[str, Any]] = [{"names": list(ALLOWED), "action": "SCMP_ACT_ALLOW"}]
    rules += [{"names": ["personality"], "action": "SCMP_ACT_ALLOW",
               "args": [{"index": 0, "value": v, "op": "SCMP_CMP_EQ"}]} for v in PERSONALITIES]
    rules.append({"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                  "args": [{"index": 0, "value": CLONE_NAMESPACE_FLAGS, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}],
                  "excludes": {"caps": ["CAP_SYS_ADMIN"], "arches": ["s390", "s390x"]}})
    rules.append({"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS,
                  "excludes": {"caps": ["CAP_SYS_ADMIN"]}})
    rules.append({"names": list(IO_URING), "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS})
    rules += [{"names": list(names), "action": "SCMP_ACT_ALLOW", "includes": {"caps": [cap]}}
              for cap, names in BY_CAPABILITY.items()]
    return {"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": errno.EPERM, "archMap": ARCH_MAP,
            "syscalls": rules}


def _kernel(release: str) -> tuple[int, int]:
    parts = (release.split("-")[0].split(".") + ["0", "0"])[:2]
    try:
        return int(parts[0]), int(parts[1])
    except ValueError:
        return 0, 0


def _applies(rule: dict[str, Any], caps: set[str], goarch: str, kernel: tuple[int, int]) -> bool:
    inc, exc = rule.get("includes") or {}, rule.get("excludes") or {}
    if inc.get("arches") and goarch not in inc["arches"]:
        return False
    if inc.get("caps") and not set(inc["caps"]) <= caps:
        return False
    if inc.get("minKernel") and kernel < _kernel(str(inc["minKernel"])):
        return False
    if exc.get("arches") and goarch in exc["arches"]:
        return False
    return not (exc.get("caps") and set(exc["caps"]) & caps)


def resolve(profile: dict[str, Any], caps: list[str], machine: str | None = None,
            kernel: str | None = None) -> dict[str, Any]:
    """A Docker-format profile -> the OCI linux.seccomp object for `caps` on `machine` (uname -m).

    Rules that allow a syscall outright are merged into one sorted list (each name once)."""
    uname = os.uname()
    arch, goarch = _MACHINES.get(machine or uname.machine, ("", machine or uname.machine))
    kern = _kernel(kernel or uname.release)
    have = set(caps)
    out: dict[str, Any] = {"defaultAction": profile.get("defaultAction", "SCMP_ACT_ALLOW")}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if profile.get("architectures"):
        out["architectures"] = list(profile["architectures"])
    else:
        for m in profile.get("archMap") or ():
            if m.get("architecture") == arch:
                out["architectures"] = [arch, *(m.get("subArchitectures") or [])]
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    allowed: set[str] = set()
    rules: list[dict[str, Any]] = []
    for rule in profile.get("syscalls") or ():
        if not _applies(rule, have, goarch, kern):
            continue
        names = list(rule.get("names") or ([rule["name"]] if rule.get("name") else []))
        action = rule.get("action", "")
        if action == "SCMP_ACT_ALLOW" and not rule.get("args"):
            allowed.update(names)
            continue
        r: dict[str, Any] = {"names": names, "action": action}
        if rule.get("args"):
            r["args"] = [dict(a) for a in rule["args"]]
        if rule.get("errnoRet") is not None:
            r["errnoRet"] = rule["errnoRet"]
        rules.append(r)
    # a syscall allowed outright needs no conditional rule of its own (libseccomp would refuse the pair)
    rules = [r for r in rules if not (r["action"] == "SCMP_ACT_ALLOW" and set(r["names"]) <= allowed)]
    out["syscalls"] = ([{"names": sorted(allowed), "action": "SCMP_ACT_ALLOW"}] if allowed else []) + rules
    return out


def _check(profile: Any, where: str) -> dict[str, Any]:
    from runtime.linux.seccomp import ACTIONS

    if not isinstance(profile, dict):
        raise InvalidArgument(f"{where}: a seccomp profile is a JSON object")
    if profile.get("defaultAction") not in ACTIONS:
        raise InvalidArgument(f"{where}: defaultAction {profile.get('defaultAction')!r} is not a seccomp action",
                              hint=f"one of {', '.join(ACTIONS)}")
    rules = profile.get("syscalls") or []
    if not isinstance(rules, list):
        raise InvalidArgument(f"{where}: syscalls must be a list")
    for i, rule in enumerate(rules):
        if not isinstance(rule, dict) or rule.get("action") not in ACTIONS:
            raise InvalidArgument(f"{where}: syscalls[{i}]: action {(rule or {}).get('action')!r} "
                                  "is not a seccomp action")
        names = rule.get("names") or ([rule["name"]] if rule.get("name") else [])
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise InvalidArgument(f"{where}: syscalls[{i}]: names must be a non-empty list of syscall names")
    return profile


def load_profile(value: str) -> dict[str, Any]:
    """`--security-opt seccomp=VALUE`: a profile's JSON text (what the docker CLI sends) or a file path."""
    where = "--security-opt seccomp"
    if value.lstrip().startswith("{"):
        text = value
    else:
        where = f"--security-opt seccomp={value}"
        try:
            with open(value, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise InvalidArgument(f"{where}: cannot read the profile: {e.strerror}",
                                  hint="give a JSON profile file, or seccomp=unconfined") from None
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"{where}: the profile is not valid JSON: {e}") from None
    return _check(doc, where)


def linux_seccomp(security_opt: list[str], privileged: bool, caps: list[str]) -> dict[str, Any]:
    """config.json's linux.seccomp entry for a container: {"seccomp": {...}}, or {} when unconfined.

    --privileged and `seccomp=unconfined` run without a filter (as Docker); `seccomp=FILE|JSON` uses that
    profile; otherwise Wharf's default. Use: cfg["linux"].update(linux_seccomp(...))."""
    chosen: str | None = None
    for opt in security_opt:
        key, sep, value = opt.partition("=")
        if not sep:
            key, sep, value = opt.partition(":")
        if key.strip() == "seccomp" and sep:
            chosen = value.strip()
    if privileged or chosen == "unconfined":
        return {}
    profile = default_profile() if chosen in (None, "", "builtin", "default") else load_profile(chosen)
    return {"seccomp": resolve(profile, caps)}
