"""plan() as a pure function: tables of (spec, observed) -> operations with reasons."""

from __future__ import annotations

import dataclasses
import textwrap
from pathlib import Path

import pytest

from reconciler.desired import build_desired
from reconciler.observe import Observed, ObservedContainer, ObservedNetwork, ObservedVolume
from reconciler.plan import Plan, plan
from reconciler.spec import load_project

IMG = "sha256:" + "a" * 64
IMG2 = "sha256:" + "b" * 64

BASE = """
name: p
services:
  db:
    image: busybox
    command: ["sleep", "1000"]
    environment: {FOO: "1"}
    volumes: [data:/data]
    healthcheck: {test: ["CMD", "true"], interval: 1s}
  web:
    image: busybox
    ports: ["127.0.0.1:8080:80"]
    depends_on: {db: {condition: service_healthy}}
    restart: always
  init:
    image: busybox
    command: ["true"]
volumes:
  data: {}
"""


def desired_of(tmp_path: Path, text: str = BASE):
    f = tmp_path / "compose.yaml"
    f.write_text(textwrap.dedent(text))
    lp = load_project([str(f)], environ={})
    return build_desired(lp.project, lp.file_digests, lp.project_dir)


def converged(d, image_id: str = IMG) -> Observed:
    """What the machine looks like right after a successful apply of `d`."""
    obs = Observed(d.project, images={ref: image_id for ref in d.images})
    for net in d.networks.values():
        obs.networks[net.name] = ObservedNetwork(net.name, "n" + net.name, net.key, net.config_hash)
    for vol in d.volumes.values():
        obs.volumes[vol.name] = ObservedVolume(vol.name, vol.key, vol.config_hash)
    for svc in d.services.values():
        for r in range(1, svc.replicas + 1):
            spec = svc.spec_for(d.project, r, image_id)
            oneshot = svc.name == "init"
            obs.containers.append(ObservedContainer(
                id=f"id-{svc.name}-{r}", name=spec.name, service=svc.name, replica=r,
                config_hash=spec.labels["io.wharf.config-hash"], files_hash=spec.labels["io.wharf.files-hash"],
                image_id=image_id, status="exited" if oneshot else "running", exit_code=0,
                restart=spec.restart.name, networks=sorted(spec.networks), spec=dataclasses.asdict(spec)))
    return obs


def lines(p: Plan) -> list[str]:
    return p.text().splitlines()


def test_from_scratch_golden(tmp_path: Path) -> None:
    d = desired_of(tmp_path)
    p = plan(d, Observed.empty("p"))
    assert lines(p) == [
        "> pull image:busybox:latest (not present)",
        "+ create-network network:p_default (new)",
        "+ create-volume volume:p_data (new)",
        "+ create container:db:1 (new)",
        "+ create container:init:1 (new)",
        "+ create container:web:1 (new)",
    ]
    web = next(op for op in p.operations if op.resource == "container:web:1")
    assert web.depends_on == ("image:busybox:latest", "network:p_default", "container:db:1")
    assert p.summary() == "1 to pull/build, 5 to create"


def test_converged_plans_nothing(tmp_path: Path) -> None:
    d = desired_of(tmp_path)
    p = plan(d, converged(d))
    assert p.empty and p.summary() == "nothing to do" and p.warnings == []


def _edit(obs: Observed, service: str, **changes) -> Observed:
    for c in obs.containers:
        if c.service == service:
            for k, v in changes.items():
                setattr(c, k, v)
    return obs


CASES = [
    # (description, spec edit (old, new) or None, observed edit, expected lines)
    ("stopped by hand", None, lambda o: _edit(o, "web", status="exited", exit_code=143),
     ["~ start container:web:1 (drift: exited (143))"]),
    ("created, never started", None, lambda o: _edit(o, "db", status="created"),
     ["~ start container:db:1 (drift: created)"]),
    ("one-shot failed", None, lambda o: _edit(o, "init", exit_code=1),
     ["~ start container:init:1 (drift: exited (1))"]),
    ("removed by hand", None, lambda o: setattr(o, "containers", [c for c in o.containers if c.service != "web"]),
     ["+ create container:web:1 (missing (drift: removed, or new))"]),
    ("env changed", ('FOO: "1"', 'FOO: "2", BAR: x'), None,
     ["-/+ recreate container:db:1 (because: env BAR added; env FOO changed)"]),
    ("port added", ('ports: ["127.0.0.1:8080:80"]', 'ports: ["127.0.0.1:8080:80", "9090:90"]'), None,
     ["-/+ recreate container:web:1 (because: port 9090:90/tcp added)"]),
    ("command changed", ('command: ["true"]', 'command: ["false"]'), None,
     ["-/+ recreate container:init:1 (because: command changed)"]),
    ("scale up", ("restart: always", "restart: always\n    scale: 3"), None,
     ["+ create container:web:2 (scale 1 -> 3)", "+ create container:web:3 (scale 1 -> 3)"]),
    ("replicas only: no recreate", ("restart: always", "restart: always\n    deploy: {replicas: 1}"), None, []),
    ("depends_on only: no recreate", ("condition: service_healthy", "condition: service_started"), None, []),
    ("network removed", None, lambda o: o.networks.clear() or _edit(o, "web", networks=[]),
     ["+ create-network network:p_default (drift: removed)",
      "~ connect container:web:1@p_default (drift: not connected to p_default)"]),
    ("volume removed", None, lambda o: o.volumes.clear(),
     ["+ create-volume volume:p_data (drift: removed)",
      "-/+ recreate container:db:1 (because: drift: volume data was removed)"]),
    ("interrupted recreate: duplicate", None,
     lambda o: o.containers.append(dataclasses.replace(o.containers[0], id="dup", name="p-db-1_new",
                                                       config_hash="old")),
     ["- remove container:p-db-1_new (duplicate replica (interrupted apply))"]),
    ("interrupted recreate: temp name", None, lambda o: _edit(o, "db", name="p-db-1_new"),
     ["~ rename container:db:1 (interrupted apply: named p-db-1_new)"]),
]


@pytest.mark.parametrize("desc,spec_edit,obs_edit,expected", CASES, ids=[c[0] for c in CASES])
def test_plan_table(tmp_path: Path, desc, spec_edit, obs_edit, expected) -> None:
    d0 = desired_of(tmp_path)
    obs = converged(d0)
    text = BASE
    if spec_edit:
        assert spec_edit[0] in text
        text = text.replace(spec_edit[0], spec_edit[1])
    d = desired_of(tmp_path, text)
    if obs_edit:
        obs_edit(obs)
    assert lines(plan(d, obs)) == expected


def test_image_changed(tmp_path: Path) -> None:
    d = desired_of(tmp_path)
    obs = converged(d)
    obs.images = {ref: IMG2 for ref in d.images}
    got = lines(plan(d, obs))
    assert got == [f"-/+ recreate container:{s}:1 (because: image busybox:latest {'a' * 12} -> {'b' * 12})"
                   for s in ("db", "init", "web")]


def test_scale_down_and_orphans(tmp_path: Path) -> None:
    d3 = desired_of(tmp_path, BASE.replace("restart: always", "restart: always\n    scale: 3"))
    obs = converged(d3)
    obs.containers.append(dataclasses.replace(obs.containers[0], id="gone", name="p-old-1", service="old"))
    obs.networks["p_extra"] = ObservedNetwork("p_extra", "x", "extra", "h")
    d = desired_of(tmp_path)
    p = plan(d, obs)
    assert lines(p) == ["- remove container:web:2 (scale 3 -> 1)", "- remove container:web:3 (scale 3 -> 1)"]
    assert any("p-old-1" in w and "--prune" in w for w in p.warnings)
    pruned = lines(plan(d, obs, prune=True))
    assert "- remove container:p-old-1 (orphan: service not in the spec)" in pruned
    assert pruned[-1] == "- remove-network network:p_extra (orphan: not in the spec)"


def test_config_file_content_changes_hash(tmp_path: Path) -> None:
    (tmp_path / "app.conf").write_text("one\n")
    text = BASE.replace('command: ["true"]', 'command: ["true"]\n    configs: [app]') + \
        "configs:\n  app: {file: ./app.conf}\n"
    obs = converged(desired_of(tmp_path, text))
    (tmp_path / "app.conf").write_text("two\n")
    assert lines(plan(desired_of(tmp_path, text), obs)) == [
        "-/+ recreate container:init:1 (because: config/secret file content changed)"]


def test_env_file_content_changes_hash(tmp_path: Path) -> None:
    (tmp_path / "db.env").write_text("A=1\n")
    text = BASE.replace('environment: {FOO: "1"}', 'environment: {FOO: "1"}\n    env_file: db.env')
    obs = converged(desired_of(tmp_path, text))
    (tmp_path / "db.env").write_text("A=2\n")
    assert lines(plan(desired_of(tmp_path, text), obs)) == [
        "-/+ recreate container:db:1 (because: env A changed)"]


def test_plan_round_trips_json(tmp_path: Path) -> None:
    d = desired_of(tmp_path)
    p = plan(d, Observed.empty("p"))
    assert Plan.from_dict(p.to_dict()).text() == p.text()
    obs = converged(d)
    assert Observed.from_dict(obs.to_dict()).fingerprint() == obs.fingerprint()


def test_rolling_update_chains_replicas(tmp_path: Path) -> None:
    text = BASE.replace("restart: always", "restart: always\n    deploy: {replicas: 3, update_config: {parallelism: 1}}")
    obs = converged(desired_of(tmp_path, text))
    p = plan(desired_of(tmp_path, text.replace("restart: always", "restart: always\n    user: nobody")), obs)
    ops = [op for op in p.operations if op.kind == "recreate"]
    assert [op.resource for op in ops] == ["container:web:1", "container:web:2", "container:web:3"]
    assert [op.depends_on[-1] for op in ops[1:]] == ["container:web:1", "container:web:2"]
    assert ops[0].cause == "because: user changed"


def test_depends_on_restart_true(tmp_path: Path) -> None:
    text = BASE.replace("condition: service_healthy}", "condition: service_healthy, restart: true}")
    obs = converged(desired_of(tmp_path, text))
    p = plan(desired_of(tmp_path, text.replace('FOO: "1"', 'FOO: "2"')), obs)
    assert lines(p) == ["-/+ recreate container:db:1 (because: env FOO changed)",
                        "~ restart container:web:1 (dependency db recreated)"]
    assert p.operations[1].depends_on == ("container:db:1",)


def test_x_wharf_images_and_pull_policies(tmp_path: Path) -> None:
    text = BASE + "x-wharf:\n  images:\n    - image: tool\n    - image: local/built\n      build: ./ctx\n"
    d = desired_of(tmp_path, text)
    obs = converged(d)
    obs.images["tool:latest"] = None
    obs.images["local/built:latest"] = None
    assert lines(plan(d, obs)) == ["> build image:local/built:latest (not present)",
                                   "> pull image:tool:latest (not present)"]
    never = desired_of(tmp_path, BASE.replace("image: busybox\n    command: [\"true\"]",
                                              "image: absent\n    pull_policy: never\n    command: [\"true\"]"))
    from runtime.errors import InvalidArgument

    with pytest.raises(InvalidArgument, match="absent:latest is not present and pull_policy is 'never'"):
        plan(never, Observed.empty("p"))
    always = desired_of(tmp_path, BASE.replace("image: busybox\n    command: [\"true\"]",
                                               "image: busybox\n    pull_policy: always\n    command: [\"true\"]"))
    assert lines(plan(always, converged(always))) == ["> pull image:busybox:latest (pull_policy: always)"]
