"""`wharf diff`, `apply`, `up` and `down` without typer (whose import alone costs more than a
whole no-op apply should): reconciler/cli/app.py's main() calls `dispatch(args)`; it returns
None for any flag it does not know (or -h), and the typer app handles the command as usual.
The project comes from reconciler.target_cache when its files did not change."""

from __future__ import annotations

import sys

COMMON = {"-f": "files", "--file": "files", "-p": "project_name", "--project-name": "project_name",
          "--profile": "profiles", "--env-file": "env_file"}
REPEATED = {"files", "profiles"}
# verb -> {flag: (destination, type)}; bool flags take no value
FLAGS: dict[str, dict[str, tuple[str, type]]] = {
    "diff": {"--prune": ("prune", bool), "--format": ("format", str), "-o": ("out", str), "--out": ("out", str)},
    "apply": {"--prune": ("prune", bool), "--timeout": ("timeout", float), "--wait": ("wait", bool),
              "--parallel": ("parallel", int), "--progress": ("progress", str)},
    "up": {"--remove-orphans": ("prune", bool), "-d": ("detach", bool), "--detach": ("detach", bool),
           "--timeout": ("timeout", float), "--wait": ("wait", bool), "--parallel": ("parallel", int),
           "--progress": ("progress", str)},
    "down": {"-v": ("volumes", bool), "--volumes": ("volumes", bool), "--remove-orphans": ("remove_orphans", bool),
             "-t": ("timeout", int), "--timeout": ("timeout", int), "--parallel": ("parallel", int),
             "--progress": ("progress", str)},
    # `gitops REPO --once` only (the watcher, status and forget go to typer)
    "gitops": {"-b": ("branch", str), "--branch": ("branch", str), "--path": ("path", str),
               "--interval": ("interval", str), "--once": ("once", bool), "--prune": ("prune", bool),
               "--timeout": ("timeout", float), "--wait": ("wait", bool), "--parallel": ("parallel", int),
               "--progress": ("progress", str), "--format": ("format", str),
               "--hook-secret-file": ("hook_secret_file", str)},
}
DEFAULTS = {"prune": False, "format": "text", "out": None, "timeout": 300.0, "wait": False, "parallel": 4,
            "progress": "auto", "volumes": False, "remove_orphans": False}


def parse(args: list[str]) -> tuple[str, dict, list[str]] | None:
    """(verb, values, positionals), or None when the typer app must handle these args. A root
    `-H/--host URL` before the verb becomes WHARF_HOST (the engine API the verb talks to)."""
    from runtime.cli.fast import take_host

    args = take_host(args)
    if not args or args[0] not in FLAGS:
        return None
    verb, rest = args[0], args[1:]
    flags = FLAGS[verb]
    vals: dict = {"files": [], "profiles": [], "project_name": None, "env_file": None,
                  "ignore_unsupported": False, **DEFAULTS}
    if verb == "down":
        vals["timeout"] = 10
    pos: list[str] = []
    i = 0
    while i < len(rest):
        a = rest[i]
        name, eq, inline = a.partition("=") if a.startswith("--") else (a, "", "")
        if a == "--ignore-unsupported":
            vals["ignore_unsupported"] = True
        elif name in COMMON or (name in flags and flags[name][1] is not bool):
            if eq:
                value = inline
            elif i + 1 < len(rest):
                i += 1
                value = rest[i]
            else:
                return None
            dest, kind = (COMMON[name], str) if name in COMMON else flags[name]
            try:
                v = kind(value)
            except ValueError:
                return None
            if dest in REPEATED:
                vals[dest].append(v)
            else:
                vals[dest] = v
        elif name in flags and not eq:
            vals[flags[name][0]] = True
        elif not a.startswith("-") and verb in ("apply", "gitops") and not pos:
            pos.append(a)
        else:
            return None  # -h, unknown or combined flags: typer says what is wrong
        i += 1
    if verb == "diff" and vals["format"] not in ("text", "json"):
        return None
    if verb == "gitops" and (not vals.get("once") or not pos or pos[0] in ("status", "forget")):
        return None
    return verb, vals, pos


def dispatch(args: list[str]) -> int | None:
    parsed = parse(args)
    if parsed is None:
        return None
    verb, v, pos = parsed
    if verb == "gitops":
        from .gitops import sync

        try:
            return sync(pos[0], v.get("branch"), v.get("path", "."), v["files"], v["project_name"], v["profiles"],
                        v["ignore_unsupported"], v["env_file"], v.get("interval", "30s"), True, v["prune"],
                        v["timeout"], v["wait"], v["parallel"], v["progress"], None, v.get("hook_secret_file"))
        except KeyboardInterrupt:
            print("", file=sys.stderr)
            return 130
    from . import verbs
    from .project import ProjectOptions, load_target

    def engine():
        from reconciler.engine_guard import connect

        return connect()

    def target(opts: ProjectOptions):
        return load_target(opts, cached=True)

    opts = ProjectOptions(v["files"] or None, v["project_name"], v["profiles"], v["ignore_unsupported"],
                          v["env_file"])
    try:
        if verb == "diff":
            return verbs.run_diff(opts, engine, target, v["prune"], v["format"], v["out"])
        if verb in ("apply", "up"):
            return verbs.run_apply(opts, engine, target, pos[0] if pos else None, v["prune"], v["timeout"],
                                   v["wait"], v["parallel"], v["progress"])
        verbs.run_down(opts, engine, target, v["volumes"], v["remove_orphans"], v["timeout"], v["parallel"],
                       v["progress"])
        return 0
    except KeyboardInterrupt:
        print("", file=sys.stderr)
        return 130
