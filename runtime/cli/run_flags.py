"""`run`/`create` flags: one table for the typer verbs and for the lean path without typer.

`parse(args)` reads a docker-style command line (options before the image; `--flag=value`,
`-p80:80`, clustered `-itd`, `-dp 80:80`) with nothing but this table, so `wharf run` with any of
these flags skips typer's start-up (runtime/cli/fast.py). `build_spec` turns the options into the
engine's ContainerSpec, whichever path parsed them. Pure data and parsing here: the `wharf run`
client imports this module to decide where the command runs.
"""

from __future__ import annotations

import os

from runtime.errors import InvalidArgument

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# dest, flags, kind (bool | str | int | list), default, help
OPTIONS: tuple[tuple[str, tuple[str, ...], str, object, str], ...] = (
    ("name", ("--name",), "str", None, "Assign a name to the container"),
    ("env", ("-e", "--env"), "list", None, "Set environment variables"),
    ("env_file", ("--env-file",), "list", None, "Read in a file of environment variables"),
    ("volume", ("-v", "--volume"), "list", None, "Bind mount a volume"),
    ("mount", ("--mount",), "list", None, "Attach a filesystem mount to the container"),
    ("tmpfs", ("--tmpfs",), "list", None, "Mount a tmpfs directory"),
    ("workdir", ("-w", "--workdir"), "str", None, "Working directory inside the container"),
    ("user", ("-u", "--user"), "str", None, "Username or UID (format: <name|uid>[:<group|gid>])"),
    ("hostname", ("-h", "--hostname"), "str", None, "Container host name"),
    ("entrypoint", ("--entrypoint",), "str", None, "Overwrite the default ENTRYPOINT of the image"),
    ("restart", ("--restart",), "str", "no", "Restart policy: no, on-failure[:N], always, unless-stopped"),
    ("memory", ("-m", "--memory"), "str", None, "Memory limit"),
    ("memory_swap", ("--memory-swap",), "str", None, "Memory + swap limit; -1 unlimited"),
    ("memory_reservation", ("--memory-reservation",), "str", None, "Memory soft limit"),
    ("cpus", ("--cpus",), "str", None, "Number of CPUs"),
    ("cpu_shares", ("-c", "--cpu-shares"), "int", None, "CPU shares (relative weight)"),
    ("cpuset_cpus", ("--cpuset-cpus",), "str", None, "CPUs in which to allow execution (0-3, 0,1)"),
    ("pids_limit", ("--pids-limit",), "int", None, "Tune container pids limit"),
    ("blkio_weight", ("--blkio-weight",), "int", None, "Block IO (relative weight), 10-1000"),
    ("device_read_bps", ("--device-read-bps",), "list", None, "Limit read rate (bytes per second) from a device"),
    ("device_write_bps", ("--device-write-bps",), "list", None, "Limit write rate (bytes per second) to a device"),
    ("device_read_iops", ("--device-read-iops",), "list", None, "Limit read rate (IO per second) from a device"),
    ("device_write_iops", ("--device-write-iops",), "list", None, "Limit write rate (IO per second) to a device"),
    ("device", ("--device",), "list", None, "Add a host device to the container (HOST[:CONTAINER[:rwm]])"),
    ("read_only", ("--read-only",), "bool", False, "Mount the container's root filesystem as read only"),
    ("cap_add", ("--cap-add",), "list", None, "Add Linux capabilities"),
    ("cap_drop", ("--cap-drop",), "list", None, "Drop Linux capabilities"),
    ("group_add", ("--group-add",), "list", None, "Add additional groups to join"),
    ("privileged", ("--privileged",), "bool", False, "Give extended privileges to this container"),
    ("label", ("-l", "--label"), "list", None, "Set meta data on a container"),
    ("stop_signal", ("--stop-signal",), "str", None, "Signal to stop the container"),
    ("stop_timeout", ("--stop-timeout",), "int", None, "Timeout (in seconds) to stop a container"),
    ("health_cmd", ("--health-cmd",), "str", None, "Command to run to check health"),
    ("health_interval", ("--health-interval",), "str", None, "Time between running the check"),
    ("health_timeout", ("--health-timeout",), "str", None, "Maximum time to allow one check to run"),
    ("health_retries", ("--health-retries",), "int", None, "Consecutive failures needed to report unhealthy"),
    ("health_start_period", ("--health-start-period",), "str", None, "Start period for the container"),
    ("health_start_interval", ("--health-start-interval",), "str", None, "Time between checks in the start period"),
    ("no_healthcheck", ("--no-healthcheck",), "bool", False, "Disable any container-specified HEALTHCHECK"),
    ("init", ("--init",), "bool", False, "Run an init inside the container that forwards signals and reaps processes"),
    ("ulimit", ("--ulimit",), "list", None, "Ulimit options (name=soft[:hard])"),
    ("runtime", ("--runtime",), "str", None, "Runtime to use for this container: builtin, runc, crun"),
    ("publish", ("-p", "--publish"), "list", None, "Publish a container's port(s) to the host"),
    ("publish_all", ("-P", "--publish-all"), "bool", False, "Publish all exposed ports to random ports"),
    ("expose", ("--expose",), "list", None, "Expose a port or a range of ports"),
    ("network", ("--network", "--net"), "str", None, "Connect a container to a network"),
    ("network_alias", ("--network-alias",), "list", None, "Add network-scoped alias for the container"),
    ("ip", ("--ip",), "str", None, "IPv4 address (e.g., 172.30.100.104)"),
    ("dns", ("--dns",), "list", None, "Set custom DNS servers"),
    ("dns_search", ("--dns-search",), "list", None, "Set custom DNS search domains"),
    ("add_host", ("--add-host",), "list", None, "Add a custom host-to-IP mapping (host:ip)"),
    ("security_opt", ("--security-opt",), "list", None, "Security options"),
    ("sysctl", ("--sysctl",), "list", None, "Sysctl options"),
    ("log_opt", ("--log-opt",), "list", None, "Log driver options (max-size, max-file)"),
    ("rootfs", ("--rootfs",), "str", None, "Run a root filesystem directory instead of an image (like podman)"),
    ("interactive", ("-i", "--interactive"), "bool", False, "Keep STDIN open even if not attached"),
    ("tty", ("-t", "--tty"), "bool", False, "Allocate a pseudo-TTY"),
)
# per verb, on top of OPTIONS
EXTRAS = {
    "run": (("detach", ("-d", "--detach"), "bool", False, "Run in background and print the ID"),
            ("rm", ("--rm",), "bool", False, "Remove the container when it exits")),
    "create": (("rm", ("--rm",), "bool", False, "Remove the container when it exits"),),
}


def options(verb: str) -> tuple[tuple[str, tuple[str, ...], str, object, str], ...]:
    return OPTIONS + EXTRAS[verb]


def defaults(verb: str) -> dict[str, Any]:
    return {dest: ([] if kind == "list" else default) for dest, _, kind, default, _ in options(verb)}


def parse(args: list[str], verb: str = "run") -> tuple[dict[str, Any], str, list[str]] | None:
    """(options, image, command) of `verb ARGS`, or None for what only the typer verb knows (an
    unknown flag, --help, a Go-style `--bool=false`, no image): it then gives the usage error."""
    table = {f: (dest, kind) for dest, flags, kind, _, _ in options(verb) for f in flags}
    o = defaults(verb)

    def put(flag: str, val: str) -> None:
        dest, kind = table[flag]
        if kind == "list":
            o[dest].append(val)
        elif kind == "int":
            try:
                o[dest] = int(val)
            except ValueError:
                raise InvalidArgument(f'invalid argument "{val}" for "{flag}" flag: not an integer',
                                      exit_code=125) from None
        else:
            o[dest] = val

    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        if a.startswith("--"):
            flag, eq, val = a.partition("=")
            if flag not in table or flag == "--help":
                return None
            if table[flag][1] == "bool":
                if eq:
                    return None
                o[table[flag][0]] = True
                i += 1
                continue
            if not eq:
                if i + 1 >= len(args):
                    return None
                val = args[i + 1]
                i += 1
            put(flag, val)
            i += 1
            continue
        j = 1  # a cluster of short flags: bools, the last one may take a value (attached or next)
        while j < len(a):
            flag = "-" + a[j]
            if flag not in table:
                return None
            if table[flag][1] == "bool":
                o[table[flag][0]] = True
                j += 1
                continue
            val = a[j + 1:].removeprefix("=")
            if not val:
                if i + 1 >= len(args):
                    return None
                val = args[i + 1]
                i += 1
            put(flag, val)
            break
        i += 1
    if i >= len(args):
        return None
    return o, args[i], args[i + 1:]


def build_spec(image: str, command: list[str], o: dict[str, Any]):  # noqa: ANN201 - a ContainerSpec
    """Options (parse's or the typer verb's) -> ContainerSpec; every bad value is an InvalidArgument
    naming the flag."""
    from runtime.containers import flags as fl
    from runtime.engine import ContainerSpec, EndpointSpec, Resources

    if o["rootfs"] and image == "-":
        image = ""
    env = []
    for f in o["env_file"]:
        env += fl.parse_env_file(f)
    env += fl.parse_env(o["env"])
    mounts = [fl.parse_volume(v) for v in o["volume"]] + [fl.parse_mount(v) for v in o["mount"]]
    mounts += [fl.parse_tmpfs(v) for v in o["tmpfs"]]
    ports = []
    for p in o["publish"]:
        ports += fl.parse_publish(p)
    exposed = []
    for e in o["expose"]:
        num, _, proto = e.partition("/")
        for n in fl.parse_port_range(num, f"--expose {e}"):
            exposed.append(f"{n}/{proto or 'tcp'}")
    res = Resources(
        memory=fl.parse_bytes(o["memory"], "--memory") if o["memory"] else None,
        memory_swap=(-1 if o["memory_swap"] == "-1" else fl.parse_bytes(o["memory_swap"], "--memory-swap"))
        if o["memory_swap"] else None,
        memory_reservation=fl.parse_bytes(o["memory_reservation"], "--memory-reservation")
        if o["memory_reservation"] else None,
        nano_cpus=fl.parse_cpus(o["cpus"]) if o["cpus"] else None,
        cpu_shares=o["cpu_shares"], cpuset_cpus=o["cpuset_cpus"], pids_limit=o["pids_limit"],
        ulimits=[fl.parse_ulimit(u) for u in o["ulimit"]], blkio_weight=o["blkio_weight"],
        **{k: [_throttle(v, k) for v in o[k]]
           for k in ("device_read_bps", "device_write_bps", "device_read_iops", "device_write_iops")},
    )
    network = o["network"] or "bridge"
    networks = {}
    if network not in ("bridge", "host", "none") and not network.startswith("container:"):
        networks[network] = EndpointSpec(aliases=list(o["network_alias"]), ipv4_address=o["ip"])
    elif o["network_alias"] or o["ip"]:
        raise InvalidArgument("--network-alias and --ip only work on user-defined networks",
                              hint="create one with `wharf network create`")
    log_opts = {}
    for lo in o["log_opt"]:
        k, _, v = lo.partition("=")
        log_opts[k] = v
    return ContainerSpec(
        image=image, name=o["name"], command=list(command) if command else None,
        entrypoint=([] if o["entrypoint"] == "" else fl.parse_command_json_or_shell(o["entrypoint"]))
        if o["entrypoint"] is not None else None,
        env=env, labels=fl.parse_labels(o["label"]), working_dir=o["workdir"] or "", user=o["user"] or "",
        hostname=o["hostname"] or "", tty=o["tty"], stdin_open=o["interactive"],
        stdin_once=o["interactive"] and not o.get("detach", False),
        exposed_ports=exposed,
        healthcheck=fl.parse_health(o["health_cmd"], o["health_interval"], o["health_timeout"],
                                    o["health_retries"], o["health_start_period"], o["health_start_interval"],
                                    o["no_healthcheck"]),
        stop_signal=o["stop_signal"], stop_timeout=o["stop_timeout"], mounts=mounts, ports=ports,
        publish_all=o["publish_all"], network_mode=network, networks=networks,
        restart=fl.parse_restart(o["restart"]), resources=res, cap_add=list(o["cap_add"]),
        cap_drop=list(o["cap_drop"]), group_add=list(o["group_add"]), privileged=o["privileged"],
        read_only=o["read_only"], init=o["init"],
        dns=list(o["dns"]), dns_search=list(o["dns_search"]), extra_hosts=[fl.parse_add_host(h) for h in o["add_host"]],
        security_opt=list(o["security_opt"]), log_options=log_opts, runtime=o["runtime"],
        auto_remove=o.get("rm", False), rootfs=os.path.abspath(o["rootfs"]) if o["rootfs"] else None,
        sysctls=fl.parse_labels(o["sysctl"]), devices=[_device(d) for d in o["device"]],
    )


def _throttle(value: str, dest: str) -> str:
    """--device-read-bps /dev/sda:1mb -> "/dev/sda:1048576" (the iops flags take a plain number)."""
    from runtime.containers import flags as fl

    flag = "--" + dest.replace("_", "-")
    path, _, rate = value.rpartition(":")
    if not path.startswith("/") or not rate:
        raise InvalidArgument(f"invalid value {value!r} for {flag}", hint=f"use {flag} /dev/sda:RATE")
    if dest.endswith("iops"):
        if not rate.isdigit():
            raise InvalidArgument(f"invalid rate {rate!r} for {flag}", hint="a number of IO per second")
        return f"{path}:{int(rate)}"
    return f"{path}:{fl.parse_bytes(rate, flag)}"


def _device(value: str) -> str:
    parts = value.split(":")
    if not parts[0].startswith("/") or len(parts) > 3 or (len(parts) > 1 and not parts[1].startswith("/")) \
            or (len(parts) == 3 and (not parts[2] or set(parts[2]) - set("rwm"))):
        raise InvalidArgument(f"invalid --device {value!r}", hint="use HOST_PATH[:CONTAINER_PATH[:rwm]]")
    return value
