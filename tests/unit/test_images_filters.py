import pytest

from runtime.errors import InvalidArgument
from runtime.images.filters import matches, parse_filters
from runtime.images.store import Image


def _img(tags, created, labels=None, n=1):
    return Image(id="sha256:" + str(n) * 64, manifest_digest="", repo_tags=tags, created=created,
                 config={"config": {"Labels": labels or {}}})


def test_filters():
    old = _img(["busybox:latest"], "2020-01-01T00:00:00Z", {"a": "1"}, 1)
    new = _img([], "2099-01-01T00:00:00.123456789Z", {"b": ""}, 2)
    imgs = [old, new]

    def sel(*items):
        return [i for i in imgs if matches(i, parse_filters(list(items)), store_images=imgs)]

    assert sel("dangling=true") == [new] and sel("dangling=false") == [old]
    assert sel("reference=busy*") == [old] and sel("reference=busybox:latest") == [old]
    assert sel("label=a") == [old] and sel("label=a=1") == [old] and sel("label=a=2") == []
    assert sel("label!=a") == [new]
    assert sel("until=24h") == [old] and sel("until=2021-01-01T00:00:00Z") == [old]
    assert sel("before=busybox:latest") == [] and sel("since=busybox:latest") == [new]
    with pytest.raises(InvalidArgument, match="filter"):
        parse_filters(["nope=1"])
    with pytest.raises(InvalidArgument, match="until"):
        sel("until=yesterday")


def test_views_human_size_since_and_summary(tmp_path):
    from runtime.images.store import ImageStore
    from runtime.images.views import human_size, since, summary

    assert [human_size(n) for n in (0, 999, 1000, 1_982_365, 5 * 10**9)] == ["0B", "999B", "1kB", "1.98MB", "5GB"]
    assert since("2000-01-01T00:00:00Z").endswith("years ago") and since("") == "N/A"
    s = summary(ImageStore(tmp_path), _img(["a:1"], "2020-01-01T00:00:00Z", {"k": "v"}))
    assert s["Created"] == 1577836800 and s["RepoTags"] == ["a:1"] and s["Labels"] == {"k": "v"}
