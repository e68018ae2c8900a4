"""Pure pieces of the containers area: flag syntaxes, json-file logs, views, OCI config, framing."""

from __future__ import annotations

import json
import time

import pytest

from runtime.containers import bundle, flags, lean, logs, stream, views
from runtime.engine import ContainerSpec, MountSpec, Resources, Ulimit
from runtime.errors import InvalidArgument


@pytest.mark.parametrize("value,expected", [("512m", 512 << 20), ("1g", 1 << 30), ("1.5GB", 3 << 29),
                                            ("100", 100), ("64k", 64 << 10), ("2mb", 2 << 20)])
def test_parse_bytes(value, expected):
    assert flags.parse_bytes(value, "-m") == expected


@pytest.mark.parametrize("bad", ["12XB", "", "m", "-1m", "1.2.3g"])
def test_parse_bytes_rejects(bad):
    with pytest.raises(InvalidArgument, match="-m"):
        flags.parse_bytes(bad, "-m")


def test_parse_publish():
    p = flags.parse_publish("127.0.0.1:8080:80/udp")[0]
    assert (p.host_ip, p.host_port, p.container_port, p.protocol) == ("127.0.0.1", 8080, 80, "udp")
    assert [b.container_port for b in flags.parse_publish("8000-8002:9000-9002")] == [9000, 9001, 9002]
    assert flags.parse_publish("80")[0].host_port == 0
    for bad in ("abc", "1:2:3:4", "80/xyz", "0", "70000", "1-2:3"):
        with pytest.raises(InvalidArgument):
            flags.parse_publish(bad)


def test_parse_volume_mount_tmpfs():
    v = flags.parse_volume("data:/d:ro,nocopy")
    assert (v.type, v.source, v.target, v.read_only, v.volume_nocopy) == ("volume", "data", "/d", True, True)
    assert flags.parse_volume("/host:/c:rslave").propagation == "rslave"
    assert flags.parse_volume("/anon").source == ""
    with pytest.raises(InvalidArgument):
        flags.parse_volume("x:relative")
    m = flags.parse_mount("type=tmpfs,target=/t,tmpfs-size=1m,tmpfs-mode=1770")
    assert (m.tmpfs_size, m.tmpfs_mode) == (1 << 20, 0o1770)
    with pytest.raises(InvalidArgument, match="does not exist"):
        flags.parse_mount("type=bind,source=/no/such/dir,target=/x")
    assert flags.parse_tmpfs("/run:size=64k,mode=755").tmpfs_size == 64 << 10


def test_restart_ulimit_duration_health():
    assert flags.parse_restart("on-failure:3").maximum_retry_count == 3
    for bad in ("sometimes", "always:3", "on-failure:x"):
        with pytest.raises(InvalidArgument):
            flags.parse_restart(bad)
    assert flags.parse_ulimit("nofile=100:200") == Ulimit("nofile", 100, 200)
    with pytest.raises(InvalidArgument):
        flags.parse_ulimit("nofile=300:200")
    assert flags.parse_duration("1m30s", "x") == 90 and flags.parse_duration("500ms", "x") == 0.5
    with pytest.raises(InvalidArgument):
        flags.parse_duration("soon", "--health-interval")
    hc = flags.parse_health("true", "2s", None, 5, None, None, False)
    assert hc.test == ["CMD-SHELL", "true"] and hc.interval == 2 and hc.retries == 5
    assert flags.parse_health(None, None, None, None, None, None, True).test == ["NONE"]


def test_log_writer_rotation_and_reader(tmp_path):
    path = str(tmp_path / "c-json.log")
    w = logs.LogWriter(path, max_size=300, max_file=3)
    for i in range(30):
        w.write("stdout" if i % 2 else "stderr", f"line {i}\n".encode())
    w.write("stdout", b"partial")
    w.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == ["c-json.log", "c-json.log.1", "c-json.log.2"]
    entries = logs.read_log(path)
    assert entries[-1][:2] == ("stdout", b"partial")
    assert [e[1] for e in logs.read_log(path, tail=2)] == [b"line 29\n", b"partial"]
    rec = json.loads(open(path, "rb").readline())
    assert set(rec) == {"log", "stream", "time"} and rec["time"].endswith("Z")
    assert logs.read_log(path, since=time.time() + 60) == []


def test_parse_time_and_views():
    assert logs.parse_time("1970-01-01T00:00:10.5Z") == 10.5
    assert logs.parse_time("1970-01-01T01:00:00+01:00") == 0
    assert views.human_duration(0.2) == "Less than a second" and views.human_duration(125) == "2 minutes"
    now = time.time()
    st = {"status": "exited", "exit_code": 3, "finished_at": logs.rfc3339(now - 5)}
    assert views.status_text(st, now) == "Exited (3) 5 seconds ago"
    st = {"status": "running", "started_at": logs.rfc3339(now - 3), "health": {"status": "healthy"}}
    assert views.status_text(st, now) == "Up 3 seconds (healthy)"
    assert views.ports_text([{"host_ip": "", "host_port": 8080, "container_port": 80, "protocol": "tcp"}]) \
        == "0.0.0.0:8080->80/tcp"


def test_oci_config_from_spec():
    spec = ContainerSpec(image="x", command=["sh"], cap_add=["NET_ADMIN"], cap_drop=["KILL"], read_only=True,
                         resources=Resources(memory=64 << 20, nano_cpus=500_000_000, pids_limit=10,
                                             ulimits=[Ulimit("nofile", 10, 20)]),
                         mounts=[MountSpec(type="tmpfs", target="/t", tmpfs_size=1024)])
    icfg = {"Entrypoint": ["/ep"], "Cmd": ["ignored"], "Env": ["PATH=/bin", "A=1"]}
    args = bundle.process_args(spec, icfg)
    assert args == ["/ep", "sh"]
    env = bundle.container_env(spec, icfg, "h")
    assert "PATH=/bin" in env and "HOSTNAME=h" in env
    inp = bundle.BundleInputs(args=args, env=env, cwd="/", uid=0, gid=0, groups=[], hostname="h",
                              cgroups_path="/wharf/x", mounts=spec.mounts, netns=None)
    cfg = bundle.oci_config(spec, inp)
    caps = cfg["process"]["capabilities"]["bounding"]
    assert "CAP_NET_ADMIN" in caps and "CAP_KILL" not in caps and "CAP_SYS_ADMIN" not in caps
    assert cfg["root"]["readonly"] is True and cfg["hostname"] == "h"
    res = cfg["linux"]["resources"]
    assert res["memory"]["limit"] == 64 << 20 and res["cpu"]["quota"] == 50000 and res["pids"]["limit"] == 10
    assert cfg["process"]["rlimits"] == [{"type": "RLIMIT_NOFILE", "soft": 10, "hard": 20}]
    assert any(m["destination"] == "/t" and "size=1024" in m["options"] for m in cfg["mounts"])
    assert {"type": "network"} in cfg["linux"]["namespaces"]
    with pytest.raises(InvalidArgument, match="no command"):
        bundle.process_args(ContainerSpec(image="x"), {})
    with pytest.raises(InvalidArgument, match="capability"):
        bundle.capabilities(ContainerSpec(image="x", cap_add=["FLY"]))


def test_lean_json_and_frames():
    obj = {"a": [1, 2.5, None, True, "é"], "b": {"c": -1}}
    assert json.loads(lean.dumps(obj)) == obj and lean.loads(json.dumps(obj, indent=2)) == obj
    data = stream.frame(stream.STDOUT, b"hello") + stream.frame(stream.EXIT, b"3")
    r = stream.FrameReader()
    assert r.feed(data[:7]) == []
    assert r.feed(data[7:]) == [(stream.STDOUT, b"hello"), (stream.EXIT, b"3")]


def test_events_rotate_and_filter(tmp_path, monkeypatch):
    from runtime.util import events

    monkeypatch.setenv("WHARF_ROOT", str(tmp_path))
    monkeypatch.setattr(events, "MAX_LOG_BYTES", 300)
    for i in range(10):
        events.emit("container", "start", f"id{i}", {"name": f"n{i}"})
    assert (tmp_path / "events.jsonl.1").exists()
    got = [e.id for e in events.read_events()]
    assert got == [f"id{i}" for i in range(10) if f"id{i}" in got] and got[-1] == "id9" and len(got) >= 3
    assert [e.id for e in events.read_events(filters={"container": ["n9"]})] == ["id9"]
