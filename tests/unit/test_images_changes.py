import pytest

from runtime.errors import InvalidArgument
from runtime.images.changes import apply_changes, parse_changes


def test_parse_all_instructions():
    c = parse_changes(['CMD ["nginx", "-g", "daemon off;"]', "ENTRYPOINT /entry.sh", "ENV A=1 B=\"two words\"",
                       "ENV LEGACY some value", "EXPOSE 80 53/udp 1000-1001", "LABEL a=b c=\"d e\"", "USER www:www",
                       "VOLUME /data /logs", 'VOLUME ["/x"]', "WORKDIR /srv", "STOPSIGNAL SIGQUIT", "cmd echo hi"])
    assert c["Cmd"] == ["/bin/sh", "-c", "echo hi"]
    assert c["Entrypoint"] == ["/bin/sh", "-c", "/entry.sh"]
    assert c["Env"] == ["A=1", "B=two words", "LEGACY=some value"]
    assert set(c["ExposedPorts"]) == {"80/tcp", "53/udp", "1000/tcp", "1001/tcp"}
    assert c["Labels"] == {"a": "b", "c": "d e"}
    assert c["User"] == "www:www" and c["WorkingDir"] == "/srv" and c["StopSignal"] == "SIGQUIT"
    assert set(c["Volumes"]) == {"/data", "/logs", "/x"}


def test_apply_merges_env_labels_ports_and_resets_cmd_on_entrypoint():
    base = {"Env": ["PATH=/bin", "A=old"], "Cmd": ["sh"], "Labels": {"x": "1"}, "ExposedPorts": {"22/tcp": {}}}
    new = apply_changes(base, ["ENV A=new", "LABEL y=2", "EXPOSE 80"])
    assert new["Env"] == ["PATH=/bin", "A=new"] and new["Labels"] == {"x": "1", "y": "2"}
    assert set(new["ExposedPorts"]) == {"22/tcp", "80/tcp"} and new["Cmd"] == ["sh"]
    assert base["Env"] == ["PATH=/bin", "A=old"]  # input untouched
    assert "Cmd" not in apply_changes(base, ['ENTRYPOINT ["/e"]'])
    assert apply_changes(base, ['ENTRYPOINT ["/e"]', 'CMD ["x"]'])["Cmd"] == ["x"]
    assert apply_changes(base, {"Cmd": ["y"]})["Cmd"] == ["y"]


@pytest.mark.parametrize("bad", ["RUN echo", "CMD", "EXPOSE http", "ENV =x", "WORKDIR rel",
                                 "CMD ['single']", "", "LABEL a"])
def test_bad_changes(bad):
    with pytest.raises(InvalidArgument, match="change"):
        parse_changes([bad])
