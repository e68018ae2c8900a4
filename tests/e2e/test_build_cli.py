"""`wharf build` as a user runs it: flags, stdin forms, output, exit codes."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from runtime.errors import NotFound

pytestmark = [pytest.mark.root]

WHARF = [sys.executable, "-m", "reconciler.cli.app"]
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(wharf_root):
    store = pytest.importorskip("runtime.images.store").ImageStore()
    pytest.importorskip("runtime.images.bootstrap").bootstrap_busybox(store)
    return {**os.environ, "PYTHONPATH": str(REPO)}


def wharf(env, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*WHARF, *args], input=stdin, capture_output=True, env=env, cwd=REPO, timeout=120)


def test_build_tag_quiet_iidfile_labels_and_args(env, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nARG WHO=nobody\nRUN echo \"hi $WHO\"\nLABEL from=file\n")
    r = wharf(env, "build", "-t", "cli-test:1", "-t", "cli-test:latest", "--build-arg", "WHO=cli",
              "--label", "extra=yes", "--iidfile", str(tmp_path / "iid"), str(ctx))
    out = r.stdout.decode()
    assert r.returncode == 0, r.stderr.decode()
    assert "Step 1/4 : FROM busybox" in out and "Step 3/4 : RUN echo \"hi $WHO\"" in out
    assert "\nhi cli\n" in out
    assert "Successfully tagged cli-test:1" in out and "Successfully tagged cli-test:latest" in out
    iid = (tmp_path / "iid").read_text()
    assert iid.startswith("sha256:") and f"Successfully built {iid[7:19]}" in out
    store = pytest.importorskip("runtime.images.store").ImageStore()
    assert store.resolve("cli-test:1").config["config"]["Labels"] == {"from": "file", "extra": "yes"}
    q = wharf(env, "build", "-q", "-t", "cli-test:1", "--build-arg", "WHO=cli", "--label", "extra=yes", str(ctx))
    assert q.returncode == 0 and q.stdout.decode().strip() == iid  # fully cached: same image


def test_dockerfile_from_stdin_and_tar_context(env, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "file.txt").write_text("ctx file\n")
    r = wharf(env, "build", "-q", "-f", "-", str(ctx), stdin=b"FROM busybox\nCOPY file.txt /file.txt\n")
    assert r.returncode == 0, r.stderr.decode()
    r = wharf(env, "build", "-q", "-", stdin=b"FROM busybox\nRUN echo no context\n")
    assert r.returncode == 0, r.stderr.decode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY data /data\nRUN cat /data\n"), ("data", b"tarred\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    r = wharf(env, "build", "-t", "tar-ctx:1", "-", stdin=buf.getvalue())
    assert r.returncode == 0, r.stderr.decode()
    assert "tarred" in r.stdout.decode()


@pytest.mark.parametrize("dockerfile, needle", [
    ("FROM busybox\nWHATEVER x\n", "Dockerfile:2: unknown instruction: WHATEVER"),
    ("FROM busybox\nRUN echo before\nRUN exit 7\n", "Dockerfile:3: The command '/bin/sh -c exit 7' returned a "
                                                     "non-zero code: 7"),
    ("FROM busybox\nCOPY ../../etc/passwd /\n", "Dockerfile:2: forbidden path outside the build context"),
    ("FROM busybox AS a\nCOPY --from=b /x /x\n", "Dockerfile:2: COPY --from=b: no such stage or image"),
])
def test_bad_input_one_line_exit_1(env, tmp_path, dockerfile, needle):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(dockerfile)
    r = wharf(env, "build", "-t", "bad:cli", str(ctx))
    err = r.stderr.decode()
    assert r.returncode == 1
    assert needle in err and "Traceback" not in err
    assert err.startswith("wharf: error: ")
    store = pytest.importorskip("runtime.images.store").ImageStore()
    with pytest.raises(NotFound):
        store.resolve("bad:cli")


def test_bad_tag_fails_before_building(env, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo should-not-run\n")
    r = wharf(env, "build", "-t", "Bad:Tag!", str(ctx))
    assert r.returncode == 1 and "invalid tag 'Bad:Tag!'" in r.stderr.decode()
    assert "should-not-run" not in r.stdout.decode()


def test_missing_context_and_unknown_target(env, tmp_path):
    r = wharf(env, "build", str(tmp_path / "nope"))
    assert r.returncode == 1 and "not a directory" in r.stderr.decode()
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox AS one\n")
    r = wharf(env, "build", "--target", "two", str(ctx))
    assert r.returncode == 1 and "target stage 'two' could not be found" in r.stderr.decode()


def test_builder_prune_empties_the_cache(env, tmp_path):
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo once\n")
    assert wharf(env, "build", "-q", str(ctx)).returncode == 0
    cached = wharf(env, "build", str(ctx))
    assert " ---> Using cache" in cached.stdout.decode()
    pruned = wharf(env, "builder", "prune", "-f")
    assert pruned.returncode == 0 and pruned.stdout.decode().startswith("Deleted ")
    again = wharf(env, "build", str(ctx))
    assert again.returncode == 0 and " ---> Using cache" not in again.stdout.decode()
