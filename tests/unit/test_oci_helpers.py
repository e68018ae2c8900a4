"""Pure helpers of the runtime: mount options, in-rootfs path resolution, cgroup conversions,
device rules (v1 text, v2 eBPF), seccomp actions, capability masks."""

from __future__ import annotations

import os
import struct

import pytest

from runtime.linux import caps, seccomp
from runtime.linux.cgroups import blkio, cpu, devices, devices_bpf
from runtime.linux.mount import MS_BIND, MS_NODEV, MS_NOSUID, MS_PRIVATE, MS_RDONLY, MS_REC
from runtime.oci.rootfs import parse_options, resolve


def test_parse_options_splits_flags_propagation_and_data():
    flags, prop, data = parse_options(["rbind", "ro", "nosuid", "nodev", "rprivate", "mode=755", "size=1k"])
    assert flags == MS_BIND | MS_REC | MS_RDONLY | MS_NOSUID | MS_NODEV
    assert prop == [MS_PRIVATE | MS_REC]
    assert data == "mode=755,size=1k"
    assert parse_options(["ro", "rw"])[0] == 0


def test_resolve_never_leaves_the_rootfs(tmp_path):
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    os.symlink("/etc", root / "abs")            # absolute: means <root>/etc
    os.symlink("../../../../etc", root / "up")   # climbing out stops at <root>
    os.symlink("loop2", root / "loop1")
    os.symlink("loop1", root / "loop2")
    r = str(root)
    assert resolve(r, "/abs/passwd") == r + "/etc/passwd"
    assert resolve(r, "/up/passwd") == r + "/etc/passwd"
    assert resolve(r, "/../../x") == r + "/x"
    assert resolve(r, "/new/dir") == r + "/new/dir"
    with pytest.raises(OSError, match="symbolic links"):
        resolve(r, "/loop1/x")


def test_cgroup_conversions():
    assert cpu.shares_to_weight(2) == 1
    assert cpu.shares_to_weight(1024) == 39
    assert cpu.shares_to_weight(262144) == 10000
    assert blkio.weight_to_io(10) == 1 and blkio.weight_to_io(1000) == 10000


def test_device_rule_text():
    assert devices.rule_text({"allow": False, "access": "rwm"}) == "a"
    assert devices.rule_text({"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rw"}) == "c 1:3 rw"
    assert devices.rule_text({"allow": True, "type": "c", "major": 136, "access": "rwm"}) == "c 136:* rwm"


def test_device_bpf_program_shape():
    code = devices_bpf.program([{"allow": False, "access": "rwm"},
                                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}])
    insns = [struct.unpack("<BBhi", code[i:i + 8]) for i in range(0, len(code), 8)]
    assert insns[-1][0] == 0x95 and insns[-2] == (0xB7, 0, 0, 0)  # ends with "deny all": r0 = 0; exit
    # the last rule is checked first: c 1:3 -> r0 = 1
    # (opcode JNE, register, jump over the remaining checks + verdict, value)
    assert [i for i in insns if i[0] == 0x55] == [(0x55, 2, 4, 2), (0x55, 4, 3, 1), (0x55, 5, 2, 3)]
    # nothing after a rule that matches everything (the verifier rejects unreachable code)
    assert len(devices_bpf.program([{"allow": True, "access": "rwm"}, {"allow": False, "type": "b",
                                                                      "access": "m"}])) % 8 == 0


def test_seccomp_actions():
    assert seccomp.action("SCMP_ACT_ERRNO", 38) == seccomp.ACT_ERRNO | 38
    assert seccomp.action("SCMP_ACT_ERRNO") == seccomp.ACT_ERRNO | 1
    assert seccomp.action("SCMP_ACT_KILL") == seccomp.ACT_KILL_THREAD
    with pytest.raises(ValueError, match="unknown seccomp action"):
        seccomp.action("SCMP_ACT_NOPE")


def test_capability_masks():
    assert caps.number("sys_admin") == caps.number("CAP_SYS_ADMIN") == 21
    m = caps.mask(caps.DOCKER_DEFAULT)
    assert m == 0xA80425FB
    assert set(caps.names(m)) == set(caps.DOCKER_DEFAULT)
    with pytest.raises(ValueError):
        caps.number("CAP_NOPE")
