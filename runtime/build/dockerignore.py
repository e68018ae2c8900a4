"""`.dockerignore` with Docker's semantics (moby/patternmatcher).

Lines starting with `#` are comments; patterns are trimmed, cleaned, and a leading
`/` is dropped (paths are relative to the context). `*` and `?` do not cross `/`,
`**` matches any number of directories, `[...]` is a character class, `\\` escapes.
A pattern also matches everything below a matching directory. `!pattern` re-includes;
the last matching pattern wins.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

_META = set(".+()|{}$^")


@dataclass(frozen=True)
class Pattern:
    text: str
    exclusion: bool
    regex: re.Pattern[str]


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i, n = 0, len(pattern)
    while i < n:
        ch = pattern[i]
        i += 1
        if ch == "*":
            if i < n and pattern[i] == "*":
                i += 1
                if i < n and pattern[i] == "/":
                    i += 1
                out.append(".*" if i >= n else "(.*/)?")
            else:
                out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            out.append(re.escape(pattern[i]) if i < n else "\\\\")
            i += 1 if i < n else 0
        elif ch == "[":
            out.append("[^" if pattern.startswith("!", i) or pattern.startswith("^", i) else "[")
            i += 1 if pattern.startswith(("!", "^"), i) else 0
        elif ch in _META:
            out.append("\\" + ch)
        else:
            out.append(ch)
    out.append("$")
    try:
        return re.compile("".join(out), re.S)
    except re.error as e:
        raise ValueError(f"bad .dockerignore pattern {pattern!r}: {e}") from None


def parse_patterns(text: str) -> list[Pattern]:
    patterns = []
    for raw in text.splitlines():
        if raw.startswith("#"):
            continue
        p = raw.strip()
        if not p:
            continue
        invert = p.startswith("!")
        if invert:
            p = p[1:].strip()
        if p:
            p = posixpath.normpath(p)
            if len(p) > 1 and p.startswith("/"):
                p = p.lstrip("/") or "/"
        patterns.append(Pattern(text=("!" if invert else "") + p, exclusion=invert, regex=_compile(p)))
    return patterns


class Matcher:
    """matches(path) -> True when `path` (relative, '/'-separated) is excluded from the context."""

    def __init__(self, patterns: list[Pattern]) -> None:
        self.patterns = patterns
        self.has_exclusions = any(p.exclusion for p in patterns)

    @classmethod
    def from_context(cls, root: Path) -> Matcher:
        try:
            text = (root / ".dockerignore").read_text()
        except (FileNotFoundError, IsADirectoryError):
            text = ""
        return cls(parse_patterns(text))

    def matches(self, path: str) -> bool:
        path = posixpath.normpath(path).lstrip("/")
        parents = path.split("/")[:-1]
        matched = False
        for pat in self.patterns:
            if pat.exclusion and not matched:
                continue
            hit = bool(pat.regex.match(path))
            if not hit:
                for i in range(len(parents)):
                    if pat.regex.match("/".join(parents[: i + 1])):
                        hit = True
                        break
            if hit:
                matched = not pat.exclusion
        return matched

    def may_reinclude_below(self, directory: str) -> bool:
        """An excluded directory must still be walked when a `!` pattern may match inside it."""
        if not self.has_exclusions:
            return False
        prefix = directory.rstrip("/") + "/"
        for pat in self.patterns:
            if not pat.exclusion:
                continue
            body = pat.text[1:]
            if body.startswith(prefix) or any(c in body for c in "*?[") or prefix.startswith(body + "/"):
                return True
        return False
