"""`wharf-runtime`: the built-in OCI runtime with runc's command-line shape.

    wharf-runtime [--root DIR] create [--bundle B] [--pid-file F] [--console-socket S] ID
    wharf-runtime [--root DIR] start|state|pause|resume|ps ID
    wharf-runtime [--root DIR] kill [--all] ID [SIGNAL]     (or --signal SIGNAL)
    wharf-runtime [--root DIR] delete [--force] ID
    wharf-runtime [--root DIR] run [--bundle B] [--pid-file F] [--detach] ID
    wharf-runtime [--root DIR] update [-r resources.json|-] [--memory N] [--pids-limit N] ... ID
    wharf-runtime spec [--bundle B]  |  wharf-runtime [--root DIR] list [--format table|json] [-q]

Hand-parsed (no argparse/typer) and stdlib-only so that `python -S` runs it: the path from
`create` to the container's exec stays short. Errors: one line on stderr, exit 1.
"""

from __future__ import annotations

import os
import sys

sys.dont_write_bytecode = False  # cache our bytecode even under PYTHONDONTWRITEBYTECODE: start-up is hot
if __package__ in (None, ""):  # run as a file (python -S .../runtime/oci/cli.py): make `runtime` importable
    _here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and sys.path[0] == _here:
        sys.path.pop(0)
    sys.path.insert(0, os.path.dirname(os.path.dirname(_here)))

from runtime.errors import InvalidArgument, WharfError  # noqa: E402

USAGE = __doc__.split("\n\n")[1]
# flags that take a value, per command ("" = global); others are booleans
_VALUED = {"": {"--root", "--log", "--log-format", "--criu", "--rootless"},
           "create": {"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"},
           "run": {"--bundle", "-b", "--pid-file", "--console-socket", "--preserve-fds"},
           "kill": {"--signal", "-s"}, "spec": {"--bundle", "-b"}, "list": {"--format", "-f"},
           "ps": {"--format", "-f"}, "delete": set(), "start": set(), "state": set(),
           "pause": set(), "resume": set(),
           "update": {"--resources", "-r", "--memory", "--memory-swap", "--memory-reservation", "--cpu-shares",
                      "--cpu-quota", "--cpu-period", "--cpuset-cpus", "--cpuset-mems", "--pids-limit",
                      "--blkio-weight"}}
# runc's `update` flags -> (linux.resources section, key, value type)
_UPDATE_FLAGS = {"--memory": ("memory", "limit", int), "--memory-swap": ("memory", "swap", int),
                 "--memory-reservation": ("memory", "reservation", int), "--cpu-shares": ("cpu", "shares", int),
                 "--cpu-quota": ("cpu", "quota", int), "--cpu-period": ("cpu", "period", int),
                 "--cpuset-cpus": ("cpu", "cpus", str), "--cpuset-mems": ("cpu", "mems", str),
                 "--pids-limit": ("pids", "limit", int), "--blkio-weight": ("blockIO", "weight", int)}
_ALIASES = {"-b": "--bundle", "-s": "--signal", "-a": "--all", "-d": "--detach", "-q": "--quiet",
            "-r": "--resources"}
_F = {"delete": "--force", "list": "--format", "ps": "--format"}  # -f differs per command


def parse(argv: list[str]) -> tuple[dict, str, dict, list[str]]:
    """-> (global flags, command, command flags, positional args)."""
    glob: dict = {}
    i = 0
    while i < len(argv) and argv[i].startswith("-"):
        i = _flag(argv, i, "", glob)
    if i >= len(argv):
        raise InvalidArgument("no command given", hint="see `wharf-runtime --help`")
    cmd = argv[i]
    if cmd not in _VALUED:
        raise InvalidArgument(f"unknown command {cmd!r}", hint="see `wharf-runtime --help`")
    flags: dict = {}
    pos: list[str] = []
    i += 1
    while i < len(argv):
        a = argv[i]
        if a == "--":
            pos += argv[i + 1:]
            break
        if a.startswith("-") and len(a) > 1 and not (cmd == "kill" and pos and a[1:].isdigit()):
            key = a.split("=", 1)[0]
            if key in _VALUED[""] and key not in _VALUED[cmd]:
                i = _flag(argv, i, "", glob)
            else:
                i = _flag(argv, i, cmd, flags)
        else:
            pos.append(a)
            i += 1
    return glob, cmd, flags, pos


def _flag(argv: list[str], i: int, cmd: str, out: dict) -> int:
    a = argv[i]
    key, eq, val = a.partition("=")
    if key in _VALUED[cmd]:
        if not eq:
            if i + 1 >= len(argv):
                raise InvalidArgument(f"flag {key} needs a value")
            val = argv[i + 1]
            i += 1
        out[_name(cmd, key)] = val
    else:
        out[_name(cmd, key)] = True
    return i + 1


def _name(cmd: str, key: str) -> str:
    return _F.get(cmd, key) if key == "-f" else _ALIASES.get(key, key)


def _one_id(cmd: str, pos: list[str], extra: int = 0) -> str:
    if not pos or len(pos) > 1 + extra:
        raise InvalidArgument(f"{cmd}: expected a container id" + (" and an optional signal" if extra else ""))
    return pos[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("-h", "--help", "help"):
        print(USAGE)
        return 0
    if argv and argv[0] in ("-v", "--version", "version"):
        print("wharf-runtime version 0.1.0\nspec: 1.0.2")
        return 0
    try:
        return _run(argv)
    except (WharfError, OSError) as e:  # one line, as runc: callers keep the last line of stderr
        os.write(2, f"{error_line(e)}\n".encode())
        return e.exit_code if isinstance(e, WharfError) else 1
    except KeyboardInterrupt:
        return 130


def error_line(e: WharfError | OSError) -> str:
    """A failure as the runtime's one line of stderr ("wharf-runtime: ...")."""
    if isinstance(e, WharfError):
        text = f"{e.where}: {e.message}" if e.where else e.message
        if e.hint:
            text += f" (hint: {e.hint})"
    else:
        text = f"{e.strerror or e}{': ' + str(e.filename) if e.filename else ''}"
    return f"wharf-runtime: {text}"


def _run(argv: list[str]) -> int:
    glob, cmd, flags, pos = parse(argv)
    from runtime.oci.state import DEFAULT_ROOT

    root = os.path.abspath(glob.get("--root") or DEFAULT_ROOT)
    if cmd in ("create", "run"):
        from runtime.oci import create

        cid = _one_id(cmd, pos)
        bundle = flags.get("--bundle") or "."
        if cmd == "create":
            create.create(root, cid, bundle, flags.get("--pid-file"), flags.get("--console-socket"),
                          int(flags.get("--preserve-fds") or 0))
            return 0
        return _run_container(root, cid, bundle, flags)
    if cmd == "spec":
        return _spec(flags)
    if cmd == "list":
        return _list(root, flags)
    from runtime.oci import lifecycle

    if cmd == "start":
        lifecycle.start(root, _one_id(cmd, pos))
    elif cmd == "state":
        import json

        from runtime.oci import state

        print(json.dumps(state.oci_state(state.load(root, _one_id(cmd, pos))), indent=2))
    elif cmd == "kill":
        cid = _one_id(cmd, pos, extra=1)
        sig = flags.get("--signal") or (pos[1] if len(pos) > 1 else "SIGTERM")
        lifecycle.kill(root, cid, lifecycle.parse_signal(sig), bool(flags.get("--all")))
    elif cmd == "delete":
        lifecycle.delete(root, _one_id(cmd, pos), bool(flags.get("--force")))
    elif cmd == "pause":
        lifecycle.pause(root, _one_id(cmd, pos))
    elif cmd == "resume":
        lifecycle.resume(root, _one_id(cmd, pos))
    elif cmd == "update":
        _update(root, _one_id(cmd, pos), flags)
    elif cmd == "ps":
        from runtime.linux.cgroups import open_cgroup
        from runtime.oci import state

        s = state.load(root, _one_id(cmd, pos))
        pids = open_cgroup(s["cgroup"]).pids()
        if flags.get("--format") == "json":
            print(str(pids).replace(" ", ""))
        else:
            print("\n".join(map(str, pids)))
    return 0


def _run_container(root: str, cid: str, bundle: str, flags: dict) -> int:
    """run = create + start; without --detach wait for the init (we are its subreaper) and delete."""
    import _signal as signal

    from runtime.linux import prctl
    from runtime.oci import create, lifecycle

    detach = bool(flags.get("--detach"))
    if not detach:
        prctl.set_child_subreaper(True)
    rec = create.create(root, cid, bundle, flags.get("--pid-file"), flags.get("--console-socket"),
                        int(flags.get("--preserve-fds") or 0))
    try:
        lifecycle.start(root, cid)
    except BaseException:
        lifecycle.delete(root, cid, force=True)
        raise
    if detach:
        return 0
    pid = rec["pid"]
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                signal.SIGUSR2, signal.SIGWINCH):
        signal.signal(sig, lambda s, _f: os.kill(pid, s))
    code = 255
    while True:
        try:
            got, status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        if got == pid:
            code = os.waitstatus_to_exitcode(status)
            code = 128 - code if code < 0 else code
            break
    lifecycle.delete(root, cid, force=True)
    return code


def _update(root: str, cid: str, flags: dict) -> None:
    """Change the resources of a created/running container (runc update's flags, or -r JSON)."""
    from runtime.linux.cgroups import open_cgroup
    from runtime.oci import fastjson, state

    s = state.load(root, cid)
    if state.status(s) == "stopped":
        from runtime.errors import Conflict

        raise Conflict(f"container {cid!r} is stopped: nothing to update")
    res: dict = {}
    if flags.get("--resources"):
        src = flags["--resources"]
        try:
            data = sys.stdin.buffer.read() if src == "-" else open(src, "rb").read()
            res = fastjson.loads(data)  # type: ignore[assignment]
        except (OSError, ValueError) as e:
            raise InvalidArgument(f"--resources {src}: {e}") from None
        if not isinstance(res, dict):
            raise InvalidArgument(f"--resources {src}: must be a linux.resources JSON object")
    for flag, (section, key, kind) in _UPDATE_FLAGS.items():
        if flag in flags:
            try:
                res.setdefault(section, {})[key] = kind(flags[flag])
            except ValueError:
                raise InvalidArgument(f"{flag}: {flags[flag]!r} is not a number") from None
    from runtime.oci.spec import validate_resources

    validate_resources(res)
    try:
        open_cgroup(s["cgroup"]).apply(res)
    except (OSError, ValueError) as e:
        from runtime.errors import RuntimeFailure

        raise RuntimeFailure(f"linux.resources: {e}") from None


def _spec(flags: dict) -> int:
    import json

    from runtime.oci.spec import default_spec

    path = os.path.join(flags.get("--bundle") or ".", "config.json")
    if os.path.exists(path):
        raise InvalidArgument(f"{path} already exists", hint="remove it first")
    with open(path, "w") as f:
        json.dump(default_spec(["sh"]), f, indent=2)
        f.write("\n")
    return 0


def _list(root: str, flags: dict) -> int:
    from runtime.oci import state

    rows = []
    for cid in state.list_ids(root):
        try:
            s = state.load(root, cid)
        except WharfError:
            continue
        o = state.oci_state(s)
        o["created"] = s.get("created", "")
        rows.append(o)
    if flags.get("--quiet"):
        print("\n".join(r["id"] for r in rows))
    elif flags.get("--format") == "json":
        import json

        print(json.dumps(rows))
    else:
        print(f"{'ID':<24}{'PID':<10}{'STATUS':<10}BUNDLE")
        for r in rows:
            print(f"{r['id']:<24}{r['pid']:<10}{r['status']:<10}{r['bundle']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
