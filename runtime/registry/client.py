"""The registry client: pull, push, login, logout, search, tags (what `wharf pull` & co. and
LocalEngine.images call)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urljoin

from runtime.errors import InvalidArgument
from runtime.registry import credentials
from runtime.registry.pull import pull
from runtime.registry.push import push
from runtime.registry.transport import Session

__all__ = ["pull", "push", "login", "verify_login", "logout", "search", "list_tags", "server_domain"]


def server_domain(server: str | None) -> str:
    """`wharf login` argument -> registry domain: URL or host[:port]; default docker.io."""
    if not server:
        return "docker.io"
    s = server.split("://", 1)[-1].split("/", 1)[0].strip()
    if not s or any(c in s for c in " @"):
        raise InvalidArgument(f"invalid registry address {server!r}", hint="use HOST[:PORT], e.g. 127.0.0.1:5000")
    return "docker.io" if s in ("index.docker.io", "registry-1.docker.io") else s


def verify_login(server: str | None, user: str, password: str) -> str:
    """Check credentials against the registry (the /v2/ challenge flow) without storing them;
    returns the registry domain. (The Engine API's POST /auth.)"""
    if not user or not password:
        raise InvalidArgument("login needs a user name and a password", hint="use -u USER and -p/--password-stdin")
    domain = server_domain(server)
    session = Session(domain, creds=(user, password))
    try:
        session.fetch("GET", "/v2/", what="login")
    finally:
        session.close()
    return domain


def login(server: str | None, user: str, password: str) -> Path:
    """Check the credentials against the registry, then store them; returns the config.json path."""
    domain = verify_login(server, user, password)
    return credentials.store(domain, user, password)


def logout(server: str | None) -> bool:
    return credentials.erase(server_domain(server))


def _paged(session: Session, path: str, key: str, limit: int | None, scopes: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    url = f"{path}?n={min(limit or 1000, 1000)}"
    while url:
        resp, body = session.fetch("GET", url, scopes=scopes, what=path)
        try:
            out += json.loads(body).get(key) or []
        except (ValueError, AttributeError):
            raise InvalidArgument(f"registry {session.domain}: {path} did not return JSON") from None
        link = resp.getheader("Link")
        url = ""
        if link and 'rel="next"' in link and (limit is None or len(out) < limit):
            url = urljoin(path, link.split(";", 1)[0].strip().strip("<>"))
    return out[:limit] if limit else out


def list_tags(ref: str) -> list[str]:
    """Tags of the repository of `ref` (tags/list, following pagination)."""
    from runtime.images.reference import parse

    r = parse(ref)
    session = Session(r.domain, (f"repository:{r.path}:pull",))
    try:
        return _paged(session, f"/v2/{r.path}/tags/list", "tags", None, session.scopes)
    finally:
        session.close()


def search(term: str, limit: int = 25) -> list[str]:
    """Repositories whose name contains TERM's last part, from REGISTRY/TERM's catalog (/v2/_catalog)."""
    domain, sep, needle = term.partition("/")
    if not sep or not any(c in domain for c in ".:") and domain != "localhost":
        domain, needle = "docker.io", term
    session = Session(server_domain(domain))
    try:
        repos = _paged(session, "/v2/_catalog", "repositories", None, ("registry:catalog:*",))
    finally:
        session.close()
    return [f"{domain}/{r}" for r in repos if needle.lower() in r.lower()][:limit]

