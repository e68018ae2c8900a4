"""Registry client pieces without a network: challenges, credentials file, insecure registries,
manifest parsing, digests, server range parsing."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument
from runtime.registry import credentials, digests, manifests
from runtime.registry.auth import parse_challenge
from runtime.registry.client import server_domain
from runtime.registry.hosts import is_insecure, registry_mirrors


def test_parse_challenge():
    scheme, params = parse_challenge('Bearer realm="https://auth.example/token",service="registry.example",'
                                     'scope="repository:a/b:pull,push"')
    assert scheme == "bearer"
    assert params == {"realm": "https://auth.example/token", "service": "registry.example",
                      "scope": "repository:a/b:pull,push"}
    assert parse_challenge('Basic realm="Registry Realm"') == ("basic", {"realm": "Registry Realm"})
    assert parse_challenge('Bearer realm="x",error="insufficient_scope"')[1]["error"] == "insufficient_scope"


def test_credentials_roundtrip(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    assert credentials.get("127.0.0.1:5000") is None
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "config.json").write_text(json.dumps({"auths": {}, "psFormat": "table {{.ID}}"}))
    path = credentials.store("127.0.0.1:5000", "alice", "pa:ss")
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text())
    assert doc["psFormat"] == "table {{.ID}}"  # other settings are kept
    assert base64.b64decode(doc["auths"]["127.0.0.1:5000"]["auth"]) == b"alice:pa:ss"
    assert credentials.get("127.0.0.1:5000") == ("alice", "pa:ss")
    credentials.store("docker.io", "bob", "x")
    assert "https://index.docker.io/v1/" in json.loads(path.read_text())["auths"]
    assert credentials.get("docker.io") == ("bob", "x")
    assert credentials.erase("127.0.0.1:5000") and not credentials.erase("127.0.0.1:5000")
    assert credentials.get("127.0.0.1:5000") is None
    # Docker also writes https:// URLs as keys
    path.write_text(json.dumps({"auths": {"https://reg.example:443": {"auth": base64.b64encode(b"u:p").decode()}}}))
    assert credentials.get("reg.example:443") == ("u", "p")
    path.write_text("{broken")
    with pytest.raises(InvalidArgument, match="not valid JSON"):
        credentials.get("x")


def test_decode_registry_auth():
    header = base64.urlsafe_b64encode(json.dumps({"username": "u", "password": "p?>", "serveraddress": "x"}).encode())
    assert credentials.decode_registry_auth(header.decode().rstrip("=")) == ("u", "p?>")
    assert credentials.decode_registry_auth(None) is None
    assert credentials.decode_registry_auth(base64.b64encode(b"{}").decode()) is None
    with pytest.raises(InvalidArgument):
        credentials.decode_registry_auth("%%%")


def test_insecure_registries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WHARF_REGISTRIES_CONFIG", str(tmp_path / "none.json"))
    monkeypatch.delenv("WHARF_INSECURE_REGISTRIES", raising=False)
    assert is_insecure("localhost:5000") and is_insecure("127.0.0.1:5000") and is_insecure("[::1]:5000")
    assert not is_insecure("registry.example:5000") and not is_insecure("10.1.2.3:5000")
    monkeypatch.setenv("WHARF_INSECURE_REGISTRIES", "registry.example:5000, 10.0.0.0/8")
    assert is_insecure("registry.example:5000") and is_insecure("10.1.2.3:5000")
    assert not is_insecure("registry.example:6000")
    monkeypatch.delenv("WHARF_INSECURE_REGISTRIES")
    (tmp_path / "r.json").write_text(json.dumps({"insecure-registries": ["mirror.example"]}))
    monkeypatch.setenv("WHARF_REGISTRIES_CONFIG", str(tmp_path / "r.json"))
    assert is_insecure("mirror.example") and is_insecure("mirror.example:5000")


def test_registry_mirrors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("WHARF_REGISTRIES_CONFIG", str(tmp_path / "r.json"))
    monkeypatch.setenv("WHARF_REGISTRY_MIRRORS", "http://127.0.0.1:5001, mirror.example:443/")
    (tmp_path / "r.json").write_text(json.dumps({"registry-mirrors": ["https://m2.example"]}))
    assert registry_mirrors() == [("127.0.0.1:5001", "http"), ("mirror.example:443", None), ("m2.example", "https")]
    (tmp_path / "r.json").write_text(json.dumps({"registry-mirrors": "not a list"}))
    with pytest.raises(InvalidArgument, match="registry-mirrors"):
        registry_mirrors()


def test_server_domain():
    assert server_domain(None) == "docker.io"
    assert server_domain("https://127.0.0.1:5000/v2/") == "127.0.0.1:5000"
    assert server_domain("index.docker.io") == "docker.io"
    with pytest.raises(InvalidArgument):
        server_domain("user@host")


def test_manifest_parse():
    doc = {"schemaVersion": 2, "mediaType": manifests.OCI_MANIFEST,
           "config": {"mediaType": "x", "digest": digests.of(b"c"), "size": 1},
           "layers": [{"mediaType": manifests.FOREIGN_LAYERS[0], "digest": digests.of(b"f"), "size": 1},
                      {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digests.of(b"l"), "size": 1}]}
    m = manifests.parse(json.dumps(doc).encode())
    assert not m.is_index and [d["digest"] for d in manifests.stored_blobs(m)] == [digests.of(b"c"), digests.of(b"l")]
    with pytest.raises(manifests.ManifestError, match="does not match Content-Type"):
        manifests.parse(json.dumps(doc).encode(), manifests.DOCKER_MANIFEST)
    doc.pop("mediaType")
    assert manifests.parse(json.dumps(doc).encode(), manifests.DOCKER_MANIFEST).media_type == manifests.DOCKER_MANIFEST
    for bad, why in ((b"{", "JSON"), (b'{"schemaVersion": 1}', "schema 1"), (b'{"schemaVersion": 2, "manifests": 3}',
                                                                             "descriptors")):
        with pytest.raises(manifests.ManifestError, match=why):
            manifests.parse(bad)
    index = manifests.parse(json.dumps({"schemaVersion": 2, "manifests": []}).encode())
    assert index.is_index and index.media_type == manifests.OCI_INDEX


def test_range_parsing():
    from runtime.registry.api import _parse_range
    from runtime.registry.apierrors import ApiError

    assert _parse_range("bytes=0-9", 100) == (0, 10)
    assert _parse_range("bytes=90-", 100) == (90, 10)
    assert _parse_range("bytes=-5", 100) == (95, 5)
    assert _parse_range("bytes=50-1000", 100) == (50, 50)
    for bad in ("bytes=100-", "bytes=5-1", "items=0-1", "bytes=-0"):
        with pytest.raises(ApiError):
            _parse_range(bad, 100)
