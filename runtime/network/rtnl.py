"""pyroute2, loaded lazily and cheaply, and running netlink work inside a netns (a thread that setns()).

`import pyroute2` runs its package __init__, which pulls in ndb/ipdb/conntrack (~0.4 s).
We only need IPRoute, so the package is registered as a bare namespace first and only
`pyroute2.iproute.linux` is imported (~0.13 s). Anyone asking the bare package for a name
it does not hold later gets the real __init__ executed on demand.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import types
from collections.abc import Callable
from typing import Any, TypeVar

from runtime.network.netlink import Netlink

T = TypeVar("T")


def _bare_package() -> None:
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.submodule_search_locations is None:
        return
    mod = types.ModuleType("pyroute2")
    mod.__path__ = list(spec.submodule_search_locations)
    mod.__spec__ = spec
    mod.__file__ = spec.origin

    def _full(name: str) -> Any:  # someone wants the real package API: run its __init__ now
        if name.startswith("__"):
            raise AttributeError(name)
        if importlib.util.find_spec(f"pyroute2.{name}") is not None:  # a submodule: no need for __init__
            return importlib.import_module(f"pyroute2.{name}")
        del mod.__getattr__
        spec.loader.exec_module(mod)  # type: ignore[union-attr]
        return getattr(mod, name)

    mod.__getattr__ = _full  # type: ignore[method-assign]
    sys.modules["pyroute2"] = mod


def iproute() -> Any:
    """A new pyroute2 IPRoute bound to the calling thread's network namespace (close it)."""
    _bare_package()
    from pyroute2.iproute.linux import IPRoute

    return IPRoute()


def in_netns(path: str, fn: Callable[[Any], T]) -> T:
    """Run fn(nl) with a netlink.Netlink in a thread that joined the netns at `path` (setns only moves
    that thread)."""
    from runtime.linux.ns import CLONE_NEWNET, setns

    box: dict[str, Any] = {}

    def run() -> None:
        try:
            setns(path, CLONE_NEWNET)
            with Netlink() as nl:
                box["value"] = fn(nl)
        except BaseException as e:  # handed to the caller's thread
            box["error"] = e

    t = threading.Thread(target=run, name="wharf-netns")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def new_netns_thread(path: str, setup: Callable[[Any], None]) -> None:
    """Create a network namespace, bind-mount it on `path` (an existing empty file), run setup(nl) in it."""
    from runtime.linux.mount import MS_BIND, mount
    from runtime.linux.ns import CLONE_NEWNET, unshare

    box: dict[str, BaseException] = {}

    def run() -> None:
        try:
            unshare(CLONE_NEWNET)
            mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, MS_BIND)
            with Netlink() as nl:
                setup(nl)
        except BaseException as e:
            box["error"] = e

    t = threading.Thread(target=run, name="wharf-newnetns")
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]


def sysctl_write(key: str, value: str) -> None:
    """Set /proc/sys/<key with dots as slashes> (only if it differs: writes are not free)."""
    path = "/proc/sys/" + key.replace(".", "/")
    try:
        with open(path) as f:
            if f.read().strip() == value:
                return
    except FileNotFoundError:
        return
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
