"""sethostname(2) / setdomainname(2) for a UTS namespace."""

from __future__ import annotations

from runtime.linux.libc import check, libc


def sethostname(name: str) -> None:
    b = name.encode()
    check(libc.sethostname(b, len(b)), f"sethostname({name!r})")


def setdomainname(name: str) -> None:
    b = name.encode()
    check(libc.setdomainname(b, len(b)), f"setdomainname({name!r})")
