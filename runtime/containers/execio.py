"""`wharf exec`: stdio plumbing around LocalContainers.exec_spawn (pipes or a fresh pty)."""

from __future__ import annotations

import os
import select
import signal
import sys


def _winsize(src: int, dst: int) -> None:
    import fcntl
    import termios

    try:
        data = fcntl.ioctl(src, termios.TIOCGWINSZ, b"\0" * 8)
        fcntl.ioctl(dst, termios.TIOCSWINSZ, data)
    except OSError:
        pass


def _status(pid: int) -> int:
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def run_exec(cs, ref: str, cmd: list[str], env: list[str], user: str, workdir: str, interactive: bool,
             tty: bool, detach: bool, privileged: bool = False) -> int:
    if detach:
        # The helper that waits for the command is a fork of this process: it keeps no fd but its
        # stdio, and that is /dev/null, or `wharf exec -d ... | cat` would wait for the command.
        null = os.open(os.devnull, os.O_RDWR)
        saved = [os.dup(fd) for fd in (0, 1, 2)]
        try:
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            cs.exec_spawn(ref, cmd, env, user, workdir, stdio=(0, 1, 2), privileged=privileged, only_stdio=True)
        finally:
            for fd, orig in enumerate(saved):
                os.dup2(orig, fd)
                os.close(orig)
            os.close(null)
        return 0
    if not tty:
        null = os.open(os.devnull, os.O_RDONLY)
        pid = cs.exec_spawn(ref, cmd, env, user, workdir, stdio=(0 if interactive else null, 1, 2),
                            privileged=privileged)
        os.close(null)
        return _status(pid)
    size = None
    if os.isatty(0):
        ts = os.get_terminal_size(0)
        size = (ts.lines, ts.columns)
    pid, master = cs.exec_spawn_pty(ref, cmd, env, user, workdir, size=size, privileged=privileged)
    saved = None
    if interactive and os.isatty(0):
        import termios
        import tty as ttymod

        saved = termios.tcgetattr(0)
        ttymod.setraw(0, termios.TCSANOW)
    old = signal.signal(signal.SIGWINCH, lambda *_: _winsize(0, master))
    out = sys.stdout.buffer
    try:
        fds = [master] + ([0] if interactive else [])
        while True:
            try:
                ready, _, _ = select.select(fds, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:
                    data = b""
                if not data:
                    break
                out.write(data)
                out.flush()
            if 0 in ready:
                data = os.read(0, 65536)
                if not data:
                    os.write(master, b"\x04")
                    fds.remove(0)
                else:
                    os.write(master, data)
    finally:
        signal.signal(signal.SIGWINCH, old)
        if saved is not None:
            import termios

            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
    return _status(pid)
