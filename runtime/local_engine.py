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


def _image_info(img) -> Any:
    from runtime.engine import ImageInfo

    cfg = img.config or {}
    inner = cfg.get("config") or {}
    return ImageInfo(id=img.id, repo_tags=list(img.repo_tags), repo_digests=list(img.repo_digests),
                     created=img.created, size=img.size, config=inner, labels=inner.get("Labels") or {},
                     architecture=cfg.get("architecture", "amd64"), os=cfg.get("os", "linux"))


class LocalImages:
    """Engine.images over the ImageStore (contract 2), registry client (5) and builder (6)."""

    def __init__(self) -> None:
        from runtime.images.store import ImageStore

        self.store = ImageStore()

    def pull(self, ref: str, platform: str | None = None, progress=None):
        from runtime.registry.client import pull

        return _image_info(pull(self.store, ref, platform=platform, progress=progress))

    def push(self, ref: str, progress=None) -> None:
        from runtime.registry.client import push

        push(self.store, ref, progress=progress)

    def build(self, context: str, dockerfile: str = "Dockerfile", tags=None, build_args=None, target=None,
              labels=None, no_cache: bool = False, progress=None):
        from pathlib import Path

        from runtime.build.builder import build

        img = build(self, Path(context), dockerfile=dockerfile, tags=tags or [], build_args=build_args or {},
                    target=target, labels=labels or {}, no_cache=no_cache,
                    progress=(lambda line: progress({"stream": line})) if progress else (lambda *_: None))
        return _image_info(img)

    def inspect(self, ref: str):
        return _image_info(self.store.resolve(ref))

    def list(self, all: bool = False, filters: Filters | None = None):
        from runtime.util.labels import match_labels

        out = [_image_info(i) for i in self.store.list()]
        if filters and filters.get("label"):
            out = [i for i in out if match_labels(i.labels, filters["label"])]
        if filters and filters.get("reference"):
            out = [i for i in out if any(any(r.startswith(w) for r in i.repo_tags) for w in filters["reference"])]
        return out

    def tag(self, ref: str, new_ref: str) -> None:
        self.store.tag(ref, new_ref)

    def remove(self, ref: str, force: bool = False) -> list[str]:
        return self.store.remove(ref, force=force)


class LocalNetworks:
    """Engine.networks over the NetworkManager (contract 3)."""

    def __init__(self, engine: LocalEngine) -> None:
        from runtime.network.manager import NetworkManager

        self.nm = NetworkManager()
        self.engine = engine

    def create(self, spec):
        return self.nm.create(spec)

    def inspect(self, ref: str):
        return self.nm.inspect(ref)

    def list(self, filters: Filters | None = None):
        return self.nm.list(filters)

    def remove(self, ref: str) -> None:
        self.nm.remove(ref)

    def prune(self):
        return self.nm.prune()

    def connect(self, network: str, container: str, endpoint=None) -> None:
        from runtime.engine import EndpointSpec
        from runtime.errors import Conflict

        info = self.engine.containers.inspect(container)
        rec = self.engine.containers.record(info.id)
        if network == "bridge":
            self.nm.ensure_default()
        if not rec.get("netns"):
            raise Conflict(f"container {container} has no network namespace of its own",
                           hint="only running containers on bridge networks can be connected")
        ep = self.nm.attach(info.id, rec["netns"], network, endpoint or EndpointSpec(), info.name,
                            info.spec.hostname or info.id[:12])
        self.engine.containers.record_network(info.id, network, ep)

    def disconnect(self, network: str, container: str, force: bool = False) -> None:
        info = self.engine.containers.inspect(container)
        self.nm.detach(info.id, network)
        self.engine.containers.record_network(info.id, network, None)
