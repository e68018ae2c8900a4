"""Wharf's default seccomp profile against the kernel's syscall tables; Docker-format profiles resolved per
capability/architecture/kernel; `--security-opt seccomp=...`; the compiled-filter cache."""

from __future__ import annotations

import errno
import json
import os
import re
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument
from runtime.linux import seccomp
from runtime.linux.caps import DOCKER_DEFAULT
from runtime.oci import seccomp_profile as sp

HEADERS = [Path(f"/usr/include/x86_64-linux-gnu/asm/unistd_{a}.h") for a in ("64", "32", "x32")]


def _allowed(resolved: dict) -> set[str]:
    return {n for r in resolved["syscalls"] if r["action"] == "SCMP_ACT_ALLOW" and not r.get("args")
            for n in r["names"]}


@pytest.mark.skipif(not all(h.exists() for h in HEADERS), reason="linux-libc-dev headers are not installed")
def test_every_syscall_of_the_kernel_tables_has_exactly_one_place():
    table: set[str] = set()
    for h in HEADERS:
        table |= set(re.findall(r"#define __NR_(\w+)\s", h.read_text()))
    capped = {n for names in sp.BY_CAPABILITY.values() for n in names}
    special = {"personality", "clone", "clone3"}
    groups = [set(sp.ALLOWED), capped - special, set(sp.NEVER), set(sp.IO_URING), special]
    assert set().union(*groups) == table  # nothing forgotten, nothing misspelt
    for i, a in enumerate(groups):
        for b in groups[i + 1:]:
            assert not a & b, a & b
    assert len(sp.ALLOWED) == len(set(sp.ALLOWED)) and list(sp.ALLOWED) == sorted(sp.ALLOWED)


def test_resolve_for_default_caps_and_for_sys_admin():
    d = sp.resolve(sp.default_profile(), list(DOCKER_DEFAULT), machine="x86_64", kernel="6.1.0-18-amd64")
    assert d["defaultAction"] == "SCMP_ACT_ERRNO" and d["defaultErrnoRet"] == errno.EPERM
    assert d["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    allowed = _allowed(d)
    assert {"read", "execve", "chroot", "ptrace", "socket", "setns"} - allowed == {"setns"}
    assert not allowed & {"mount", "unshare", "clone", "clone3", "keyctl", "reboot", "personality"}
    rules = {r["names"][0]: r for r in d["syscalls"][1:] if len(r["names"]) == 1}
    assert rules["clone"]["args"] == [{"index": 0, "value": 0x7E020000, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]
    assert rules["clone3"] == {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS}
    assert sorted(r["args"][0]["value"] for r in d["syscalls"] if r["names"] == ["personality"]) == \
        sorted(sp.PERSONALITIES)
    assert d["syscalls"][0]["names"] == sorted(allowed)  # one merged, sorted allow rule comes first
    a = sp.resolve(sp.default_profile(), [*DOCKER_DEFAULT, "CAP_SYS_ADMIN"], machine="x86_64")
    assert {"mount", "unshare", "setns", "clone", "clone3", "bpf", "syslog"} <= _allowed(a)
    assert not any(r["names"] in (["clone"], ["clone3"]) for r in a["syscalls"][1:])
    arm = sp.resolve(sp.default_profile(), [], machine="aarch64")
    assert arm["architectures"] == ["SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"]


def test_docker_profile_includes_excludes_and_old_single_names():
    prof = {"defaultAction": "SCMP_ACT_ERRNO", "architectures": ["SCMP_ARCH_X86_64"], "syscalls": [
        {"name": "read", "action": "SCMP_ACT_ALLOW"},
        {"names": ["ptrace"], "action": "SCMP_ACT_ALLOW", "includes": {"minKernel": "4.8"}},
        {"names": ["s390_only"], "action": "SCMP_ACT_ALLOW", "includes": {"arches": ["s390x"]}},
        {"names": ["not_on_amd64"], "action": "SCMP_ACT_ALLOW", "excludes": {"arches": ["amd64"]}},
        {"names": ["both"], "action": "SCMP_ACT_ALLOW", "includes": {"caps": ["CAP_A", "CAP_B"]}},
        {"names": ["write"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]},
        {"names": ["read"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_EQ"}]}]}
    old = sp.resolve(prof, ["CAP_A"], machine="x86_64", kernel="4.4.0")
    assert old["architectures"] == ["SCMP_ARCH_X86_64"] and "defaultErrnoRet" not in old
    assert old["syscalls"] == [{"names": ["read"], "action": "SCMP_ACT_ALLOW"},
                               {"names": ["write"], "action": "SCMP_ACT_ALLOW",
                                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_EQ"}]}]
    new = sp.resolve(prof, ["CAP_A", "CAP_B"], machine="x86_64", kernel="5.10.0")
    assert _allowed(new) == {"read", "ptrace", "both"}


def test_security_opt_choices(tmp_path):
    caps = list(DOCKER_DEFAULT)
    default = sp.linux_seccomp([], False, caps)
    assert default == {"seccomp": sp.resolve(sp.default_profile(), caps)}
    assert sp.linux_seccomp(["seccomp=unconfined"], False, caps) == {}
    assert sp.linux_seccomp(["seccomp:unconfined"], False, caps) == {}
    assert sp.linux_seccomp(["no-new-privileges", "seccomp=/x.json"], True, caps) == {}  # --privileged
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    f = tmp_path / "p.json"
    f.write_text(json.dumps(doc))
    by_path = sp.linux_seccomp([f"seccomp={f}"], False, caps)
    by_text = sp.linux_seccomp(["seccomp=" + json.dumps(doc)], False, caps)  # what the docker CLI sends
    assert by_path == by_text and by_path["seccomp"]["syscalls"] == doc["syscalls"]
    with pytest.raises(InvalidArgument, match=r"seccomp=/no/such.json: cannot read"):
        sp.linux_seccomp(["seccomp=/no/such.json"], False, caps)
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        sp.linux_seccomp(["seccomp={nope"], False, caps)
    with pytest.raises(InvalidArgument, match=r"syscalls\[0\]: action 'SCMP_ACT_MAYBE'"):
        sp.linux_seccomp(['seccomp={"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["x"], '
                          '"action": "SCMP_ACT_MAYBE"}]}'], False, caps)
    with pytest.raises(InvalidArgument, match="defaultAction"):
        sp.linux_seccomp(['seccomp={"syscalls": []}'], False, caps)


def test_compiled_filters_are_cached_exactly(tmp_path, monkeypatch):
    prof = sp.resolve(sp.default_profile(), list(DOCKER_DEFAULT))
    first = seccomp.cached_program(prof, str(tmp_path))
    assert first is not None and len(first.bpf) % 8 == 0 and first.bpf == seccomp.compile_filter(prof).bpf
    (cached,) = os.listdir(tmp_path)
    calls: list[int] = []
    real = seccomp.compile_filter
    monkeypatch.setattr(seccomp, "compile_filter", lambda p: calls.append(1) or real(p))
    again = seccomp.cached_program(prof, str(tmp_path))
    assert again is not None and again.bpf == first.bpf and calls == []
    other = dict(prof, flags=["SECCOMP_FILTER_FLAG_LOG"])
    logged = seccomp.cached_program(other, str(tmp_path))
    assert logged is not None and logged.flags == 2 and calls == [1] and len(os.listdir(tmp_path)) == 2
    path = tmp_path / cached  # a file whose key text differs (a checksum clash, a torn write) is not trusted
    data = bytearray(path.read_bytes())
    data[30] ^= 1
    path.write_bytes(bytes(data))
    assert seccomp.cached_program(prof, str(tmp_path)).bpf == first.bpf and calls == [1, 1]  # type: ignore[union-attr]
    notify = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}
    assert seccomp.cached_program(notify, str(tmp_path)) is None


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86_64 ABIs")
def test_enosys_stub_for_syscalls_newer_than_a_denying_profile():
    allow_all = {"defaultAction": "SCMP_ACT_ALLOW", "architectures": ["SCMP_ARCH_X86_64"],
                 "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}
    assert seccomp._enosys_stub(allow_all) == b""  # unknown syscalls are allowed there anyway
    d = sp.resolve(sp.default_profile(), list(DOCKER_DEFAULT))
    stub = seccomp._enosys_stub(d)
    assert len(stub) == (6 + 5) * 8  # an x86_64 block and an i386 block; x32 is left to libseccomp's filter
    insns = [stub[i:i + 8] for i in range(0, len(stub), 8)]
    tops = [int.from_bytes(i[4:], "little") for i in insns if i[:2] == b"\x25\x00"]  # JGT K
    assert tops == [449, 449]  # futex_waitv: the newest syscall the default profile names on both
    assert seccomp.compile_filter(d).bpf.startswith(stub)
