"""Execute a Plan against an Engine: one small function per operation kind, run
concurrently along the dependency graph, honouring depends_on conditions. A failed
operation skips what depends on it and nothing else; the result says what failed."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from runtime.engine import EndpointSpec, NetworkSpec
from runtime.errors import Conflict, NotFound, RuntimeFailure, WharfError

from . import labels as L
from .desired import Desired, DesiredService
from .plan import Operation, Plan

POLL = 0.1
TEMP_SUFFIX = "-wharf-new"


class Reporter(Protocol):
    def start(self, op: Operation) -> None: ...
    def done(self, op: Operation, seconds: float) -> None: ...
    def fail(self, op: Operation, error: str) -> None: ...
    def skip(self, op: Operation, reason: str) -> None: ...


class NullReporter:
    def start(self, op: Operation) -> None: ...
    def done(self, op: Operation, seconds: float) -> None: ...
    def fail(self, op: Operation, error: str) -> None: ...
    def skip(self, op: Operation, reason: str) -> None: ...


@dataclass
class ApplyResult:
    done: list[Operation] = field(default_factory=list)
    failed: list[tuple[Operation, str]] = field(default_factory=list)
    skipped: list[tuple[Operation, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed and not self.skipped

    def error_summary(self) -> str:
        lines = [f"{op.resource}: {op.kind} failed: {err}" for op, err in self.failed]
        lines += [f"{op.resource}: {op.kind} skipped: {why}" for op, why in self.skipped]
        return "\n  ".join(lines)


class Executor:
    def __init__(self, engine: Any, desired: Desired, project_dir: str | Path = ".", timeout: float = 300.0,
                 reporter: Reporter | None = None, workers: int = 4, stop_timeout: int | None = None) -> None:
        self.engine, self.d = engine, desired
        self.project_dir = Path(project_dir)
        self.timeout = timeout
        self.reporter = reporter or NullReporter()
        self.workers = max(1, workers)
        self.stop_timeout = stop_timeout  # overrides the services' stop_grace_period (down -t)
        self.deadline = 0.0

    # ------------------------------------------------------------ the graph

    def run(self, plan: Plan) -> ApplyResult:
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait  # not on a no-op's path

        self.deadline = time.monotonic() + self.timeout
        ops = list(plan.operations)
        result = ApplyResult()
        by_resource: dict[str, list[int]] = {}
        for i, op in enumerate(ops):
            by_resource.setdefault(op.resource.split("@")[0], []).append(i)
        deps: dict[int, set[int]] = {}
        last_of_replica: dict[tuple[str, int], int] = {}
        for i, op in enumerate(ops):
            deps[i] = {j for r in op.depends_on for j in by_resource.get(r, []) if j != i and j < i}
            if op.replica and op.service:  # one replica's operations run in plan order
                key = (op.service, op.replica)
                if key in last_of_replica:
                    deps[i].add(last_of_replica[key])
                last_of_replica[key] = i
        state: dict[int, str] = {}  # pending | running | done | failed | skipped
        errors: dict[int, str] = {}
        futures: dict[Any, int] = {}
        pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="wharf-apply")
        try:
            while True:
                for i, op in enumerate(ops):
                    if i in state:
                        continue
                    bad = [j for j in deps[i] if state.get(j) in ("failed", "skipped")]
                    if bad:
                        why = f"{ops[bad[0]].resource} {'failed' if state[bad[0]] == 'failed' else 'was skipped'}"
                        state[i] = "skipped"
                        result.skipped.append((op, why))
                        self.reporter.skip(op, why)
                    elif all(state.get(j) == "done" for j in deps[i]):
                        state[i] = "running"
                        self.reporter.start(op)
                        futures[pool.submit(self._timed, op)] = i
                if not futures:
                    break
                finished, _ = wait(list(futures), return_when=FIRST_COMPLETED)
                for f in finished:
                    i = futures.pop(f)
                    try:
                        seconds = f.result()
                    except WharfError as e:
                        state[i], errors[i] = "failed", str(e)
                    except Exception as e:  # an engine bug must not leave the rest undone
                        state[i], errors[i] = "failed", f"{type(e).__name__}: {e}"
                    else:
                        state[i] = "done"
                        result.done.append(ops[i])
                        self.reporter.done(ops[i], seconds)
                        continue
                    result.failed.append((ops[i], errors[i]))
                    self.reporter.fail(ops[i], errors[i])
        except KeyboardInterrupt:
            # Ctrl-C: start nothing more, let the operations under way finish (an operation is
            # never left half done by us), then stop
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)
        return result

    def _timed(self, op: Operation) -> float:
        t0 = time.monotonic()
        getattr(self, "_op_" + op.kind.replace("-", "_"))(op)
        return time.monotonic() - t0

    # ------------------------------------------------------------ images, networks, volumes

    def _op_pull(self, op: Operation) -> None:
        img = self.d.images[op.target]
        self.engine.images.pull(op.target, platform=img.platform)

    def _op_build(self, op: Operation) -> None:
        b = self.d.images[op.target].build or {}
        self.engine.images.build(b.get("context", "."), dockerfile=b.get("dockerfile") or "Dockerfile",
                                 tags=[op.target], build_args={k: v or "" for k, v in (b.get("args") or {}).items()},
                                 target=b.get("target"), labels={k: v or "" for k, v in
                                                                 (b.get("labels") or {}).items()})

    def _op_create_network(self, op: Operation) -> None:
        net = next(n for n in self.d.networks.values() if n.name == op.target)
        spec: NetworkSpec = dataclasses.replace(net.spec, labels={**net.spec.labels, L.CONFIG_HASH: net.config_hash})
        self.engine.networks.create(spec)

    def _op_create_volume(self, op: Operation) -> None:
        vol = next(v for v in self.d.volumes.values() if v.name == op.target)
        self.engine.volumes.create(vol.name, driver=vol.driver, labels={**vol.labels, L.CONFIG_HASH: vol.config_hash},
                                   options=vol.options)

    def _op_remove_network(self, op: Operation) -> None:
        self.engine.networks.remove(op.target)

    def _op_remove_volume(self, op: Operation) -> None:
        self.engine.volumes.remove(op.target)

    # ------------------------------------------------------------ containers

    def _svc(self, op: Operation) -> DesiredService:
        return self.d.services[op.service]

    def _image_id(self, svc: DesiredService) -> str:
        try:
            return self.engine.images.inspect(svc.image).id
        except NotFound:
            raise NotFound(f"image {svc.image} is not present", hint=f"wharf pull {svc.image}") from None

    def _write_inline_files(self, svc: DesiredService) -> None:
        for m in svc.template.mounts:
            if m.type != "bind" or not m.source.startswith(str(self.project_dir / ".wharf")):
                continue
            rel = Path(m.source).relative_to(self.project_dir / ".wharf")
            data = self.d.inline_files.get(f"{rel.parts[0]}.{rel.parts[1]}", b"")
            p = Path(m.source)
            p.parent.mkdir(parents=True, exist_ok=True)
            if not p.exists() or p.read_bytes() != data:
                tmp = p.with_suffix(".tmp")
                tmp.write_bytes(data)
                tmp.replace(p)

    def _create(self, svc: DesiredService, replica: int, name: str | None = None) -> str:
        self.wait_dependencies(svc)
        self._write_inline_files(svc)
        spec = svc.spec_for(self.d.project, replica, self._image_id(svc), name)
        try:
            return self.engine.containers.create(spec).id
        except Conflict as e:
            self._clear_name(spec.name, svc, e)
            return self.engine.containers.create(spec).id

    def _clear_name(self, name: str, svc: DesiredService, error: Conflict, keep: str = "") -> None:
        """A create/rename found `name` taken: a leftover of this service that the plan did not
        see (an interrupted or concurrent recreate) is removed so that the retry takes the name;
        anything else is a conflict the user settles."""
        if "already in use" not in str(error):
            raise error
        try:
            other = self.engine.containers.inspect(name)
        except NotFound:
            raise Conflict(f"container name {name} is still reserved by the engine for a container that no longer "
                           f"exists (an engine bug: a rename raced a remove)",
                           hint=f"with the embedded engine, delete the link containers/names/{name} under "
                                f"WHARF_ROOT, then apply again") from None
        lab = other.labels or {}
        if other.id == keep or lab.get(L.PROJECT) != self.d.project or lab.get(L.SERVICE) != svc.name:
            raise Conflict(f"container name {name} is taken by container {other.id[:12]}, which is not a "
                           f"replica of service {svc.name} of project {self.d.project}",
                           hint=f"remove or rename that container (`wharf rm -f {name}`), or set container_name")
        self.engine.containers.remove(other.id, force=True)

    def _rename(self, cid: str, name: str, svc: DesiredService) -> None:
        try:
            self.engine.containers.rename(cid, name)
        except Conflict as e:
            self._clear_name(name, svc, e, keep=cid)
            self.engine.containers.rename(cid, name)

    def _start(self, cid: str) -> None:
        self.engine.containers.start(cid)

    def _op_create(self, op: Operation) -> None:
        svc = self._svc(op)
        cid = self._create(svc, op.replica)
        self._start(cid)

    def _op_recreate(self, op: Operation) -> None:
        svc = self._svc(op)
        name = svc.container_name_for(self.d.project, op.replica)
        new = self._create(svc, op.replica, name + TEMP_SUFFIX)
        try:
            self.engine.containers.stop(op.target, timeout=svc.stop_timeout)
        except NotFound:
            pass
        try:
            self.engine.containers.remove(op.target, force=True)
        except NotFound:
            pass
        self._rename(new, name, svc)
        self._start(new)
        hc = svc.template.healthcheck
        if svc.rolling and hc and hc.test[:1] != ["NONE"]:  # a rolling update goes on once this one is healthy
            self._wait_one_healthy(new, f"rolling update of {svc.name}")

    def _wait_one_healthy(self, cid: str, why: str) -> None:
        while True:
            verdict = _check([self.engine.containers.inspect(cid)], "service_healthy", 1)
            if verdict is True:
                return
            if isinstance(verdict, str):
                raise RuntimeFailure(f"{why}: {verdict}")
            if time.monotonic() > self.deadline:
                raise RuntimeFailure(f"{why}: timed out waiting for the new container to be healthy")
            time.sleep(POLL)

    def _op_start(self, op: Operation) -> None:
        self.wait_dependencies(self._svc(op))
        self._start(op.target)

    def _op_restart(self, op: Operation) -> None:
        svc = self._svc(op)
        self.wait_dependencies(svc)
        self.engine.containers.restart(op.target, timeout=svc.stop_timeout)

    def _op_rename(self, op: Operation) -> None:
        svc = self._svc(op)
        self._rename(op.target, svc.container_name_for(self.d.project, op.replica), svc)

    def _op_connect(self, op: Operation) -> None:
        net = op.resource.split("@", 1)[1]
        ep = self._svc(op).template.networks.get(net) or EndpointSpec()
        self.engine.networks.connect(net, op.target, dataclasses.replace(ep))

    def _op_remove(self, op: Operation) -> None:
        svc = self.d.services.get(op.service)
        timeout = self.stop_timeout if self.stop_timeout is not None else svc.stop_timeout if svc else None
        try:
            if timeout != 0:  # with 0, remove(force) kills at once: no SIGTERM, no second wait
                self.engine.containers.stop(op.target, timeout=timeout)
            self.engine.containers.remove(op.target, force=True)
        except NotFound:
            pass

    # ------------------------------------------------------------ conditions

    def _containers_of(self, service: str) -> list[Any]:
        flt = {"label": [f"{L.PROJECT}={self.d.project}", f"{L.SERVICE}={service}"]}
        return [c for c in self.engine.containers.list(all=True, filters=flt)
                if not c.name.lstrip("/").endswith(TEMP_SUFFIX)]

    def wait_dependencies(self, svc: DesiredService) -> None:
        for dep, condition in sorted(svc.depends_on.items()):
            if dep in self.d.services:
                self.wait_condition(dep, condition, self.d.services[dep].replicas, f"{svc.name} depends on {dep}")

    def wait_condition(self, service: str, condition: str, replicas: int, why: str) -> None:
        while True:
            cs = self._containers_of(service)
            verdict = _check(cs, condition, replicas)
            if verdict is True:
                return
            if isinstance(verdict, str):
                raise RuntimeFailure(f"{why}: {verdict}")
            if time.monotonic() > self.deadline:
                raise RuntimeFailure(f"{why}: timed out waiting for {condition.replace('_', ' ')}",
                                     hint="raise --timeout, or check `wharf stack logs " + service + "`")
            time.sleep(POLL)


def _check(cs: list[Any], condition: str, replicas: int) -> bool | str:
    """True when met, a message when it can no longer be met, False to keep waiting."""
    if len(cs) < replicas:
        return False
    for c in cs:
        st = c.state
        if condition == "service_completed_successfully":
            if st.status in ("exited", "dead"):
                if st.exit_code != 0:
                    return f"{c.name.lstrip('/')} exited with code {st.exit_code}"
                continue
            return False
        if condition == "service_healthy":
            if st.status in ("exited", "dead"):
                return f"{c.name.lstrip('/')} is not running (exit code {st.exit_code})"
            if st.health is None:
                spec_hc = c.spec.healthcheck if c.spec else None
                if spec_hc is None or spec_hc.test[:1] == ["NONE"]:
                    return f"{c.name.lstrip('/')} has no health check (condition service_healthy)"
                return False
            if st.health.status == "unhealthy":
                return f"{c.name.lstrip('/')} is unhealthy"
            if st.health.status != "healthy":
                return False
            continue
        if st.status not in ("running", "exited", "paused", "restarting"):
            return False
    return True


def wait_converged(executor: Executor, on_wait: Callable[[str], None] | None = None) -> None:
    """`--wait`: every service running (and healthy if it has a health check); one-shot
    services that exited 0 count as done."""
    for name in executor.d.order:
        svc = executor.d.services[name]
        if svc.replicas == 0:
            continue
        cond = "service_completed_successfully" if svc.oneshot() and _all_exited(executor, name) else (
            "service_healthy" if svc.template.healthcheck and svc.template.healthcheck.test[:1] != ["NONE"]
            else "service_started")
        if on_wait:
            on_wait(name)
        executor.wait_condition(name, cond, svc.replicas, f"service {name}")


def _all_exited(executor: Executor, name: str) -> bool:
    cs = executor._containers_of(name)
    return bool(cs) and all(c.state.status == "exited" for c in cs)


__all__ = ["ApplyResult", "Executor", "NullReporter", "Reporter", "wait_converged", "Conflict"]
