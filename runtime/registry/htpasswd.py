"""htpasswd files with bcrypt entries (as `htpasswd -B` writes them) for basic auth."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
from pathlib import Path

from runtime.errors import InvalidArgument, NotFound


class Htpasswd:
    """Checks `Authorization: Basic` headers; successful checks are cached (bcrypt is slow)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.users: dict[str, bytes] = {}
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            raise NotFound(f"htpasswd file {self.path} does not exist",
                           hint="create it with `htpasswd -Bbn USER PASSWORD > FILE`") from None
        for n, line in enumerate(lines, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, hashed = line.partition(":")
            if not sep or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
                raise InvalidArgument("only bcrypt entries (user:$2y$...) are supported", where=f"{self.path}:{n}",
                                      hint="create entries with `htpasswd -B`")
            self.users[user] = hashed.encode()
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def check(self, authorization: str | None) -> str | None:
        """The user name if the header carries valid credentials, else None."""
        if not authorization or not authorization[:6].lower() == "basic ":
            return None
        try:
            user, _, password = base64.b64decode(authorization[6:].strip(), validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return None
        hashed = self.users.get(user)
        if hashed is None:
            return None
        key = hashlib.sha256(hashed + b"\0" + password.encode()).digest()
        with self._lock:
            if key in self._ok:
                return user
        import bcrypt

        if not bcrypt.checkpw(password.encode(), hashed):
            return None
        with self._lock:
            self._ok.add(key)
        return user
