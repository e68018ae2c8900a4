"""The cgroup drivers on the real hierarchies: v1 controllers, and v2 on the unified tree with the
controllers this host gives it (a hybrid host: cgroup core files, freezer, kill, cpu.stat)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import uuid

import pytest

from runtime.linux.cgroups import mode, open_cgroup
from runtime.linux.cgroups.fs import read

pytestmark = pytest.mark.root


@pytest.fixture
def cg_path():
    path = f"/wharf/test-{uuid.uuid4().hex[:10]}"
    yield path
    for version in (None, 2):
        try:
            cg = open_cgroup(path, version)
        except OSError:
            continue
        for pid in cg.pids():
            try:
                os.kill(pid, 9)
            except ProcessLookupError:
                pass
        cg.destroy()


def _spawn_in(cg, *argv: str) -> subprocess.Popen:
    return subprocess.Popen(list(argv), preexec_fn=lambda: cg.add(os.getpid()),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.skipif(mode() == "unified", reason="host has no cgroup v1 hierarchies")
def test_v1_apply_writes_controller_files(cg_path):
    cg = open_cgroup(cg_path)
    cg.create()
    cg.apply({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20},
              "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
              "pids": {"limit": 42}})
    d = cg.dirs
    assert read(d["memory"], "memory.limit_in_bytes") == str(64 << 20)
    assert read(d["memory"], "memory.memsw.limit_in_bytes") == str(96 << 20)
    assert read(d["memory"], "memory.soft_limit_in_bytes") == str(32 << 20)
    assert read(d["cpu"], "cpu.shares") == "512"
    assert read(d["cpu"], "cpu.cfs_quota_us") == "50000"
    assert read(d["cpuset"], "cpuset.cpus") == "0"
    assert read(d["pids"], "pids.max") == "42"
    # raising the limit above the current memsw needs the other order; the driver handles it
    cg.apply({"memory": {"limit": 256 << 20, "swap": 512 << 20}})
    assert read(d["memory"], "memory.limit_in_bytes") == str(256 << 20)


@pytest.mark.skipif(mode() == "unified", reason="host has no cgroup v1 hierarchies")
def test_v1_devices_allow_list_is_enforced(cg_path):
    cg = open_cgroup(cg_path)
    cg.create()
    cg.apply({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]})
    assert read(cg.dirs["devices"], "devices.list") == "c 1:3 rwm"
    p = _spawn_in(cg, "sh", "-c", "head -c1 /dev/null && echo null-ok; head -c1 /dev/zero && echo zero-ok")
    out, err = p.communicate(timeout=10)
    assert b"null-ok" in out and b"zero-ok" not in out
    assert b"Operation not permitted" in err


def test_freeze_thaw_pids_stats(cg_path):
    cg = open_cgroup(cg_path)
    p = _spawn_in(cg, "sh", "-c", "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; sleep 30")
    try:
        assert p.pid in cg.pids()
        cg.freeze()
        assert cg.frozen()
        state = open(f"/proc/{p.pid}/stat").read().rsplit(")", 1)[1].split()[0]
        assert state in ("D", "S")  # frozen tasks sleep in the freezer
        cg.thaw()
        assert not cg.frozen()
        st = cg.stats()
        assert st.pids_current >= 1
        cg.kill()
        assert p.wait(timeout=10) == -9
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    cg.destroy()
    assert not cg.exists()


@pytest.mark.skipif(mode() == "legacy", reason="host has no cgroup v2 tree")
def test_v2_driver_on_the_unified_tree(cg_path):
    cg = open_cgroup(cg_path, version=2)
    assert cg.dir.startswith("/sys/fs/cgroup")
    cg.create()
    have = set(read(cg.dir, "cgroup.controllers").split())
    p = _spawn_in(cg, "sh", "-c", "i=0; while [ $i -lt 30000 ]; do i=$((i+1)); done; sleep 30")
    try:
        assert cg.pids() == [p.pid]
        assert f"0::{cg_path}" in open(f"/proc/{p.pid}/cgroup").read() or mode() == "hybrid"
        cg.freeze()
        assert cg.frozen()
        cg.thaw()
        assert not cg.frozen()
        st = cg.stats()
        assert st.cpu_usage_ns > 0  # cpu.stat's usage is a core file: present without controllers
        if "pids" not in have:
            with pytest.raises(OSError, match=r"linux.resources.pids needs the pids controller"):
                cg.apply({"pids": {"limit": 10}})
        else:
            cg.apply({"pids": {"limit": 10}})
            assert read(cg.dir, "pids.max") == "10"
        cg.kill()
        assert p.wait(timeout=10) == -9
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    cg.destroy()
    assert not cg.exists()


@pytest.mark.skipif(mode() == "legacy", reason="host has no cgroup v2 tree")
def test_v2_device_rules_are_an_ebpf_filter(cg_path):
    cg = open_cgroup(cg_path, version=2)
    cg.apply({"devices": [{"allow": False, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                          {"allow": True, "type": "c", "major": 1, "minor": 5, "access": "w"}]})
    p = _spawn_in(cg, "sh", "-c", "head -c1 /dev/null && echo null-ok; head -c1 /dev/zero >/dev/null && echo zr; "
                                  "echo x > /dev/zero && echo zw")
    out, err = p.communicate(timeout=10)
    assert out.split() == [b"null-ok", b"zw"]  # /dev/zero: write allowed, read refused
    assert b"Operation not permitted" in err


def test_hugetlb_and_network_limits_or_a_clear_error(cg_path):
    from runtime.linux.cgroups.v1 import hierarchies

    cg = open_cgroup(cg_path)
    cg.create()
    have = hierarchies() if mode() != "unified" else {}
    uni = "/sys/fs/cgroup/unified/cgroup.controllers"
    if "hugetlb" in have or (mode() == "hybrid" and "hugetlb" in open(uni).read().split()):
        # on a hybrid host this enables hugetlb down the v2 tree: put the host back afterwards
        enabled_before = {d: read(d, "cgroup.subtree_control") for d in
                          ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/unified/wharf") if os.path.isdir(d)}
        try:
            cg.apply({"hugepageLimits": [{"pageSize": "2MB", "limit": 4 << 20}]})
            where = have.get("hugetlb") or have["unified"]
            name = "hugetlb.2MB.limit_in_bytes" if "hugetlb" in have else "hugetlb.2MB.max"
            assert read(where + cg_path, name) == str(4 << 20)
        finally:
            cg.destroy()
            for d in sorted(enabled_before, key=len, reverse=True):
                if "hugetlb" not in enabled_before[d].split() and "hugetlb" in read(d, "cgroup.subtree_control"):
                    try:
                        open(f"{d}/cgroup.subtree_control", "w").write("-hugetlb")
                    except OSError:
                        pass  # another cgroup below uses it now: leave it
    if "net_cls" not in have:
        with pytest.raises(OSError, match="linux.resources.network.classID needs the net_cls"):
            cg.apply({"network": {"classID": 0x100001}})


def test_migration_primer_moves_only_within_its_window_and_nowhere():
    """The primer's moves are no-ops (this process stays in its cgroups), happen while kicked, and
    stop when the window ends."""
    import time

    from runtime.linux.cgroups import MigrationPrimer, own_procs_file

    procs = own_procs_file()
    assert procs and os.getpid() in {int(p) for p in open(procs).read().split()}
    before = open("/proc/self/cgroup").read()
    primer = MigrationPrimer()
    time.sleep(0.02)
    assert primer.moves == 0  # idle until kicked
    primer.kick(0.1)
    deadline = time.monotonic() + 5
    while primer.moves < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert primer.moves >= 3
    time.sleep(0.2)
    settled = primer.moves
    time.sleep(0.1)
    assert primer.moves == settled  # the window is over
    assert open("/proc/self/cgroup").read() == before


def test_shared_parent_goes_only_when_unused():
    """remove_parent_if_unused leaves a parent that still holds a container's cgroup, removes an empty one
    in every hierarchy, and a child made after that recreates it (cpuset included)."""
    from runtime.linux.cgroups import remove_parent_if_unused

    parent = f"/wharf-t{uuid.uuid4().hex[:8]}"
    child = open_cgroup(f"{parent}/c1")
    try:
        child.create()
        remove_parent_if_unused(parent)
        assert child.exists()
        child.destroy()
        remove_parent_if_unused(parent)
        assert not open_cgroup(parent).exists()
        child = open_cgroup(f"{parent}/c2")
        child.create()
        p = subprocess.Popen(["sleep", "5"])
        try:
            child.add(p.pid)  # a cpuset with cpus and mems again: the task may join
            assert p.pid in child.pids()
        finally:
            p.kill()
            p.wait()
    finally:
        for c in (f"{parent}/c1", f"{parent}/c2", parent):
            with contextlib.suppress(OSError):
                open_cgroup(c).destroy()
