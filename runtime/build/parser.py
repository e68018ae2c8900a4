"""Dockerfile text -> a list of `Node`s (one per instruction), as BuildKit's parser does it.

Handles parser directives (`# escape=`, `# syntax=` is accepted and ignored, `# check=`),
a UTF-8 BOM, comments, line continuations (comment and blank lines inside a continued
instruction are skipped), builder flags (`--name=value`), exec (JSON) and shell forms,
ENV/LABEL/ARG key=value words, HEALTHCHECK, ONBUILD sub-instructions and heredocs
(`<<EOF`, `<<-EOF`, `<<"EOF"` for RUN, COPY and ADD). Turning nodes into typed
instructions (and rejecting unknown ones) is runtime/build/instructions.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from runtime.build.lexer import LexError, expand, raw_words
from runtime.errors import InvalidArgument

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_HEREDOC = re.compile(r"^(\d*)<<(-?)([^<]*)$")
HEREDOC_INSTRUCTIONS = frozenset({"run", "copy", "add"})


@dataclass
class Heredoc:
    name: str
    content: str
    expand: bool  # False when the delimiter was quoted
    chomp: bool  # <<-: leading tabs are stripped
    fd: int = 0

    def body(self) -> str:
        """The content, with leading tabs removed for <<- (as the shell does)."""
        if not self.chomp:
            return self.content
        return "".join(line.lstrip("\t") for line in self.content.splitlines(keepends=True))


@dataclass
class Node:
    """One instruction as written: `cmd` lower-case, `args` already split by its parse rule."""

    cmd: str
    original: str  # the instruction text (continuations joined)
    line: int  # first line in the Dockerfile (1-based)
    end_line: int
    flags: list[str] = field(default_factory=list)  # ["--from=build", "--chown=1:1"]
    args: list[str] = field(default_factory=list)  # words, or [shell string]; pairs for ENV/LABEL/ARG
    json: bool = False  # exec form
    text: str = ""  # the rest of the line after the flags (ONBUILD keeps it as the trigger)
    heredocs: list[Heredoc] = field(default_factory=list)
    sub: Node | None = None  # ONBUILD's instruction; HEALTHCHECK's CMD
    pairs: list[tuple[str, str | None]] = field(default_factory=list)  # ENV, LABEL, ARG


@dataclass
class Dockerfile:
    nodes: list[Node]
    escape: str = "\\"
    directives: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    name: str = "Dockerfile"


class _Directives:
    def __init__(self) -> None:
        self.escape = "\\"
        self.seen: dict[str, str] = {}
        self.done = False

    def feed(self, line: str) -> None:
        if self.done:
            return
        m = _DIRECTIVE.match(line)
        if not m:
            self.done = True
            return
        key, value = m.group(1).lower(), m.group(2)
        if key in self.seen:
            raise ValueError(f"only one {key} parser directive can be used")
        self.seen[key] = value
        if key == "escape":
            if value not in ("\\", "`"):
                raise ValueError(f"invalid escape token '{value}' does not match ` or \\")
            self.escape = value


def parse(text: str, name: str = "Dockerfile") -> Dockerfile:
    """Parse a Dockerfile; errors are InvalidArgument naming `name:line`."""
    lines = text.split("\n")
    if lines and lines[0].startswith("\ufeff"):
        lines[0] = lines[0][1:]
    d = _Directives()
    df = Dockerfile(nodes=[], name=name)
    i = 0
    n = len(lines)

    def where(line_no: int) -> str:
        return f"{name}:{line_no}"

    def is_comment(s: str) -> bool:
        return s.lstrip().startswith("#")

    while i < n:
        raw = lines[i].rstrip("\r")
        i += 1
        start = i
        stripped = raw.lstrip()
        try:
            d.feed(stripped)
        except ValueError as e:
            raise InvalidArgument(str(e), where=where(start)) from None
        if is_comment(stripped):
            continue
        line, done = _trim_continuation(stripped, d.escape)
        if done and not line.strip():
            continue
        empty_continuation = False
        while not done and i < n:
            nxt = lines[i].rstrip("\r")
            i += 1
            if is_comment(nxt):
                continue
            if not nxt.strip():
                empty_continuation = True
                continue
            part, done = _trim_continuation(nxt, d.escape)
            line += part
        if empty_continuation:
            df.warnings.append(f"{where(start)}: empty continuation line (deprecated, Docker warns too)")
        if not line.strip():
            continue
        try:
            node = _node_from_line(line, d.escape, start)
        except (ValueError, LexError) as e:
            raise InvalidArgument(str(e), where=where(start)) from None
        if node.cmd in HEREDOC_INSTRUCTIONS:
            for doc in _heredocs_in(line, d.escape):
                body: list[str] = []
                while True:
                    if i >= n:
                        raise InvalidArgument(f"unterminated heredoc {doc.name!r} (no line {doc.name!r} ends it)",
                                              where=where(start))
                    candidate = lines[i].rstrip("\r")
                    i += 1
                    if (candidate.lstrip("\t") if doc.chomp else candidate) == doc.name:
                        break
                    body.append(candidate + "\n")
                doc.content = "".join(body)
                node.heredocs.append(doc)
        node.end_line = i
        df.nodes.append(node)
    df.escape = d.escape
    df.directives = dict(d.seen)
    return df


def _trim_continuation(line: str, escape: str) -> tuple[str, bool]:
    """Remove a trailing escape char (and blanks after it); True when the instruction ends here."""
    m = re.search(re.escape(escape) + r"[ \t]*$", line)
    if m:
        return line[:m.start()], False
    return line, True


def _heredocs_in(line: str, escape: str) -> list[Heredoc]:
    docs = []
    for word in raw_words(line, escape):
        m = _HEREDOC.match(word)
        if not m or not m.group(3):
            continue
        rest = m.group(3)
        docs.append(Heredoc(name=expand(rest, {}), content="", chomp=m.group(2) == "-",
                            expand=rest.count("'") + rest.count('"') == 0,
                            fd=int(m.group(1) or 0)))
    return docs


def _node_from_line(line: str, escape: str, line_no: int) -> Node:
    parts = line.strip().split(None, 1)
    cmd = parts[0]
    rest, flags = _extract_flags(parts[1]) if len(parts) == 2 else ("", [])
    rest = rest.strip()
    node = Node(cmd=cmd.lower(), original=line.strip(), line=line_no, end_line=line_no, flags=flags, text=rest)
    _PARSERS.get(node.cmd, _parse_string)(node, rest, escape)
    return node


def _extract_flags(line: str) -> tuple[str, list[str]]:
    """Leading `--flag[=value]` words (quotes removed), and the rest of the line."""
    words: list[str] = []
    pos, n = 0, len(line)
    while True:
        while pos < n and line[pos].isspace():
            pos += 1
        if not line.startswith("--", pos):
            return line[pos:], words
        word, quote = "", ""
        while pos < n:
            ch = line[pos]
            if quote:
                if ch == quote:
                    quote = ""
                elif ch == "\\" and pos + 1 < n:
                    pos += 1
                    word += line[pos]
                else:
                    word += ch
            elif ch.isspace():
                break
            elif ch in "'\"":
                quote = ch
            elif ch == "\\" and pos + 1 < n:
                pos += 1
                word += line[pos]
            else:
                word += ch
            pos += 1
        if word == "--":
            return line[pos:], words
        words.append(word)


def _parse_words(rest: str, escape: str) -> list[str]:
    """Split keeping quotes and escapes (BuildKit's parseWords), for ENV/LABEL/ARG."""
    words: list[str] = []
    word, quote, in_word, blank_ok = "", "", False, False
    i, n = 0, len(rest)
    while i < n:
        ch = rest[i]
        if ch == escape and quote != "'":  # kept with the char it escapes; dropped at the very end
            word, i, in_word = word + (rest[i:i + 2] if i + 1 < n else ""), i + 2, True
            continue
        if quote:
            quote = "" if ch == quote else quote
        elif ch.isspace():
            if in_word and (blank_ok or word):
                words.append(word)
            word, in_word, blank_ok = "", False, False
            i += 1
            continue
        elif ch in "'\"":
            quote, blank_ok = ch, True
        in_word = True
        word += ch
        i += 1
    if in_word and (blank_ok or word):
        words.append(word)
    return words


def _json_array(rest: str) -> list[str] | None:
    """The exec form: a JSON array of strings, else None. A non-string element is an error."""
    text = rest.lstrip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, list):
        return None
    if not all(isinstance(v, str) for v in value):
        raise ValueError("when using JSON array syntax, arrays must be comprised of strings only")
    return value


def looks_like_json(rest: str, strict: bool) -> bool:
    """An attempted exec form that is not valid JSON (Docker would silently run it as shell)."""
    t = rest.strip()
    if t.startswith(('["', "['")):  # no shell command starts like that
        return True
    if not (t.startswith("[") and t.endswith("]")):
        return False
    if strict:
        return True
    return t[1:2] in ("\"", "'") or bool(re.search(r"[\"'] *,", t))


def _parse_maybe_json(node: Node, rest: str, escape: str) -> None:
    if not rest:
        return
    value = _json_array(rest)
    if value is not None:
        node.args, node.json = value, True
        return
    if looks_like_json(rest, strict=node.cmd != "run"):
        raise ValueError(f"{node.cmd.upper()}: the exec form is not valid JSON: {rest}"
                         " (write [\"executable\", \"arg\"] with double quotes, or drop the brackets "
                         "for the shell form)")
    node.args = [rest]


def _parse_maybe_json_to_list(node: Node, rest: str, escape: str) -> None:
    value = _json_array(rest)
    if value is not None:
        node.args, node.json = value, True
        return
    if looks_like_json(rest, strict=True):
        raise ValueError(f"{node.cmd.upper()}: the JSON form is not valid JSON: {rest}")
    node.args = rest.split()


def _parse_whitespace(node: Node, rest: str, escape: str) -> None:
    node.args = rest.split()


def _parse_string(node: Node, rest: str, escape: str) -> None:
    node.args = [rest] if rest else []


def _parse_name_val(node: Node, rest: str, escape: str) -> None:
    words = _parse_words(rest, escape)
    if not words:
        raise ValueError(f"{node.cmd.upper()} requires at least one argument")
    if "=" not in words[0]:  # old form: KEY name value
        parts = rest.split(None, 1)
        if len(parts) < 2:
            raise ValueError(f"{node.cmd.upper()} must have two arguments (KEY value or KEY=value)")
        node.pairs = [(parts[0], parts[1])]
        return
    for word in words:
        if "=" not in word:
            raise ValueError(f"Syntax error - can't find = in {word!r}. Must be of the form: name=value")
        key, value = word.split("=", 1)
        node.pairs.append((key, value))


def _parse_name_or_name_val(node: Node, rest: str, escape: str) -> None:
    for word in _parse_words(rest, escape):
        key, sep, value = word.partition("=")
        node.pairs.append((key, value if sep else None))


def _parse_health(node: Node, rest: str, escape: str) -> None:
    parts = rest.split(None, 1)
    if not parts:
        return
    node.args = [parts[0]]
    sub = Node(cmd="cmd", original=rest, line=node.line, end_line=node.line)
    _parse_maybe_json(sub, parts[1] if len(parts) > 1 else "", escape)
    node.sub = sub


def _parse_subcommand(node: Node, rest: str, escape: str) -> None:
    if rest:
        node.sub = _node_from_line(rest, escape, node.line)


_PARSERS = {
    "add": _parse_maybe_json_to_list,
    "copy": _parse_maybe_json_to_list,
    "volume": _parse_maybe_json_to_list,
    "arg": _parse_name_or_name_val,
    "cmd": _parse_maybe_json,
    "entrypoint": _parse_maybe_json,
    "run": _parse_maybe_json,
    "shell": _parse_maybe_json,
    "env": _parse_name_val,
    "label": _parse_name_val,
    "expose": _parse_whitespace,
    "from": _parse_whitespace,
    "healthcheck": _parse_health,
    "maintainer": _parse_string,
    "onbuild": _parse_subcommand,
    "stopsignal": _parse_string,
    "user": _parse_string,
    "workdir": _parse_string,
}
