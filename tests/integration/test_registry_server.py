"""`wharf registry serve`: the OCI distribution API, checked on the wire and with skopeo."""

from __future__ import annotations

import base64
import gzip
import hashlib
import http.client
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from runtime.registry.server import RegistryServer

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def make_oci_layout(dest: Path, tag: str = "v1", files: dict[str, bytes] | None = None,
                    nlayers: int = 2, layer_size: int = 64 << 10) -> str:
    """An OCI image layout with `nlayers` gzip layers of random files (+ `files` in the last); returns
    the manifest digest."""
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)

    def put(data: bytes) -> str:
        d = sha(data)
        (blobs / d[7:]).write_bytes(data)
        return d

    layers, diff_ids = [], []
    for i in range(nlayers):
        content = {f"layer{i}.bin": os.urandom(layer_size)}
        if i == nlayers - 1:
            content.update(files or {})
        raw = tar_layer(content)
        diff_ids.append(sha(raw))
        gz = gzip.compress(raw, 1, mtime=0)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)})
    config = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Cmd": ["sh"], "Env": ["PATH=/bin"]},
                         "rootfs": {"type": "layers", "diff_ids": diff_ids}, "history": []}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                      "digest": put(config), "size": len(config)},
                           "layers": layers}).encode()
    digest = put(manifest)
    index_path = dest / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    index["manifests"].append({"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
                               "annotations": {"org.opencontainers.image.ref.name": tag}})
    index_path.write_text(json.dumps(index))
    (dest / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return digest


def tar_layer(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1700000000
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


class Wire:
    """Raw HTTP/1.1 requests to a registry (one keep-alive connection)."""

    def __init__(self, address: str, auth: tuple[str, str] | None = None, tls: bool = False) -> None:
        host, port = address.rsplit(":", 1)
        if tls:
            import ssl

            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.conn = http.client.HTTPSConnection(host, int(port), context=ctx, timeout=10)
        else:
            self.conn = http.client.HTTPConnection(host, int(port), timeout=10)
        self.auth = auth

    def __call__(self, method: str, path: str, body=None, headers: dict | None = None, chunked: bool = False):
        headers = dict(headers or {})
        if self.auth:
            headers["Authorization"] = "Basic " + base64.b64encode(":".join(self.auth).encode()).decode()
        self.conn.request(method, path, body=body, headers=headers, encode_chunked=chunked)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data

    def upload(self, repo: str, data: bytes) -> str:
        digest = sha(data)
        status, headers, body = self("POST", f"/v2/{repo}/blobs/uploads/?digest={digest}", data)
        if status == 202:  # a registry without single-POST uploads (distribution 2.8): PUT the data
            loc = headers["location"]
            status, _, body = self("PUT", loc + ("&" if "?" in loc else "?") + f"digest={digest}", data)
        assert status == 201, body
        return digest

    def put_image(self, repo: str, tag: str, layers: list[bytes]) -> tuple[str, bytes]:
        config = json.dumps({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}})
        cd = self.upload(repo, config.encode())
        descs = [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": self.upload(repo, b),
                  "size": len(b)} for b in layers]
        manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                               "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                                          "digest": cd, "size": len(config)}, "layers": descs}).encode()
        status, headers, body = self("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": OCI_MANIFEST})
        assert status == 201, body
        return headers["docker-content-digest"], manifest


def error_code(body: bytes) -> str:
    return json.loads(body)["errors"][0]["code"]


@pytest.fixture
def registry(tmp_path: Path):
    server = RegistryServer(tmp_path / "registry", "127.0.0.1:0").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def wire(registry):
    w = Wire(registry.address)
    try:
        yield w
    finally:
        w.conn.close()


def test_ping_and_version_header(wire):
    status, headers, body = wire("GET", "/v2/")
    assert status == 200 and json.loads(body) == {}
    assert headers["docker-distribution-api-version"] == "registry/2.0"


def test_monolithic_upload_then_get_head_and_ranges(wire):
    data = os.urandom(10000)
    digest = wire.upload("a/b", data)
    status, headers, body = wire("HEAD", f"/v2/a/b/blobs/{digest}")
    assert status == 200 and headers["content-length"] == "10000" and body == b""
    assert headers["docker-content-digest"] == digest
    status, _, body = wire("GET", f"/v2/a/b/blobs/{digest}")
    assert status == 200 and body == data
    status, headers, body = wire("GET", f"/v2/a/b/blobs/{digest}", headers={"Range": "bytes=100-199"})
    assert status == 206 and body == data[100:200] and headers["content-range"] == "bytes 100-199/10000"
    status, _, body = wire("GET", f"/v2/a/b/blobs/{digest}", headers={"Range": "bytes=9990-"})
    assert status == 206 and body == data[9990:]
    status, headers, _ = wire("GET", f"/v2/a/b/blobs/{digest}", headers={"Range": "bytes=20000-"})
    assert status == 416 and headers["content-range"] == "bytes */10000"
    # a blob of another repository is not visible here
    status, _, body = wire("GET", f"/v2/other/blobs/{digest}")
    assert status == 404 and error_code(body) == "NAME_UNKNOWN"
    status, _, body = wire("HEAD", f"/v2/a/b/blobs/{sha(b'nothing')}")
    assert status == 404


def test_chunked_upload_with_ranges_and_status(wire, registry):
    data = os.urandom(3 * 65536 + 17)
    digest = sha(data)
    status, headers, _ = wire("POST", "/v2/c/blobs/uploads/")
    assert status == 202 and headers["range"] == "0-0"
    loc = headers["location"]
    status, headers, _ = wire("PATCH", loc, data[:65536],
                              {"Content-Range": "0-65535", "Content-Type": "application/octet-stream"})
    assert status == 202 and headers["range"] == "0-65535"
    loc = headers["location"]
    # out of order: 416, the upload keeps its state
    status, _, _ = wire("PATCH", loc, data[:10], {"Content-Range": "100-109"})
    assert status == 416
    status, headers, _ = wire("GET", loc)
    assert status == 204 and headers["range"] == "0-65535"
    # a streamed (Transfer-Encoding: chunked) PATCH without Content-Range, as docker and skopeo send
    status, headers, _ = wire("PATCH", loc, iter([data[65536:100000], data[100000:3 * 65536]]), chunked=True)
    assert status == 202 and headers["range"] == f"0-{3 * 65536 - 1}"
    status, headers, _ = wire("PUT", f"{loc}?digest={digest}", data[3 * 65536:])
    assert status == 201 and headers["docker-content-digest"] == digest
    assert headers["location"] == f"/v2/c/blobs/{digest}"
    assert wire("GET", f"/v2/c/blobs/{digest}")[2] == data
    assert wire("GET", loc)[0] == 404  # the session is gone
    assert not any((registry.httpd.registry.storage.root / "uploads").iterdir())


def test_digest_mismatch_leaves_nothing(wire, registry):
    data = b"hello world"
    wrong = sha(b"something else")
    status, _, body = wire("POST", f"/v2/d/blobs/uploads/?digest={wrong}", data)
    assert status == 400 and error_code(body) == "DIGEST_INVALID"
    status, headers, _ = wire("POST", "/v2/d/blobs/uploads/")
    loc = headers["location"]
    status, _, body = wire("PUT", f"{loc}?digest={wrong}", data)
    assert status == 400 and error_code(body) == "DIGEST_INVALID"
    assert wire("GET", loc)[0] == 404
    root = registry.httpd.registry.storage.root
    assert not any((root / "uploads").iterdir())
    assert not (root / "blobs" / "sha256" / wrong[7:]).exists()
    status, _, body = wire("POST", "/v2/d/blobs/uploads/?digest=sha256:abc", data)
    assert status == 400 and error_code(body) == "DIGEST_INVALID"


def test_truncated_upload_leaves_no_blob(registry):
    import socket

    host, port = registry.address.rsplit(":", 1)
    digest = sha(b"x" * 1000)
    with socket.create_connection((host, int(port))) as s:
        s.sendall(f"POST /v2/t/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: x\r\n"
                  f"Content-Length: 1000\r\n\r\n".encode() + b"x" * 400)
        s.shutdown(socket.SHUT_WR)
        s.recv(100)  # the server closes without a response
    root = registry.httpd.registry.storage.root
    assert not (root / "blobs" / "sha256" / digest[7:]).exists()
    assert not any((root / "uploads").iterdir())


def test_cross_repository_mount(wire):
    digest = wire.upload("src/repo", b"shared layer")
    status, headers, _ = wire("POST", f"/v2/dst/blobs/uploads/?mount={digest}&from=src/repo")
    assert status == 201 and headers["location"] == f"/v2/dst/blobs/{digest}"
    assert wire("GET", f"/v2/dst/blobs/{digest}")[2] == b"shared layer"
    # unknown blob: a regular upload session instead
    status, headers, _ = wire("POST", f"/v2/dst/blobs/uploads/?mount={sha(b'nope')}&from=src/repo")
    assert status == 202 and "/blobs/uploads/" in headers["location"]


def test_manifests_by_tag_and_digest(wire):
    digest, manifest = wire.put_image("m/n", "v1", [b"layer one", b"layer two"])
    assert digest == sha(manifest)
    for ref in ("v1", digest):
        status, headers, body = wire("GET", f"/v2/m/n/manifests/{ref}", headers={"Accept": OCI_MANIFEST})
        assert status == 200 and body == manifest
        assert headers["content-type"] == OCI_MANIFEST and headers["docker-content-digest"] == digest
        status, headers, body = wire("HEAD", f"/v2/m/n/manifests/{ref}")
        assert status == 200 and body == b"" and headers["content-length"] == str(len(manifest))
    # by digest: the body must hash to it
    status, _, body = wire("PUT", f"/v2/m/n/manifests/{sha(b'x')}", manifest, {"Content-Type": OCI_MANIFEST})
    assert status == 400 and error_code(body) == "DIGEST_INVALID"
    # an index over it
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": digest, "size": len(manifest),
         "platform": {"architecture": "amd64", "os": "linux"}}]}).encode()
    status, headers, _ = wire("PUT", "/v2/m/n/manifests/multi", index, {"Content-Type": OCI_INDEX})
    assert status == 201
    status, headers, body = wire("GET", "/v2/m/n/manifests/multi")
    assert body == index and headers["content-type"] == OCI_INDEX
    # delete by digest removes the tags pointing at it
    assert wire("DELETE", f"/v2/m/n/manifests/{digest}")[0] == 202
    status, _, body = wire("GET", "/v2/m/n/manifests/v1")
    assert status == 404 and error_code(body) == "MANIFEST_UNKNOWN"
    # delete a tag only
    assert wire("DELETE", "/v2/m/n/manifests/multi")[0] == 202
    assert wire("GET", "/v2/m/n/tags/list")[2] == b'{"name": "m/n", "tags": []}'


def test_manifest_with_missing_blobs_is_rejected(wire, registry):
    config = b"{}"
    cd = wire.upload("x", config)
    missing = sha(b"never uploaded")
    manifest = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                           "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                                      "size": 2},
                           "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing,
                                       "size": 14}]}).encode()
    status, _, body = wire("PUT", "/v2/x/manifests/v1", manifest, {"Content-Type": OCI_MANIFEST})
    assert status == 400 and error_code(body) == "MANIFEST_BLOB_UNKNOWN"
    assert json.loads(body)["errors"][0]["detail"] == {"digest": missing}
    assert wire("GET", "/v2/x/tags/list")[2] == b'{"name": "x", "tags": []}'
    assert not (registry.httpd.registry.storage.root / "blobs" / "sha256" / sha(manifest)[7:]).exists()
    for bad in (b"not json", b'{"schemaVersion": 1}', b"[]"):
        status, _, body = wire("PUT", "/v2/x/manifests/v1", bad, {"Content-Type": OCI_MANIFEST})
        assert status == 400 and error_code(body) == "MANIFEST_INVALID"


def test_tags_and_catalog_pagination(wire):
    for repo in ("r1", "r2/sub", "r3"):
        wire.upload(repo, repo.encode())
    for tag in ("c", "a", "b", "d"):
        wire.put_image("r1", tag, [])
    status, _, body = wire("GET", "/v2/r1/tags/list")
    assert json.loads(body)["tags"] == ["a", "b", "c", "d"]
    status, headers, body = wire("GET", "/v2/r1/tags/list?n=2")
    assert json.loads(body)["tags"] == ["a", "b"]
    assert headers["link"] == '</v2/r1/tags/list?n=2&last=b>; rel="next"'
    status, headers, body = wire("GET", "/v2/r1/tags/list?n=2&last=b")
    assert json.loads(body)["tags"] == ["c", "d"] and "link" not in headers
    status, headers, body = wire("GET", "/v2/_catalog?n=2")
    assert json.loads(body)["repositories"] == ["r1", "r2/sub"] and "last=r2/sub" in headers["link"]
    status, _, body = wire("GET", "/v2/_catalog?n=2&last=r2/sub")
    assert json.loads(body)["repositories"] == ["r3"]


def test_bad_names_and_unknown_repositories(wire):
    status, _, body = wire("GET", "/v2/UPPER/tags/list")
    assert status == 400 and error_code(body) == "NAME_INVALID"
    status, _, body = wire("GET", "/v2/nope/tags/list")
    assert status == 404 and error_code(body) == "NAME_UNKNOWN"
    status, _, body = wire("GET", "/v2/nope/manifests/latest")
    assert status == 404 and error_code(body) == "NAME_UNKNOWN"
    status, headers, body = wire("PATCH", "/v2/nope/manifests/latest")
    assert status == 405 and error_code(body) == "UNSUPPORTED"
    status, _, body = wire("PATCH", "/v2/nope/blobs/uploads/0123456789abcdef0123456789abcdef", b"x")
    assert status == 404 and error_code(body) == "BLOB_UPLOAD_UNKNOWN"
    status, _, body = wire("GET", "/v2/nope/blobs/uploads/../../etc")
    assert status in (400, 404)


@pytest.fixture
def htpasswd_file(tmp_path: Path) -> Path:
    import bcrypt

    path = tmp_path / "htpasswd"
    path.write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(5)).decode().replace("$2b$", "$2y$") + "\n")
    return path


def test_basic_auth(tmp_path: Path, htpasswd_file: Path):
    server = RegistryServer(tmp_path / "reg", "127.0.0.1:0", htpasswd=htpasswd_file).start()
    try:
        status, headers, body = Wire(server.address)("GET", "/v2/")
        assert status == 401 and error_code(body) == "UNAUTHORIZED"
        assert headers["www-authenticate"].startswith("Basic realm=")
        assert Wire(server.address, ("alice", "wrong"))("GET", "/v2/")[0] == 401
        assert Wire(server.address, ("bob", "s3cret"))("GET", "/v2/")[0] == 401
        good = Wire(server.address, ("alice", "s3cret"))
        assert good("GET", "/v2/")[0] == 200
        assert good("GET", "/v2/")[0] == 200  # cached check
        good.upload("private", b"data")
    finally:
        server.stop()


def test_tls_hello_to_the_plain_server_is_refused_at_once(registry):
    import socket
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    host, port = registry.address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as raw, pytest.raises(ssl.SSLError):
        ctx.wrap_socket(raw)
    assert Wire(registry.address)("GET", "/v2/")[0] == 200


def test_htpasswd_must_be_bcrypt(tmp_path: Path):
    from runtime.errors import InvalidArgument

    bad = tmp_path / "htpasswd"
    bad.write_text("bob:{SHA}abc\n")
    with pytest.raises(InvalidArgument, match="htpasswd:1"):
        RegistryServer(tmp_path / "reg", "127.0.0.1:0", htpasswd=bad)


def test_tls(tmp_path: Path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    server = RegistryServer(tmp_path / "reg", "127.0.0.1:0", tls_cert=str(cert), tls_key=str(key)).start()
    try:
        assert server.url.startswith("https://")
        w = Wire(server.address, tls=True)
        assert w("GET", "/v2/")[0] == 200
        digest = w.upload("secure", b"over tls")
        assert w("GET", f"/v2/secure/blobs/{digest}")[2] == b"over tls"
    finally:
        server.stop()


def test_gc_deletes_only_unreferenced_blobs(wire, registry):
    from runtime.registry.gc import collect

    d1, m1 = wire.put_image("g", "keep", [b"common", b"only-keep"])
    d2, m2 = wire.put_image("g", "drop", [b"common", b"only-drop"])
    orphan = wire.upload("g", b"orphan upload")
    assert wire("DELETE", f"/v2/g/manifests/{d2}")[0] == 202
    root = registry.httpd.registry.storage.root
    dry = collect(root, dry_run=True)
    assert set(dry.blobs) == {sha(b"only-drop"), orphan, d2}
    assert (root / "blobs" / "sha256" / orphan[7:]).exists()
    result = collect(root)
    assert set(result.blobs) == {sha(b"only-drop"), orphan, d2}
    assert wire("GET", f"/v2/g/blobs/{sha(b'common')}")[2] == b"common"
    assert wire("GET", "/v2/g/manifests/keep")[2] == m1
    assert wire("HEAD", f"/v2/g/blobs/{orphan}")[0] == 404
    # untagged manifests go with --delete-untagged
    assert wire("DELETE", "/v2/g/manifests/keep")[0] == 202
    result = collect(root, delete_untagged=True)
    assert result.manifests == [f"g@{d1}"] and sha(b"common") in result.blobs


skopeo = pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo is not installed")


def run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120)


@skopeo
@pytest.mark.peer
def test_skopeo_copies_in_and_out_unchanged(tmp_path: Path, registry):
    src = tmp_path / "src"
    digest = make_oci_layout(src, "v1", nlayers=3, layer_size=300 << 10)
    r = run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{src}:v1", f"docker://{registry.address}/lib/img:v1")
    assert r.returncode == 0, r.stderr
    r = run("skopeo", "inspect", "--tls-verify=false", f"docker://{registry.address}/lib/img:v1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["Digest"] == digest
    out = tmp_path / "out"
    r = run("skopeo", "copy", "--src-tls-verify=false", f"docker://{registry.address}/lib/img:v1", f"oci:{out}:v1")
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "index.json").read_text())["manifests"][0]["digest"] == digest
    for blob in (src / "blobs" / "sha256").iterdir():
        assert (out / "blobs" / "sha256" / blob.name).read_bytes() == blob.read_bytes()
    # and by digest, between repositories of the same registry (skopeo mounts the blobs)
    r = run("skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false",
            f"docker://{registry.address}/lib/img@{digest}", f"docker://{registry.address}/other/img:copy")
    assert r.returncode == 0, r.stderr
    r = run("skopeo", "list-tags", "--tls-verify=false", f"docker://{registry.address}/lib/img")
    assert json.loads(r.stdout)["Tags"] == ["v1"]


@skopeo
@pytest.mark.peer
def test_skopeo_with_basic_auth(tmp_path: Path, htpasswd_file: Path):
    server = RegistryServer(tmp_path / "reg", "127.0.0.1:0", htpasswd=htpasswd_file).start()
    try:
        make_oci_layout(tmp_path / "src", "v1")
        dest = f"docker://{server.address}/auth/img:v1"
        r = run("skopeo", "copy", "--dest-tls-verify=false", f"oci:{tmp_path / 'src'}:v1", dest)
        assert r.returncode != 0 and "unauthorized" in r.stderr.lower()
        r = run("skopeo", "copy", "--dest-tls-verify=false", "--dest-creds", "alice:s3cret",
                f"oci:{tmp_path / 'src'}:v1", dest)
        assert r.returncode == 0, r.stderr
    finally:
        server.stop()


def test_cli_serve_starts_and_stops(tmp_path: Path):
    proc = subprocess.Popen([sys.executable, "-m", "reconciler.cli.app", "registry", "serve", "--addr",
                             "127.0.0.1:0", "--root", str(tmp_path / "reg")], stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("wharf registry listening on http://127.0.0.1:"), line
        address = line.split("http://", 1)[1].strip()
        assert Wire(address)("GET", "/v2/")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_cli_serve_bad_input(tmp_path: Path):
    r = subprocess.run([sys.executable, "-m", "reconciler.cli.app", "registry", "serve", "--addr", "nonsense",
                        "--root", str(tmp_path)], capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.startswith("wharf: error: invalid listen address")
    r = subprocess.run([sys.executable, "-m", "reconciler.cli.app", "registry", "serve", "--addr", "127.0.0.1:0",
                        "--root", str(tmp_path), "--htpasswd", str(tmp_path / "missing")], capture_output=True,
                       text=True)
    assert r.returncode == 1 and "htpasswd file" in r.stderr and "Traceback" not in r.stderr
