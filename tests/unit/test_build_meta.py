"""Values of metadata instructions (EXPOSE, HEALTHCHECK durations, STOPSIGNAL), layer tars and --chown ids."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from runtime.build.layer import LayerBuilder
from runtime.build.meta import check_signal, parse_duration, parse_ports, set_env
from runtime.build.users import chown_ids
from runtime.errors import InvalidArgument


@pytest.mark.parametrize("text, ns", [("30s", 30_000_000_000), ("1m30s", 90_000_000_000), ("500ms", 500_000_000),
                                      ("1h", 3_600_000_000_000), ("0", 0), ("1.5s", 1_500_000_000)])
def test_durations(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("bad", ["", "5", "5x", "s", "1m 2s"])
def test_bad_durations(bad):
    with pytest.raises(ValueError):
        parse_duration(bad)


def test_ports_and_signals():
    assert parse_ports("80") == ["80/tcp"]
    assert parse_ports("53/UDP") == ["53/udp"]
    assert parse_ports("8000-8002/tcp") == ["8000/tcp", "8001/tcp", "8002/tcp"]
    for bad in ("http", "80/icmp", "0", "70000", "8080:80"):
        with pytest.raises(ValueError):
            parse_ports(bad)
    assert check_signal("SIGTERM") == "SIGTERM" and check_signal("kill") == "kill" and check_signal("9") == "9"
    assert check_signal("SIGRTMIN+3") == "SIGRTMIN+3"
    with pytest.raises(ValueError):
        check_signal("SIGNOPE")
    assert set_env(["A=1", "B=2"], "A", "3") == ["A=3", "B=2"]
    assert set_env(["A=1"], "C", "x y") == ["A=1", "C=x y"]


def test_chown_ids_from_image_files(tmp_path: Path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "passwd").write_text("root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/home/app:/bin/sh\n")
    (tmp_path / "etc" / "group").write_text("root:x:0:\nstaff:x:50:\n")
    assert chown_ids(tmp_path, "app") == (1000, 1000)  # no group: the uid's number (Docker)
    assert chown_ids(tmp_path, "app:staff") == (1000, 50)
    assert chown_ids(tmp_path, "42:43") == (42, 43)
    assert chown_ids(tmp_path, "42") == (42, 42)
    with pytest.raises(InvalidArgument, match="unable to find user ghost"):
        chown_ids(tmp_path, "ghost")
    with pytest.raises(InvalidArgument, match="unable to find group nogroup"):
        chown_ids(tmp_path, "app:nogroup")


class _Content:
    """Just enough of a ContentStore writer to capture the tar bytes."""

    def __init__(self) -> None:
        self.data = b""

    def writer(self):
        outer = self

        class W:
            def write(self, b):
                outer.data += bytes(b)
                return len(b)

            def commit(self):
                return "sha256:test"

            def abort(self):
                outer.data = b""
        return W()


def test_layer_tar_orders_parents_first(tmp_path: Path):
    src = tmp_path / "f.txt"
    src.write_text("hello")
    lb = LayerBuilder()
    lb.ensure_parents("/a/b/f.txt", lambda p: p == "/a", 5, 6)
    lb.add_host("/a/b/f.txt", src, src.stat(), 5, 6, 0o600)
    lb.add_bytes("a/b/c/../heredoc", b"x\n")
    content = _Content()
    assert lb.write(content) == "sha256:test"
    out = tmp_path / "layer.tar"
    out.write_bytes(content.data)
    with tarfile.open(out) as tf:
        members = [(m.name, m.type, m.mode, m.uid, m.gid) for m in tf.getmembers()]
    assert members == [("a/b", tarfile.DIRTYPE, 0o755, 5, 6), ("a/b/f.txt", tarfile.REGTYPE, 0o600, 5, 6),
                       ("a/b/heredoc", tarfile.REGTYPE, 0o644, 0, 0)]


def test_existing_parents_get_entries_with_the_images_metadata(tmp_path: Path):
    """A layer names every parent dir: existing ones as the image has them (else an unpacker makes them
    with its own mode/time, which an overlay then shows over the image's), new ones 0755."""
    import os

    from runtime.build import rootfs as rfs

    img = tmp_path / "img"
    (img / "etc").mkdir(parents=True)
    os.chmod(img / "etc", 0o710)
    os.utime(img / "etc", (1_000_000_000, 1_000_000_000))
    os.symlink("etc", img / "link")
    lb = LayerBuilder()
    lb.ensure_parents("/etc/new/f", lambda p: rfs.exists_in(img, p), 5, 6)
    lb.ensure_parents("/link/g", lambda p: rfs.exists_in(img, p), 5, 6)
    lb.add_bytes("/etc/new/f", b"x")
    content = _Content()
    lb.write(content)
    out = tmp_path / "layer.tar"
    out.write_bytes(content.data)
    with tarfile.open(out) as tf:
        members = [(m.name, m.type, m.mode, m.uid, m.gid) for m in tf.getmembers()]
        assert tf.getmember("etc").mtime == 1_000_000_000
    assert members == [("etc", tarfile.DIRTYPE, 0o710, os.getuid(), os.getgid()), ("etc/new", tarfile.DIRTYPE, 0o755, 5, 6),
                       ("etc/new/f", tarfile.REGTYPE, 0o644, 0, 0)]  # no entry for the symlink
