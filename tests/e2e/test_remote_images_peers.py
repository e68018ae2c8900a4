"""The image verbs of `wharf --host` against engines no one here wrote: a private dockerd and a
private podman API service (skipped when they are missing). Their answers differ from wharf
serve's in the details (<none>:<none> tags, image ids in load/import messages, history rows),
the output must not."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import pytest

from tests.e2e.test_remote_verbs import dockerd, kind, out, podman, wharf  # noqa: F401 - fixtures

pytestmark = [pytest.mark.root, pytest.mark.network]


@pytest.fixture(params=["dockerd", "podman"])
def peer(request, monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    monkeypatch.delenv("WHARF_HOST", raising=False)
    return request.getfixturevalue(request.param)


def test_image_verbs_against_a_peer(peer, tmp_path: Path):
    from runtime.api.remote import RemoteEngine

    sfx = tmp_path.name[-6:].replace("_", "").lower()
    tag = f"localhost/h9peer{sfx}:1"
    bb_id = RemoteEngine(peer).images.inspect("busybox").id
    lines = out(peer, "images").splitlines()
    assert lines[0].split()[:2] == ["REPOSITORY", "TAG"] and any("busybox" in row for row in lines[1:])
    assert "<none>:<none>" not in out(peer, "images", "--format", "{{.Repository}}:{{.Tag}}")
    wharf(peer, "tag", "busybox", tag)
    assert bb_id.removeprefix("sha256:")[:12] in out(peer, "images", "-q")
    hist = out(peer, "history", tag).splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"] and len(hist) >= 2
    assert json.loads(out(peer, "image", "inspect", tag))[0]["Id"] == bb_id
    wharf(peer, "save", "-o", str(tmp_path / "s.tar"), tag)
    with tarfile.open(tmp_path / "s.tar") as t:
        assert "manifest.json" in t.getnames()
    assert out(peer, "rmi", tag).splitlines()[0].startswith("Untagged:")
    loaded = out(peer, "load", "-i", str(tmp_path / "s.tar"))
    assert "Loaded image" in loaded and "h9peer" in loaded
    assert RemoteEngine(peer).images.inspect(tag).id == bb_id
    (tmp_path / "fs").mkdir()
    (tmp_path / "fs" / "hello").write_text("hi\n")
    with tarfile.open(tmp_path / "fs.tar", "w") as t:
        t.add(tmp_path / "fs", arcname=".")
    imported = out(peer, "import", str(tmp_path / "fs.tar"), f"localhost/h9imp{sfx}:1").strip()
    assert imported.startswith("sha256:"), imported
    assert RemoteEngine(peer).images.inspect(f"localhost/h9imp{sfx}:1").id == imported
    wharf(peer, "rmi", tag, f"localhost/h9imp{sfx}:1")
    pruned = wharf(peer, "image", "prune", "-f")
    assert "Total reclaimed space:" in pruned.stdout.decode(), (kind(peer), pruned.stdout)


def test_push_pull_through_a_peer(peer, tmp_path: Path):
    """The peer pushes to and pulls from a loopback registry for `wharf --host`."""
    from runtime.api.remote import RemoteEngine
    from runtime.registry.server import RegistryServer

    server = RegistryServer(tmp_path / "reg", "127.0.0.1:0").start()
    try:
        ref = f"{server.address}/h9/peer:1"
        wharf(peer, "tag", "busybox", ref)
        pushed = wharf(peer, "push", ref, check=False)
        if kind(peer) == "podman" and b"HTTP response to HTTPS client" in pushed.stderr:
            pytest.skip("podman wants TLS for a loopback registry unless registries.conf says insecure")
        assert pushed.returncode == 0, pushed.stderr
        latest = ref.removesuffix(":1") + ":latest"
        wharf(peer, "tag", "busybox", latest)
        wharf(peer, "tag", "busybox", ref.removesuffix(":1") + ":2")
        wharf(peer, "push", latest.removesuffix(":latest"))  # no tag: latest only, not :2
        assert wharf(peer, "pull", ref.removesuffix(":1") + ":2", check=False).returncode == 1
        wharf(peer, "rmi", ref.removesuffix(":1") + ":2")
        wharf(peer, "rmi", ref, latest)
        assert out(peer, "pull", ref).strip() == ref
        assert ref in RemoteEngine(peer).images.inspect(ref).repo_tags
        wharf(peer, "rmi", ref)
        wharf(peer, "pull", latest.removesuffix(":latest"))  # no tag: latest only (dockerd: "" = every tag)
        tags = {t for i in RemoteEngine(peer).images.list() for t in i.repo_tags}
        assert latest in tags and ref not in tags
        wharf(peer, "rmi", latest)
    finally:
        server.stop()
