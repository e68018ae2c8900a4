"""One reconcile pass (observe -> plan -> execute) and `down`; used by apply, up, watch."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runtime.errors import Conflict, InvalidArgument, NotFound

from .apply import ApplyResult, Executor, Reporter, wait_converged
from .desired import Desired, build_desired
from .lock import project_lock, say_waiting
from .observe import Observed, observe
from .plan import Operation, Plan, plan

PLAN_VERSION = 1


@dataclass
class Target:
    """What to converge to: the desired state plus where relative files live."""

    desired: Desired
    project_dir: Path
    spec: dict[str, Any]  # the resolved project (for saved plans)
    file_digests: dict[str, str]

    @classmethod
    def from_loaded(cls, loaded: Any) -> Target:
        from .spec.render import project_dict

        return cls(build_desired(loaded.project, loaded.file_digests, loaded.project_dir), loaded.project_dir,
                   project_dict(loaded.project), dict(loaded.file_digests))


def diff(engine: Any, target: Target, prune: bool = False) -> tuple[Plan, Observed]:
    obs = observe(engine, target.desired)
    return plan(target.desired, obs, prune=prune), obs


def apply(engine: Any, target: Target, *, prune: bool = False, timeout: float = 300.0, wait: bool = False,
          reporter: Reporter | None = None, workers: int = 4, saved: Plan | None = None) -> tuple[Plan, ApplyResult]:
    """Converge; with `saved`, execute exactly that plan (refusing if the state moved).
    Holds the project's lock (reconciler/lock.py) from observing to the last operation."""
    with project_lock(target.desired.project, say_waiting(target.desired.project)):
        return _apply(engine, target, prune=prune, timeout=timeout, wait=wait, reporter=reporter, workers=workers,
                      saved=saved)


def _apply(engine: Any, target: Target, *, prune: bool, timeout: float, wait: bool, reporter: Reporter | None,
           workers: int, saved: Plan | None) -> tuple[Plan, ApplyResult]:
    if saved is not None:
        obs = observe(engine, target.desired)
        if obs.fingerprint() != saved.fingerprint:
            raise Conflict("the live state changed since this plan was made",
                           hint="make a new one with `wharf diff -o plan.json`")
        the_plan = saved
    else:
        the_plan, _ = diff(engine, target, prune)
    ex = Executor(engine, target.desired, target.project_dir, timeout, reporter, workers)
    result = ex.run(the_plan) if the_plan.operations else ApplyResult()
    if result.ok and any(op.kind in ("pull", "build") for op in the_plan.operations):
        # images that changed under running containers (pull_policy: always/build): second pass
        again = plan(target.desired, observe(engine, target.desired), prune=prune)
        again.operations = [op for op in again.operations if op.kind not in ("pull", "build")]
        if again.operations:
            more = ex.run(again)
            result.done += more.done
            result.failed += more.failed
            result.skipped += more.skipped
            the_plan.operations += again.operations
    if wait and result.ok:
        wait_converged(ex)
    return the_plan, result


def down(engine: Any, desired: Desired, *, volumes: bool = False, remove_orphans: bool = False,
         timeout: int | None = None, reporter: Reporter | None = None, workers: int = 4) -> ApplyResult:
    """Remove the project's containers (all of them with remove_orphans), its networks and,
    with volumes, its named volumes — only objects carrying the project label, whatever their
    names (the temporary name of an interrupted recreate too)."""
    with project_lock(desired.project, say_waiting(desired.project)):
        return _down(engine, desired, volumes, remove_orphans, timeout, reporter, workers)


def _down(engine: Any, desired: Desired, volumes: bool, remove_orphans: bool, timeout: int | None,
          reporter: Reporter | None, workers: int) -> ApplyResult:
    obs = observe(engine, desired, images=False)
    ops: list[Operation] = []
    for c in sorted(obs.containers, key=lambda c: (c.service, c.replica, c.name)):
        if c.service in desired.services or remove_orphans:
            ops.append(Operation("remove", f"container:{c.name}", "down", (), c.service, 0, c.id))
    containers = tuple(op.resource for op in ops)
    left = [c for c in obs.containers if c.service not in desired.services and not remove_orphans]
    busy = {n for c in left for n in c.networks}
    for name, net in sorted(obs.networks.items()):
        if net.labelled and name not in busy:
            ops.append(Operation("remove-network", f"network:{name}", "down", containers, target=name))
    if volumes:
        for name, vol in sorted(obs.volumes.items()):
            if vol.labelled:
                ops.append(Operation("remove-volume", f"volume:{name}", "down", containers, target=name))
    ex = Executor(engine, desired, ".", float(timeout or 10) + 60, reporter, workers, stop_timeout=timeout)
    return ex.run(Plan(desired.project, ops))


# ---------------------------------------------------------------- saved plans


def save_plan(path: str, the_plan: Plan, target: Target) -> None:
    data = {"version": PLAN_VERSION, "plan": the_plan.to_dict(), "spec": target.spec,
            "file_digests": target.file_digests, "project_dir": str(target.project_dir)}
    tmp = Path(path + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def load_plan(path: str) -> tuple[Plan, Target]:
    from pydantic import ValidationError

    from .spec.models import Project

    try:
        data = json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise NotFound(f"plan file {path} not found") from None
    except (OSError, ValueError) as e:
        raise InvalidArgument(f"cannot read plan {path}: {e}") from None
    if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
        raise InvalidArgument(f"{path} is not a Wharf plan (version {PLAN_VERSION})",
                              hint="make one with `wharf diff -o plan.json`")
    try:
        project = Project.model_validate(data["spec"])
        the_plan = Plan.from_dict(data["plan"])
    except (ValidationError, KeyError, TypeError) as e:
        raise InvalidArgument(f"{path}: invalid plan: {str(e).splitlines()[0]}") from None
    pdir = Path(data.get("project_dir", "."))
    desired = build_desired(project, data.get("file_digests", {}), pdir)
    return the_plan, Target(desired, pdir, data["spec"], data.get("file_digests", {}))


__all__ = ["Target", "apply", "diff", "down", "load_plan", "save_plan"]
