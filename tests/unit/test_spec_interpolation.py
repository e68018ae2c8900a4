"""Interpolation and .env parsing against 12-interpolation.md and the env_file format."""

from __future__ import annotations

import pytest

from reconciler.spec.envfile import parse_env_text
from reconciler.spec.interpolate import _Missing, substitute

ENV = {"SET": "v", "EMPTY": "", "FOO": "foo"}


@pytest.mark.parametrize("text,expected", [
    ("$SET", "v"),
    ("${SET}", "v"),
    ("a${SET}b", "avb"),
    ("$SET-x", "v-x"),
    ("${UNSET:-d}", "d"),
    ("${EMPTY:-d}", "d"),
    ("${EMPTY-d}", ""),
    ("${UNSET-d}", "d"),
    ("${SET:-d}", "v"),
    ("${UNSET:-${FOO}}", "foo"),
    ("${UNSET:-${UNSET2:-deep}}", "deep"),
    ("${SET:+alt}", "alt"),
    ("${UNSET:+alt}", ""),
    ("$$SET", "$SET"),
    ("$${SET}", "${SET}"),
    ("cost: 5$", "cost: 5$"),
    ("$ 1", "$ 1"),
    ("${UNSET}", ""),
    ("$UNSET", ""),
    ("${SET?err}", "v"),
    ("${EMPTY?err}", ""),
])
def test_substitute(text: str, expected: str) -> None:
    assert substitute(text, ENV) == expected


@pytest.mark.parametrize("text,fragment", [
    ("${UNSET:?need it}", "required variable UNSET is unset or empty: need it"),
    ("${EMPTY:?need it}", "unset or empty"),
    ("${UNSET?msg $FOO}", "msg foo"),
    ("${SET/foo/bar}", "unsupported variable syntax"),
    ("${SET", "unterminated"),
])
def test_substitute_errors(text: str, fragment: str) -> None:
    with pytest.raises(_Missing) as e:
        substitute(text, ENV)
    assert fragment in e.value.message


def test_unset_warns() -> None:
    seen: list[str] = []
    substitute("${NOPE}", {}, seen.append)
    assert seen and "NOPE" in seen[0]


def test_env_file_format() -> None:
    text = """# comment
RACK_ENV=development
VAR="quoted"
SQ='$OTHER'
UNQ=VAL # comment
HASH=VAL# not a comment
DQC="VAL # not a comment"
ESC="{\\"hello\\": \\"json\\"}"
TAB="some\\tvalue"
RAWTAB=some\\tvalue
LET='Let\\'s go!'
EMPTYVAL=
BARE
REF=${RACK_ENV}-x
export EXP=1
"""
    env = parse_env_text(text, ".env", {})
    assert env == {
        "RACK_ENV": "development", "VAR": "quoted", "SQ": "$OTHER", "UNQ": "VAL",
        "HASH": "VAL# not a comment", "DQC": "VAL # not a comment", "ESC": '{"hello": "json"}',
        "TAB": "some\tvalue", "RAWTAB": "some\\tvalue", "LET": "Let's go!", "EMPTYVAL": "",
        "BARE": None, "REF": "development-x", "EXP": "1",
    }
