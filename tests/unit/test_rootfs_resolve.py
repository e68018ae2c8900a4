"""The one in-rootfs path resolver (runtime.oci.rootfs.resolve) and its wrappers for `cp`/volumes
(runtime.containers.copy.resolve_in_root) and the builder (runtime.build.rootfs.resolve_in): symlinks
never lead out of the root; checked against the kernel's own lookup inside a chroot."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from runtime.build.rootfs import resolve_in
from runtime.containers.copy import resolve_in_root
from runtime.errors import InvalidArgument
from runtime.oci.rootfs import resolve


@pytest.fixture
def root(tmp_path: Path) -> str:
    r = tmp_path / "root"
    for d in ("etc", "usr/lib", "var/run", "home/u"):
        (r / d).mkdir(parents=True)
    (r / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    os.symlink("/etc", r / "abs")                    # absolute: <root>/etc
    os.symlink("../../../../etc", r / "up")          # climbing out stops at <root>
    os.symlink("lib", r / "usr/lib64")               # relative to the link's directory
    os.symlink("../usr/lib", r / "var/lib")          # .. from the link's directory
    os.symlink("/nowhere/file", r / "dangling")      # target does not exist
    os.symlink("../../..", r / "home/u/top")         # a link that is only ..
    os.symlink("/../../../etc/passwd", r / "pw")     # absolute with .. above /
    os.symlink("/var/run", r / "run")
    os.symlink("run/../etc", r / "via")              # a link through a link, then ..
    os.symlink("loop2", r / "loop1")
    os.symlink("loop1", r / "loop2")
    os.symlink("self", r / "self")
    os.symlink("passwd", r / "etc/pwlink")           # a final link to a file
    return str(r)


CASES = {
    "/": "",
    "": "",
    "/abs/passwd": "/etc/passwd",
    "/up/passwd": "/etc/passwd",
    "/../../x": "/x",
    "x/../../../y": "/y",
    "/new/dir": "/new/dir",                        # nothing exists: created there
    "/etc/new/deeper": "/etc/new/deeper",
    "/usr/lib64/x.so": "/usr/lib/x.so",
    "/var/lib/x": "/usr/lib/x",
    "/dangling": "/nowhere/file",                  # create through a dangling link: inside the root
    "/home/u/top/etc/passwd": "/etc/passwd",
    "/pw": "/etc/passwd",
    "/via/passwd": "/var/etc/passwd",              # run is /var/run, so run/.. is /var (as the kernel)
    "/run/x": "/var/run/x",
    "/etc/pwlink": "/etc/passwd",
    "/etc/passwd/x": "/etc/passwd/x",             # below a file: not followed, kept
    "./etc/./passwd": "/etc/passwd",
    "/abs/../../..": "",
}


@pytest.mark.parametrize("path", list(CASES))
def test_resolve_stays_in_the_root(root, path):
    want = root + CASES[path]
    assert resolve(root, path) == want
    assert resolve_in_root(root, path) == want
    assert resolve_in(Path(root), path) == Path(want)


def test_follow_last_false_keeps_the_final_link(root):
    assert resolve(root, "/dangling", follow_last=False) == root + "/dangling"
    assert resolve_in_root(root, "/abs/pwlink", follow_last=False) == root + "/etc/pwlink"
    assert resolve(root, "/abs", follow_last=False) == root + "/abs"
    assert resolve(root, "/abs/", follow_last=False) == root + "/abs"
    assert resolve(root, "/abs/..", follow_last=False) == root  # .. is not a name to keep


@pytest.mark.parametrize("path", ["/loop1/x", "/loop2", "/self", "/etc/../self/y"])
def test_loops_are_errors_not_hangs(root, path):
    with pytest.raises(OSError) as e:
        resolve(root, path)
    assert e.value.errno == errno.ELOOP and path in str(e.value)
    with pytest.raises(InvalidArgument, match="symbolic links"):
        resolve_in_root(root, path)
    with pytest.raises(InvalidArgument, match="symbolic links"):
        resolve_in(Path(root), path)


def test_a_long_chain_below_the_limit_resolves(tmp_path):
    r = tmp_path / "r"
    r.mkdir()
    (r / "end").mkdir()
    os.symlink("end", r / "l0")
    for i in range(1, 100):
        os.symlink(f"/l{i - 1}", r / f"l{i}")
    assert resolve(str(r), "/l99/f") == f"{r}/end/f"


@pytest.mark.root
def test_matches_the_kernel_lookup_in_a_chroot(root):
    """Oracle: realpath(3) run in a chroot at `root` (the kernel clamps .. and / at the root)."""
    paths = [p for p in CASES if p] + ["/usr/lib64", "/var/lib", "/home/u/top", "/run"]
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            os.chroot(root)
            os.chdir("/")
            out = "\n".join(os.path.realpath(p) for p in paths)
            os.write(w, out.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        kernel = f.read().split("\n")
    os.waitpid(pid, 0)
    for p, k in zip(paths, kernel, strict=True):
        assert resolve(root, p) == (root if k == "/" else root + k), p
