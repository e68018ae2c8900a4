"""The image verbs as a user types them: `wharf images/tag/rmi/history/save/load/import/image ...`."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.root
WHARF = [sys.executable, "-m", "reconciler.cli.app"]


def wharf(*args: str, input: bytes | None = None, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run([*WHARF, *args], input=input, capture_output=True, env=os.environ.copy(),
                       cwd=Path(__file__).resolve().parents[2])
    if check and p.returncode != 0:
        raise AssertionError(f"wharf {' '.join(args)} -> {p.returncode}: {p.stderr.decode()}")
    return p


@pytest.fixture
def busybox(wharf_root: Path) -> str:
    out = wharf("image", "bootstrap", "busybox").stdout.decode()
    assert out.startswith("busybox:latest sha256:")
    return out.split()[1]


def _json_lines(out: bytes) -> list[dict]:
    return [json.loads(line) for line in out.decode().splitlines() if line.strip()]


def test_list_tag_history_inspect(busybox):
    wharf("tag", "busybox", "localhost:5000/team/bb:v1")
    events = [json.loads(x) for x in (Path(os.environ["WHARF_ROOT"]) / "events.jsonl").read_text().splitlines()]
    assert {"type": "image", "action": "tag", "id": busybox} == {k: events[-1][k] for k in ("type", "action", "id")}
    assert events[-1]["attributes"] == {"name": "localhost:5000/team/bb:v1"}
    rows = _json_lines(wharf("images", "--format", "json").stdout)
    assert {(r["Repository"], r["Tag"]) for r in rows} == {("busybox", "latest"), ("localhost:5000/team/bb", "v1")}
    assert {r["ID"] for r in rows} == {busybox[7:19]}
    assert wharf("images", "-q").stdout.decode().split() == [busybox[7:19]]
    assert sorted(wharf("images", "--format", "{{.Repository}}:{{.Tag}}").stdout.decode().split()) == [
        "busybox:latest", "localhost:5000/team/bb:v1"]
    only = _json_lines(wharf("images", "--format", "json", "--filter", "reference=busybox").stdout)
    assert [(r["Repository"], r["Tag"]) for r in only] == [("busybox", "latest")]
    table = wharf("images", "--digests").stdout.decode().splitlines()
    assert table[0].split()[:3] == ["REPOSITORY", "TAG", "DIGEST"]
    hist = wharf("history", "busybox").stdout.decode().splitlines()
    assert hist[0].split()[:2] == ["IMAGE", "CREATED"] and "bootstrap busybox" in hist[1]
    assert wharf("history", "-q", "--no-trunc", "busybox").stdout.decode().split() == [busybox]
    assert wharf("image", "inspect", "-f", "{{.Id}} {{json .Config.Cmd}}", "busybox").stdout.decode() == \
        f'{busybox} ["sh"]\n'
    (info,) = json.loads(wharf("image", "inspect", "busybox").stdout)
    assert info["Id"] == busybox and info["Config"]["Cmd"] == ["sh"] and info["Os"] == "linux"
    assert info["RootFS"]["Type"] == "layers" and len(info["RootFS"]["Layers"]) == 1
    assert sorted(info["RepoTags"]) == ["busybox:latest", "localhost:5000/team/bb:v1"]


def test_rmi_untag_then_delete(busybox):
    wharf("tag", "busybox", "two:1")
    assert wharf("rmi", "two:1").stdout.decode().splitlines() == ["Untagged: two:1"]
    p = wharf("rmi", "busybox", "nothere:1", check=False)
    assert p.returncode == 1
    assert p.stdout.decode().splitlines()[:2] == ["Untagged: busybox:latest", f"Deleted: {busybox}"]
    err = p.stderr.decode().strip().splitlines()
    assert err[0].startswith("wharf: error: image 'nothere:1' not found") and "Traceback" not in p.stderr.decode()
    assert wharf("images", "-q").stdout == b""


def test_save_load_roundtrip_via_files_and_stdin(busybox, tmp_path):
    wharf("save", "-o", str(tmp_path / "bb.tar"), "busybox")
    oci = wharf("save", "--format", "oci", "busybox").stdout
    assert len(oci) > 100_000
    wharf("rmi", "busybox")
    assert wharf("load", "-i", str(tmp_path / "bb.tar")).stdout.decode().strip() == "Loaded image: busybox:latest"
    wharf("rmi", "busybox")
    assert wharf("load", input=oci).stdout.decode().strip() == "Loaded image: busybox:latest"
    assert wharf("images", "-q", "--no-trunc").stdout.decode().split() == [busybox]


def test_import_with_changes_from_stdin(wharf_root, busybox_rootfs):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        tf.add(busybox_rootfs, ".")
    out = wharf("import", "-c", 'CMD ["/bin/sh"]', "-c", "ENV PATH=/bin", "-m", "hi", "-", "imp:1",
                input=buf.getvalue()).stdout.decode().strip()
    assert out.startswith("sha256:")
    (info,) = json.loads(wharf("image", "inspect", "imp:1").stdout)
    assert info["Config"] == {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]} and info["Comment"] == "hi"


def test_prune_removes_dangling_only(busybox, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ti = tarfile.TarInfo("f")
        ti.size = 1
        tf.addfile(ti, io.BytesIO(b"x"))
    dangling = wharf("import", "-", input=buf.getvalue()).stdout.decode().strip()
    rows = _json_lines(wharf("images", "--format", "json", "-f", "dangling=true").stdout)
    assert [(r["Repository"], r["Tag"], r["ID"]) for r in rows] == [("<none>", "<none>", dangling[7:19])]
    out = wharf("image", "prune", "-f").stdout.decode()
    assert f"deleted: {dangling}" in out and "Total reclaimed space:" in out
    assert wharf("images", "-q", "--no-trunc").stdout.decode().split() == [busybox]


@pytest.mark.parametrize("args,text", [
    (["tag", "busybox", "Bad Name"], "invalid reference"),
    (["image", "inspect", "nope:1"], "not found"),
    (["load", "-i", "/nonexistent.tar"], "no such file"),
    (["import", "-c", "RUN x", "-"], "invalid change"),
    (["images", "--filter", "bogus=1"], "invalid filter"),
    (["image", "bootstrap", "alpine"], "unknown base image"),
    (["save", "--format", "zip", "-o", "/dev/null", "busybox"], "unknown save format"),
    (["load"], "stdin: corrupt or truncated tar"),
    (["import", "-", "x:1"], "corrupt or truncated gzip"),
])
def test_bad_input_is_one_line_exit_1(wharf_root, args, text):
    garbage = b"\x1f\x8b" + b"\x00" * 100 if args[0] == "import" else b"\x00garbage" * 100
    p = wharf(*args, check=False, input=garbage)
    err = p.stderr.decode()
    assert p.returncode == 1 and text in err and "Traceback" not in err, err
    assert err.startswith("wharf: error:")


def test_every_verb_is_registered_with_its_shared_options():
    import typer.main

    import runtime.cli.images as cli

    app = typer.Typer()
    cli.register(app)
    group = typer.main.get_group(app)
    assert set(cli._VERBS) <= set(group.commands)
    image = group.commands["image"]
    assert set(cli._IMAGE_VERBS) | {"list"} <= set(image.commands)  # type: ignore[attr-defined]
    for verb in ("ls", "history"):
        opts = {o for p in image.commands[verb].params for o in p.opts}  # type: ignore[attr-defined]
        assert {"-q", "--quiet", "--no-trunc"} <= opts, verb
