"""cpu: shares/weight, CFS quota/period, realtime; cpuacct usage and throttling stats."""

from __future__ import annotations

from runtime.linux.cgroups.fs import read_int, read_keyed, write


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares [2, 262144] -> v2 cpu.weight [1, 10000] (the conversion runc and crun use)."""
    return 1 + ((shares - 2) * 9999) // 262142


def apply_v1(d: str, cpu: dict) -> None:
    if cpu.get("shares"):
        write(d, "cpu.shares", cpu["shares"])
    if cpu.get("period"):
        write(d, "cpu.cfs_period_us", cpu["period"])
    if cpu.get("quota") is not None and cpu["quota"] != 0:
        write(d, "cpu.cfs_quota_us", cpu["quota"])
    if cpu.get("burst") is not None:
        write(d, "cpu.cfs_burst_us", cpu["burst"])
    if cpu.get("realtimePeriod"):
        write(d, "cpu.rt_period_us", cpu["realtimePeriod"])
    if cpu.get("realtimeRuntime"):
        write(d, "cpu.rt_runtime_us", cpu["realtimeRuntime"])


def apply_v2(d: str, cpu: dict) -> None:
    if cpu.get("shares"):
        write(d, "cpu.weight", shares_to_weight(cpu["shares"]))
    quota, period = cpu.get("quota"), cpu.get("period")
    if quota or period:
        q = "max" if quota is None or quota <= 0 else str(quota)
        write(d, "cpu.max", f"{q} {period}" if period else q)
    if cpu.get("burst") is not None:
        write(d, "cpu.max.burst", cpu["burst"])
    if cpu.get("idle") is not None:
        write(d, "cpu.idle", cpu["idle"])
    if cpu.get("realtimeRuntime") or cpu.get("realtimePeriod"):
        raise ValueError("linux.resources.cpu.realtime* are not supported on cgroup v2")


def stats_v1(cpu_dir: str | None, acct_dir: str | None, st: object) -> None:
    if acct_dir:
        st.cpu_usage_ns = read_int(acct_dir, "cpuacct.usage")
        st.cpu_user_ns = read_int(acct_dir, "cpuacct.usage_user")
        st.cpu_system_ns = read_int(acct_dir, "cpuacct.usage_sys")
    if cpu_dir:
        s = read_keyed(cpu_dir, "cpu.stat")
        st.cpu_periods = s.get("nr_periods", 0)
        st.cpu_throttled_periods = s.get("nr_throttled", 0)
        st.cpu_throttled_ns = s.get("throttled_time", 0)


def stats_v2(d: str, st: object) -> None:
    s = read_keyed(d, "cpu.stat")
    st.cpu_usage_ns = s.get("usage_usec", 0) * 1000
    st.cpu_user_ns = s.get("user_usec", 0) * 1000
    st.cpu_system_ns = s.get("system_usec", 0) * 1000
    st.cpu_periods = s.get("nr_periods", 0)
    st.cpu_throttled_periods = s.get("nr_throttled", 0)
    st.cpu_throttled_ns = s.get("throttled_usec", 0) * 1000
