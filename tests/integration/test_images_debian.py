"""`wharf image bootstrap debian`: debootstrap minbase from apt's Debian mirror (~45 s; opt in).

Runs when WHARF_SLOW_TESTS=1 (it downloads ~40 MB of packages from the Debian mirror);
skipped when debootstrap fails (mirror unreachable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from runtime.errors import RuntimeFailure
from runtime.images.bootstrap import apt_mirror, bootstrap_debian
from runtime.images.store import ImageStore
from runtime.linux.mount import is_mountpoint, umount

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.environ.get("WHARF_SLOW_TESTS") != "1", reason="set WHARF_SLOW_TESTS=1"),
              pytest.mark.skipif(not shutil.which("debootstrap"), reason="debootstrap not installed")]


def test_bootstrap_debian_runs(wharf_root: Path, tmp_path: Path):
    store = ImageStore()
    try:
        img = bootstrap_debian(store, "debian:test", mirror=apt_mirror())
    except RuntimeFailure as e:
        pytest.skip(f"debootstrap failed here: {e}")
    assert img.repo_tags == ["debian:test"] and img.config["config"]["Cmd"] == ["bash"]
    target = tmp_path / "mnt"
    target.mkdir()
    store.rootfs_mounts(img.id, "deb")[0].mount(target)
    try:
        out = subprocess.run(["chroot", str(target), "/bin/sh", "-c", "cat /etc/debian_version; dpkg -s bash"],
                             capture_output=True, text=True, check=True).stdout
        assert out.split("\n")[0][:2].isdigit() and "Status: install ok installed" in out
    finally:
        if is_mountpoint(target):
            umount(target)
    store.release_rootfs("deb")

