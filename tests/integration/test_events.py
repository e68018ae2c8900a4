"""Image, volume and network events (as Docker's), written by whichever entry point does the action:
the CLI in-process and `wharf serve` alike, read by `wharf events` and by `docker events` through
the daemon, with --since/--until and the type/event/image/volume/network filters."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from tests.integration import test_registry_server as server_tests

registry = server_tests.registry  # the fixture: `wharf registry serve` in a thread, stopped in finally
pytestmark = pytest.mark.root
WHARF = [sys.executable, "-m", "reconciler.cli.app"]
DOCKER = shutil.which("docker")


def wharf(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([*WHARF, *args], capture_output=True, env=os.environ.copy(),
                       cwd=Path(__file__).resolve().parents[2], stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
    return p


def events(t0: float, *filters: str, until: float | None = None) -> list[dict]:
    """`wharf events --since t0 --until now --format json [--filter F]...` as dicts."""
    args = ["events", "--since", f"{t0:.6f}", "--until", f"{until or time.time():.6f}", "--format", "json"]
    for f in filters:
        args += ["--filter", f]
    return [json.loads(x) for x in wharf(*args).stdout.decode().splitlines() if x.strip()]


def shape(ev: dict) -> tuple[str, str, str]:
    return ev["Type"], ev["Action"], ev["Actor"]["ID"]


def test_image_events_from_the_cli(busybox_image, registry, tmp_path):
    bb, registry = busybox_image.id, registry.address
    t0 = time.time()
    wharf("tag", "busybox", f"{registry}/evt/bb:1")
    wharf("push", f"{registry}/evt/bb:1")
    wharf("save", "-o", str(tmp_path / "bb.tar"), f"{registry}/evt/bb:1", "busybox")  # one image, two tags
    wharf("rmi", f"{registry}/evt/bb:1")
    t_mid = time.time()
    wharf("pull", f"{registry}/evt/bb:1")
    wharf("load", "-i", str(tmp_path / "bb.tar"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
    (tmp_path / "fs.tar").write_bytes(buf.getvalue())
    imported = wharf("import", str(tmp_path / "fs.tar"), "evt/imp:1").stdout.decode().strip()
    wharf("rmi", "evt/imp:1")
    got = [shape(e) + (e["Actor"]["Attributes"].get("name", ""),) for e in events(t0, "type=image")]
    ref = f"{registry}/evt/bb:1"
    digest_ref = next(n for _, a, _, n in got if a == "untag" and "@sha256:" in n)  # pushed: name@digest
    assert digest_ref.startswith(f"{registry}/evt/bb@sha256:")
    assert got == [
        ("image", "tag", bb, ref),
        ("image", "push", ref, f"{registry}/evt/bb"),
        ("image", "save", bb, bb),
        ("image", "untag", bb, ref),
        ("image", "untag", bb, digest_ref),  # (its digest reference goes with the repository's last tag)
        ("image", "pull", ref, f"{registry}/evt/bb"),
        ("image", "load", bb, bb),
        ("image", "tag", imported, "evt/imp:1"),
        ("image", "import", imported, imported),
        ("image", "untag", imported, "evt/imp:1"),
        ("image", "delete", imported, imported),
    ]
    # image= matches by id, by name and by the name without its tag; event= by action
    assert [e["Action"] for e in events(t0, f"image={registry}/evt/bb")] == ["tag", "push", "untag", "untag",
                                                                             "pull"]
    assert [e["Action"] for e in events(t0, "image=evt/imp:1")] == ["tag", "untag"]
    assert {e["Action"] for e in events(t0, f"image={imported}")} == {"tag", "import", "untag", "delete"}
    assert [e["Actor"]["ID"] for e in events(t0, "event=delete")] == [imported]
    assert events(t0, "type=volume") == []
    assert events(time.time() + 1) == []  # --since after all of it
    assert [e["Action"] for e in events(t0, "type=image", until=t_mid)] == ["tag", "push", "save", "untag",
                                                                               "untag"]
    assert [e["Action"] for e in events(t_mid, "type=image", until=t_mid + 60)][:2] == ["pull", "load"]


@pytest.mark.network
def test_volume_and_network_events_around_a_container(busybox_image, wharf_net):
    import secrets

    vol, net = "ev" + secrets.token_hex(3), "en" + secrets.token_hex(3)
    t0 = time.time()
    wharf("volume", "create", vol)
    net_id = wharf("network", "create", net).stdout.decode().strip()
    cid = wharf("run", "-d", "--network", net, "-v", f"{vol}:/data:ro", "busybox", "sleep", "60").stdout.decode().strip()
    wharf("network", "connect", "bridge", cid)
    wharf("network", "disconnect", "bridge", cid)
    wharf("rm", "-f", cid)
    wharf("network", "rm", net)
    wharf("volume", "rm", vol)
    t1 = time.time()
    vols = events(t0, "type=volume")
    assert [shape(e) for e in vols] == [("volume", a, vol) for a in ("create", "mount", "unmount", "destroy")]
    assert vols[0]["Actor"]["Attributes"] == {"driver": "local"}
    assert vols[1]["Actor"]["Attributes"] == {"driver": "local", "container": cid, "destination": "/data",
                                              "read/write": "false", "propagation": ""}
    assert vols[2]["Actor"]["Attributes"] == {"driver": "local", "container": cid}
    nets = [e for e in events(t0, "type=network") if e["Actor"]["Attributes"]["name"] == net]
    assert [shape(e) for e in nets] == [("network", a, net_id) for a in ("create", "connect", "disconnect",
                                                                             "destroy")]
    assert nets[0]["Actor"]["Attributes"] == {"name": net, "type": "bridge"}
    assert nets[1]["Actor"]["Attributes"] == {"name": net, "type": "bridge", "container": cid}
    bridge = [e["Action"] for e in events(t0, "network=bridge")]
    assert [a for a in bridge if a != "create"] == ["connect", "disconnect"]  # (created on first use)
    # filters: by name or id prefix, only that type; event=; several values of one key are OR-ed
    assert [e["Action"] for e in events(t0, f"volume={vol}")] == ["create", "mount", "unmount", "destroy"]
    assert [e["Action"] for e in events(t0, f"network={net_id[:12]}")] == ["create", "connect", "disconnect",
                                                                            "destroy"]
    assert [e["Action"] for e in events(t0, f"network={net}", "event=connect", "event=destroy")] == [
        "connect", "destroy"]
    assert events(t0, f"container={cid}", f"volume={vol}") == []  # keys AND-ed (each of its own type)
    assert events(t0, "type=container", f"volume={vol}") == []
    # a container's volume and network events come between its create and its destroy
    mixed = [shape(e)[:2] for e in events(t0, "type=container", "type=volume", "type=network")
             if e["Actor"]["ID"] in (cid, vol, net_id)]
    assert mixed.index(("container", "create")) < mixed.index(("volume", "mount")) < \
        mixed.index(("network", "disconnect")) < mixed.index(("volume", "unmount")) < \
        mixed.index(("container", "destroy"))  # (docker's cleanup: network first, then volumes)
    assert all(e["timeNano"] / 1e9 <= t1 for e in events(t0, until=t1))


def test_filters_and_shapes_of_the_log(wharf_root):
    """matches() as moby's daemon/events/filter.go: image= also selects the container events of that
    image, with or without tag; container=/volume=/network= take an id or name prefix of their own type."""
    from runtime.engine import Event
    from runtime.util.events import emit, event_line, matches, read_events

    c = Event("container", "start", "c0ffee", {"name": "web", "image": "busybox:latest"})
    i = Event("image", "pull", "busybox:latest", {"name": "busybox"})
    v = Event("volume", "create", "data", {"driver": "local"})
    h = Event("container", "health_status: healthy", "c0ffee", {"name": "web"})
    assert [matches(e, {"image": ["busybox"]}) for e in (c, i, v)] == [True, True, False]
    assert [matches(e, {"image": ["busybox:latest"]}) for e in (c, i, v)] == [True, True, False]
    assert not matches(c, {"image": ["busybox:1"]})
    d = Event("image", "pull", "docker.io/library/busybox@sha256:" + "0" * 64, {"name": "docker.io/busybox"})
    assert matches(d, {"image": ["busybox"]}) and not matches(d, {"image": ["sha256"]})
    assert matches(Event("image", "push", "localhost:5000/a/b:1", {}), {"image": ["localhost:5000/a/b"]})
    assert [matches(e, {"container": ["we"]}) for e in (c, i, v)] == [True, False, False]
    assert matches(v, {"volume": ["da"]}) and not matches(v, {"network": ["data"]})
    assert matches(h, {"event": ["health_status"]}) and not matches(c, {"event": ["sta"]})
    assert matches(c, {"label": ["name=web"]}) and not matches(c, {"label": ["name=db"]})
    assert json.loads(event_line("volume", "create", "data", {"driver": "local"}, 1.5)) == {
        "type": "volume", "action": "create", "id": "data", "attributes": {"driver": "local"}, "time": 1.5}
    t0 = time.time()
    emit("volume", "create", "ünï", {"driver": "local"})
    assert [(e.type, e.id) for e in read_events(since=t0)] == [("volume", "ünï")]


@pytest.mark.network
def test_daemon_and_cli_share_the_log_docker_events(wharf_daemon, registry, tmp_path):
    """Actions through `wharf serve` (the docker CLI) and through the embedded CLI land in one log:
    `docker events` shows both, `wharf events` shows both."""
    if DOCKER is None:
        pytest.skip("the docker CLI is not installed")
    registry = registry.address
    denv = {**os.environ, "DOCKER_HOST": f"unix://{wharf_daemon}", "DOCKER_CONFIG": str(tmp_path / "dcfg")}

    def docker(*args: str) -> str:
        p = subprocess.run([DOCKER, *args], env=denv, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
        assert p.returncode == 0, f"docker {' '.join(args)}: {p.stderr.decode()}"
        return p.stdout.decode()

    since = time.time() - 1
    ref = f"{registry}/dk/bb:2"
    docker("tag", "busybox", ref)
    docker("push", ref)
    docker("rmi", ref)
    docker("pull", ref)
    docker("volume", "create", "dkvol")
    docker("network", "create", "dknet")
    wharf("volume", "create", "clivol")  # the embedded engine, same WHARF_ROOT
    wharf("tag", "busybox", "cli/bb:3")
    wharf("pull", ref)
    docker("network", "rm", "dknet")
    docker("volume", "rm", "dkvol", "clivol")
    until = str(int(time.time()) + 1)
    out = docker("events", "--since", str(int(since)), "--until", until, "--format", "{{json .}}",
                 "--filter", "type=image", "--filter", "type=volume", "--filter", "type=network")
    got = [(e["Type"], e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"].get("name", ""))
           for e in map(json.loads, out.splitlines())]
    bb = json.loads(docker("image", "inspect", "busybox"))[0]["Id"]
    assert ("image", "tag", bb, ref) in got and ("image", "untag", bb, ref) in got
    assert ("image", "push", ref, f"{registry}/dk/bb") in got
    assert got.count(("image", "pull", ref, f"{registry}/dk/bb")) == 2  # docker pull (the daemon), wharf pull
    assert ("image", "tag", bb, "cli/bb:3") in got
    assert [(t, a, i) for t, a, i, _ in got if t == "volume"] == [
        ("volume", "create", "dkvol"), ("volume", "create", "clivol"), ("volume", "destroy", "dkvol"),
        ("volume", "destroy", "clivol")]
    assert [(t, a, n) for t, a, _, n in got if t == "network"] == [("network", "create", "dknet"),
                                                                   ("network", "destroy", "dknet")]
    # docker's own filters, served by the daemon
    out = docker("events", "--since", str(int(since)), "--until", until, "--format", "{{.Type}} {{.Action}}",
                 "--filter", "volume=clivol")
    assert out.split("\n")[:2] == ["volume create", "volume destroy"]
    out = docker("events", "--since", str(int(since)), "--until", until, "--format", "{{.Action}} {{.Actor.ID}}",
                 "--filter", "image=cli/bb")
    assert out.strip() == f"tag {bb}"
    # and the embedded CLI reads what the daemon wrote
    assert [e["Action"] for e in events(since, "volume=dkvol")] == ["create", "destroy"]


def test_events_without_since_follows_only_new_ones(wharf_root):
    """`wharf events` with neither --since nor --until: what happens from now on, as docker."""
    import select

    from runtime.util.events import emit

    emit("volume", "create", "before", {"driver": "local"})
    proc = subprocess.Popen([*WHARF, "events", "--filter", "type=volume", "--format", "json"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        seen = b""
        deadline = time.monotonic() + 30
        n = 0
        while b'"after' not in seen:  # until the follower is up: each probe is a new event
            assert time.monotonic() < deadline, seen
            emit("volume", "create", f"after{n}", {"driver": "local"})
            n += 1
            if select.select([proc.stdout], [], [], 0.2)[0]:
                seen += os.read(proc.stdout.fileno(), 65536)
        assert b'"before"' not in seen
    finally:
        proc.kill()
        proc.wait()


def test_build_tags_and_announces_no_intermediate_image(busybox_image, tmp_path):
    """As docker build: a `tag` event per -t (with the image's labels); the builder's own intermediate
    images come and go unannounced."""
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "Dockerfile").write_text('FROM busybox\nRUN echo hi > /x\nLABEL k=v\nCMD ["true"]\n')
    t0 = time.time()
    wharf("build", "-q", "-t", "evt/built:1", str(tmp_path / "ctx"))
    built = json.loads(wharf("image", "inspect", "evt/built:1").stdout)[0]["Id"]
    assert [(e["Action"], e["Actor"]["ID"], e["Actor"]["Attributes"]) for e in events(t0, "type=image")] == [
        ("tag", built, {"name": "evt/built:1", "k": "v"})]


def test_volume_unmount_event_when_a_host_network_container_exits(busybox_image):
    """No engine cleanup runs after the exit of a --network host container (nothing to release): its
    supervisor tells the unmount itself, when the container stops, not at `rm` (as Docker)."""
    import secrets

    vol = "eh" + secrets.token_hex(3)
    t0 = time.time()
    cid = wharf("run", "-d", "--network", "host", "-v", f"{vol}:/d", "busybox", "true").stdout.decode().strip()
    assert wharf("wait", cid).stdout.strip() == b"0"
    deadline = time.monotonic() + 10
    while [e["Action"] for e in events(t0, f"volume={vol}")] != ["create", "mount", "unmount"]:
        assert time.monotonic() < deadline, events(t0, f"volume={vol}")
        time.sleep(0.05)
    wharf("rm", "-v", cid)
    wharf("volume", "rm", vol, check=False)
    assert [e["Action"] for e in events(t0, f"volume={vol}")][:3] == ["create", "mount", "unmount"]
