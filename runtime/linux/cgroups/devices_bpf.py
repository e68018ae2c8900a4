"""cgroup v2 device allow-list: an eBPF program (BPF_PROG_TYPE_CGROUP_DEVICE) built from the OCI
rules and attached to the cgroup, as runc and crun do (v2 has no devices.allow file).

The program checks the rules last to first and returns the verdict of the first that matches
(so a later rule overrides an earlier one, as with v1's devices.allow/deny); when none matches
it allows, like a fresh v1 cgroup. OCI lists start with "deny all", which then matches last.
"""

from __future__ import annotations

import ctypes
import os
import struct

from runtime.linux.libc import libc

_SYS_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
_PROG_LOAD, _PROG_ATTACH = 5, 8
_PROG_TYPE_CGROUP_DEVICE = 15
_CGROUP_DEVICE = 6
_F_ALLOW_MULTI = 2
_TYPES = {"b": 1, "c": 2}
_ACCESS = {"m": 1, "r": 2, "w": 4}


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def program(rules: list[dict]) -> bytes:
    """The instructions for `rules` (OCI linux.resources.devices entries)."""
    head = [
        _insn(0x61, 2, 1, 0),          # r2 = ctx->access_type
        _insn(0x54, 2, imm=0xFFFF),    # w2 &= 0xffff          (device type)
        _insn(0x61, 3, 1, 0),          # r3 = ctx->access_type
        _insn(0x74, 3, imm=16),        # w3 >>= 16             (access bits)
        _insn(0x61, 4, 1, 4),          # r4 = ctx->major
        _insn(0x61, 5, 1, 8),          # r5 = ctx->minor
    ]
    body: list[bytes] = []
    for rule in reversed(rules):
        checks: list[tuple[int, int, int]] = []  # (opcode, reg, imm): jump to the next rule when true
        kind = rule.get("type") or "a"
        if kind != "a":
            checks.append((0x55, 2, _TYPES[kind]))            # if r2 != type goto next
        access = 0
        for ch in rule.get("access") or "rwm":
            access |= _ACCESS[ch]
        if access != 7:
            checks.append((0x45, 3, ~access & 7))            # if r3 & ~access goto next
        if rule.get("major") not in (None, -1):
            checks.append((0x55, 4, rule["major"]))
        if rule.get("minor") not in (None, -1):
            checks.append((0x55, 5, rule["minor"]))
        n = len(checks)
        for i, (code, reg, imm) in enumerate(checks):
            body.append(_insn(code, reg, off=n - i + 1, imm=imm))  # skip the rest + mov + exit
        body.append(_insn(0xB7, 0, imm=1 if rule.get("allow") else 0))  # r0 = verdict
        body.append(_insn(0x95))                                        # exit
        if not checks:  # matches everything: what follows is unreachable (the verifier refuses that)
            return b"".join(head + body)
    tail = [_insn(0xB7, 0, imm=1), _insn(0x95)]
    return b"".join(head + body + tail)


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 128)
    libc.syscall.restype = ctypes.c_long
    ret = libc.syscall(_SYS_BPF[os.uname().machine], cmd, buf, 128)
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"bpf({cmd}): {os.strerror(err)}")
    return ret


def attach(cgroup_dir: str, rules: list[dict]) -> None:
    """Load the program for `rules` and attach it to the v2 cgroup at `cgroup_dir`."""
    code = program(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache")
    log = ctypes.create_string_buffer(65536)
    attr = struct.pack("<IIQQIIQ", _PROG_TYPE_CGROUP_DEVICE, len(code) // 8, ctypes.addressof(insns),
                       ctypes.addressof(license_), 1, len(log), ctypes.addressof(log))
    try:
        prog = _bpf(_PROG_LOAD, attr)
    except OSError as e:
        detail = log.value.decode(errors="replace").strip().splitlines()[-1:] or [""]
        raise OSError(e.errno, f"loading the device filter for {cgroup_dir}: {e.strerror} {detail[0]}") from None
    cg = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _bpf(_PROG_ATTACH, struct.pack("<IIII", cg, prog, _CGROUP_DEVICE, _F_ALLOW_MULTI))
    finally:
        os.close(cg)
        os.close(prog)  # the attachment keeps the program alive
