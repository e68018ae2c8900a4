"""blkio (v1) / io (v2): weights and throttling per device; bytes read/written."""

from __future__ import annotations

import os

from runtime.linux.cgroups.fs import read, write

_THROTTLE = {"throttleReadBpsDevice": ("read_bps_device", "rbps"),
             "throttleWriteBpsDevice": ("write_bps_device", "wbps"),
             "throttleReadIOPSDevice": ("read_iops_device", "riops"),
             "throttleWriteIOPSDevice": ("write_iops_device", "wiops")}


def weight_to_io(w: int) -> int:
    """blkio weight [10, 1000] -> io.weight [1, 10000]."""
    return 1 + (w - 10) * 9999 // 990


def _weight_file(d: str) -> str:
    for name in ("blkio.weight", "blkio.bfq.weight"):
        if os.path.exists(f"{d}/{name}"):
            return name
    raise OSError(2, f"{d}: neither blkio.weight nor blkio.bfq.weight exists (no CFQ/BFQ I/O scheduler)")


def apply_v1(d: str, bio: dict) -> None:
    if bio.get("weight"):
        write(d, _weight_file(d), bio["weight"])
    if bio.get("leafWeight"):
        write(d, "blkio.leaf_weight", bio["leafWeight"])
    for wd in bio.get("weightDevice") or ():
        if wd.get("weight"):
            write(d, _weight_file(d).replace("weight", "weight_device"),
                  f"{wd['major']}:{wd['minor']} {wd['weight']}")
    for key, (suffix, _) in _THROTTLE.items():
        for t in bio.get(key) or ():
            write(d, "blkio.throttle." + suffix, f"{t['major']}:{t['minor']} {t['rate']}")


def apply_v2(d: str, bio: dict) -> None:
    if bio.get("weight"):
        if os.path.exists(f"{d}/io.bfq.weight"):
            write(d, "io.bfq.weight", bio["weight"])
        else:
            write(d, "io.weight", f"default {weight_to_io(bio['weight'])}")
    for wd in bio.get("weightDevice") or ():
        if wd.get("weight"):
            write(d, "io.weight", f"{wd['major']}:{wd['minor']} {weight_to_io(wd['weight'])}")
    for key, (_, v2key) in _THROTTLE.items():
        for t in bio.get(key) or ():
            write(d, "io.max", f"{t['major']}:{t['minor']} {v2key}={t['rate'] or 'max'}")


def stats_v1(d: str, st: object) -> None:
    try:
        text = read(d, "blkio.throttle.io_service_bytes")
    except OSError:
        return
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[1] == "Read":
            st.io_read_bytes += int(parts[2])
        elif len(parts) == 3 and parts[1] == "Write":
            st.io_write_bytes += int(parts[2])


def stats_v2(d: str, st: object) -> None:
    try:
        text = read(d, "io.stat")
    except OSError:
        return
    for line in text.splitlines():
        fields = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        st.io_read_bytes += int(fields.get("rbytes", 0))
        st.io_write_bytes += int(fields.get("wbytes", 0))
