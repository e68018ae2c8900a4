"""Dockerfile parser, instructions and the word lexer against Docker's documented examples."""

from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

from runtime.build.instructions import plan
from runtime.build.lexer import LexError, expand, expand_words
from runtime.build.parser import parse
from runtime.errors import InvalidArgument

FIXTURES = Path(__file__).parent.parent / "fixtures" / "dockerfiles"


def nodes(text: str):
    return parse(text).nodes


# ------------------------------------------------------------------ seed examples


def test_seed_nginx_and_firefox_parse():
    nginx = plan(parse((FIXTURES / "nginx.Dockerfile").read_text()))
    assert [i.cmd for i in nginx.stages[0].instructions] == ["maintainer", "run"]
    assert nginx.stages[0].base == "ubuntu"
    ff = plan(parse((FIXTURES / "firefox-vnc.Dockerfile").read_text()))
    cmds = [i.cmd for i in ff.stages[0].instructions]
    assert cmds == ["run", "run", "run", "run", "expose", "cmd"]
    cmd = ff.stages[0].instructions[-1].node
    assert cmd.json and cmd.args == ["x11vnc", "-forever", "-usepw", "-create"]
    assert ff.stages[0].instructions[3].node.args == ["bash -c 'echo \"firefox\" >> /.bashrc'"]


def test_seed_multi_from_gives_two_stages():
    p = plan(parse((FIXTURES / "multi-from.Dockerfile").read_text()))
    assert len(p.stages) == 2
    assert [s.instructions[0].node.args for s in p.stages] == [["echo foo > bar"], ["echo moo > oink"]]


def test_seed_text_as_written_names_the_wrapped_line():
    """The seed wraps `openssh-server` onto its own line: Docker says unknown instruction there."""
    files = glob.glob("/work/shared/seed/*.txt")
    if not files:
        pytest.skip("seed text not present")
    text = Path(files[0]).read_text()
    block = re.search(r"```Dockerfile\n(# Nginx.*?)```", text, re.S)
    assert block
    with pytest.raises(InvalidArgument) as e:
        plan(parse(block.group(1)))
    assert e.value.where == "Dockerfile:7" and "OPENSSH-SERVER" in e.value.message


# ------------------------------------------------------------------ syntax


def test_directives_escape_backtick_and_syntax_ignored():
    df = parse("# syntax=docker/dockerfile:1\n# escape=`\nFROM microsoft/nanoserver\nCOPY testfile.txt c:\\\n"
               "RUN dir c:\\\n")
    assert df.escape == "`" and df.directives["syntax"] == "docker/dockerfile:1"
    assert [n.args for n in df.nodes] == [["microsoft/nanoserver"], ["testfile.txt", "c:\\"], ["dir c:\\"]]
    df = parse("# escape=`\nFROM x\nRUN a `\n  b\n")
    assert df.nodes[1].args == ["a   b"]


def test_directive_after_comment_is_a_comment_and_duplicates_fail():
    df = parse("# hello\n# escape=`\nFROM x\nRUN a \\\n b\n")
    assert df.escape == "\\" and df.nodes[1].args == ["a  b"]
    with pytest.raises(InvalidArgument, match="only one escape"):
        parse("# escape=`\n# escape=\\\nFROM x\n")
    with pytest.raises(InvalidArgument, match="invalid escape token"):
        parse("# escape=x\nFROM x\n")


def test_continuations_with_comment_and_blank_lines_inside():
    df = parse("FROM x\nRUN echo hello \\\n# comment\n\nworld\nRUN b\n")
    run = df.nodes[1]
    assert run.args == ["echo hello world"] and run.line == 2 and run.end_line == 5
    assert df.nodes[2].line == 6
    assert df.warnings  # the empty continuation line


def test_bom_crlf_and_case_insensitive_instructions():
    df = parse("\ufefffrom x\r\nrun echo hi\r\n")
    assert [n.cmd for n in df.nodes] == ["from", "run"] and df.nodes[1].args == ["echo hi"]


def test_exec_and_shell_forms():
    run, cmd, ep, ep2 = nodes('RUN ["/bin/bash", "-c", "echo hello"]\nCMD echo "x y"\n'
                              'ENTRYPOINT ["top", "-b"]\nENTRYPOINT exec top -b\n')
    assert run.json and run.args == ["/bin/bash", "-c", "echo hello"]
    assert not cmd.json and cmd.args == ['echo "x y"']
    assert ep.json and ep.args == ["top", "-b"]
    assert not ep2.json and ep2.args == ["exec top -b"]
    (win,) = nodes('RUN ["c:\\\\windows\\\\system32\\\\tasklist.exe"]\n')
    assert win.args == ["c:\\windows\\system32\\tasklist.exe"]
    (test,) = nodes('RUN [ "$a" = "b" ] && echo same\n')
    assert not test.json


@pytest.mark.parametrize("line", ["CMD ['echo', 'hi']", 'ENTRYPOINT ["a" "b"]', 'RUN ["echo", hi]',
                                  'SHELL /bin/sh -c', 'CMD ["a", 1]', 'RUN ["echo", "unclosed"'])
def test_bad_exec_form_is_an_error_with_the_line(line):
    with pytest.raises(InvalidArgument) as e:
        plan(parse(f"FROM x\n\n{line}\n"))
    assert e.value.where == "Dockerfile:3"


def test_env_and_label_forms():
    env1, env2, env3, env4, lab = nodes(
        'ENV MY_NAME="John Doe"\nENV MY_DOG=Rex\\ The\\ Dog\nENV MY_CAT=fluffy\nENV MY_VAR my-value is long\n'
        'LABEL "com.example.vendor"="ACME Incorporated" multi.label1="value1" other=value3\n')
    assert env1.pairs == [("MY_NAME", '"John Doe"')]
    assert env2.pairs == [("MY_DOG", "Rex\\ The\\ Dog")]
    assert env4.pairs == [("MY_VAR", "my-value is long")]
    assert [(expand(k, {}), expand(v, {})) for k, v in env1.pairs + env2.pairs + lab.pairs] == [
        ("MY_NAME", "John Doe"), ("MY_DOG", "Rex The Dog"), ("com.example.vendor", "ACME Incorporated"),
        ("multi.label1", "value1"), ("other", "value3")]
    (multi,) = nodes('LABEL description="This text illustrates \\\nthat label-values can span multiple lines."\n')
    assert expand(multi.pairs[0][1], {}) == "This text illustrates that label-values can span multiple lines."
    with pytest.raises(InvalidArgument, match="can't find ="):
        parse("ENV a=b c\n")
    with pytest.raises(InvalidArgument, match="two arguments"):
        parse("ENV onlykey\n")


def test_arg_forms():
    a, b = nodes("ARG user1\nARG buildno=1 other=\n")
    assert a.pairs == [("user1", None)] and b.pairs == [("buildno", "1"), ("other", "")]


def test_from_stages_platform_and_global_args():
    p = plan(parse("ARG  CODE_VERSION=latest\nFROM --platform=linux/amd64 base:${CODE_VERSION} AS Build\n"
                   "RUN make\nFROM extras:${CODE_VERSION}\nCOPY --from=build /out /out\n"))
    assert [a.node.pairs for a in p.meta_args] == [[("CODE_VERSION", "latest")]]
    assert [(s.name, s.base, s.platform) for s in p.stages] == [
        ("build", "base:${CODE_VERSION}", "linux/amd64"), (None, "extras:${CODE_VERSION}", None)]
    assert p.stage_index("BUILD") == 0 and p.stage_index("1") == 1 and p.stage_index("nope") is None
    assert p.stages[1].instructions[0].flags == {"from": "build"}


@pytest.mark.parametrize("text, where, msg", [
    ("FROM x\nFOO bar\n", "Dockerfile:2", "unknown instruction: FOO"),
    ("RUN x\n", "Dockerfile:1", "before the first FROM"),
    ("FROM a b\n", "Dockerfile:1", "one or three arguments"),
    ("FROM a AS 1x\n", "Dockerfile:1", "invalid name"),
    ("FROM a AS x\nFROM b AS x\n", "Dockerfile:2", "duplicate stage"),
    ("FROM x\nRUN --mount=type=cache,target=/c true\n", "Dockerfile:2", "BuildKit-only"),
    ("FROM x\nRUN --network=none true\n", "Dockerfile:2", "BuildKit-only"),
    ("FROM x\nCOPY --bogus=1 a b\n", "Dockerfile:2", "unknown flag"),
    ("FROM x\nCOPY --from a b\n", "Dockerfile:2", "missing a value"),
    ("FROM x\nCOPY a\n", "Dockerfile:2", "at least two"),
    ("FROM x\nONBUILD ONBUILD RUN x\n", "Dockerfile:2", "ONBUILD"),
    ("FROM x\nONBUILD FROM y\n", "Dockerfile:2", "isn't allowed"),
    ("FROM x\nHEALTHCHECK WHAT x\n", "Dockerfile:2", "Unknown type"),
    ("FROM x\nHEALTHCHECK NONE x\n", "Dockerfile:2", "takes no arguments"),
    ("FROM x\nRUN <<EOF\necho\n", "Dockerfile:2", "unterminated heredoc"),
    ("# just a comment\n", "Dockerfile", "no instructions"),
])
def test_errors_name_the_line(text, where, msg):
    with pytest.raises(InvalidArgument) as e:
        plan(parse(text))
    assert e.value.where == where and msg in e.value.message


def test_copy_flags_and_json_form():
    c1, c2 = nodes('COPY --chown=55:mygroup --chmod=644 --link files* /somedir/\nCOPY ["a b", "/c d/"]\n')
    assert c1.flags == ["--chown=55:mygroup", "--chmod=644", "--link"]
    assert c1.args == ["files*", "/somedir/"]
    assert c2.json and c2.args == ["a b", "/c d/"]
    inst = plan(parse("FROM x\n" + 'COPY --chown=55:mygroup --chmod=644 --link files* /somedir/\n'))
    assert inst.stages[0].instructions[0].flags == {"chown": "55:mygroup", "chmod": "644", "link": True}


def test_healthcheck_onbuild_shell_stopsignal_volume_expose():
    hc, none, ob, sh, ss, vol, vol2, exp = nodes(
        "HEALTHCHECK --interval=5m --timeout=3s CMD curl -f http://localhost/ || exit 1\nHEALTHCHECK NONE\n"
        "ONBUILD ADD . /app/src\nSHELL [\"powershell\", \"-command\"]\nSTOPSIGNAL SIGKILL\n"
        'VOLUME ["/data"]\nVOLUME /var/log /var/db\nEXPOSE 80/udp 8080\n')
    assert hc.flags == ["--interval=5m", "--timeout=3s"] and hc.args == ["CMD"]
    assert hc.sub.args == ["curl -f http://localhost/ || exit 1"] and not hc.sub.json
    assert none.args == ["NONE"]
    assert ob.sub.cmd == "add" and ob.sub.args == [".", "/app/src"] and ob.text == "ADD . /app/src"
    assert sh.json and sh.args == ["powershell", "-command"]
    assert ss.args == ["SIGKILL"]
    assert vol.json and vol.args == ["/data"] and vol2.args == ["/var/log", "/var/db"]
    assert exp.args == ["80/udp", "8080"]


def test_heredocs():
    run, copy, multi, run_sh = nodes(
        "RUN <<EOT bash\n  set -ex\n  apt-get update\nEOT\n"
        'COPY <<-"EOT" /script.sh\n\techo "hello ${FOO}"\n\tEOT\n'
        "RUN <<FILE1 cat > file1 && <<FILE2 cat > file2\nI am\nfirst\nFILE1\nI am\nsecond\nFILE2\n"
        "RUN <<EOF\n#!/bin/sh\necho hi\nEOF\n")
    assert run.args == ["<<EOT bash"] and run.heredocs[0].content == "  set -ex\n  apt-get update\n"
    assert run.heredocs[0].expand and not run.heredocs[0].chomp
    assert run.end_line == 4
    doc = copy.heredocs[0]
    assert doc.name == "EOT" and doc.chomp and not doc.expand and doc.content == '\techo "hello ${FOO}"\n'
    assert [(d.name, d.content) for d in multi.heredocs] == [("FILE1", "I am\nfirst\n"), ("FILE2", "I am\nsecond\n")]
    assert run_sh.heredocs[0].content == "#!/bin/sh\necho hi\n"


# ------------------------------------------------------------------ substitution


@pytest.mark.parametrize("word, out", [
    ("$FOO", "/bar"), ("${FOO}", "/bar"), ("${FOO}/x", "/bar/x"), ("\\$FOO", "$FOO"),
    ("${UNSET:-word}", "word"), ("${FOO:-word}", "/bar"), ("${EMPTY:-word}", "word"), ("${EMPTY-word}", ""),
    ("${UNSET-word}", "word"), ("${FOO:+word}", "word"), ("${UNSET:+word}", ""), ("${EMPTY:+w}", ""),
    ("${EMPTY+w}", "w"), ("'$FOO'", "$FOO"), ('"$FOO x"', "/bar x"), ('"a\\"b"', 'a"b'),
    ("${UNSET:-$FOO}", "/bar"), ("a\\ b", "a b"), ("$", "$"), ("${FOO#/}", "bar"),
    ("${F%.tar.gz}", "f"), ("${F/tar/zip}", "f.zip.gz"), ("$UNSET", ""), ('"\\d"', "\\d"),
])
def test_substitution(word, out):
    assert expand(word, {"FOO": "/bar", "EMPTY": "", "F": "f.tar.gz"}) == out


def test_substitution_errors_and_words():
    with pytest.raises(LexError, match="must be set"):
        expand("${X:?must be set}", {})
    with pytest.raises(LexError):
        expand("${X", {})
    with pytest.raises(LexError):
        expand('"abc', {})
    assert expand_words('a "b c" $x d', {"x": "1 2"}) == ["a", "b c", "1", "2", "d"]
    assert expand("`$x", {"x": "1"}, escape="`") == "$x"



@pytest.mark.parametrize("word, env, out", [
    ("${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}", {"FOO": "xxx", "BAR": ""}, "xxx  ccc"),
    ("${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa bbb "),
    ("${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}", {"FOO": "xxx", "BAR": ""}, "aaa  "),
    ("${FOO%%\\**}", {"FOO": "xx**"}, "xx"),
    ("${FOO#*x*y}", {"FOO": "xxyy"}, "y"),
    ("${FOO##*x}", {"FOO": "xxyy"}, "yy"),
    ("${FOO#?\\?}", {"FOO": "???y"}, "?y"),
    ("${FOO/$N/.} - ${FOO//$N/.}", {"FOO": "/foo*/*/*.txt", "N": "\\*/"}, "/foo.*/*.txt - /foo..*.txt"),
    ("${FOO/$N/} - ${FOO//$N/}", {"FOO": "/tmp/tmp/bar.txt", "N": "/tmp"}, "/tmp/bar.txt - /bar.txt"),
    ("${FOO//\\//\\/}", {"FOO": "/tmp/foo.txt"}, "\\/tmp\\/foo.txt"),
    ("something-${V}.${OS}-${ARCH}${VAR:+-${VAR}}.tar.gz", {"V": "1", "OS": "linux", "ARCH": "arm", "VAR": "v7"},
     "something-1.linux-arm-v7.tar.gz"),
])
def test_substitution_patterns_like_buildkit(word, env, out):
    assert expand(word, env) == out


@pytest.mark.parametrize("word", ["${BAZ?ccc}", "${BAR:?bbb}", "${FOO=aaa}", "${FOO//ww}", "${:-x}"])
def test_substitution_errors_like_buildkit(word):
    with pytest.raises(LexError):
        expand(word, {"FOO": "x", "BAR": ""})
