"""Docker's Go-style boolean flags on the typer command line: `--no-cache=true`, `--icc=false`,
`--sig-proxy=false` (Go's flag package takes a value after `=` for any boolean; click does not).

`bool_values(command, args)` rewrites such arguments for the command the args select: `--X=true` ->
`--X`, `--X=false` -> the flag's off form (`--no-X` when declared as `--X/--no-X`) or nothing when
false is its default. Arguments of any other kind, and everything after `--` or after the first
positional of a command that stops at it (`run IMAGE CMD...`), are left as they are.
"""

from __future__ import annotations

from typing import Any

TRUE = ("true", "1", "t", "yes")
FALSE = ("false", "0", "f", "no")


def has_candidates(args: list[str]) -> bool:
    return any(a.startswith("--") and a.partition("=")[2].lower() in TRUE + FALSE for a in args)


def _options(cmd: Any) -> dict[str, Any]:
    return {name: p for p in getattr(cmd, "params", ()) if getattr(p, "param_type_name", "") == "option"
            for name in (*p.opts, *p.secondary_opts)}


def _rewrite(opt: Any, name: str, value: str) -> list[str] | None:
    if not (getattr(opt, "is_flag", False) and getattr(opt, "is_bool_flag", False)):
        return None
    on = value.lower() in TRUE
    if name in opt.secondary_opts:  # `--no-X=true` is `--no-X`
        on = not on
    if on:
        return [opt.opts[0]]
    if opt.secondary_opts:
        return [opt.secondary_opts[0]]
    return [] if not opt.default else None


def bool_values(command: Any, args: list[str]) -> list[str]:
    out: list[str] = []
    cmd = command
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return out + args[i:]
        opts = _options(cmd)
        if a.startswith("-"):
            name, eq, value = a.partition("=")
            opt = opts.get(name)
            if opt is not None and eq and value.lower() in TRUE + FALSE:
                new = _rewrite(opt, name, value)
                if new is not None:
                    out += new
                    i += 1
                    continue
            out.append(a)
            if opt is not None and not eq and not getattr(opt, "is_flag", False) and i + 1 < len(args):
                out.append(args[i + 1])  # the option's value
                i += 1
            i += 1
            continue
        sub = getattr(cmd, "commands", {}).get(a)
        out.append(a)
        i += 1
        if sub is not None:
            cmd = sub
        elif not getattr(cmd, "allow_interspersed_args", True):
            return out + args[i:]
    return out
