"""`.env` and `env_file` parsing (05-services.md "Env_file format")."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from runtime.errors import InvalidArgument

from .interpolate import _Missing, substitute

_KEY = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.\-]*)\s*(=)?(.*)$")
_ESCAPES = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "'": "'", "$": "\\$"}


def _quoted(text: str, quote: str, where: str) -> tuple[str, str]:
    """(value, rest) of a value starting right after its opening quote."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            if quote == '"' and nxt in _ESCAPES:
                out.append(_ESCAPES[nxt] if nxt != "$" else "$$")
                i += 2
                continue
            if quote == "'" and nxt == "'":
                out.append("'")
                i += 2
                continue
        if c == quote:
            return "".join(out), text[i + 1:]
        out.append("$$" if (c == "$" and quote == "'") else c)
        i += 1
    raise InvalidArgument(f"unterminated {quote} quote", where=where)


def parse_env_text(text: str, source: str, env: Mapping[str, str] | None = None,
                   raw: bool = False) -> dict[str, str | None]:
    """KEY=VALUE lines -> dict; a bare KEY maps to None (unset). Values may refer to
    earlier keys and to `env`."""
    out: dict[str, str | None] = {}
    lines = text.splitlines()
    n = 0
    while n < len(lines):
        line = lines[n]
        n += 1
        where = f"{source}:{n}"
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        m = _KEY.match(line)
        if not m:
            raise InvalidArgument(f"invalid line {line.strip()!r} (expected KEY=VALUE)", where=where)
        key, eq, rest = m.group(1), m.group(2), m.group(3)
        if not eq:
            out[key] = None
            continue
        if raw:
            out[key] = rest
            continue
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            while True:  # quoted values may span lines
                try:
                    value, _ = _quoted(body, quote, where)
                    break
                except InvalidArgument:
                    if n >= len(lines):
                        raise
                    body += "\n" + lines[n]
                    n += 1
            interpolate = quote == '"'
        else:
            value = re.split(r"\s+#", rest, maxsplit=1)[0].rstrip()
            interpolate = True
        if interpolate:
            scope = {**(env or {}), **{k: v for k, v in out.items() if v is not None}}
            try:
                value = substitute(value, scope)
            except _Missing as e:
                raise InvalidArgument(e.message, where=where) from None
        else:
            value = value.replace("$$", "$")
        out[key] = value
    return out


def read_env_file(path: Path, env: Mapping[str, str] | None = None, raw: bool = False,
                  where: str | None = None) -> dict[str, str | None]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise InvalidArgument(f"env file {path} not found", where=where,
                              hint="create it or mark it `required: false`") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InvalidArgument(f"cannot read env file {path}: {e}", where=where) from None
    return parse_env_text(text, str(path), env, raw)
