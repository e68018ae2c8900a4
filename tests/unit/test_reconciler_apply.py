"""The executor and reconcile passes against an in-memory Engine (the protocol, not the
kernel): ordering, conditions, failure isolation, idempotence, saved plans, down."""

from __future__ import annotations

import itertools
import textwrap
import threading
import time
from pathlib import Path

import pytest

from reconciler import reconcile as R
from runtime.engine import (
    ContainerInfo,
    ContainerState,
    EndpointInfo,
    HealthState,
    ImageInfo,
    NetworkInfo,
    VolumeInfo,
)
from runtime.errors import Conflict, NotFound, RuntimeFailure


@pytest.fixture(autouse=True)
def private_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """apply/down take the project lock under WHARF_RUN: a private one per test."""
    monkeypatch.setenv("WHARF_RUN", str(tmp_path / "run"))


def _match(labels: dict[str, str], filters) -> bool:
    for f in (filters or {}).get("label", []):
        k, _, v = f.partition("=")
        if labels.get(k) != v:
            return False
    return True


class FakeContainers:
    def __init__(self, engine: FakeEngine) -> None:
        self.e = engine
        self.items: dict[str, ContainerInfo] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()
        self.log: list[str] = []

    def _get(self, ref: str) -> ContainerInfo:
        for c in self.items.values():
            if ref in (c.id, c.name):
                return c
        raise NotFound(f"no container {ref}")

    def create(self, spec):
        with self.lock:
            if any(c.name == spec.name for c in self.items.values()):
                raise Conflict(f"name {spec.name} in use")
            image = self.e.images.inspect(spec.image)
            cid = f"c{next(self.ids)}"
            nets = {n: EndpointInfo(n) for n in spec.networks}
            info = ContainerInfo(cid, spec.name, spec.image, image.id, "now", spec, ContainerState("created"),
                                 networks=nets)
            self.items[cid] = info
            self.log.append(f"create {spec.name}")
            return info

    def start(self, ref):
        c = self._get(ref)
        self.log.append(f"start {c.name}")
        if c.spec.command == ["true"]:
            c.state = ContainerState("exited", exit_code=0)
        elif c.spec.command == ["false"]:
            c.state = ContainerState("exited", exit_code=1)
        else:
            health = HealthState("healthy") if c.spec.healthcheck else None
            c.state = ContainerState("running", health=health)

    def stop(self, ref, timeout=None):
        c = self._get(ref)
        if c.state.status == "running":
            c.state = ContainerState("exited", exit_code=143)

    def remove(self, ref, force=False, volumes=False):
        c = self._get(ref)
        self.log.append(f"remove {c.name}")
        del self.items[c.id]

    def rename(self, ref, new_name):
        c = self._get(ref)
        self.log.append(f"rename {c.name} {new_name}")
        c.name = new_name

    def inspect(self, ref):
        return self._get(ref)

    def list(self, all=False, filters=None):
        return [c for c in list(self.items.values()) if _match(c.labels, filters)]

    def logs(self, ref, follow=False, tail=None, timestamps=False, **kw):
        c = self._get(ref)
        yield from [("stdout", f"line {i} of {c.name}\n".encode()) for i in (1, 2)]


class FakeImages:
    def __init__(self) -> None:
        self.items: dict[str, ImageInfo] = {}
        self.fail: set[str] = set()
        self.pulls: list[str] = []

    def inspect(self, ref):
        if ref not in self.items:
            raise NotFound(f"no image {ref}")
        return self.items[ref]

    def pull(self, ref, platform=None, progress=None):
        self.pulls.append(ref)
        if ref in self.fail:
            raise RuntimeFailure(f"cannot reach the registry for {ref}")
        self.items[ref] = ImageInfo("sha256:" + format(abs(hash(ref)), "x").rjust(64, "0"), [ref])
        return self.items[ref]

    def build(self, context, dockerfile="Dockerfile", tags=None, **kw):
        for t in tags or []:
            self.items[t] = ImageInfo("sha256:" + "b" * 64, [t])
        return self.items[tags[0]]


class FakeNetworks:
    def __init__(self, engine: FakeEngine) -> None:
        self.e = engine
        self.items: dict[str, NetworkInfo] = {}

    def create(self, spec):
        if spec.name in self.items:
            raise Conflict(f"network {spec.name} exists")
        self.items[spec.name] = NetworkInfo("n" + spec.name, spec.name, spec.driver, "", "", labels=spec.labels)
        return self.items[spec.name]

    def inspect(self, ref):
        if ref not in self.items:
            raise NotFound(ref)
        return self.items[ref]

    def list(self, filters=None):
        return [n for n in self.items.values() if _match(n.labels, filters)]

    def remove(self, ref):
        self.inspect(ref)
        del self.items[ref]

    def connect(self, network, container, endpoint=None):
        self.e.containers._get(container).networks[network] = EndpointInfo(network)


class FakeVolumes:
    def __init__(self) -> None:
        self.items: dict[str, VolumeInfo] = {}

    def create(self, name=None, driver="local", labels=None, options=None):
        self.items[name] = VolumeInfo(name, driver, labels=labels or {})
        return self.items[name]

    def inspect(self, name):
        if name not in self.items:
            raise NotFound(name)
        return self.items[name]

    def list(self, filters=None):
        return [v for v in self.items.values() if _match(v.labels, filters)]

    def remove(self, name, force=False):
        self.inspect(name)
        del self.items[name]


class FakeEngine:
    def __init__(self) -> None:
        self.containers = FakeContainers(self)
        self.images = FakeImages()
        self.networks = FakeNetworks(self)
        self.volumes = FakeVolumes()


STACK = """
name: t
services:
  db:
    image: busybox
    command: ["sleep", "1000"]
    healthcheck: {test: ["CMD", "true"], interval: 1s}
    volumes: [data:/data]
  init:
    image: busybox
    command: ["true"]
  web:
    image: busybox
    command: ["httpd", "-f"]
    depends_on:
      db: {condition: service_healthy}
      init: {condition: service_completed_successfully}
    scale: 2
  side:
    image: other
    command: ["sleep", "1"]
volumes:
  data: {}
"""


def target(tmp_path: Path, text: str = STACK) -> R.Target:
    from reconciler.spec import load_project

    f = tmp_path / "compose.yaml"
    f.write_text(textwrap.dedent(text))
    return R.Target.from_loaded(load_project([str(f)], environ={}))


def names(engine: FakeEngine) -> list[str]:
    return sorted(c.name for c in engine.containers.items.values())


def test_apply_from_scratch_then_noop(tmp_path: Path) -> None:
    e = FakeEngine()
    t = target(tmp_path)
    p, res = R.apply(e, t, timeout=5)
    assert res.ok, res.error_summary()
    assert names(e) == ["t-db-1", "t-init-1", "t-side-1", "t-web-1", "t-web-2"]
    assert set(e.networks.items) == {"t_default"} and set(e.volumes.items) == {"t_data"}
    log = e.containers.log
    assert log.index("start t-db-1") < log.index("create t-web-1")
    assert log.index("start t-init-1") < log.index("create t-web-2")
    p2, res2 = R.apply(e, target(tmp_path), timeout=5)
    assert p2.empty and res2.ok and not res2.done


def test_failure_is_isolated(tmp_path: Path) -> None:
    e = FakeEngine()
    e.images.fail.add("other:latest")
    p, res = R.apply(e, target(tmp_path), timeout=5)
    assert [(op.resource, "registry" in err) for op, err in res.failed] == [("image:other:latest", True)]
    assert [op.resource for op, _ in res.skipped] == ["container:side:1"]
    assert "t-web-2" in names(e) and "t-side-1" not in names(e)
    e.images.fail.clear()
    p2, res2 = R.apply(e, target(tmp_path), timeout=5)
    assert res2.ok and [op.resource for op in p2.operations] == ["image:other:latest", "container:side:1"]


def test_failed_dependency_condition(tmp_path: Path) -> None:
    e = FakeEngine()
    p, res = R.apply(e, target(tmp_path, STACK.replace('command: ["true"]', 'command: ["false"]')), timeout=5)
    failed = {op.resource: err for op, err in res.failed}
    assert set(failed) == {"container:web:1", "container:web:2"}
    assert "t-init-1 exited with code 1" in failed["container:web:1"]


def test_drift_heals_and_recreate_keeps_name(tmp_path: Path) -> None:
    e = FakeEngine()
    R.apply(e, target(tmp_path), timeout=5)
    e.containers.stop("t-db-1")
    e.containers.remove("t-web-1")
    p, res = R.apply(e, target(tmp_path), timeout=5)
    assert res.ok and [op.line() for op in p.operations] == [
        "~ start container:db:1 (drift: exited (143))", "+ create container:web:1 (drift: removed)"]
    old = e.containers.inspect("t-db-1").id
    p, res = R.apply(e, target(tmp_path, STACK.replace('"1000"]', '"2000"]')), timeout=5)
    assert [op.line() for op in p.operations] == ["-/+ recreate container:db:1 (because: command changed)"]
    new = e.containers.inspect("t-db-1")
    assert new.id != old and new.state.status == "running"
    assert e.containers.log[-4:] == ["create t-db-1-wharf-new", "remove t-db-1", "rename t-db-1-wharf-new t-db-1",
                                     "start t-db-1"]


def test_saved_plan_refuses_when_state_moved(tmp_path: Path) -> None:
    e = FakeEngine()
    t = target(tmp_path)
    p, _ = R.diff(e, t)
    R.save_plan(str(tmp_path / "plan.json"), p, t)
    saved, t2 = R.load_plan(str(tmp_path / "plan.json"))
    assert saved.text() == p.text()
    e.networks.create(t.desired.networks["default"].spec)  # somebody else acted meanwhile
    with pytest.raises(Conflict):
        R.apply(e, t2, saved=saved, timeout=5)
    e.networks.remove("t_default")
    _, res = R.apply(e, t2, saved=saved, timeout=5)
    assert res.ok and R.diff(e, t)[0].empty


def test_scale_down_and_down(tmp_path: Path) -> None:
    e = FakeEngine()
    R.apply(e, target(tmp_path), timeout=5)
    p, res = R.apply(e, target(tmp_path, STACK.replace("scale: 2", "scale: 1")), timeout=5)
    assert [op.line() for op in p.operations] == ["- remove container:web:2 (scale 2 -> 1)"]
    res = R.down(e, target(tmp_path).desired)
    assert res.ok and names(e) == [] and e.networks.items == {} and set(e.volumes.items) == {"t_data"}
    R.apply(e, target(tmp_path), timeout=5)
    R.down(e, target(tmp_path).desired, volumes=True)
    assert e.volumes.items == {}


def test_orphans_only_with_prune(tmp_path: Path) -> None:
    e = FakeEngine()
    R.apply(e, target(tmp_path), timeout=5)
    smaller = STACK.replace("  side:\n    image: other\n    command: [\"sleep\", \"1\"]\n", "")
    p, res = R.apply(e, target(tmp_path, smaller), timeout=5)
    assert p.empty and any("t-side-1" in w for w in p.warnings)
    p, res = R.apply(e, target(tmp_path, smaller), prune=True, timeout=5)
    assert [op.line() for op in p.operations] == ["- remove container:t-side-1 (orphan: service not in the spec)"]
    assert "t-side-1" not in names(e)


def test_stack_logs_prefixes_every_replica(tmp_path: Path) -> None:
    import io

    from reconciler.logs import service_logs

    e = FakeEngine()
    t = target(tmp_path)
    R.apply(e, t, timeout=5)
    buf = io.StringIO()
    service_logs(e, t.desired, ["web"], out=buf)
    assert buf.getvalue().splitlines() == [
        "web-1 | line 1 of t-web-1", "web-1 | line 2 of t-web-1",
        "web-2 | line 1 of t-web-2", "web-2 | line 2 of t-web-2"]
    with pytest.raises(NotFound):
        service_logs(e, t.desired, ["nope"], out=buf)


def test_ctrl_c_starts_nothing_more_and_lets_the_running_operation_finish(tmp_path: Path) -> None:
    from reconciler.apply import NullReporter

    e = FakeEngine()
    real_create = e.containers.create
    under_way = threading.Event()

    def create(spec):  # the first create is under way when Ctrl-C comes
        under_way.set()
        time.sleep(0.3)
        return real_create(spec)

    class CtrlC(NullReporter):  # Ctrl-C in the main thread as it schedules the third container
        def start(self, op):
            if op.resource == "container:s2:1":
                under_way.wait(5)
                raise KeyboardInterrupt

    e.containers.create = create
    t = target(tmp_path, "name: i\nservices:\n" + "".join(
        f"  s{i}:\n    image: busybox\n    command: [sleep, '1']\n" for i in range(4)))
    with pytest.raises(KeyboardInterrupt):
        R.apply(e, t, timeout=5, workers=1, reporter=CtrlC())
    assert names(e) == ["i-s0-1"]  # s0 finished (created and started); s1, queued, never ran
    assert e.containers.log == ["create i-s0-1", "start i-s0-1"]
    p, res = R.apply(e, t, timeout=5)
    assert res.ok and len(e.containers.items) == 4


def test_project_lock_serialises_apply_and_down(tmp_path: Path) -> None:
    from reconciler.lock import project_lock

    e = FakeEngine()
    t = target(tmp_path)
    R.apply(e, t, timeout=5)
    order: list[str] = []
    with project_lock("t"):
        th = threading.Thread(target=lambda: (R.down(e, t.desired, timeout=0), order.append("down")))
        th.start()
        th.join(0.3)
        order.append("released")
    th.join(10)
    assert order == ["released", "down"] and names(e) == []
