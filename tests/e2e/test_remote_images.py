"""`wharf --host unix://SOCK` image verbs against `wharf serve`: the user flows go through the
Engine API (pull/push through the daemon from a loopback registry, tag, rmi, history, save ->
rmi -> load, import, prune, login), print what the local verbs print, and leave the client's
own WHARF_ROOT untouched."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.root, pytest.mark.network]

WHARF = str(Path(sys.executable).with_name("wharf"))


@pytest.fixture
def client(wharf_daemon, tmp_path: Path):
    """wharf(*args) with --host at the daemon, and an empty WHARF_ROOT/WHARF_RUN/DOCKER_CONFIG of its own."""
    env = {**os.environ, "WHARF_ROOT": str(tmp_path / "client-root"), "WHARF_RUN": str(tmp_path / "client-run"),
           "DOCKER_CONFIG": str(tmp_path / "client-docker")}
    env.pop("DOCKER_HOST", None)
    env.pop("WHARF_HOST", None)

    def wharf(*args: str, check: bool = True, input: bytes | None = None, host: bool = True,
              stdout=subprocess.PIPE) -> subprocess.CompletedProcess:
        argv = [WHARF, "--host", f"unix://{wharf_daemon}", *args] if host else [WHARF, *args]
        r = subprocess.run(argv, env=env if host else {**env, "WHARF_ROOT": os.environ["WHARF_ROOT"],
                                                       "WHARF_RUN": os.environ["WHARF_RUN"]},
                           input=input, stdout=stdout, stderr=subprocess.PIPE, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"wharf {' '.join(args)} -> {r.returncode}: {r.stderr.decode()}")
        return r

    wharf.env = env
    yield wharf
    assert not (tmp_path / "client-root").exists(), "an image verb with --host used the local engine"
    assert not (tmp_path / "client-run").exists()


@pytest.fixture
def registry(tmp_path: Path):
    from runtime.registry.server import RegistryServer

    server = RegistryServer(tmp_path / "reg", "127.0.0.1:0").start()
    try:
        yield server.address
    finally:
        server.stop()


def _remote_tags() -> set[str]:
    from runtime.images.store import ImageStore  # the daemon's store (the test's WHARF_ROOT)

    return {t for i in ImageStore().list() for t in i.repo_tags}


def test_tag_push_rmi_pull_through_the_daemon(client, registry, busybox_image):
    ref = f"{registry}/h9/bb:1"
    client("tag", "busybox", ref)
    assert ref in _remote_tags()
    pushed = client("push", ref)
    assert b"error" not in pushed.stderr.lower()
    assert client("rmi", ref).stdout.decode().splitlines()[0] == f"Untagged: {ref}"  # then its digest
    assert ref not in _remote_tags()
    pulled = client("pull", ref)
    assert pulled.stdout.decode().strip() == ref
    assert ref in _remote_tags()
    doc = json.loads(client("image", "inspect", ref).stdout)
    assert doc[0]["Id"] == busybox_image.id
    found = client("search", f"{registry}/h9").stdout.decode().split()
    assert found == ["NAME", f"{registry}/h9/bb"]  # what the local verb prints
    missing = client("pull", f"{registry}/h9/nope:1", check=False)
    assert missing.returncode == 1 and "wharf: error: pull " in missing.stderr.decode()


def test_listings_match_the_local_renderers(client, busybox_image):
    client("tag", "busybox", "h9/other:2")
    for verb in (["images"], ["images", "--digests"], ["images", "-q"], ["image", "ls", "h9/*"],
                 ["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"], ["history", "busybox"],
                 ["history", "-q", "--no-trunc", "busybox"], ["image", "history", "--format", "{{.CreatedBy}}",
                                                              "busybox"]):
        remote = client(*verb).stdout.decode()
        local = client(*verb, host=False).stdout.decode()  # the daemon's store read by the embedded engine
        assert remote == local, verb
        assert remote.strip()
    assert "h9/other" in client("images").stdout.decode()
    fmt = client("image", "inspect", "--format", "{{.Id}}", "busybox", "h9/other:2").stdout.decode().split()
    assert fmt == [busybox_image.id, busybox_image.id]
    bad = client("image", "inspect", "busybox", "nope:1", check=False)
    assert bad.returncode == 1 and json.loads(bad.stdout)[0]["Id"] == busybox_image.id
    assert b"nope:1" in bad.stderr


def test_save_rmi_load_round_trip(client, busybox_image, tmp_path: Path):
    client("tag", "busybox", "h9/saved:1")
    client("save", "-o", str(tmp_path / "imgs.tar"), "busybox", "h9/saved:1")
    assert (tmp_path / "imgs.tar").stat().st_size > 100_000
    out = client("rmi", "busybox", "h9/saved:1").stdout.decode().splitlines()
    assert out[:2] == ["Untagged: busybox:latest", "Untagged: h9/saved:1"]
    assert f"Deleted: {busybox_image.id}" in out
    assert client("images", "-q").stdout == b""
    loaded = client("load", "-i", str(tmp_path / "imgs.tar")).stdout.decode().splitlines()
    assert sorted(loaded) == ["Loaded image: busybox:latest", "Loaded image: h9/saved:1"]
    assert {"busybox:latest", "h9/saved:1"} <= _remote_tags()
    # stdout -> stdin (a pipe: sent chunked)
    stream = client("save", "h9/saved:1").stdout
    client("rmi", "h9/saved:1")
    assert client("load", "-q", input=stream).stdout == b""
    assert "h9/saved:1" in _remote_tags()
    refused = client("save", "--format", "oci", "-o", str(tmp_path / "o.tar"), "busybox", check=False)
    assert refused.returncode == 1 and not (tmp_path / "o.tar").exists()
    assert len(refused.stderr.decode().splitlines()) <= 2  # the message and its hint


def test_import_history_prune(client, busybox_image, tmp_path: Path):
    import tarfile

    (tmp_path / "fs" / "etc").mkdir(parents=True)
    (tmp_path / "fs" / "etc" / "hello").write_text("hi\n")
    with tarfile.open(tmp_path / "fs.tar", "w") as t:
        t.add(tmp_path / "fs", arcname=".")
    image_id = client("import", "-m", "from h9", "-c", "ENV A=1", str(tmp_path / "fs.tar"),
                      "h9/imp:1").stdout.decode().strip()
    assert image_id.startswith("sha256:")
    piped = client("import", "-", "h9/imp:2", input=(tmp_path / "fs.tar").read_bytes()).stdout.decode().strip()
    assert piped.startswith("sha256:")
    assert client("image", "inspect", "--format", "{{.Config.Env}}", "h9/imp:1").stdout.decode().strip() == '["A=1"]'
    hist = client("history", "h9/imp:1").stdout.decode().splitlines()
    assert hist[0].split() == ["IMAGE", "CREATED", "CREATED", "BY", "SIZE", "COMMENT"]
    assert hist[1].startswith(image_id.removeprefix("sha256:")[:12]) and hist[1].rstrip().endswith("from h9")
    # a dangling image (its tag moved away) goes with prune; -a also takes the unused tagged ones
    client("tag", "h9/imp:2", "h9/imp:1")
    pruned = client("image", "prune", "-f").stdout.decode()
    assert f"deleted: {image_id}" in pruned and "Total reclaimed space:" in pruned
    pruned_all = client("image", "prune", "-a", "-f").stdout.decode()
    assert "untagged: h9/imp:1" in pruned_all and "untagged: busybox:latest" in pruned_all
    assert _remote_tags() == set()


def test_login_push_pull_with_credentials(client, wharf_daemon, tmp_path: Path, busybox_image):
    """The credentials `wharf --host login` checked through POST /auth stay on the client; push and
    pull hand them to the daemon in X-Registry-Auth (the daemon has none of its own)."""
    import bcrypt

    from runtime.registry.server import RegistryServer

    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(5)).decode().replace("$2b$", "$2y$")
    (tmp_path / "htpasswd").write_text(f"h9user:{hashed}\n")
    server = RegistryServer(tmp_path / "areg", "127.0.0.1:0", htpasswd=tmp_path / "htpasswd").start()
    try:
        addr = server.address
        ref = f"{addr}/private/bb:1"
        client("tag", "busybox", ref)
        refused = client("push", ref, check=False)
        assert refused.returncode == 1 and b"auth" in refused.stderr.lower()
        bad = client("login", "-u", "h9user", "--password-stdin", addr, input=b"wrong\n", check=False)
        assert bad.returncode == 1 and not (tmp_path / "client-docker" / "config.json").exists()
        ok = client("login", "-u", "h9user", "--password-stdin", addr, input=b"s3cret\n").stdout.decode()
        assert ok.startswith("Login Succeeded")
        assert addr in json.loads((tmp_path / "client-docker" / "config.json").read_text())["auths"]
        client("push", ref)
        client("rmi", ref)
        assert client("pull", ref).stdout.decode().strip() == ref
        assert client("logout", addr).stdout.decode().startswith("Removing login credentials")
        client("rmi", ref)
        assert client("pull", ref, check=False).returncode == 1
    finally:
        server.stop()


def test_bootstrap_refuses_over_host(client):
    r = client("image", "bootstrap", "busybox", check=False)
    assert r.returncode == 1
    assert r.stderr.decode().startswith("wharf: error: image bootstrap builds into the embedded engine")
