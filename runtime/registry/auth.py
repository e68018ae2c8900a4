"""The registry auth flow: a 401 carries `WWW-Authenticate`; answer it with Basic credentials,
or fetch a Bearer token from the realm it names (Docker Hub, distribution's token auth)."""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from urllib.parse import urlencode, urlsplit

from runtime.errors import InvalidArgument, RuntimeFailure

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))\s*,?')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """'Bearer realm="x",service="y"' -> ("bearer", {"realm": "x", "service": "y"})."""
    scheme, _, rest = header.strip().partition(" ")
    params = {}
    for m in _PARAM.finditer(rest):
        params[m.group(1).lower()] = m.group(2).replace('\\"', '"') if m.group(2) is not None else m.group(3)
    return scheme.lower(), params


def unauthorized(domain: str, why: str, creds: bool) -> InvalidArgument:
    hint = (f"check the user name and password (`wharf login {domain}`)" if creds
            else f"log in first: `wharf login {domain}`")
    return InvalidArgument(f"registry {domain}: unauthorized: {why}", hint=hint)


class Authenticator:
    """Per-registry auth state: the scheme the registry asked for and cached bearer tokens."""

    def __init__(self, domain: str, creds: tuple[str, str] | None, insecure: bool = False) -> None:
        self.domain = domain
        self.creds = creds
        self.insecure = insecure
        self.scheme: str | None = None
        self.params: dict[str, str] = {}
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def header(self, scopes: tuple[str, ...]) -> str | None:
        if self.scheme == "basic" and self.creds:
            return "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
        if self.scheme == "bearer":
            with self._lock:
                tok = self._tokens.get(" ".join(scopes))
            if tok and tok[1] > time.monotonic():
                return f"Bearer {tok[0]}"
            return f"Bearer {self._fetch_token(scopes)}"
        return None

    def challenge(self, header: str | None, scopes: tuple[str, ...], sent: str | None) -> None:
        """Take a 401's challenge; raises when retrying cannot help."""
        if not header:
            raise unauthorized(self.domain, "the registry sent no WWW-Authenticate challenge", bool(self.creds))
        scheme, params = parse_challenge(header)
        if scheme == "basic":
            if not self.creds or (sent or "").startswith("Basic "):
                raise unauthorized(self.domain, "authentication required" if not self.creds
                                   else "incorrect user name or password", bool(self.creds))
        elif scheme == "bearer":
            if not params.get("realm"):
                raise unauthorized(self.domain, "bearer challenge without a realm", bool(self.creds))
            if (sent or "").startswith("Bearer ") and params.get("error") != "invalid_token":
                raise unauthorized(self.domain, params.get("error_description") or params.get("error")
                                   or "access denied for " + " ".join(scopes), bool(self.creds))
            with self._lock:
                self._tokens.pop(" ".join(scopes), None)
        else:
            raise unauthorized(self.domain, f"unsupported auth scheme {scheme!r}", bool(self.creds))
        self.scheme, self.params = scheme, params

    def _fetch_token(self, scopes: tuple[str, ...]) -> str:
        from runtime.registry.transport import one_shot

        query = [("service", self.params["service"])] if self.params.get("service") else []
        query += [("scope", s) for s in scopes]
        url = self.params["realm"] + ("&" if "?" in self.params["realm"] else "?") + urlencode(query)
        headers = {}
        if self.creds:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.creds).encode()).decode()
        status, body = one_shot("GET", url, headers, insecure=self.insecure)
        if status in (401, 403):
            raise unauthorized(self.domain, "the token server refused the credentials" if self.creds
                               else "the token server refused anonymous access", bool(self.creds))
        if status != 200:
            raise RuntimeFailure(f"registry {self.domain}: token server {urlsplit(url).netloc} answered {status}")
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc["access_token"]
        except (ValueError, KeyError, AttributeError):
            raise RuntimeFailure(f"registry {self.domain}: the token server's answer has no token") from None
        ttl = max(int(doc.get("expires_in") or 60) - 10, 10)
        with self._lock:
            self._tokens[" ".join(scopes)] = (token, time.monotonic() + ttl)
        return token
