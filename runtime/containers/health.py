"""Health checks, run by the container's shim (a thread of the supervisor) inside the container (CMD / CMD-SHELL), Docker's rules.

Probes run every `interval` (`start_interval` during `start_period`); a probe longer than
`timeout` is killed and fails; `retries` consecutive failures make the container
unhealthy; failures inside the start period do not count until it was healthy once.
The last 5 results are kept as {Start, End, ExitCode, Output}.
"""

from __future__ import annotations

import _signal as signal  # C module: the shim imports this
import os
import time

from runtime.containers import nsexec
from runtime.containers.logs import rfc3339

MAX_OUTPUT = 4096
KEEP = 5


class HealthChecker:
    def __init__(self, cfg: dict, shim) -> None:
        self.cfg = cfg
        self.shim = shim
        test = cfg["test"]
        self.argv = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
        self.probe = None  # reaper.Child of the running probe
        self.reset()

    def reset(self) -> None:
        self.stop()
        self.started = time.monotonic()
        self.state = {"status": "starting", "failing_streak": 0, "log": []}
        self.next_at = self.started + self._period()

    def _in_start_period(self) -> bool:
        return time.monotonic() - self.started < self.cfg.get("start_period", 0)

    def _period(self) -> float:
        if self._in_start_period() and self.cfg.get("start_period", 0) > 0:
            return self.cfg.get("start_interval", 5.0) or 5.0
        return self.cfg.get("interval", 30.0) or 30.0

    # ------------------------------------------------------------ poll-loop hooks
    def next_timeout(self) -> float:
        due = self.deadline if self.probe else self.next_at
        return max(0.0, due - time.monotonic())

    def fds(self) -> list[int]:
        return [self.out_r] if self.probe and self.out_r >= 0 else []

    def tick(self) -> None:
        now = time.monotonic()
        if self.probe:
            if now >= self.deadline and not self.timed_out:
                self.timed_out = True
                try:
                    os.kill(self.probe.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
            return
        if now >= self.next_at and self.shim.pid and self.shim.exited is None:
            self._launch()

    def on_readable(self, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        if not data:
            os.close(self.out_r)
            self.out_r = -1
            return
        if len(self.output) < MAX_OUTPUT:
            self.output += data[: MAX_OUTPUT - len(self.output)]

    def check_exit(self) -> None:
        """After a wake-up: record the probe's result if it has ended."""
        if self.probe is not None and self.probe.done.is_set():
            self.on_exit(self.probe.code)

    def on_exit(self, code: int) -> None:
        if self.out_r >= 0:
            os.set_blocking(self.out_r, False)
            while self.out_r >= 0:
                try:
                    self.on_readable(self.out_r)
                except BlockingIOError:
                    break
                if self.out_r >= 0 and not self._pending():
                    os.close(self.out_r)
                    self.out_r = -1
        self.probe = None
        self._record(code)

    def _pending(self) -> bool:
        import select

        return bool(select.select([self.out_r], [], [], 0)[0])

    def stop(self) -> None:
        if getattr(self, "probe", None) is not None:
            try:
                os.kill(self.probe.pid, signal.SIGTERM)
            except OSError:
                pass
            self.probe.wait()
            self.probe = None
        if getattr(self, "out_r", -1) >= 0:
            os.close(self.out_r)
        self.out_r = -1

    # ------------------------------------------------------------ probes
    def _launch(self) -> None:
        cfg = self.cfg
        self.out_r, out_w = os.pipe2(os.O_CLOEXEC)
        null = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.probe_started = time.time()
        self.output = b""
        self.timed_out = False
        self.probe = self.shim.sup.reaper.spawn(
            lambda: nsexec.spawn(self.shim.pid, self.argv, cfg.get("env", []), cfg["cgroup"],
                                 uid=cfg.get("uid", 0), gid=cfg.get("gid", 0), groups=cfg.get("groups", []),
                                 cwd=cfg.get("cwd", "/"), stdio=(null, out_w, out_w), term_kills=True,
                                 only_stdio=True),
            self.shim.wake)
        os.close(null)
        os.close(out_w)
        os.set_blocking(self.out_r, False)
        self.deadline = time.monotonic() + (cfg.get("timeout", 30.0) or 30.0)

    def _record(self, code: int) -> None:
        st = self.state
        out = self.output.decode("utf-8", "replace")
        if self.timed_out:
            code, out = -1, f"Health check exceeded timeout ({self.cfg.get('timeout', 30.0)}s)"
        st["log"] = (st["log"] + [{"Start": rfc3339(self.probe_started), "End": rfc3339(time.time()),
                                   "ExitCode": code, "Output": out}])[-KEEP:]
        old = st["status"]
        if code == 0:
            st["failing_streak"] = 0
            st["status"] = "healthy"
        elif not (self._in_start_period() and old == "starting"):
            st["failing_streak"] += 1
            if st["failing_streak"] >= self.cfg.get("retries", 3):
                st["status"] = "unhealthy"
        self.shim.update(health=dict(st))
        if st["status"] != old:
            self.shim.event(f"health_status: {st['status']}")
        self.next_at = time.monotonic() + self._period()
