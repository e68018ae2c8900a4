"""Docker JSON <-> engine dataclasses, and the router's version prefixes (no daemon needed)."""

from __future__ import annotations

import pytest

from runtime.api import container_json
from runtime.api.router import Router
from runtime.engine import ContainerSpec, EndpointSpec, HealthCheck, MountSpec, PortBinding, RestartPolicy
from runtime.errors import InvalidArgument, NotFound


def test_create_body_round_trip():
    spec = ContainerSpec(image="busybox", name="web", command=["sleep", "1"], entrypoint=[], env=["A=1"],
                         labels={"k": "v"}, working_dir="/w", user="1000", tty=True, stdin_open=True,
                         exposed_ports=["80/tcp"], healthcheck=HealthCheck(test=["CMD", "true"], interval=2.0),
                         mounts=[MountSpec(type="volume", target="/data", source="vol"),
                                 MountSpec(type="tmpfs", target="/run", tmpfs_size=1024)],
                         ports=[PortBinding(container_port=80, host_port=8080, host_ip="127.0.0.1")],
                         network_mode="front", networks={"front": EndpointSpec(aliases=["w"])},
                         restart=RestartPolicy("on-failure", 3), cap_add=["NET_ADMIN"], auto_remove=False)
    spec.resources.memory = 64 * 1024 * 1024
    back = container_json.spec_from_create(container_json.create_body(spec), name="web")
    for attr in ("image", "name", "command", "entrypoint", "env", "labels", "working_dir", "user", "tty",
                 "stdin_open", "exposed_ports", "ports", "network_mode", "restart", "cap_add"):
        assert getattr(back, attr) == getattr(spec, attr), attr
    assert back.networks["front"].aliases == ["w"]
    assert back.healthcheck.test == ["CMD", "true"] and back.healthcheck.interval == 2.0
    assert back.resources.memory == 64 * 1024 * 1024
    assert {(m.type, m.target) for m in back.mounts} == {("volume", "/data"), ("tmpfs", "/run")}


def test_docker_cli_shapes():
    spec = container_json.spec_from_create({
        "Image": "busybox", "Cmd": "echo hi", "HostConfig": {"NetworkMode": "default", "Binds": ["/tmp:/h:ro"],
                                                            "RestartPolicy": {"Name": ""}},
        "NetworkingConfig": {"EndpointsConfig": {"default": {}}}})
    assert spec.command == ["echo", "hi"] and spec.network_mode == "bridge" and "bridge" in spec.networks
    assert spec.mounts[0].type == "bind" and spec.mounts[0].read_only
    assert spec.restart.name == "no"


@pytest.mark.parametrize("body,field", [
    ({}, "Config.Image"),
    ({"Image": "b", "Env": "A=1"}, "Config.Env"),
    ({"Image": "b", "Tty": "yes"}, "Config.Tty"),
    ({"Image": "b", "HostConfig": {"Memory": True}}, "HostConfig.Memory"),
    ({"Image": "b", "HostConfig": {"Mounts": [{"Type": "bind", "Target": "/x"}]}}, "HostConfig.Mounts[0]"),
    ({"Image": "b", "HostConfig": []}, "HostConfig"),
])
def test_wrong_types_name_the_field(body, field):
    with pytest.raises(InvalidArgument) as e:
        container_json.spec_from_create(body)
    assert field in str(e.value)


def test_router_versions_and_methods():
    r = Router()
    r.add("GET", r"/containers/(?P<id>[^/]+)/json", lambda *_: "x")
    for path in ("/containers/a/json", "/v1.24/containers/a/json", "/v1.45/containers/a/json"):
        fn, params, _ = r.match("GET", path)
        assert params == {"id": "a"}
    assert r.match("HEAD", "/containers/a/json")[1] == {"id": "a"}
    with pytest.raises(InvalidArgument):
        r.match("GET", "/v1.12/containers/a/json")
    with pytest.raises(InvalidArgument) as e:
        r.match("POST", "/containers/a/json")
    assert e.value.http_status == 405
    with pytest.raises(NotFound):
        r.match("GET", "/nothing")


def test_tar_member_checks():
    import io
    import tarfile

    from runtime.api.tarstream import check_members

    def tar_of(*members):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as t:
            for m in members:
                t.addfile(m, io.BytesIO(b"x" * m.size))
        buf.seek(0)
        return tarfile.open(fileobj=buf)

    ok = tarfile.TarInfo("a/b")
    ok.size = 1
    check_members(tar_of(ok))
    bad = tarfile.TarInfo("a/../../b")
    with pytest.raises(InvalidArgument):
        check_members(tar_of(bad))
    hl = tarfile.TarInfo("h")
    hl.type, hl.linkname = tarfile.LNKTYPE, "../../etc/shadow"
    with pytest.raises(InvalidArgument):
        check_members(tar_of(hl))


def test_x_registry_auth_decoding():
    import base64
    import json
    from types import SimpleNamespace

    from runtime.api.images import registry_auth

    def creds(header):
        return registry_auth(SimpleNamespace(headers={"X-Registry-Auth": header} if header is not None else {}))

    def enc(doc, alphabet=base64.urlsafe_b64encode):
        return alphabet(json.dumps(doc).encode()).decode()

    assert creds(None) is None and creds("") is None and creds(enc({})) is None
    doc = {"username": "u?>", "password": "p~~?", "serveraddress": "127.0.0.1:5000"}
    assert creds(enc(doc)) == ("u?>", "p~~?")
    assert creds(enc(doc, base64.b64encode)) == ("u?>", "p~~?")  # standard alphabet (docker-py)
    assert creds(enc(doc).rstrip("=")) == ("u?>", "p~~?")  # no padding
    assert creds(enc({"auth": base64.b64encode(b"ann:pw:x").decode()})) == ("ann", "pw:x")
    for bad in ("not base64!", enc([1]), enc({"username": 3, "password": "x"})):
        with pytest.raises(InvalidArgument, match="X-Registry-Auth"):
            creds(bad)
    with pytest.raises(InvalidArgument, match="identity tokens"):
        creds(enc({"username": "<token>", "identitytoken": "rt"}))
