import pytest

from runtime.errors import InvalidArgument
from runtime.images.reference import familiar, is_image_id, normalize, parse

DIG = "sha256:" + "a" * 64


@pytest.mark.parametrize("ref,norm,fam", [
    ("busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("busybox:1.36", "docker.io/library/busybox:1.36", "busybox:1.36"),
    ("library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("docker.io/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("index.docker.io/library/busybox", "docker.io/library/busybox:latest", "busybox:latest"),
    ("user/app:v1", "docker.io/user/app:v1", "user/app:v1"),
    ("localhost:5000/a/b:1", "localhost:5000/a/b:1", "localhost:5000/a/b:1"),
    ("localhost/a", "localhost/a:latest", "localhost/a:latest"),
    ("127.0.0.1:5000/x", "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest"),
    (f"busybox@{DIG}", f"docker.io/library/busybox@{DIG}", f"busybox@{DIG}"),
    (f"busybox:1@{DIG}", f"docker.io/library/busybox:1@{DIG}", f"busybox:1@{DIG}"),
    ("a.b-c/e__f.g-h:T.1-x", "a.b-c/e__f.g-h:T.1-x", "a.b-c/e__f.g-h:T.1-x"),
])
def test_normalize_and_familiar(ref, norm, fam):
    assert normalize(ref) == norm
    assert familiar(ref) == fam


def test_parse_fields():
    r = parse("localhost:5000/team/app:2@" + DIG)
    assert (r.domain, r.path, r.tag, r.digest) == ("localhost:5000", "team/app", "2", DIG)
    assert parse("busybox").tag is None


@pytest.mark.parametrize("bad", ["", "Busybox", "a//b", "a:", ":tag", "a@sha256:xyz", "-a", "a:" + "t" * 200,
                                 "a" * 64, "a b", "UPPER:tag/x", "busybox@md5:" + "a" * 32])
def test_bad_references(bad):
    with pytest.raises(InvalidArgument) as e:
        parse(bad)
    assert "reference" in str(e.value)


def test_image_id_detection():
    assert is_image_id("sha256:" + "0" * 64)
    assert is_image_id("0" * 64)
    assert not is_image_id("abc")
