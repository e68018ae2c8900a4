"""The supervisor's one reaper (runtime/containers/reaper.py) with real child processes.

Each scenario runs in a forked process of its own: waitpid(-1) must not reap the test runner's children."""

from __future__ import annotations

import os
import signal
import time

from runtime.containers.reaper import Reaper


def reap_until(reaper: Reaper, pred, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "condition not met in time"
        reaper.reap()
        time.sleep(0.005)


def exiting(code: int) -> int:
    pid = os.fork()
    if pid == 0:
        os._exit(code)
    return pid


def sleeper() -> int:
    pid = os.fork()
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    return pid


def isolated(scenario):
    """Run scenario() in a forked child; its assertion errors come back here."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        msg = b""
        try:
            scenario()
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            import traceback

            msg = "".join(traceback.format_exception(e)).encode() or b"failed"
        os.write(w, msg)
        os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read()
    os.waitpid(pid, 0)
    assert not msg, msg.decode()


def test_spawned_children_get_their_own_status_and_notify():
    isolated(_spawned_children_get_their_own_status_and_notify)


def _spawned_children_get_their_own_status_and_notify():
    reaper = Reaper()
    told = []
    a = reaper.spawn(lambda: exiting(3), notify=lambda: told.append("a"))
    b = reaper.spawn(lambda: exiting(0))
    reap_until(reaper, lambda: a.done.is_set() and b.done.is_set())
    assert (a.code, b.code, told) == (3, 0, ["a"])


def test_a_signal_death_reads_as_128_plus_n():
    isolated(_a_signal_death_reads_as_128_plus_n)


def _a_signal_death_reads_as_128_plus_n():
    reaper = Reaper()
    c = reaper.spawn(sleeper)
    os.kill(c.pid, signal.SIGKILL)
    reap_until(reaper, c.done.is_set)
    assert c.code == 137


def test_a_status_reaped_before_its_watcher_came_is_kept_for_it():
    isolated(_a_status_reaped_before_its_watcher_came_is_kept_for_it)


def _a_status_reaped_before_its_watcher_came_is_kept_for_it():
    reaper = Reaper()
    pid = exiting(5)  # not registered: like a container's init that died before its pid file was read
    reap_until(reaper, lambda: pid in reaper.unclaimed)
    c = reaper.watch(pid)
    assert c.done.is_set() and c.code == 5 and pid not in reaper.unclaimed


def test_a_kept_status_of_a_reused_pid_is_not_handed_to_the_new_process():
    isolated(_a_kept_status_of_a_reused_pid_is_not_handed_to_the_new_process)


def _a_kept_status_of_a_reused_pid_is_not_handed_to_the_new_process():
    reaper = Reaper()
    live = sleeper()
    reaper.unclaimed[live] = (9, time.monotonic())  # an earlier process with the same pid
    c = reaper.watch(live)
    assert not c.done.is_set()  # the pid is a live child of ours: that status was not its
    os.kill(live, signal.SIGKILL)
    reap_until(reaper, c.done.is_set)
    assert c.code == 137


def test_unknown_statuses_are_dropped_after_a_while():
    reaper = Reaper()
    reaper.unclaimed[123456] = (0, time.monotonic() - 3600)
    reaper.prune()
    assert reaper.unclaimed == {}
