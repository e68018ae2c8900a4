"""LocalEngine: the Engine protocol in-process (contract 4). Containers and volumes are ours;
images and networks are thin adapters over ImageStore / NetworkManager (their areas)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from runtime.containers.manager import LocalContainers
from runtime.engine import Event, Filters, VolumeInfo
from runtime.volumes.store import VolumeStore


class LocalVolumes:
    def __init__(self) -> None:
        self.store = VolumeStore()

    def create(self, name: str | None = None, driver: str = "local", labels: dict[str, str] | None = None,
               options: dict[str, str] | None = None) -> VolumeInfo:
        return self.store.create(name, driver, labels, options)

    def inspect(self, name: str) -> VolumeInfo:
        return self.store.inspect(name)

    def list(self, filters: Filters | None = None) -> list[VolumeInfo]:
        return self.store.list(filters)

    def remove(self, name: str, force: bool = False) -> None:
        self.store.remove(name, force)

    def prune(self, filters: Filters | None = None, all: bool = False) -> list[str]:
        return self.store.prune(all, filters)


class LocalEngine:
    def __init__(self) -> None:
        self.containers = LocalContainers()
        self.volumes = LocalVolumes()
        self._images = None
        self._networks = None

    @property
    def images(self):
        if self._images is None:
            from runtime.local_engine import LocalImages

            self._images = LocalImages()
        return self._images

    @property
    def networks(self):
        if self._networks is None:
            from runtime.local_engine import LocalNetworks

            self._networks = LocalNetworks(self)
        return self._networks

    def events(self, since: float | None = None, until: float | None = None,
               filters: Filters | None = None, follow: bool = True) -> Iterator[Event]:
        from runtime.containers.events import read_events

        return read_events(since, until, filters, follow=follow)

    def info(self) -> dict[str, Any]:
        from runtime.containers.sysinfo import info

        return info(self)
