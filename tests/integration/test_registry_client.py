"""The registry client (pull, push, login, search) against `wharf registry serve` and Debian's
docker-registry, with skopeo as the byte-for-byte oracle."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from runtime.errors import InvalidArgument, NotFound, RuntimeFailure
from runtime.images.reference import normalize
from runtime.images.store import ImageStore
from runtime.registry import client
from runtime.registry.server import RegistryServer
from tests.integration import test_registry_server as server_tests
from tests.integration.test_registry_server import OCI_INDEX, Wire, make_oci_layout, sha, tar_layer

registry = server_tests.registry  # the fixture: `wharf registry serve` in a thread, stopped in finally
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"

needs_skopeo = pytest.mark.skipif(not shutil.which("skopeo"), reason="skopeo is not installed")
needs_distribution = pytest.mark.skipif(not shutil.which("docker-registry"), reason="docker-registry is not installed")


@pytest.fixture(autouse=True)
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "docker-config"
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    monkeypatch.delenv("WHARF_HOST", raising=False)
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return d


@pytest.fixture
def store(wharf_root: Path) -> ImageStore:
    return ImageStore()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def htpasswd_line(user: str, password: str) -> str:
    import bcrypt

    return f"{user}:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(5)).decode().replace("$2b$", "$2y$")


@pytest.fixture(params=[False, True], ids=["anonymous", "basic-auth"])
def distribution(request, tmp_path: Path):
    """Debian's docker-registry (distribution 2.8) on a free loopback port; yields (address, creds)."""
    if not shutil.which("docker-registry"):
        pytest.skip("docker-registry is not installed")
    port = free_port()
    cfg = {"version": 0.1, "log": {"level": "error"},
           "storage": {"filesystem": {"rootdirectory": str(tmp_path / "dreg")}, "delete": {"enabled": True}},
           "http": {"addr": f"127.0.0.1:{port}"}}
    creds = None
    if request.param:
        creds = ("carol", "pa55word")
        (tmp_path / "dr-htpasswd").write_text(htpasswd_line(*creds) + "\n")
        cfg["auth"] = {"htpasswd": {"realm": "test", "path": str(tmp_path / "dr-htpasswd")}}
    (tmp_path / "dr.yml").write_text(json.dumps(cfg))  # JSON is YAML
    proc = subprocess.Popen(["docker-registry", "serve", str(tmp_path / "dr.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    pytest.fail("docker-registry did not start")
                time.sleep(0.02)
        yield f"127.0.0.1:{port}", creds
    finally:
        proc.terminate()
        proc.wait(10)


# ------------------------------------------------------------------ images made on the wire

def put_image(wire: Wire, repo: str, tag: str, layers: list[dict[str, bytes]], arch: str = "amd64",
              docker: bool = False, compression: str = "gzip") -> tuple[str, bytes, str]:
    """Upload an image (gzip, zstd or plain tar layers); returns (manifest digest, manifest bytes,
    config digest)."""
    raws = [tar_layer(f) for f in layers]
    config = json.dumps({"architecture": arch, "os": "linux", "config": {"Cmd": ["sh"]},
                         "rootfs": {"type": "layers", "diff_ids": [sha(r) for r in raws]}}).encode()
    layer_type = "application/vnd.docker.image.rootfs.diff.tar" if docker else "application/vnd.oci.image.layer.v1.tar"
    layer_type += {"gzip": ".gzip" if docker else "+gzip", "zstd": "+zstd", "": ""}[compression]
    descs = []
    for raw in raws:
        if compression == "gzip":
            blob = gzip.compress(raw, 1, mtime=0)
        elif compression == "zstd":
            import zstandard

            blob = zstandard.ZstdCompressor().compress(raw)
        else:
            blob = raw
        descs.append({"mediaType": layer_type, "digest": wire.upload(repo, blob), "size": len(blob)})
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.docker.container.image.v1+json" if docker
                   else "application/vnd.oci.image.config.v1+json", "digest": wire.upload(repo, config),
                   "size": len(config)},
        "layers": descs}).encode()
    mt = DOCKER_MANIFEST if docker else OCI_MANIFEST
    status, headers, body = wire("PUT", f"/v2/{repo}/manifests/{tag}", manifest, {"Content-Type": mt})
    assert status == 201, body
    return headers["docker-content-digest"], manifest, sha(config)


def snapshot_file(store: ImageStore, image, name: str) -> bytes:
    return (store.snapshots.fs_path(image.chain_ids[-1]) / name).read_bytes()


# --------------------------------------------------------------------------------- pull

def test_pull_oci_and_docker_schema2(registry, store):
    wire = Wire(registry.address)
    d1, m1, c1 = put_image(wire, "lib/oci", "v1", [{"a.txt": b"first"}, {"b.txt": b"second"}])
    d2, m2, c2 = put_image(wire, "lib/docker", "v1", [{"c.txt": b"third"}], docker=True)
    events: list[dict] = []
    img = client.pull(store, f"{registry.address}/lib/oci:v1", progress=events.append)
    assert img.id == c1 and img.manifest_digest == d1
    assert f"{registry.address}/lib/oci:v1" in img.repo_tags
    assert f"{registry.address}/lib/oci@{d1}" in img.repo_digests
    assert snapshot_file(store, img, "b.txt") == b"second"
    assert store.content.read(d1) == m1
    assert any(e.get("status") == "Download complete" for e in events)
    img2 = client.pull(store, f"{registry.address}/lib/docker:v1")
    assert img2.id == c2 and img2.manifest_digest == d2 and img2.media_type == DOCKER_MANIFEST
    # again: every blob is there already, nothing is fetched
    events.clear()
    client.pull(store, f"{registry.address}/lib/oci:v1", progress=events.append)
    assert not [e for e in events if e.get("status") == "Downloading"]
    assert [e["status"] for e in events if e.get("id") and len(e["id"]) == 12].count("Already exists") == 2
    # by digest
    assert client.pull(store, f"{registry.address}/lib/oci@{d1}").id == c1


@pytest.mark.parametrize("compression", ["zstd", ""])
def test_pull_zstd_and_uncompressed_layers(registry, store, compression):
    big = os.urandom(3 << 20)  # several chunks through the streaming unpack
    _, _, config = put_image(Wire(registry.address), "comp", "v1", [{"big": big}, {"small": b"s"}],
                             compression=compression)
    img = client.pull(store, f"{registry.address}/comp:v1")
    assert img.id == config
    assert (store.snapshots.fs_path(img.chain_ids[0]) / "big").read_bytes() == big
    assert snapshot_file(store, img, "small") == b"s"


@pytest.mark.parametrize("index_type", [OCI_INDEX, DOCKER_LIST])
def test_pull_index_picks_the_platform(registry, store, index_type):
    wire = Wire(registry.address)
    docker = index_type == DOCKER_LIST
    amd, amd_m, amd_c = put_image(wire, "multi", "amd64", [{"arch": b"amd64"}], "amd64", docker)
    arm, arm_m, arm_c = put_image(wire, "multi", "arm64", [{"arch": b"arm64"}], "arm64", docker)
    index = json.dumps({"schemaVersion": 2, "mediaType": index_type, "manifests": [
        {"mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST, "digest": d, "size": len(m),
         "platform": {"os": "linux", "architecture": a}}
        for d, m, a in ((amd, amd_m, "amd64"), (arm, arm_m, "arm64"))]}).encode()
    status, _, body = wire("PUT", "/v2/multi/manifests/latest", index, {"Content-Type": index_type})
    assert status == 201, body
    img = client.pull(store, f"{registry.address}/multi", platform="linux/arm64")
    assert img.id == arm_c and snapshot_file(store, img, "arch") == b"arm64"
    from runtime.images.oci import host_platform

    if host_platform()[1] == "amd64":
        assert client.pull(store, f"{registry.address}/multi:latest").id == amd_c
    with pytest.raises(InvalidArgument, match="no manifest for platform linux/s390x"):
        client.pull(store, f"{registry.address}/multi", platform="linux/s390x")
    # a single-platform image must match --platform
    assert client.pull(store, f"{registry.address}/multi:arm64", platform="linux/arm64").id == arm_c
    with pytest.raises(InvalidArgument, match="is for linux/arm64, not linux/amd64"):
        client.pull(store, f"{registry.address}/multi:arm64", platform="linux/amd64")


def test_pull_bad_input_leaves_nothing(registry, store, tmp_path: Path):
    wire = Wire(registry.address)
    digest, manifest, config = put_image(wire, "bad", "v1", [{"x": os.urandom(200000)}])
    layer = json.loads(manifest)["layers"][0]["digest"]
    blob = registry.httpd.registry.storage.blob_path(layer)
    good = blob.read_bytes()

    def nothing_left() -> None:
        assert store.list() == []
        assert not store.content.has(layer)
        ingest = store.content.ingest_dir
        assert not ingest.exists() or not any(ingest.iterdir())

    # corrupt: same size, other bytes -> digest mismatch
    blob.write_bytes(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(InvalidArgument, match="digest mismatch"):
        client.pull(store, f"{registry.address}/bad:v1")
    nothing_left()
    # truncated
    blob.write_bytes(good[:1000])
    with pytest.raises((InvalidArgument, RuntimeFailure), match="1000 of|size mismatch"):
        client.pull(store, f"{registry.address}/bad:v1")
    nothing_left()
    blob.write_bytes(good)
    with pytest.raises(NotFound, match="MANIFEST_UNKNOWN"):
        client.pull(store, f"{registry.address}/bad:nope")
    with pytest.raises(NotFound, match="NAME_UNKNOWN"):
        client.pull(store, f"{registry.address}/nothing/here:v1")
    with pytest.raises(InvalidArgument, match="invalid reference"):
        client.pull(store, f"{registry.address}/BAD:v1")
    port = free_port()
    with pytest.raises(RuntimeFailure, match=f"cannot reach registry 127.0.0.1:{port}: connection refused"):
        client.pull(store, f"127.0.0.1:{port}/x:v1")
    nothing_left()
    assert client.pull(store, f"{registry.address}/bad:v1").id == config


# --------------------------------------------------------------------------------- push

def test_push_chunked_mount_and_skip(registry, store):
    wire = Wire(registry.address)
    digest, manifest, config = put_image(wire, "orig", "v1", [{"f": os.urandom(300000)}, {"g": b"small"}])
    img = client.pull(store, f"{registry.address}/orig:v1")
    store.tag(f"{registry.address}/orig:v1", f"{registry.address}/copy/one:v1")
    events: list[dict] = []
    assert client.push(store, f"{registry.address}/copy/one:v1", progress=events.append) == digest
    assert {e["status"] for e in events if e.get("id") and len(e["id"]) == 12} >= {"Mounted from orig"}
    # chunked upload to a fresh repository of a fresh registry
    store.tag(img.id, f"{registry.address}/chunked:v2")
    registry2 = RegistryServer(registry.httpd.registry.storage.root.parent / "registry2", "127.0.0.1:0").start()
    try:
        store.tag(img.id, f"{registry2.address}/chunked:v2")
        events.clear()
        assert client.push(store, f"{registry2.address}/chunked:v2", progress=events.append,
                           chunk_size=65536) == digest
        assert sum(1 for e in events if e.get("status") == "Pushing") > 4
        w2 = Wire(registry2.address)
        assert w2("GET", "/v2/chunked/manifests/v2")[2] == manifest
        # a second push finds every blob there
        events.clear()
        client.push(store, f"{registry2.address}/chunked:v2", progress=events.append)
        assert [e["status"] for e in events if e.get("id") and len(e["id"]) == 12] == ["Layer already exists"] * 2
        assert f"{registry2.address}/chunked@{digest}" in store.resolve(f"{registry2.address}/chunked:v2").repo_digests
    finally:
        registry2.stop()
    with pytest.raises(NotFound):
        client.push(store, f"{registry.address}/not/local:v1")


def test_search_and_tags(registry):
    wire = Wire(registry.address)
    for repo in ("team/web", "team/db", "other"):
        wire.upload(repo, repo.encode())
    put_image(wire, "team/web", "1.0", [])
    put_image(wire, "team/web", "2.0", [])
    assert client.search(f"{registry.address}/team") == [f"{registry.address}/team/db", f"{registry.address}/team/web"]
    assert client.list_tags(f"{registry.address}/team/web") == ["1.0", "2.0"]


# ------------------------------------------------------------------- docker-registry peer

def wharf(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reconciler.cli.app", *args], capture_output=True, text=True,
                          input=stdin, timeout=120, env=os.environ.copy())


@needs_distribution
@pytest.mark.peer
def test_distribution_pull_push_roundtrip(distribution, store, docker_config, tmp_path: Path):
    from runtime.images.bootstrap import bootstrap_busybox

    address, creds = distribution
    img = bootstrap_busybox(store, f"{address}/tools/busybox:1")
    if creds:
        r = wharf("login", address, "-u", creds[0], "--password-stdin", stdin="wrong\n")
        assert r.returncode == 1 and "unauthorized" in r.stderr and "Traceback" not in r.stderr
        with pytest.raises(InvalidArgument, match="unauthorized"):
            client.push(store, f"{address}/tools/busybox:1")
        r = wharf("login", address, "-u", creds[0], "--password-stdin", stdin=creds[1] + "\n")
        assert r.returncode == 0, r.stderr
        cfg = docker_config / "config.json"
        assert cfg.stat().st_mode & 0o777 == 0o600
        import base64

        assert base64.b64decode(json.loads(cfg.read_text())["auths"][address]["auth"]).decode() == ":".join(creds)
    digest = client.push(store, f"{address}/tools/busybox:1")
    assert digest == img.manifest_digest
    if shutil.which("skopeo"):
        out = tmp_path / "oci"
        argv = ["skopeo", "copy", "--src-tls-verify=false"]
        if creds:
            argv += ["--src-creds", ":".join(creds)]
        r = subprocess.run(argv + [f"docker://{address}/tools/busybox:1", f"oci:{out}:1"], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        index = json.loads((out / "index.json").read_text())
        assert index["manifests"][0]["digest"] == img.manifest_digest
        for blob in (out / "blobs" / "sha256").iterdir():
            assert blob.read_bytes() == store.content.read("sha256:" + blob.name)
    # pull it back into an empty store through the CLI
    os.environ["WHARF_ROOT"] = str(tmp_path / "other-root")
    r = wharf("pull", f"{address}/tools/busybox:1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"{address}/tools/busybox:1"
    pulled = ImageStore().resolve(f"{address}/tools/busybox:1")
    assert pulled.id == img.id and pulled.manifest_digest == img.manifest_digest
    if creds:
        assert wharf("logout", address).returncode == 0
        r = wharf("pull", f"{address}/tools/busybox:1")
        assert r.returncode == 1 and "unauthorized" in r.stderr and f"wharf login {address}" in r.stderr


def test_cli_errors_are_one_line(wharf_root: Path, registry):
    r = wharf("pull", "lib/UPPER:v1")  # (a bad name that is not a host name: no DNS lookup)
    assert r.returncode == 1 and r.stderr.startswith("wharf: error: invalid reference") and "Traceback" not in r.stderr
    r = wharf("pull", f"{registry.address}/nothing:v1")
    assert r.returncode == 1 and "NAME_UNKNOWN" in r.stderr and "Traceback" not in r.stderr
    port = free_port()
    r = wharf("push", f"127.0.0.1:{port}/x:v1")
    assert r.returncode == 1 and "Traceback" not in r.stderr
    r = wharf("login", f"127.0.0.1:{port}", "-u", "a", "--password-stdin", stdin="b")
    assert r.returncode == 1 and "cannot reach registry" in r.stderr


@needs_skopeo
@pytest.mark.peer
def test_skopeo_pushes_wharf_pulls_all_tags(registry, store, tmp_path: Path):
    layout = tmp_path / "layout"
    d1 = make_oci_layout(layout, "a")
    d2 = make_oci_layout(layout, "b")
    for tag in ("a", "b"):
        r = subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci:{layout}:{tag}",
                            f"docker://{registry.address}/sk/img:{tag}"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
    r = wharf("pull", "-a", "-q", f"{registry.address}/sk/img")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [f"{registry.address}/sk/img:a", f"{registry.address}/sk/img:b"]
    assert {ImageStore().resolve(f"{registry.address}/sk/img:{t}").manifest_digest for t in "ab"} == {d1, d2}


# ------------------------------------------------------------------- bearer tokens

class _Front:
    """An HTTP front on a free loopback port forwarding to the registry `backend`; subclasses
    intercept requests first (a token server, a flaky network)."""

    def __init__(self, backend: str) -> None:
        import http.client
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def reply(self, status: int, headers: dict, body: bytes = b"") -> None:
                self.send_response(status)
                for k, v in headers.items():
                    if k.lower() not in ("content-length", "connection", "transfer-encoding", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            def handle_any(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if front.intercept(self, body):
                    return
                conn = http.client.HTTPConnection(backend, timeout=10)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("authorization", "host")}
                conn.request(self.command, self.path, body=body or None, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                self.reply(resp.status, dict(resp.getheaders()), data)
                conn.close()

            do_GET = do_HEAD = do_PUT = do_POST = do_PATCH = do_DELETE = handle_any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.address = f"127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def intercept(self, handler, body: bytes) -> bool:
        return False

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _TokenFront(_Front):
    """A token server, and a registry that wants `Bearer` tokens for the repository and action
    (the distribution token flow, as Docker Hub runs it)."""

    def __init__(self, backend: str, user: str, password: str) -> None:
        import base64

        self.token_requests: list[dict] = []
        self.basic = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        super().__init__(backend)

    def intercept(self, h, body: bytes) -> bool:
        import base64
        from urllib.parse import parse_qs, urlsplit

        url = urlsplit(h.path)
        if url.path == "/token":
            q = parse_qs(url.query)
            self.token_requests.append(q)
            if h.headers.get("Authorization") != self.basic:
                h.reply(401, {}, b'{"details": "bad credentials"}')
                return True
            token = "T " + " ".join(q.get("scope", []))
            h.reply(200, {"Content-Type": "application/json"},
                    json.dumps({"token": base64.b64encode(token.encode()).decode()}).encode())
            return True
        name = url.path[4:].split("/manifests/")[0].split("/blobs/")[0].split("/tags/")[0]
        action = "pull" if h.command in ("GET", "HEAD") else "push"
        auth = h.headers.get("Authorization", "")
        granted = base64.b64decode(auth[7:]).decode() if auth.startswith("Bearer ") else ""
        actions = granted.split(f"repository:{name}:", 1)[1].split(" ")[0] if f"repository:{name}:" in granted else ""
        if (url.path == "/v2/" and granted) or action in actions.split(","):
            return False
        realm = f"http://{self.address}/token"
        h.reply(401, {"WWW-Authenticate": f'Bearer realm="{realm}",service="front",scope="repository:{name}:{action}"'})
        return True


class _FlakyFront(_Front):
    """Breaks the first `breaks` blob downloads halfway (headers promise more than is sent) and
    drops the connection on the first `put_breaks` upload PUTs."""

    def __init__(self, backend: str, breaks: int, put_breaks: int = 0) -> None:
        self.breaks = breaks
        self.put_breaks = put_breaks
        super().__init__(backend)

    def intercept(self, h, body: bytes) -> bool:
        if h.command == "PUT" and "/blobs/uploads/" in h.path and self.put_breaks > 0:
            self.put_breaks -= 1
            h.close_connection = True  # no answer at all
            return True
        if h.command != "GET" or "/blobs/sha256:" not in h.path or self.breaks <= 0:
            return False
        self.breaks -= 1
        h.send_response(200)
        h.send_header("Content-Length", "100000")
        h.end_headers()
        h.wfile.write(b"x" * 500)
        h.close_connection = True
        return True


def test_bearer_token_flow(registry, store):
    front = _TokenFront(registry.address, "dave", "t0ken")
    try:
        put_image(Wire(registry.address), "secret/app", "v1", [{"f": b"behind a token server"}])
        ref = f"{front.address}/secret/app:v1"
        with pytest.raises(InvalidArgument, match="unauthorized.*refused anonymous"):
            client.pull(store, ref)
        from runtime.registry import credentials

        credentials.store(front.address, "dave", "wrong")
        with pytest.raises(InvalidArgument, match="refused the credentials"):
            client.pull(store, ref)
        client.login(front.address, "dave", "t0ken")
        img = client.pull(store, ref)
        assert snapshot_file(store, img, "f") == b"behind a token server"
        assert front.token_requests[-1]["scope"] == ["repository:secret/app:pull"]
        assert front.token_requests[-1]["service"] == ["front"]
        store.tag(ref, f"{front.address}/secret/copy:v2")
        client.push(store, f"{front.address}/secret/copy:v2")
        assert "repository:secret/copy:pull,push" in front.token_requests[-1]["scope"]
        assert Wire(registry.address)("GET", "/v2/secret/copy/tags/list")[2] == b'{"name": "secret/copy", "tags": ["v2"]}'
    finally:
        front.stop()


def test_pull_push_over_tls_with_basic_auth(tmp_path: Path, store):
    """127.0.0.1 is an insecure registry: HTTPS without verification after the plain-HTTP probe fails."""
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    (tmp_path / "htpasswd").write_text(htpasswd_line("erin", "tls-pass") + "\n")
    server = RegistryServer(tmp_path / "tls-reg", "127.0.0.1:0", htpasswd=tmp_path / "htpasswd",
                            tls_cert=str(cert), tls_key=str(key)).start()
    try:
        wire = Wire(server.address, auth=("erin", "tls-pass"), tls=True)
        digest, _, config = put_image(wire, "secure/img", "v1", [{"s": b"over TLS"}])
        # credentials given by the caller (an API's X-Registry-Auth), nothing stored
        assert client.pull(store, f"{server.address}/secure/img:v1", auth=("erin", "tls-pass")).id == config
        with pytest.raises(InvalidArgument, match="incorrect user name or password"):
            client.login(server.address, "erin", "nope")
        client.login(server.address, "erin", "tls-pass")
        img = client.pull(store, f"{server.address}/secure/img:v1")
        assert img.id == config and snapshot_file(store, img, "s") == b"over TLS"
        store.tag(img.id, f"{server.address}/secure/again:v1")
        assert client.push(store, f"{server.address}/secure/again:v1", chunk_size=100) == digest
        assert client.search(f"{server.address}/secure") == [f"{server.address}/secure/again",
                                                              f"{server.address}/secure/img"]
    finally:
        server.stop()


def test_pull_retries_broken_downloads(registry, store):
    digest, _, config = put_image(Wire(registry.address), "flaky", "v1", [{"a": os.urandom(5000)}])
    front = _FlakyFront(registry.address, breaks=2)
    try:
        img = client.pull(store, f"{front.address}/flaky:v1")  # the layer's stream broke: unpacked from the blob
        assert img.id == config and front.breaks == 0
        assert len(snapshot_file(store, img, "a")) == 5000
        store.remove(f"{front.address}/flaky:v1")
        for d in store.content.walk():
            store.content.delete(d)
        front.breaks = 10  # more than the retries: a clear error, nothing left behind
        with pytest.raises(RuntimeFailure, match="download failed after 500 of"):
            client.pull(store, f"{front.address}/flaky:v1")
        assert store.list() == [] and not any(store.content.ingest_dir.iterdir())
    finally:
        front.stop()


def test_cli_push_all_tags_search_gc(wharf_root: Path, registry, tmp_path: Path):
    wire = Wire(registry.address)
    put_image(wire, "src/img", "v1", [{"one": b"1"}])
    r = wharf("pull", "-q", f"{registry.address}/src/img:v1")
    assert r.returncode == 0, r.stderr
    r = wharf("pull", f"{registry.address}/src/img:v1")
    assert "Image is up to date" in r.stderr
    for tag in ("a", "b"):
        assert wharf("tag", f"{registry.address}/src/img:v1", f"{registry.address}/dst/img:{tag}").returncode == 0
    r = wharf("push", "-a", f"{registry.address}/dst/img")
    assert r.returncode == 0, r.stderr
    assert "Mounted from src/img" in r.stderr
    assert json.loads(wire("GET", "/v2/dst/img/tags/list")[2])["tags"] == ["a", "b"]
    r = wharf("search", f"{registry.address}/img", "--format", "json")
    assert json.loads(r.stdout) == [{"Name": f"{registry.address}/dst/img"}, {"Name": f"{registry.address}/src/img"}]
    r = wharf("search", f"{registry.address}/dst")
    assert r.stdout.split() == ["NAME", f"{registry.address}/dst/img"]
    # delete src's manifest, then gc: dst still refers to every blob (they were mounted): nothing freed
    root = str(registry.httpd.registry.storage.root)
    digest = wire("HEAD", "/v2/src/img/manifests/v1")[1]["docker-content-digest"]
    assert wire("DELETE", f"/v2/src/img/manifests/{digest}")[0] == 202
    r = wharf("registry", "gc", "--root", root)
    assert r.returncode == 0 and r.stdout.strip().endswith("deleted 0 blobs, 0 manifests, 0 bytes"), r.stdout
    for tag in ("a", "b"):
        assert wire("DELETE", f"/v2/dst/img/manifests/{tag}")[0] == 202
    r = wharf("registry", "gc", "--root", root, "--delete-untagged", "--dry-run")
    assert r.returncode == 0 and "would delete 3 blobs, 1 manifests" in r.stdout, r.stdout
    r = wharf("registry", "gc", "--root", root, "-m")
    assert "deleted 3 blobs, 1 manifests" in r.stdout
    assert wire("GET", "/v2/dst/img/manifests/a")[0] == 404
    r = wharf("push", "-a", f"{registry.address}/nothing/here")
    assert r.returncode == 1 and "no local tags" in r.stderr


def test_push_retries_broken_uploads(registry, store):
    put_image(Wire(registry.address), "pushsrc", "v1", [{"a": os.urandom(3000)}])
    img = client.pull(store, f"{registry.address}/pushsrc:v1")
    front = _FlakyFront(registry.address, breaks=0, put_breaks=3)
    try:
        store.tag(img.id, f"{front.address}/pushed:v1")
        assert client.push(store, f"{front.address}/pushed:v1") == img.manifest_digest
        assert front.put_breaks == 0
        assert Wire(registry.address)("GET", "/v2/pushed/manifests/v1")[0] == 200
        uploads = registry.httpd.registry.storage.root / "uploads"
        assert not any(uploads.iterdir())  # the broken sessions were cancelled
    finally:
        front.stop()


@pytest.fixture
def outside_dns_blocked(monkeypatch: pytest.MonkeyPatch):
    """Safety net for tests that name docker.io: any lookup of a non-loopback name fails at once."""
    real = socket.getaddrinfo

    def guarded(host, *args, **kw):
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise socket.gaierror(socket.EAI_NONAME, f"outside lookups are blocked in tests ({host})")
        return real(host, *args, **kw)

    monkeypatch.setattr(socket, "getaddrinfo", guarded)


@needs_distribution
@pytest.mark.peer
def test_pull_through_cache_of_docker_registry_and_hub_mirror(distribution, tmp_path: Path, store,
                                                              monkeypatch: pytest.MonkeyPatch, outside_dns_blocked):
    address, creds = distribution
    upstream = Wire(address, auth=creds)
    digest, manifest, config = put_image(upstream, "library/tool", "1.0", [{"t": b"from upstream"}])
    user, password = creds or (None, None)
    proxy = RegistryServer(tmp_path / "cache", "127.0.0.1:0", proxy_remote=f"http://{address}",
                           proxy_username=user, proxy_password=password).start()
    try:
        img = client.pull(store, f"{proxy.address}/library/tool:1.0")
        assert img.id == config and img.manifest_digest == digest
        cache = proxy.httpd.registry.storage
        assert cache.has_blob(digest) and cache.has_blob(config)
        # Docker Hub refs go to the mirror first (and never further here)
        monkeypatch.setenv("WHARF_REGISTRY_MIRRORS", f"http://{proxy.address}")
        store.remove(f"{proxy.address}/library/tool:1.0")
        pulled = client.pull(store, "tool:1.0")
        assert pulled.id == config and "docker.io/library/tool:1.0" in [normalize(t) for t in pulled.repo_tags]
        # read-only; unknown content is a 404 from upstream
        w = Wire(proxy.address)
        status, _, body = w("POST", "/v2/library/tool/blobs/uploads/")
        assert status == 405 and json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"
        status, _, body = w("GET", "/v2/library/tool/manifests/nope")
        assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        # the tag moves upstream: the cache follows
        digest2, _, config2 = put_image(upstream, "library/tool", "1.0", [{"t": b"newer"}])
        assert client.pull(store, f"{proxy.address}/library/tool:1.0").id == config2
    finally:
        proxy.stop()


@pytest.mark.skipif(not shutil.which("script"), reason="script (util-linux) is not installed")
def test_cli_progress_bars_on_a_terminal(wharf_root: Path, registry):
    put_image(Wire(registry.address), "tty/img", "v1", [{"a": os.urandom(100000)}, {"b": b"b"}])
    import shlex

    cmd = " ".join(shlex.quote(a) for a in [sys.executable, "-m", "reconciler.cli.app", "pull",
                                             f"{registry.address}/tty/img:v1"])
    r = subprocess.run(["script", "-qec", f"stty cols 150 rows 40; {cmd}", "/dev/null"], capture_output=True,
                       text=True, timeout=60, env={**os.environ, "TERM": "xterm"})
    import re

    screen = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", r.stdout)
    assert r.returncode == 0, screen
    assert "Pull complete" in screen and "Digest: sha256:" in screen and "Traceback" not in screen, screen
