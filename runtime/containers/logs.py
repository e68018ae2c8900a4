"""Docker's json-file log: one {"log","stream","time"} object per line, with rotation.

LogWriter runs in the shim (stdlib only); read_log / follow_log serve `wharf logs`.
"""

from __future__ import annotations

import os
import time

from runtime.containers.lean import encode_string

TYPE_CHECKING = False
if TYPE_CHECKING:  # the shim imports this module: no collections.abc at run time
    from collections.abc import Callable, Iterator

MAX_LINE = 16 * 1024


def rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1e9):09d}Z"


def _days_from_civil(y: int, m: int, d: int) -> int:
    """Days since 1970-01-01 (Howard Hinnant's algorithm; no calendar/_strptime import on the ps path)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_time(s: str) -> float:
    """RFC 3339 (with optional fraction, Z or +hh:mm) -> epoch seconds."""
    s = s.strip()
    off = 0
    if s.endswith("Z"):
        s = s[:-1]
    elif len(s) > 6 and s[-6] in "+-" and s[-3] == ":":
        sign = 1 if s[-6] == "+" else -1
        off = sign * (int(s[-5:-3]) * 3600 + int(s[-2:]) * 60)
        s = s[:-6]
    frac = 0.0
    if "." in s:
        s, f = s.split(".", 1)
        frac = float("0." + f) if f else 0.0
    date, _, clock = s.partition("T")
    try:
        y, mo, d = (int(x) for x in date.split("-"))
        h, mi, sec = (int(x) for x in (clock or "00:00:00").split(":"))
    except ValueError:
        raise ValueError(f"not an RFC 3339 time: {s!r}") from None
    if not (1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and sec < 61):
        raise ValueError(f"not an RFC 3339 time: {s!r}")
    return _days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec + frac - off


class LogWriter:
    def __init__(self, path: str, max_size: int = 0, max_file: int = 1) -> None:
        self.path = path
        self.max_size = max_size
        self.max_file = max(1, max_file)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size
        self.partial: dict[str, bytes] = {}

    def write(self, stream: str, data: bytes) -> None:
        buf = self.partial.pop(stream, b"") + data
        lines = buf.split(b"\n")
        rest = lines.pop()
        for line in lines:
            self._emit(stream, line + b"\n")
        while len(rest) >= MAX_LINE:
            self._emit(stream, rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        if rest:
            self.partial[stream] = rest

    def flush(self) -> None:
        for stream, rest in list(self.partial.items()):
            self._emit(stream, rest)
        self.partial.clear()

    def _emit(self, stream: str, line: bytes) -> None:
        rec = (f'{{"log":{encode_string(line.decode("utf-8", "replace"))},"stream":"{stream}",'
               f'"time":"{rfc3339(time.time())}"}}\n').encode()
        if self.max_size and self.size + len(rec) > self.max_size and self.size:
            self._rotate()
        os.write(self.fd, rec)
        self.size += len(rec)

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_file > 1:
            for i in range(self.max_file - 1, 0, -1):
                src = self.path if i == 1 else f"{self.path}.{i - 1}"
                if os.path.exists(src):
                    os.replace(src, f"{self.path}.{i}")
            flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC
        else:
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | os.O_CLOEXEC
        self.fd = os.open(self.path, flags, 0o640)
        self.size = 0

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


Entry = tuple[str, bytes, str]  # (stream, line, time)


def _parse(line: bytes) -> Entry | None:
    import json

    try:
        rec = json.loads(line)
        return rec["stream"], rec["log"].encode(), rec["time"]
    except (ValueError, KeyError, TypeError):
        return None


def _files(path: str) -> list[str]:
    rotated = []
    i = 1
    while os.path.exists(f"{path}.{i}"):
        rotated.append(f"{path}.{i}")
        i += 1
    return rotated[::-1] + ([path] if os.path.exists(path) else [])


def read_log(path: str, since: float | None = None, until: float | None = None,
             tail: int | None = None) -> list[Entry]:
    out: list[Entry] = []
    for name in _files(path):
        with open(name, "rb") as f:
            for raw in f:
                e = _parse(raw)
                if e is None:
                    continue
                if since is not None or until is not None:
                    t = parse_time(e[2])
                    if (since is not None and t < since) or (until is not None and t > until):
                        continue
                out.append(e)
    if tail is not None and tail >= 0:
        out = out[len(out) - tail:] if tail else []
    return out


def follow_log(path: str, running: Callable[[], bool], since: float | None = None,
               until: float | None = None, tail: int | None = None,
               interval: float = 0.05) -> Iterator[Entry]:
    """What read_log gives, then new lines as they are written, until `running()` is false."""
    yield from read_log(path, since, until, tail)
    try:
        f = open(path, "rb")  # noqa: SIM115 - kept open while following
    except FileNotFoundError:
        return
    f.seek(0, os.SEEK_END)
    ino = os.fstat(f.fileno()).st_ino
    buf = b""
    try:
        while True:
            chunk = f.read()
            if chunk:
                buf += chunk
                *lines, buf = buf.split(b"\n")
                for raw in lines:
                    e = _parse(raw)
                    if e is not None and (until is None or parse_time(e[2]) <= until):
                        yield e
                continue
            try:
                if os.stat(path).st_ino != ino:  # rotated: continue with the new file
                    f.close()
                    f = open(path, "rb")  # noqa: SIM115
                    ino = os.fstat(f.fileno()).st_ino
                    continue
            except FileNotFoundError:
                return
            if not running():
                chunk = f.read()
                if not chunk:
                    return
                buf += chunk
                continue
            time.sleep(interval)
    finally:
        f.close()
