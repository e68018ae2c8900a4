"""config.json validation (errors name the field), default spec, CLI parsing, fast JSON."""

from __future__ import annotations

import json

import pytest

from runtime.errors import InvalidArgument
from runtime.oci import fastjson
from runtime.oci.cli import parse
from runtime.oci.lifecycle import parse_signal
from runtime.oci.spec import default_spec, load_spec, validate


def _err(spec: object) -> str:
    with pytest.raises(InvalidArgument) as e:
        validate(spec)
    return str(e.value)


def test_default_spec_is_valid_and_docker_like():
    s = default_spec(["sh"])
    validate(s)
    assert "CAP_SYS_ADMIN" not in s["process"]["capabilities"]["bounding"]
    assert "CAP_NET_RAW" in s["process"]["capabilities"]["bounding"]
    assert "/proc/kcore" in s["linux"]["maskedPaths"]
    assert {m["destination"] for m in s["mounts"]} >= {"/proc", "/dev", "/dev/pts", "/dev/shm", "/dev/mqueue", "/sys"}
    assert s["linux"]["resources"]["devices"][0] == {"allow": False, "access": "rwm"}


@pytest.mark.parametrize("change, field", [
    (lambda s: s.pop("ociVersion"), "ociVersion"),
    (lambda s: s.pop("root"), "root"),
    (lambda s: s["root"].pop("path"), "root.path"),
    (lambda s: s["process"].__setitem__("args", []), "process.args"),
    (lambda s: s["process"].__setitem__("cwd", "relative"), "process.cwd"),
    (lambda s: s["process"]["user"].__setitem__("uid", "0"), "process.user.uid"),
    (lambda s: s["process"]["capabilities"]["bounding"].append("CAP_NOPE"), "process.capabilities.bounding[14]"),
    (lambda s: s["process"]["rlimits"].append({"type": "RLIMIT_BOGUS", "soft": 1, "hard": 1}),
     "process.rlimits[1].type"),
    (lambda s: s["linux"]["namespaces"].append({"type": "bogus"}), "linux.namespaces[6].type"),
    (lambda s: s["linux"]["namespaces"].append({"type": "pid"}), "linux.namespaces[6].type"),
    (lambda s: s["linux"]["namespaces"].append({"type": "user"}), "linux.uidMappings"),
    (lambda s: s["mounts"][0].pop("destination"), "mounts[0].destination"),
    (lambda s: s.__setitem__("hooks", {"prestart": [{"path": "rel"}]}), "hooks.prestart[0].path"),
    (lambda s: s.__setitem__("hooks", {"later": []}), "hooks.later"),
    (lambda s: s["linux"]["seccomp"].__setitem__("defaultAction", "SCMP_ACT_MAYBE"), "linux.seccomp.defaultAction"),
    (lambda s: s["linux"]["resources"]["devices"][0].__setitem__("access", "rwx"),
     "linux.resources.devices[0].access"),
    (lambda s: s["linux"]["resources"].__setitem__("memory", {"limit": "1g"}), "linux.resources.memory.limit"),
    (lambda s: s["linux"].__setitem__("namespaces", [{"type": "mount"}]), "hostname"),
])
def test_validation_names_the_field(change, field):
    s = default_spec(["sh"])
    change(s)
    assert _err(s).startswith(f"config.json: {field}:")


def test_not_an_object():
    assert "must be a JSON object" in _err([1])


def test_load_spec_bad_json_and_missing(tmp_path):
    (tmp_path / "config.json").write_text('{"ociVersion": "1.0.2",\n "root": }')
    with pytest.raises(InvalidArgument, match=r"not valid JSON: Expecting value: line 2"):
        load_spec(tmp_path)
    with pytest.raises(InvalidArgument, match="does not exist"):
        load_spec(tmp_path / "nope")


def test_fastjson_matches_json():
    doc = {"a": [1, 2.5, True, None, "é\n\"x\""], "b": {"c": -1, "d": 2**70}, "e": ""}
    text = json.dumps(doc)
    assert fastjson.loads(text) == json.loads(text)
    assert json.loads(fastjson.dumps(doc)) == doc
    for bad in ["", "{", "[1,]", "{} x"]:
        with pytest.raises(ValueError):
            fastjson.loads(bad)


def test_cli_parse_runc_shape():
    g, cmd, flags, pos = parse(["--root", "/r", "--log", "x", "create", "--bundle", "/b", "--pid-file=/p", "id1"])
    assert (g["--root"], cmd, flags["--bundle"], flags["--pid-file"], pos) == ("/r", "create", "/b", "/p", ["id1"])
    g, cmd, flags, pos = parse(["kill", "--all", "id1", "KILL"])
    assert (cmd, flags, pos) == ("kill", {"--all": True}, ["id1", "KILL"])
    _, _, flags, pos = parse(["delete", "-f", "id1"])
    assert flags == {"--force": True} and pos == ["id1"]
    _, _, flags, _ = parse(["kill", "--signal", "9", "x"])
    assert flags["--signal"] == "9"
    with pytest.raises(InvalidArgument, match="unknown command"):
        parse(["frobnicate"])


def test_parse_signal():
    assert parse_signal("KILL") == parse_signal("SIGKILL") == parse_signal("9") == 9
    with pytest.raises(InvalidArgument, match="unknown signal"):
        parse_signal("SIGNOPE")


def test_sysctls_must_belong_to_a_namespace_of_the_container():
    s = default_spec(["sh"])
    s["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000", "fs.mqueue.msg_max": "20"}
    validate(s)
    s["linux"]["sysctl"] = {"vm.overcommit_memory": "1"}
    assert "not a namespaced sysctl" in _err(s)
    s["linux"]["sysctl"] = {"net.ipv4.ip_forward": "1"}
    s["linux"]["namespaces"] = [n for n in s["linux"]["namespaces"] if n["type"] != "network"]
    assert _err(s).startswith("config.json: linux.sysctl.net.ipv4.ip_forward: needs a \"network\" namespace")
    s["linux"]["namespaces"].append({"type": "network", "path": "/proc/self/ns/net"})  # the host's own
    assert "needs a \"network\" namespace" in _err(s)
