"""Docker's word lexer: quote removal, escapes and `$var` substitution (BuildKit's shell/lex.go).

`expand(word, env)` is what the builder applies to the arguments of ADD, COPY, ENV,
EXPOSE, FROM, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR and ARG; `expand_words`
also splits on unquoted whitespace (and on whitespace inside an unquoted `$var`).
Supported forms: `$v`, `${v}`, `${v:-w}`, `${v-w}`, `${v:+w}`, `${v+w}`, `${v:?msg}`,
`${v?msg}`, `${v#pat}`, `${v##pat}`, `${v%pat}`, `${v%%pat}`, `${v/pat/repl}`, `${v//pat/repl}`.
Unset variables expand to "". Inside double quotes the escape character only escapes
`"`, `$` and itself; single quotes are literal.
"""

from __future__ import annotations

import re
from collections.abc import Mapping


class LexError(ValueError):
    """A substitution or quoting error; the parser adds the Dockerfile line."""


class _Words:
    """Collects words, splitting on unquoted whitespace (BuildKit's wordsStruct)."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self.word = ""
        self.in_word = False

    def add_char(self, ch: str) -> None:
        if ch.isspace():
            if self.in_word:
                self.words.append(self.word)
                self.word = ""
                self.in_word = False
        else:
            self.add_raw_char(ch)

    def add_raw_char(self, ch: str) -> None:
        self.word += ch
        self.in_word = True

    def add_string(self, text: str) -> None:
        for ch in text:
            self.add_char(ch)

    def add_raw_string(self, text: str) -> None:
        self.word += text
        self.in_word = True

    def result(self) -> list[str]:
        if self.in_word:
            self.words.append(self.word)
            self.word = ""
            self.in_word = False
        return self.words


class _Lexer:
    def __init__(self, text: str, env: Mapping[str, str], escape: str = "\\",
                 raw_quotes: bool = False, raw_escapes: bool = False) -> None:
        self.text = text
        self.pos = 0
        self.env = env
        self.escape = escape
        self.raw_quotes = raw_quotes
        self.raw_escapes = raw_escapes

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def next(self) -> str:
        ch = self.peek()
        self.pos += 1 if ch else 0
        return ch

    def process(self, stop: str = "") -> tuple[str, list[str]]:
        result: list[str] = []
        words = _Words()
        while self.peek():
            ch = self.peek()
            if stop and ch == stop:
                self.next()
                return "".join(result), words.result()
            if ch == "'":
                tmp = self.single_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            elif ch == '"':
                tmp = self.double_quote()
                result.append(tmp)
                words.add_raw_string(tmp)
            elif ch == "$":
                tmp = self.dollar()
                result.append(tmp)
                words.add_string(tmp)
            else:
                ch = self.next()
                if ch == self.escape:
                    if self.raw_escapes:
                        words.add_raw_char(ch)
                        result.append(ch)
                    ch = self.next()
                    if not ch:
                        break
                    words.add_raw_char(ch)
                else:
                    words.add_char(ch)
                result.append(ch)
        if stop:
            raise LexError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(result), words.result()

    def single_quote(self) -> str:
        out = [self.next()] if self.raw_quotes else []
        if not self.raw_quotes:
            self.next()
        while True:
            ch = self.next()
            if not ch:
                raise LexError("unexpected end of statement while looking for matching single-quote")
            if ch == "'":
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            out.append(ch)

    def double_quote(self) -> str:
        out = [self.next()] if self.raw_quotes else []
        if not self.raw_quotes:
            self.next()
        while True:
            ch = self.peek()
            if not ch:
                raise LexError("unexpected end of statement while looking for matching double-quote")
            if ch == '"':
                self.next()
                if self.raw_quotes:
                    out.append(ch)
                return "".join(out)
            if ch == "$":
                out.append(self.dollar())
                continue
            ch = self.next()
            if ch == self.escape:
                if self.raw_escapes:
                    out.append(ch)
                nxt = self.peek()
                if not nxt:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.next()
            out.append(ch)

    def _raw(self, stop: str) -> str:
        """A pattern (or replacement) up to `stop`, escapes kept: `\\*` stays a literal star."""
        saved, self.raw_escapes = self.raw_escapes, True
        try:
            return self.process(stop)[0]
        finally:
            self.raw_escapes = saved

    def name(self) -> str:
        ch = self.peek()
        if ch.isdigit():
            start = self.pos
            while self.peek().isdigit():
                self.next()
            return self.text[start:self.pos]
        if ch and ch in "*@#?-$!":
            return self.next()
        start = self.pos
        while self.peek() and (self.peek().isalnum() or self.peek() == "_"):
            self.next()
        return self.text[start:self.pos]

    def dollar(self) -> str:
        self.next()  # $
        if self.peek() != "{":
            name = self.name()
            if not name:
                return "$"
            return self.env.get(name, "")
        self.next()  # {
        ch = self.peek()
        if not ch:
            raise LexError("syntax error: missing '}'")
        if ch in "{}:":
            raise LexError("syntax error: bad substitution")
        name = self.name()
        if not name:
            raise LexError("syntax error: bad substitution")
        is_set = name in self.env
        value = self.env.get(name, "")
        ch = self.next()
        if ch == "}":
            return value
        if ch == ":":
            mod = self.next()
            if mod not in ("-", "+", "?"):
                raise LexError(f"unsupported modifier ({mod or 'end of text'}) in substitution ${{{name}:...}}")
            word, _ = self.process("}")
            if mod == "-":
                return value if value else word
            if mod == "+":
                return word if value else ""
            if not value:
                raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        if ch in ("-", "+", "?"):
            word, _ = self.process("}")
            if ch == "-":
                return value if is_set else word
            if ch == "+":
                return word if is_set else ""
            if not is_set:
                raise LexError(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        if ch in ("#", "%"):
            greedy = self.peek() == ch
            if greedy:
                self.next()
            pattern = self._raw("}")
            return _trim(value, _pattern_re(pattern, self.escape), prefix=ch == "#", greedy=greedy)
        if ch == "/":
            replace_all = self.peek() == "/"
            if replace_all:
                self.next()
            pattern = self._raw("/")
            repl = self._raw("}")
            return _replace(value, _pattern_re(pattern, self.escape) if pattern else None, repl, replace_all)
        raise LexError(f"unsupported modifier ({ch or 'end of text'}) in substitution ${{{name}...}}")


def _pattern_re(pattern: str, escape: str) -> re.Pattern[str]:
    """A shell pattern (`*`, `?`, `[...]`, escape = literal next char) as a regex."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == escape and i < n:
            out.append(re.escape(pattern[i]))
            i += 1
        elif ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i:end]
            body = "^" + body[1:] if body.startswith("!") else body
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
    return re.compile("".join(out), re.S)


def _trim(value: str, rx: re.Pattern[str], prefix: bool, greedy: bool) -> str:
    ends = range(len(value) + 1)
    if prefix:
        order = reversed(ends) if greedy else ends
        for i in order:
            if rx.fullmatch(value[:i]):
                return value[i:]
    else:
        order = ends if greedy else reversed(ends)
        for i in order:
            if rx.fullmatch(value[i:]):
                return value[:i]
    return value


def _replace(value: str, rx: re.Pattern[str] | None, repl: str, replace_all: bool) -> str:
    if rx is None:
        return value
    out, i = [], 0
    while i < len(value):
        for j in range(len(value), i, -1):  # longest match, as the shell does
            if rx.fullmatch(value[i:j]):
                out.append(repl)
                i = j
                if not replace_all:
                    return "".join(out) + value[i:]
                break
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def expand(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word: quotes removed, escapes processed, variables substituted."""
    return _Lexer(word, env, escape).process()[0]


def expand_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Like expand, then split on unquoted whitespace (EXPOSE, heredoc detection)."""
    return _Lexer(text, env, escape).process()[1]


def expand_heredoc(text: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """Heredoc contents: only `$` substitutions (and an escaped `$`); quotes stay as written."""
    lx = _Lexer(text, env, escape)
    out: list[str] = []
    while lx.peek():
        ch = lx.peek()
        if ch == escape and lx.text[lx.pos + 1:lx.pos + 2] == "$":
            lx.next()
            out.append(lx.next())
        elif ch == "$":
            out.append(lx.dollar())
        else:
            out.append(lx.next())
    return "".join(out)


def raw_words(text: str, escape: str = "\\") -> list[str]:
    """Split on unquoted whitespace keeping quotes and escapes (no substitution)."""
    return _Lexer(text, {}, escape, raw_quotes=True, raw_escapes=True).process()[1]
