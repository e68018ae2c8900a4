""".dockerignore semantics (moby/patternmatcher) and build-context source resolution."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from runtime.build.context import BuildContext
from runtime.build.dockerignore import Matcher, parse_patterns
from runtime.errors import InvalidArgument, NotFound


def m(text: str) -> Matcher:
    return Matcher(parse_patterns(text))


@pytest.mark.parametrize("patterns, path, excluded", [
    ("*/temp*", "somedir/temporary.txt", True),
    ("*/temp*", "somedir/temp", True),
    ("*/temp*", "temp", False),
    ("*/*/temp*", "somedir/subdir/temporary.txt", True),
    ("temp?", "tempa", True),
    ("temp?", "temp", False),
    ("**/*.go", "a/b/c.go", True),
    ("**/*.go", "c.go", True),
    ("*.md\n!README*.md", "README-secret.md", False),
    ("*.md\n!README*.md", "CHANGES.md", True),
    ("*.md\n!README*.md\nREADME-secret.md", "README-secret.md", True),
    ("*.md\nREADME-secret.md\n!README*.md", "README-secret.md", False),
    ("/node_modules", "node_modules/x/y.js", True),   # leading / dropped, parents match
    ("node_modules", "src/node_modules", False),
    ("build/", "build/out.o", True),
    ("./a/../b", "b", True),
    ("# comment\n   \nfoo", "foo", True),
    ("#foo", "#foo", False),
    ("a/**", "a/b/c", True),
    ("[a-c].txt", "b.txt", True),
    ("[!a-c].txt", "b.txt", False),
    ("x\\*y", "x*y", True),
    ("x\\*y", "xzy", False),
    ("**", "anything/at/all", True),
    ("docs\n!docs/keep.md", "docs/keep.md", False),
    ("docs\n!docs/keep.md", "docs/other.md", True),
    # moby/patternmatcher's MatchesOrParentMatches expectations
    ("**/dir", "dir/file", True),
    ("**/dir2/*", "dir/dir2/file", True),
    ("**file", "dir/dir/file", True),
    ("**/**/*.txt2", "dir/dir/file.txt", False),
    ("a**/*.txt", "a/dir/dir/file.txt", True),
    ("a/*.txt", "a/dir/file.txt", False),
    ("a[^b-d]e", "aze", True),
    (".*", "foo", False),
    ("abc.def", "abcdef", False),
    ("abc/**", "abc", False),
    ("**/.foo", "bar.foo", False),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", True),
    ("**\n!util/docker/web", "util/docker/web/foo", False),
    ("**\n!util/docker/web\nutil/docker/web/foo", "util/docker/web/foo", True),
])
def test_patterns(patterns, path, excluded):
    assert m(patterns).matches(path) is excluded


@pytest.fixture
def ctx(tmp_path: Path) -> BuildContext:
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "src" / "a.txt").write_text("a")
    (tmp_path / "src" / "b.log").write_text("b")
    (tmp_path / "src" / "sub" / "c.txt").write_text("c")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "keep.md").write_text("k")
    (tmp_path / "docs" / "drop.md").write_text("d")
    (tmp_path / "secret").write_text("s")
    (tmp_path / "out").symlink_to("/etc")
    (tmp_path / ".dockerignore").write_text("*.log\n**/*.log\nsecret\ndocs\n!docs/keep.md\n")
    return BuildContext.from_dir(tmp_path)


def test_walk_respects_ignore_and_exceptions(ctx: BuildContext):
    (src,) = ctx.sources("src", "Dockerfile:1")
    assert [p for p, _, _ in ctx.walk(src)] == ["", "a.txt", "sub", "sub/c.txt"]
    (root,) = ctx.sources(".", "Dockerfile:1")
    walked = [p for p, _, _ in ctx.walk(root)]
    assert "docs/keep.md" in walked and "docs/drop.md" not in walked and "secret" not in walked
    assert "src/b.log" not in walked


def test_sources_wildcards_missing_excluded_and_escaping(ctx: BuildContext):
    assert [s.rel for s in ctx.sources("src/*.txt", "D:1")] == ["src/a.txt"]
    assert [s.rel for s in ctx.sources("/src/sub/../a.txt", "D:1")] == ["src/a.txt"]
    with pytest.raises(NotFound, match="no such file"):
        ctx.sources("nope", "D:2")
    with pytest.raises(NotFound, match="dockerignore"):
        ctx.sources("secret", "D:3")
    with pytest.raises(NotFound):
        ctx.sources("*.zzz", "D:3")
    with pytest.raises(InvalidArgument, match="outside the build context") as e:
        ctx.sources("../etc/passwd", "D:4")
    assert e.value.where == "D:4"
    with pytest.raises(InvalidArgument, match="outside the build context"):
        ctx.sources("out/passwd", "D:5")


def test_digest_changes_with_content_and_mode(ctx: BuildContext):
    srcs = ctx.sources("src", "D:1")
    d1 = ctx.digest(srcs)
    assert ctx.digest(srcs) == d1
    (ctx.root / "src" / "b.log").write_text("ignored change")
    assert ctx.digest(srcs) == d1
    (ctx.root / "src" / "a.txt").write_text("changed")
    d2 = ctx.digest(srcs)
    assert d2 != d1
    (ctx.root / "src" / "a.txt").chmod(0o600)
    assert ctx.digest(srcs) != d2


def test_context_from_tar():
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = b"FROM scratch\n"
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    buf.seek(0)
    with BuildContext.from_tar(buf) as ctx:
        assert (ctx.root / "Dockerfile").read_bytes() == b"FROM scratch\n"
        root = ctx.root
    assert not root.exists()
    with pytest.raises(InvalidArgument):
        BuildContext.from_tar(io.BytesIO(b"not a tar at all" * 100))


def test_file_hashes_are_remembered_between_builds(ctx: BuildContext, tmp_path: Path, monkeypatch):
    import runtime.build.context as context_mod

    cache_dir = tmp_path / "cache"
    first = ctx.digest(ctx.sources("src", "D:1"))
    ctx.save_digests(cache_dir)
    calls: list[Path] = []
    real = context_mod.file_sha256
    monkeypatch.setattr(context_mod, "file_sha256", lambda p: calls.append(Path(p)) or real(p))
    again = BuildContext.from_dir(ctx.root)
    again.load_digests(cache_dir)
    assert again.digest(again.sources("src", "D:1")) == first and calls == []
    (ctx.root / "src" / "a.txt").write_text("new content")
    assert again.digest(again.sources("src", "D:1")) != first
    assert [p.name for p in calls] == ["a.txt"]


def _tar(*members: tuple[str, bytes | None, str | None]) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data, link in members:
            info = tarfile.TarInfo(name)
            if link is not None:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tf.addfile(info)
            else:
                info.size = len(data or b"")
                tf.addfile(info, io.BytesIO(data or b""))
    buf.seek(0)
    return buf


def test_context_tar_keeps_outside_symlinks_but_never_writes_through_them(tmp_path: Path):
    with BuildContext.from_tar(_tar(("Dockerfile", b"FROM scratch\n", None), ("etc-link", None, "/etc"))) as ctx:
        assert os.readlink(ctx.root / "etc-link") == "/etc"
    victim = tmp_path / "victim"
    victim.mkdir()
    with pytest.raises(InvalidArgument):
        BuildContext.from_tar(_tar(("out", None, str(victim)), ("out/evil", b"x", None)))
    assert not (victim / "evil").exists()
    with pytest.raises(InvalidArgument):
        BuildContext.from_tar(_tar(("../escape", b"x", None)))
