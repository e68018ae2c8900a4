"""Wharf's default seccomp allowlist on a real kernel: busybox and Debian workloads run, what the profile
refuses is refused, and runc given the same bundle decides every probed syscall the same way."""

from __future__ import annotations

import errno
import json
import os
import shutil
import uuid
from pathlib import Path

import pytest

from runtime.linux.caps import DOCKER_DEFAULT
from runtime.oci.bundle import write_bundle
from runtime.oci.seccomp_profile import default_profile, linux_seccomp, resolve
from tests.integration.test_oci_runtime import RT, RUNTIMES

pytestmark = pytest.mark.root
needs_runc = pytest.mark.skipif(not shutil.which("runc"), reason="runc is not installed")
SYS_ADMIN = [*DOCKER_DEFAULT, "CAP_SYS_ADMIN"]


@pytest.fixture(params=RUNTIMES)
def rt(request, tmp_path):
    r = RT(request.param, tmp_path / f"state-{request.param}")
    yield r
    for cid in os.listdir(r.root) if r.root.exists() else []:
        if not cid.startswith("."):
            r("delete", "--force", cid, check=False)


def _bundle(tmp_path: Path, rootfs: Path, script: str, seccomp: dict | None, caps: list[str] | None = None,
            mounts: list[dict] | None = None) -> Path:
    b = tmp_path / ("bundle-" + uuid.uuid4().hex[:6])
    spec = write_bundle(b, rootfs, ["sh", "-c", script])
    spec["linux"].pop("seccomp", None)
    if seccomp is not None:
        spec["linux"]["seccomp"] = seccomp
    if caps is not None:
        spec["process"]["capabilities"] = {k: caps for k in ("bounding", "effective", "permitted")}
    spec["mounts"] += mounts or []
    (b / "config.json").write_text(json.dumps(spec))
    return b


@pytest.fixture
def debian_rootfs():
    """A Debian userland: this machine's /usr, /etc and dpkg database, bind-mounted read-only."""
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="wharf-sc-"))
    os.chmod(d, 0o755)
    r = d / "rootfs"
    for sub in ("usr", "etc", "tmp", "proc", "sys", "dev", "root", "var/lib/dpkg"):
        (r / sub).mkdir(parents=True)
    for link in ("bin", "lib", "lib64", "sbin"):
        if os.path.islink(f"/{link}"):
            os.symlink(f"usr/{link}", r / link)
    if not os.path.isfile("/usr/bin/python3") or not os.path.islink("/bin"):
        pytest.skip("needs a merged-/usr Debian host with python3")
    mounts = [{"destination": p, "type": "bind", "source": p, "options": ["rbind", "ro"]}
              for p in ("/usr", "/etc", "/var/lib/dpkg")]
    yield r, mounts
    shutil.rmtree(d, ignore_errors=True)


BUSYBOX_WORK = r"""
set -e
mkdir -p /tmp/w/d && cd /tmp/w && echo hello > a && cp a b && mv b c && ln -s c s && ln c h && chmod 600 c
chown 65534:65534 c && mkfifo f && mknod n c 1 3 && touch -d 2001-01-01 a && stat -c '%Y' a >/dev/null
tar czf /tmp/t.tgz . && tar tzf /tmp/t.tgz | sort | tr '\n' ' ' && echo
seq 1 5000 | sort -rn | head -1 && find / -xdev -name 'busy*' | head -1
ps -o pid,comm | wc -l >/dev/null && top -bn1 >/dev/null && free >/dev/null && df / >/dev/null && uptime >/dev/null
sleep 0.01 & wait $! ; (sleep 5 & kill $!) ; nice -n 5 true && renice -n 3 $$ >/dev/null && ionice -c 3 true
taskset -p 1 $$ >/dev/null && sha256sum a | cut -c1-8 && date -u -d @0 +%Y && hostname && id -u
timeout 1 sh -c 'exec true' && echo x | xargs echo && linux32 uname -m && linux64 uname -m
echo done
"""


def test_busybox_workload_runs_under_the_default_profile(rt, tmp_path, busybox_rootfs):
    b = _bundle(tmp_path, busybox_rootfs, BUSYBOX_WORK, resolve(default_profile(), list(DOCKER_DEFAULT)))
    p = rt.run(b, check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    out = p.stdout.splitlines()
    assert out[0].split() == ["./", "./a", "./c", "./d/", "./f", "./h", "./n", "./s"]
    assert out[1:] == ["5000", "/bin/busybox", "5891b5b5", "1970", "wharf", "0", "x", "i686", "x86_64", "done"]


DENIED = r"""
grep Seccomp: /proc/self/status | tr -d '\t'
unshare -n true 2>&1 | tail -1; nsenter -t 1 -n true 2>&1 | tail -1
touch /sw; swapon /sw 2>&1 | tail -1; date -s '2001-01-01 00:00:00' 2>&1 >/dev/null | tail -1
mkdir -p /m; mount -t tmpfs x /m 2>&1 | tail -1
"""


def test_what_the_default_profile_refuses_and_privileged_unconfined(rt, tmp_path, busybox_rootfs):
    out = rt.run(_bundle(tmp_path, busybox_rootfs, DENIED,
                         resolve(default_profile(), list(DOCKER_DEFAULT)))).stdout.splitlines()
    assert out[0] == "Seccomp:2"
    assert all("Operation not permitted" in line for line in out[1:5]), out
    assert "permission denied" in out[5]
    # CAP_SYS_ADMIN opens what the kernel then allows (namespaces, mounts), as in Docker
    out = rt.run(_bundle(tmp_path, busybox_rootfs, "unshare -n true && echo unshared; mkdir -p /m; "
                         "mount -t tmpfs x /m && echo mounted", resolve(default_profile(), SYS_ADMIN),
                         SYS_ADMIN)).stdout.split()
    assert out == ["unshared", "mounted"]
    # --privileged (and seccomp=unconfined): no filter at all
    assert linux_seccomp([], True, SYS_ADMIN) == {} and linux_seccomp(["seccomp=unconfined"], False, []) == {}
    out = rt.run(_bundle(tmp_path, busybox_rootfs, "grep Seccomp: /proc/self/status | tr -d '\t'",
                         None)).stdout.split()
    assert out == ["Seccomp:0"]


def test_a_custom_docker_format_profile_is_used(rt, tmp_path, busybox_rootfs):
    prof = tmp_path / "p.json"
    prof.write_text(json.dumps({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["mkdirat", "mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EROFS},
        {"names": ["uname"], "action": "SCMP_ACT_ERRNO", "includes": {"caps": ["CAP_SYS_ADMIN"]}}]}))
    sc = linux_seccomp([f"seccomp={prof}"], False, list(DOCKER_DEFAULT))["seccomp"]
    out = rt.run(_bundle(tmp_path, busybox_rootfs, "mkdir /x 2>&1; uname -s", sc), check=False).stdout
    assert "Read-only file system" in out and "Linux" in out


DEBIAN_WORK = r"""
set -e
python3 -c "
import sqlite3, ssl, subprocess, threading
t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()
print(subprocess.run(['sh', '-c', 'echo spawned'], capture_output=True, text=True).stdout.strip())
print(sqlite3.connect(':memory:').execute('select 40 + 2').fetchone()[0])"
tar czf /tmp/doc.tgz -C /usr/share/doc/python3.11 . && tar tzf /tmp/doc.tgz | grep -c . >/dev/null
getent passwd root | cut -d: -f1; dpkg-query -W -f='${Package}\n' python3.11; apt-config dump >/dev/null
perl -e 'print "perl\n"'; grep Seccomp: /proc/self/status | tr -d '\t'
"""


def test_debian_workload_runs_under_the_default_profile(rt, tmp_path, debian_rootfs):
    """glibc 2.36 starts threads and spawns with clone3: the profile's ENOSYS makes it fall back to clone."""
    rootfs, mounts = debian_rootfs
    p = rt.run(_bundle(tmp_path, rootfs, DEBIAN_WORK, resolve(default_profile(), list(DOCKER_DEFAULT)),
                       mounts=mounts), check=False)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout.split() == ["thread", "spawned", "42", "root", "python3.11", "perl", "Seccomp:2"]


# (name, x86_64 number, arguments that do nothing when the call is allowed)
PROBES = [
    ("getpid", 39, ()), ("socket", 41, (2, 2, 0)), ("getrandom", 318, (0, 0, 0)), ("modify_ldt", 154, (0, 0, 0)),
    ("chroot", 161, (0,)), ("ptrace", 101, (0xFFFF, 0, 0, 0)), ("process_vm_readv", 310, (0, 0, 0, 0, 0, 0)),
    ("sethostname", 170, (0, 0)), ("keyctl", 250, (0, -3, 0)), ("add_key", 248, (0, 0, 0, 0, 0)),
    ("request_key", 249, (0, 0, 0, 0)), ("unshare", 272, (0,)), ("setns", 308, (-1, 0)),
    ("mount", 165, (0, 0, 0, 0, 0)), ("umount2", 166, (0, 0)), ("pivot_root", 155, (0, 0)),
    ("fsopen", 430, (0, 0)), ("open_tree", 428, (-1, 0, 0)), ("swapon", 167, (0, 0)), ("quotactl", 179, (0, 0, 0, 0)),
    ("clone+newns", 56, (0x00020000 | 0x200, 0, 0, 0, 0)), ("clone", 56, (0x10000, 0, 0, 0, 0)),
    ("clone3", 435, (0, 0)), ("io_uring_setup", 425, (0, 0)), ("userfaultfd", 323, (-1,)),
    ("personality?", 135, (0xFFFFFFFF,)), ("bpf", 321, (-1, 0, 0)), ("perf_event_open", 298, (0, 0, 0, 0, 0)),
    ("reboot", 169, (0, 0, 0, 0)), ("kexec_load", 246, (0, 0, 0, 0)), ("init_module", 175, (0, 0, 0)),
    ("settimeofday", 164, (0, 0)), ("clock_settime", 227, (99, 0)), ("iopl", 172, (0,)),
    ("syslog", 103, (0, 0, 0)), ("open_by_handle_at", 304, (-1, 0, 0)), ("name_to_handle_at", 303, (-1, 0, 0, 0, 0)),
    ("lookup_dcookie", 212, (0, 0, 0)), ("set_mempolicy", 238, (0, 0, 0)), ("move_pages", 279, (0, 0, 0, 0, 0, 0)),
    ("kcmp", 312, (0, 0, 99, 0, 0)), ("pidfd_getfd", 438, (-1, 0, 0)), ("uselib", 134, (0,)),
    ("gap-400", 400, ()), ("fchmodat2", 452, (-1, 0, 0, 0)), ("future-600", 600, ()),  # not in the profile
    ("personality-bsd", 135, (0x0006,)),  # last: when allowed it changes the probe's personality
]
PROBE_PY = """
import ctypes, errno, json, sys
libc = ctypes.CDLL(None, use_errno=True)
out = {}
for name, nr, args in json.loads(sys.argv[1]):
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    out[name] = "ok" if r >= 0 else errno.errorcode.get(ctypes.get_errno(), str(ctypes.get_errno()))
print(json.dumps(out))
"""


@needs_runc
@pytest.mark.parametrize("caps", [DOCKER_DEFAULT, SYS_ADMIN], ids=["default-caps", "sys-admin"])
def test_same_decisions_as_runc_for_every_probed_syscall(tmp_path, debian_rootfs, caps):
    """The filter's own refusals are told apart from the kernel's by a distinct errno (EMLINK)."""
    rootfs, mounts = debian_rootfs
    prof = default_profile()
    prof["defaultErrnoRet"] = errno.EMLINK
    sc = resolve(prof, list(caps))
    script = f"python3 -c '{PROBE_PY}' '{json.dumps(PROBES)}'"
    got = {}
    for name in ("builtin", "runc"):
        p = RT(name, tmp_path / f"st-{name}").run(_bundle(tmp_path, rootfs, script, sc, list(caps), mounts),
                                                  check=False)
        assert p.returncode == 0, p.stderr
        got[name] = json.loads(p.stdout)
    assert got["builtin"] == got["runc"]
    res = got["builtin"]
    filtered = {k for k, v in res.items() if v == "EMLINK"}
    assert {"getpid", "socket", "getrandom", "clone", "personality?", "ptrace", "chroot", "sethostname"}.isdisjoint(
        filtered)
    assert res["clone3"] == ("ENOSYS" if caps == DOCKER_DEFAULT else "EINVAL") and res["io_uring_setup"] == "ENOSYS"
    # numbered above everything the profile names: newer than the profile, ENOSYS (as on an older kernel)
    assert res["fchmodat2"] == res["future-600"] == "ENOSYS" and res["gap-400"] == "EMLINK"
    never = {"gap-400", "keyctl", "add_key", "request_key", "userfaultfd", "kexec_load", "uselib", "personality-bsd"}
    admin = {"unshare", "setns", "mount", "umount2", "pivot_root", "fsopen", "open_tree", "swapon", "quotactl",
             "clone+newns", "bpf", "perf_event_open", "syslog", "lookup_dcookie"}
    other_caps = {"reboot", "init_module", "settimeofday", "clock_settime", "iopl", "open_by_handle_at",
                  "name_to_handle_at", "set_mempolicy", "move_pages", "kcmp", "pidfd_getfd"}
    if caps == DOCKER_DEFAULT:
        assert filtered == never | admin | other_caps
    else:
        assert filtered == never | other_caps
        assert res["unshare"] == "ok" and res["clone+newns"] == "EINVAL"


I386_PROBE = """
.globl _start
_start:
  xor %edi, %edi
  mov $20, %eax; int $0x80; test %eax, %eax; jle 1f; or $1, %edi
1: mov $288, %eax; xor %ebx, %ebx; xor %ecx, %ecx; xor %edx, %edx; int $0x80; cmp $-1, %eax; jne 2f; or $2, %edi
2: mov $310, %eax; xor %ebx, %ebx; int $0x80; cmp $-1, %eax; jne 3f; or $4, %edi
3: mov $435, %eax; xor %ebx, %ebx; xor %ecx, %ecx; int $0x80; cmp $-38, %eax; jne 4f; or $8, %edi
4: mov $452, %eax; xor %ebx, %ebx; int $0x80; cmp $-38, %eax; jne 5f; or $16, %edi
5: mov $1, %eax; mov %edi, %ebx; int $0x80
"""


@pytest.mark.skipif(os.uname().machine != "x86_64" or not (shutil.which("as") and shutil.which("ld")),
                    reason="needs x86_64 and binutils to assemble an i386 program")
def test_i386_programs_are_filtered_too(rt, tmp_path, busybox_rootfs):
    """int 0x80 syscalls (i386 numbers): getpid works; keyctl(288) and unshare(310) get EPERM; clone3(435)
    and the newer fchmodat2(452) get ENOSYS. The exit status is the bitmask of what held (31 = all)."""
    import subprocess

    (tmp_path / "p.s").write_text(I386_PROBE)
    subprocess.run(["as", "--32", "-o", str(tmp_path / "p.o"), str(tmp_path / "p.s")], check=True)
    subprocess.run(["ld", "-m", "elf_i386", "-o", str(busybox_rootfs / "bin" / "p32"), str(tmp_path / "p.o")],
                   check=True)
    sc = resolve(default_profile(), list(DOCKER_DEFAULT))
    assert rt.run(_bundle(tmp_path, busybox_rootfs, "p32; echo $?", sc)).stdout.split() == ["31"]
    assert rt.run(_bundle(tmp_path, busybox_rootfs, "p32; echo $?", None)).stdout.split() == ["1"]


def _engine_sets_seccomp() -> bool:
    import inspect

    from runtime.containers import bundle

    return "linux_seccomp" in inspect.getsource(bundle)


@pytest.mark.skipif(not _engine_sets_seccomp(),
                    reason="runtime/containers/bundle.py does not ask runtime/oci for linux_seccomp() yet")
def test_wharf_run_default_privileged_unconfined_and_bad_profile(busybox_image, tmp_path):
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "reconciler.cli.app", "run", "--rm", "--network", "none",
                               *args], capture_output=True, text=True, timeout=60,
                              cwd=Path(__file__).resolve().parents[2])

    status = "grep Seccomp: /proc/self/status | tr -d '\\t'"
    out = run("busybox", "sh", "-c", f"{status}; unshare -n true 2>&1 | tail -1").stdout.splitlines()
    assert out[0] == "Seccomp:2" and "Operation not permitted" in out[1]
    assert run("--privileged", "busybox", "sh", "-c", status).stdout.split() == ["Seccomp:0"]
    assert run("--security-opt", "seccomp=unconfined", "busybox", "sh", "-c", status).stdout.split() == ["Seccomp:0"]
    assert run("--cap-add", "SYS_ADMIN", "busybox", "sh", "-c", "unshare -n true && echo ok").stdout.split() == ["ok"]
    bad = run("--security-opt", "seccomp=/no/such.json", "busybox", "true")
    assert bad.returncode == 125 and "seccomp=/no/such.json: cannot read the profile" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) <= 2  # the error and its hint, no traceback
