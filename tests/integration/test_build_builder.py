"""wharf build for real: images FROM the bootstrapped busybox and FROM scratch, run afterwards."""

from __future__ import annotations

import http.server
import io
import os
import shutil
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest

from runtime.build import rootfs as rfs
from runtime.build.builder import build
from runtime.build.run_step import runtime_argv
from runtime.errors import InvalidArgument, NotFound, RuntimeFailure, WharfError

pytestmark = [pytest.mark.root]


@pytest.fixture
def store(wharf_root):
    return pytest.importorskip("runtime.images.store").ImageStore()


@pytest.fixture
def busybox(store):
    return pytest.importorskip("runtime.images.bootstrap").bootstrap_busybox(store)


def make_ctx(root: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data if isinstance(data, bytes) else data.encode())
    return root


def do_build(store, ctx: Path, **kw):
    lines: list[str] = []
    image = build(store, ctx, progress=lines.append, **kw)
    return image, lines


def read(store, image_id: str, path: str) -> bytes:
    with rfs.mounted(store, image_id) as (root, _):
        return (rfs.resolve_in(root, path)).read_bytes()


def read_or_none(store, image_id: str, path: str) -> bytes | None:
    with rfs.mounted(store, image_id) as (root, _):
        p = root / path.lstrip("/")
        return p.read_bytes() if p.is_file() else None


def stat_of(store, image_id: str, path: str) -> os.stat_result:
    with rfs.mounted(store, image_id) as (root, _):
        return os.lstat(root / path.lstrip("/"))


def run_image(image_id: str, command: list[str] | None = None) -> tuple[int, str]:
    """Run the built image with the engine (what `wharf run --rm` does)."""
    from runtime.engine import ContainerSpec
    from runtime.local_engine import LocalEngine

    eng = LocalEngine()
    info = eng.containers.create(ContainerSpec(image=image_id, command=command, network_mode="none"))
    try:
        eng.containers.start(info.id)
        code = eng.containers.wait(info.id, timeout=30)
        out = b"".join(line for _, line in eng.containers.logs(info.id)).decode()
        return code, out
    finally:
        eng.containers.remove(info.id, force=True)


def test_busybox_image_with_every_kind_of_step(store, busybox, tmp_path):
    ctx = make_ctx(tmp_path / "ctx", """\
FROM busybox:latest
ARG GREETING=hello
ENV APP=/app NAME="wharf builder"
WORKDIR $APP
COPY --chown=nobody:nogroup --chmod=640 hello.txt ./
COPY dir/ sub/
RUN echo "$GREETING from $NAME" > /app/out.txt && id -u > /app/uid.txt
USER nobody
RUN id -u > /tmp/uid-nobody
EXPOSE 8080 53/udp
LABEL org.example.a="b c" version=1
VOLUME ["/data"]
STOPSIGNAL SIGINT
HEALTHCHECK --interval=5s --retries=2 CMD ["true"]
ENTRYPOINT ["/bin/sh", "-c"]
CMD ["cat /app/out.txt"]
""", {"hello.txt": "hi\n", "dir/a.txt": "A", "dir/deep/b.txt": "B"})
    image, lines = do_build(store, ctx, tags=["bb-test:1"], build_args={"GREETING": "howdy"})
    assert any(line.startswith("Step 1/16 : FROM busybox:latest") for line in lines)
    assert lines[-2].startswith("Successfully built ") and lines[-1] == "Successfully tagged bb-test:1"
    cfg = image.config["config"]
    assert "APP=/app" in cfg["Env"] and "NAME=wharf builder" in cfg["Env"]
    assert not any(e.startswith("GREETING=") for e in cfg["Env"])  # ARGs are not persisted
    assert cfg["WorkingDir"] == "/app" and cfg["User"] == "nobody"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}, "53/udp": {}}
    assert cfg["Labels"] == {"org.example.a": "b c", "version": "1"}
    assert cfg["Volumes"] == {"/data": {}} and cfg["StopSignal"] == "SIGINT"
    assert cfg["Healthcheck"] == {"Test": ["CMD", "true"], "Interval": 5_000_000_000, "Retries": 2}
    assert cfg["Entrypoint"] == ["/bin/sh", "-c"] and cfg["Cmd"] == ["cat /app/out.txt"]
    assert store.resolve("bb-test:1").id == image.id
    assert read(store, image.id, "/app/out.txt") == b"howdy from wharf builder\n"
    assert read(store, image.id, "/app/uid.txt") == b"0\n"
    assert read(store, image.id, "/tmp/uid-nobody") == b"65534\n"
    assert read(store, image.id, "/app/sub/deep/b.txt") == b"B"
    st = stat_of(store, image.id, "/app/hello.txt")
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (65534, 65534, 0o640)
    history = image.config["history"]
    assert sum(1 for h in history if not h.get("empty_layer")) == len(image.config["rootfs"]["diff_ids"])
    code, out = run_image(image.id)
    assert (code, out) == (0, "howdy from wharf builder\n")


def test_from_scratch_with_copied_busybox(store, tmp_path, wharf_root):
    ctx = make_ctx(tmp_path / "ctx", """\
FROM scratch
COPY busybox /bin/busybox
RUN ["/bin/busybox", "mkdir", "-p", "/data/made"]
ENV PATH=/bin
CMD ["/bin/busybox", "ls", "/data"]
""")
    shutil.copy("/bin/busybox", ctx / "busybox")
    image, _ = do_build(store, ctx, tags=["scratch-test:latest"])
    assert len(image.config["rootfs"]["diff_ids"]) == 2
    with rfs.mounted(store, image.id) as (root, _):
        assert sorted(os.listdir(root)) == ["bin", "data"]  # no /proc, /sys, /dev left by the runtime
    assert run_image(image.id) == (0, "made\n")


def test_cache_hits_invalidation_and_no_cache(store, busybox, tmp_path):
    ctx = make_ctx(tmp_path / "ctx", """\
FROM busybox
RUN echo one > /one
COPY a.txt /a.txt
RUN cat /a.txt > /copy.txt
COPY b.txt /b.txt
""", {"a.txt": "a1", "b.txt": "b1"})
    first, lines1 = do_build(store, ctx)
    assert " ---> Using cache" not in lines1
    second, lines2 = do_build(store, ctx)
    assert lines2.count(" ---> Using cache") == 4 and second.id == first.id
    (ctx / "a.txt").write_text("a2")
    third, lines3 = do_build(store, ctx)
    steps = [i for i, line in enumerate(lines3) if line.startswith("Step ")]
    cached = [lines3[i + 1] == " ---> Using cache" for i in steps[1:]]
    assert cached == [True, False, False, False]  # only from the step that uses a.txt on
    assert read(store, third.id, "/copy.txt") == b"a2"
    fourth, lines4 = do_build(store, ctx, no_cache=True)
    assert " ---> Using cache" not in lines4 and fourth.id != third.id


def test_dockerignore(store, busybox, tmp_path):
    ctx = make_ctx(tmp_path / "ctx", "FROM busybox\nCOPY . /src/\n", {
        ".dockerignore": "*.log\nsecret/\ndocs\n!docs/keep.md\n", "app.py": "x", "debug.log": "l",
        "secret/key": "k", "docs/keep.md": "k", "docs/drop.md": "d"})
    image, _ = do_build(store, ctx)
    with rfs.mounted(store, image.id) as (root, _):
        found = sorted(str(p.relative_to(root / "src")) for p in (root / "src").rglob("*"))
    assert found == [".dockerignore", "Dockerfile", "app.py", "docs", "docs/keep.md"]
    (ctx / "web.Dockerfile").write_text("FROM busybox\nCOPY . /src/\n")
    (ctx / "web.Dockerfile.dockerignore").write_text("*\n!app.py\n")  # BuildKit: replaces .dockerignore
    only, _ = do_build(store, ctx, dockerfile="web.Dockerfile")
    with rfs.mounted(store, only.id) as (root, _):
        assert sorted(os.listdir(root / "src")) == ["app.py"]
    ctx2 = make_ctx(tmp_path / "ctx2", "FROM busybox\nCOPY secret/key /k\n", {
        ".dockerignore": "secret\n", "secret/key": "k"})
    with pytest.raises(NotFound, match="dockerignore") as e:
        do_build(store, ctx2)
    assert e.value.where == "Dockerfile:2"


def test_multistage_target_and_copy_from(store, busybox, tmp_path):
    ctx = make_ctx(tmp_path / "ctx", """\
FROM busybox AS build
RUN mkdir /out && echo built > /out/artifact
FROM busybox AS other
RUN echo other stage > /other
FROM scratch AS final
COPY --from=build /out/artifact /artifact
COPY --from=0 /bin/busybox /bin/busybox
COPY --from=busybox:latest /etc/passwd /etc/passwd
FROM final AS extra
LABEL extra=yes
""")
    before = {i.id for i in store.list()}
    image, lines = do_build(store, ctx, target="final", tags=["ms:final"])
    new_images = {i.id for i in store.list()} - before
    assert len(new_images) == 3  # one image per stage, as `docker build` makes them
    assert [i for i in store.list() if i.id in new_images and read_or_none(store, i.id, "/other")]
    assert read(store, image.id, "/artifact") == b"built\n"
    assert read(store, image.id, "/etc/passwd").startswith(b"root:")
    assert "Labels" not in image.config["config"] or "extra" not in image.config["config"]["Labels"]
    full, _ = do_build(store, ctx)
    assert full.config["config"]["Labels"] == {"extra": "yes"}
    with pytest.raises(NotFound, match="target stage"):
        do_build(store, ctx, target="nope")


def test_onbuild_triggers_fire_in_child(store, busybox, tmp_path):
    parent = make_ctx(tmp_path / "parent", "FROM busybox\nONBUILD COPY marker /marker\n"
                      "ONBUILD RUN echo triggered > /triggered\n")
    base, _ = do_build(store, parent, tags=["onbuild-base:1"])
    assert base.config["config"]["OnBuild"] == ["COPY marker /marker", "RUN echo triggered > /triggered"]
    child = make_ctx(tmp_path / "child", "FROM onbuild-base:1\nRUN cat /triggered\n", {"marker": "m"})
    image, lines = do_build(store, child)
    assert "# Executing 2 build triggers" in lines and "triggered" in lines
    assert read(store, image.id, "/marker") == b"m"
    assert not image.config["config"].get("OnBuild")


def test_failing_run_reports_step_and_leaves_nothing(store, busybox, tmp_path, wharf_root):
    ctx = make_ctx(tmp_path / "ctx", "FROM busybox\nRUN echo ok\nRUN echo failing; exit 3\nRUN echo never\n")
    before = {i.id for i in store.list()}
    with pytest.raises(RuntimeFailure) as e:
        do_build(store, ctx, tags=["never:tagged"])
    assert e.value.where == "Dockerfile:3" and "returned a non-zero code: 3" in e.value.message
    assert "3/4" in (e.value.hint or "")
    with pytest.raises(NotFound):
        store.resolve("never:tagged")
    build_dir = Path(os.environ["WHARF_RUN"]) / "build"
    assert not [m for m in _mounts() if m.startswith(str(build_dir))]
    leftovers = [p.name for p in build_dir.iterdir() if p.name != "runtime"] if build_dir.exists() else []
    assert leftovers == []
    state = build_dir / "runtime"
    if state.exists():
        listed = subprocess.run([*runtime_argv(), "--root", str(state), "list", "-q"], capture_output=True,
                                text=True)
        assert listed.returncode == 0 and listed.stdout.strip() == ""
    left = [i for i in store.list() if i.id not in before]
    assert all(not i.repo_tags for i in left)  # only untagged step images (they keep the cache's layers)
    (ctx / "Dockerfile").write_text("FROM busybox\nRUN echo ok\nRUN echo fixed\nRUN echo never\n")
    _, lines = do_build(store, ctx, tags=["now:tagged"])
    assert lines[lines.index("Step 2/4 : RUN echo ok") + 1] == " ---> Using cache"  # what ran is reused


def _mounts() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def test_add_archive_url_heredocs_and_shell(store, busybox, tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in (("pkg/a.txt", b"from tar"), ("pkg/b.txt", b"bee")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_text("over http\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        port = httpd.server_address[1]
        ctx = make_ctx(tmp_path / "ctx", f"""\
FROM busybox
ADD bundle.tar.gz /opt/
ADD http://127.0.0.1:{port}/remote.txt /downloads/
ENV WHO=heredoc
COPY <<EOF /etc/greeting
hello $WHO
EOF
COPY <<-"RAW" /etc/raw
\tkeep $WHO
\tRAW
RUN <<EOF
set -e
echo "script ran" > /script.txt
EOF
RUN <<EOF cat > /fed.txt
fed by heredoc
EOF
SHELL ["/bin/sh", "-ec"]
RUN echo "$0" > /shell.txt
""", {"bundle.tar.gz": buf.getvalue()})
        image, _ = do_build(store, ctx)
    finally:
        httpd.shutdown()
    assert read(store, image.id, "/opt/pkg/a.txt") == b"from tar"
    assert read(store, image.id, "/downloads/remote.txt") == b"over http\n"
    assert stat_of(store, image.id, "/downloads/remote.txt").st_mode & 0o777 == 0o600
    assert read(store, image.id, "/etc/greeting") == b"hello heredoc\n"
    assert read(store, image.id, "/etc/raw") == b"keep $WHO\n"
    assert read(store, image.id, "/script.txt") == b"script ran\n"
    assert read(store, image.id, "/fed.txt") == b"fed by heredoc\n"
    assert read(store, image.id, "/shell.txt") == b"/bin/sh\n"
    assert image.config["config"]["Shell"] == ["/bin/sh", "-ec"]


def test_env_arg_substitution_as_documented(store, tmp_path, wharf_root):
    """Docker's reference examples: ENV values see the environment before the instruction."""
    ctx = make_ctx(tmp_path / "ctx", """\
ARG abc=global
FROM scratch
ARG abc=hello
ENV abc=bye def=$abc
ENV ghi=$abc
ENV FOO=/bar
WORKDIR ${FOO}
LABEL copy="\\$FOO" alt=${UNSET:-fallback} plus=${FOO:+set}
USER ${USERNAME:-some_user}
""")
    image, _ = do_build(store, ctx)
    cfg = image.config["config"]
    assert {"abc=bye", "def=hello", "ghi=bye", "FOO=/bar"} <= set(cfg["Env"])
    assert cfg["WorkingDir"] == "/bar" and cfg["User"] == "some_user"
    assert cfg["Labels"] == {"copy": "$FOO", "alt": "fallback", "plus": "set"}


@pytest.mark.parametrize("dockerfile, files, exc, where, text", [
    ("FROM busybox\nBOGUS x\n", {}, InvalidArgument, "Dockerfile:2", "unknown instruction"),
    ("FROM busybox\nCMD [\"a\" \"b\"]\n", {}, InvalidArgument, "Dockerfile:2", "JSON"),
    ("FROM busybox\nCOPY missing.txt /x\n", {}, NotFound, "Dockerfile:2", "missing.txt"),
    ("FROM busybox\nCOPY --from=nostage /x /x\n", {}, NotFound, "Dockerfile:2", "nostage"),
    ("FROM busybox\nCOPY ../outside /x\n", {}, InvalidArgument, "Dockerfile:2", "outside the build context"),
    ("FROM busybox\nENV a=\"${b\n", {}, InvalidArgument, "Dockerfile:2", "ENV"),
    ("FROM busybox\nCOPY a b /notadir\n", {"a": "1", "b": "2"}, InvalidArgument, "Dockerfile:2", "end with a /"),
    ("FROM busybox\nUSER nosuchuser\nRUN true\n", {}, InvalidArgument, "Dockerfile:3", "nosuchuser"),
])
def test_bad_input_is_one_clear_error(store, busybox, tmp_path, dockerfile, files, exc, where, text):
    ctx = make_ctx(tmp_path / "ctx", dockerfile, files)
    with pytest.raises(WharfError) as e:
        do_build(store, ctx, tags=["bad:input"])
    assert isinstance(e.value, exc), e.value
    assert e.value.where == where
    assert text in str(e.value)
    with pytest.raises(NotFound):
        store.resolve("bad:input")


def test_killed_build_is_repaired_by_the_next(store, busybox, tmp_path, wharf_root):
    """kill -9 in the middle of a RUN: the next build removes the mounts, container and upper dir."""
    ctx = make_ctx(tmp_path / "ctx", "FROM busybox\nRUN echo started && sleep 60\n")
    script = ("import sys\nfrom runtime.build.builder import build\nfrom runtime.images.store import ImageStore\n"
              f"build(ImageStore(), {str(ctx)!r}, progress=lambda l: print(l, flush=True))\n")
    repo = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=repo,
                            env={**os.environ, "PYTHONPATH": str(repo)})
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == b"started":
                break
        else:
            pytest.fail("the build did not start its RUN")
    finally:
        proc.kill()
        proc.wait()
    build_dir = Path(os.environ["WHARF_RUN"]) / "build"
    assert [m for m in _mounts() if m.startswith(str(build_dir))]  # the crash left its overlay
    do_build(store, make_ctx(tmp_path / "ctx2", "FROM busybox\nLABEL after=crash\n"))
    assert not [m for m in _mounts() if m.startswith(str(build_dir))]
    assert [p.name for p in build_dir.iterdir()] == ["runtime"]
    listed = subprocess.run([*runtime_argv(), "--root", str(build_dir / "runtime"), "list", "-q"],
                            capture_output=True, text=True)
    assert listed.returncode == 0 and listed.stdout.strip() == ""


def test_engine_facade_builds(store, busybox, tmp_path):
    """Contract 6 through the Engine protocol: LocalEngine.images.build -> ImageInfo."""
    from runtime.local_engine import LocalEngine

    ctx = make_ctx(tmp_path / "ctx", "FROM busybox\nRUN echo via-engine && echo via-engine > /e\nLABEL via=engine\n")
    messages: list = []
    info = LocalEngine().images.build(str(ctx), tags=["engine-built:1"], progress=messages.append)
    assert info.labels == {"via": "engine"} and "engine-built:1" in info.repo_tags
    lines = [(m.get("stream", "") if isinstance(m, dict) else m).rstrip("\n") for m in messages]
    assert "via-engine" in lines  # progress messages are docker-style {"stream": ...}
    assert read(store, info.id, "/e") == b"via-engine\n"


def test_step_images_do_not_pile_up(store, busybox, tmp_path):
    ctx = make_ctx(tmp_path / "ctx", "FROM busybox\nRUN echo 1 > /1\nCOPY f /f\nRUN echo 2 > /2\n", {"f": "x"})
    before = {i.id for i in store.list()}
    image, _ = do_build(store, ctx, tags=["tidy:1"])
    assert {i.id for i in store.list()} - before == {image.id}
    again, lines = do_build(store, ctx, no_cache=True)
    assert {i.id for i in store.list()} - before == {image.id, again.id}
    upper_dirs = store.container_dir("x").parent
    assert not list(upper_dirs.glob("build-*")) if upper_dirs.exists() else True  # every rootfs released
    build_dir = Path(os.environ["WHARF_RUN"]) / "build"
    assert [p.name for p in build_dir.iterdir()] == ["runtime"]


def test_from_pulls_missing_base_and_pull_flag(store, busybox, tmp_path, monkeypatch):
    """FROM a base that is only in a (loopback) registry: pulled; --pull fetches it again."""
    from runtime.registry.client import push
    from runtime.registry.server import RegistryServer

    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "docker-config"))
    server = RegistryServer(tmp_path / "registry", "127.0.0.1:0").start()
    try:
        ref = f"{server.address}/lib/busybox:1"
        store.tag("busybox:latest", ref)
        push(store, ref)
        store.untag(ref)
        ctx = make_ctx(tmp_path / "ctx", f"FROM {ref}\nRUN echo pulled-base\n")
        image, lines = do_build(store, ctx)
        assert f"Pulling {ref}" in lines and "pulled-base" in lines
        assert store.resolve(ref).id == busybox.id
        _, lines = do_build(store, ctx)
        assert f"Pulling {ref}" not in lines
        _, lines = do_build(store, ctx, pull=True)
        assert f"Pulling {ref}" in lines
    finally:
        server.stop()


def test_consecutive_runs_see_deletions_of_the_step_before(store, busybox, tmp_path):
    """Each RUN's container starts while the previous step commits (its upper dir stacked below):
    whiteouts and opaque dirs of that upper must show through, and the image must match."""
    ctx = make_ctx(tmp_path / "ctx", """\
FROM busybox
RUN mkdir -p /d/sub && echo a > /d/a && echo b > /d/sub/b && echo keep > /keep
RUN rm /d/a && rm -r /d/sub && echo c > /d/c
RUN test ! -e /d/a && test ! -e /d/sub && cat /d/c /keep && rm -r /d && mkdir /d && echo new > /d/n
RUN echo "listing: $(ls -A /d)"
""")
    image, lines = do_build(store, ctx)
    assert "c" in lines and "keep" in lines and "listing: n" in lines
    with rfs.mounted(store, image.id) as (root, _):
        assert sorted(os.listdir(root / "d")) == ["n"] and (root / "keep").read_text() == "keep\n"
    assert len(image.config["rootfs"]["diff_ids"]) == 1 + 4
    cached, lines = do_build(store, ctx)
    assert cached.id == image.id and lines.count(" ---> Using cache") == 4


def test_proxy_build_args_reach_run_but_not_history_or_cache(store, busybox, tmp_path):
    ctx = make_ctx(tmp_path / "ctx", "FROM busybox\nRUN echo \"proxy=$http_proxy\"\n")
    image, lines = do_build(store, ctx, build_args={"http_proxy": "http://127.0.0.1:9"})
    assert "proxy=http://127.0.0.1:9" in lines
    assert all("127.0.0.1:9" not in h.get("created_by", "") for h in image.config["history"])
    again, lines = do_build(store, ctx, build_args={"http_proxy": "http://127.0.0.1:10"})
    assert " ---> Using cache" in lines and again.id == image.id
    assert not any(line.startswith("[Warning] One or more build-args") for line in lines)


def test_copy_through_a_symlinked_dir_of_the_image(store, busybox, tmp_path):
    ctx = make_ctx(tmp_path / "ctx", "FROM busybox\nRUN mkdir /real && ln -s /real /link\nCOPY f /link/f\n"
                   "COPY f /link/sub/g\nRUN ls -l /link/ && test -L /link && cat /real/f /real/sub/g\n",
                   {"f": "via link\n"})
    image, lines = do_build(store, ctx)
    assert lines.count("via link") == 2
    with rfs.mounted(store, image.id) as (root, _):
        assert (root / "link").is_symlink() and (root / "real" / "sub" / "g").read_text() == "via link\n"


def test_seed_multi_from_example_makes_two_images(store, busybox, tmp_path):
    """The seed's "Multiple images example" (FROM ubuntu replaced by the local busybox)."""
    text = (Path(__file__).parent.parent / "fixtures" / "dockerfiles" / "multi-from.Dockerfile").read_text()
    ctx = make_ctx(tmp_path / "ctx", text.replace("FROM ubuntu", "FROM busybox"))
    before = {i.id for i in store.list()}
    image, lines = do_build(store, ctx)
    second_from = next(i for i, line in enumerate(lines) if line.startswith("Step 3/4 : FROM"))
    first_id = lines[second_from - 1].removeprefix(" ---> ")  # printed when the first stage ends
    new = [i for i in store.list() if i.id not in before]
    assert len(new) == 2 and image.id in {i.id for i in new}
    (first,) = [i for i in new if i.id != image.id]
    assert first.id.removeprefix("sha256:").startswith(first_id)
    assert read_or_none(store, first.id, "/bar") == b"foo\n" and read_or_none(store, first.id, "/oink") is None
    assert read_or_none(store, image.id, "/oink") == b"moo\n" and read_or_none(store, image.id, "/bar") is None


def test_arg_scope_as_documented(store, tmp_path, wharf_root):
    """Docker's ARG reference: a variable is only seen after its ARG; ENV overrides ARG."""
    ctx = make_ctx(tmp_path / "ctx", """\
FROM scratch
LABEL before=${username:-some_user}
ARG username
LABEL after=$username
ARG CONT_IMG_VER
ENV CONT_IMG_VER=${CONT_IMG_VER:-v1.0.0}
LABEL ver=$CONT_IMG_VER
""")
    image, lines = do_build(store, ctx, build_args={"username": "what_user"})
    assert image.config["config"]["Labels"] == {"before": "some_user", "after": "what_user", "ver": "v1.0.0"}
    image, _ = do_build(store, ctx, build_args={"username": "what_user", "CONT_IMG_VER": "v2.0.1"})
    assert image.config["config"]["Labels"]["ver"] == "v2.0.1"
    assert "CONT_IMG_VER=v2.0.1" in image.config["config"]["Env"]
    _, lines = do_build(store, ctx, build_args={"unused": "1"})
    assert "[Warning] One or more build-args ['unused'] were not consumed" in lines


def test_a_step_run_again_reruns_what_follows(store, busybox, tmp_path):
    """When a step's cached result is gone (or --no-cache made a new one), the later steps must not
    reuse results made on top of the old one (Docker keys them by parent image)."""
    ctx = make_ctx(tmp_path / "ctx", "FROM busybox\nRUN head -c 8 /dev/urandom | od -x > /rand\n"
                   "RUN cp /rand /copy\n")
    first, _ = do_build(store, ctx)
    store.content.delete(first.layers[1]["digest"])  # the first RUN's cached layer is gone
    again, lines = do_build(store, ctx)
    assert " ---> Using cache" not in lines  # so its RUN runs again, and so does the one after it
    assert read(store, again.id, "/rand") == read(store, again.id, "/copy")
    fresh, _ = do_build(store, ctx, no_cache=True)
    cached, lines = do_build(store, ctx)
    assert lines.count(" ---> Using cache") == 2 and cached.id == fresh.id


def test_run_network_host_by_default_or_none(store, busybox, tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "ping").write_text("pong\n")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):
            super().__init__(*a, directory=str(served), **kw)

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/ping"
        ctx = make_ctx(tmp_path / "ctx", f"FROM busybox\nRUN wget -q -O- {url} || echo unreachable\n")
        _, lines = do_build(store, ctx, no_cache=True)
        assert "pong" in lines  # the host's network, loopback included
        _, lines = do_build(store, ctx, no_cache=True, network="none")
        assert "unreachable" in lines and "pong" not in lines
        with pytest.raises(InvalidArgument, match="--network"):
            do_build(store, ctx, network="bridge")
    finally:
        httpd.shutdown()


def test_parallel_builds_of_one_context(store, busybox, tmp_path):
    """The reconciler builds services in parallel, often from the same context."""
    ctx = make_ctx(tmp_path / "ctx", "FROM busybox\nCOPY f /f\nRUN cat /f > /g\nCOPY f /h\nRUN cat /h\n", {"f": "x\n"})
    results: list = []
    errors: list = []

    def one(tag: str) -> None:
        try:
            results.append(build(store, ctx, tags=[tag], no_cache=True, progress=lambda _: None))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=one, args=(f"par:{i}",)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == [] and len(results) == 3
    for i in range(3):
        assert read(store, store.resolve(f"par:{i}").id, "/g") == b"x\n"
