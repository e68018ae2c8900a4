import os

import pytest

from runtime.images.bootstrap import BUSYBOX, apt_mirror, busybox_layer


def test_apt_mirror_reads_both_formats(tmp_path):
    (tmp_path / "a.list").write_text("# c\ndeb http://mirror.example/debian bookworm main\n")
    assert apt_mirror((str(tmp_path / "a.list"),)) == "http://mirror.example/debian"
    (tmp_path / "b.sources").write_text("Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm\n")
    assert apt_mirror((str(tmp_path / "b.sources"),)) == "http://deb.example/debian"


@pytest.mark.skipif(not os.path.exists(BUSYBOX), reason="busybox-static not installed")
def test_busybox_layer_is_sorted_and_fixed():
    entries, files = busybox_layer()
    names = [e.name for e in entries]
    assert names == sorted(names)
    assert {"bin/busybox", "bin/sh", "etc/passwd", "etc/group", "tmp", "root", "var/www"} <= set(names)
    assert len({e.mtime for e in entries}) == 1 and {e.uid for e in entries} == {0}
    assert next(e for e in entries if e.name == "tmp").mode == 0o1777
    assert next(e for e in entries if e.name == "bin/ls").linkname == "busybox"
    assert files["etc/passwd"].startswith(b"root:x:0:0:")
