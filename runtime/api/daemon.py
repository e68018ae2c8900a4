"""`wharf serve`: options (flags + daemon.json), listeners, live restore, start-up and shutdown.

Containers are supervised by their own shims, so stopping or restarting the daemon leaves
them running (live restore). On start, containers whose supervisor is gone (a reboot) and
whose restart policy says so (`always`; `unless-stopped` unless stopped by the user) are
started again.
"""

from __future__ import annotations

import grp
import json
import logging
import os
import signal
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from runtime.errors import InvalidArgument, RuntimeFailure, WharfError

log = logging.getLogger("wharf.api")
DEFAULT_HOST = "unix:///run/wharf/wharf.sock"
DEFAULT_TLS_PORT, DEFAULT_TCP_PORT = 2376, 2375


@dataclass
class Options:
    hosts: list[str] = field(default_factory=list)
    tls: bool = False
    tlsverify: bool = False
    tlscacert: str = ""
    tlscert: str = ""
    tlskey: str = ""
    group: str = ""
    data_root: str = ""
    exec_root: str = ""
    pidfile: str = ""
    debug: bool = False
    bip: str = ""
    fixed_cidr: str = ""
    mtu: int = 0
    dns: list[str] = field(default_factory=list)
    icc: bool = True
    ip: str = ""
    ip_masq: bool = True
    insecure_registries: list[str] = field(default_factory=list)
    registry_mirrors: list[str] = field(default_factory=list)
    default_runtime: str = ""
    restore: bool = True
    bridge: str = ""  # -b: the default bridge's name
    dns_search: list[str] = field(default_factory=list)
    ip_forward: bool = True
    cors_header: str = ""  # Access-Control-Allow-Origin of every answer ("" = none)


# daemon.json key -> (Options attribute, kind)
CONFIG_KEYS: dict[str, tuple[str, type]] = {
    "hosts": ("hosts", list), "tls": ("tls", bool), "tlsverify": ("tlsverify", bool),
    "tlscacert": ("tlscacert", str), "tlscert": ("tlscert", str), "tlskey": ("tlskey", str),
    "group": ("group", str), "data-root": ("data_root", str), "exec-root": ("exec_root", str),
    "pidfile": ("pidfile", str), "debug": ("debug", bool), "bip": ("bip", str), "fixed-cidr": ("fixed_cidr", str),
    "mtu": ("mtu", int), "dns": ("dns", list), "icc": ("icc", bool), "ip": ("ip", str), "ip-masq": ("ip_masq", bool),
    "insecure-registries": ("insecure_registries", list), "registry-mirrors": ("registry_mirrors", list),
    "default-runtime": ("default_runtime", str), "live-restore": ("restore", bool),
    "bridge": ("bridge", str), "dns-search": ("dns_search", list), "ip-forward": ("ip_forward", bool),
    "api-cors-header": ("cors_header", str),
}
IGNORED_KEYS = {"log-level", "log-driver", "storage-driver", "features", "experimental", "runtimes",
                "exec-opts", "iptables", "userland-proxy", "init", "max-concurrent-downloads"}


def load_config(path: str, opts: Options, explicit: set[str]) -> Options:
    """Merge daemon.json into opts; a key also given as a flag is a conflict (as dockerd)."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise InvalidArgument(f"config file {path} does not exist") from None
    except ValueError as e:
        raise InvalidArgument(f"{path}: not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise InvalidArgument(f"{path}: expected a JSON object")
    for key, value in data.items():
        if key in IGNORED_KEYS:
            continue
        if key not in CONFIG_KEYS:
            raise InvalidArgument(f"{path}: unknown key {key!r}", hint="see `wharf serve --help` for the options")
        attr, kind = CONFIG_KEYS[key]
        if kind is list and isinstance(value, str):
            value = [value]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            raise InvalidArgument(f"{path}: {key} must be a {kind.__name__}")
        if attr in explicit:
            raise InvalidArgument(f"the following directives are specified both as a flag and in the "
                                  f"configuration file: {key}", where=path)
        setattr(opts, attr, value)
    return opts


def parse_host(host: str, tls: bool) -> tuple[str, Any]:
    """-H value -> ("unix", path) | ("tcp", (addr, port)); fd:// is not supported."""
    if host.startswith("/"):
        host = "unix://" + host
    if "://" not in host:
        host = "tcp://" + host
    u = urlparse(host)
    if u.scheme == "unix":
        path = u.path or "/run/wharf/wharf.sock"
        return "unix", path
    if u.scheme in ("tcp", "http", "https"):
        if not u.hostname:
            addr = "127.0.0.1"
        else:
            addr = u.hostname
        try:
            port = u.port or (DEFAULT_TLS_PORT if tls else DEFAULT_TCP_PORT)
        except ValueError:
            raise InvalidArgument(f"invalid port in -H {host}") from None
        return "tcp", (addr, port)
    raise InvalidArgument(f"unsupported -H {host!r}", hint="use unix:///path or tcp://ADDR:PORT")


def ssl_context(opts: Options) -> ssl.SSLContext | None:
    if not (opts.tls or opts.tlsverify):
        return None
    if not opts.tlscert or not opts.tlskey:
        raise InvalidArgument("--tls needs --tlscert and --tlskey")
    for flag, path in (("--tlscert", opts.tlscert), ("--tlskey", opts.tlskey),
                       ("--tlscacert", opts.tlscacert if opts.tlsverify else "")):
        if path and not os.path.isfile(path):
            raise InvalidArgument(f"{flag} {path}: no such file", hint="pass the PEM files' paths")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        ctx.load_cert_chain(opts.tlscert, opts.tlskey)
        if opts.tlsverify:
            if not opts.tlscacert:
                raise InvalidArgument("--tlsverify needs --tlscacert (the CA that signs client certificates)")
            ctx.load_verify_locations(opts.tlscacert)
            ctx.verify_mode = ssl.CERT_REQUIRED
    except (OSError, ssl.SSLError) as e:
        raise InvalidArgument(f"cannot load the TLS files: {e}") from None
    return ctx


def apply_environment(opts: Options) -> None:
    """Options the engine underneath reads from its environment (they apply in this process
    and in every shim and helper it starts)."""
    if opts.data_root:
        os.environ["WHARF_ROOT"] = os.path.abspath(opts.data_root)
    if opts.exec_root:
        os.environ["WHARF_RUN"] = os.path.abspath(opts.exec_root)
    if opts.default_runtime:
        os.environ["WHARF_RUNTIME"] = opts.default_runtime
    if opts.insecure_registries:
        os.environ["WHARF_INSECURE_REGISTRIES"] = ",".join(opts.insecure_registries)
    if opts.registry_mirrors:
        os.environ["WHARF_REGISTRY_MIRRORS"] = ",".join(opts.registry_mirrors)
    if opts.bridge:
        os.environ["WHARF_BRIDGE"] = opts.bridge
    bridge = {"WHARF_BRIDGE_IP": opts.bip, "WHARF_FIXED_CIDR": opts.fixed_cidr,
              "WHARF_MTU": str(opts.mtu) if opts.mtu else "", "WHARF_ICC": "" if opts.icc else "false",
              "WHARF_IP_MASQ": "" if opts.ip_masq else "false", "WHARF_IP": opts.ip or "",
              "WHARF_IP_FORWARD": "" if opts.ip_forward else "false"}
    for k, v in bridge.items():
        if v:
            os.environ[k] = v


def settings(opts: Options) -> dict[str, Any]:
    return {"debug": opts.debug, "dns": opts.dns, "dns_search": opts.dns_search, "ip": opts.ip, "mtu": opts.mtu,
            "insecure-registries": opts.insecure_registries, "registry-mirrors": opts.registry_mirrors}


def restore(engine) -> list[str]:
    """Start containers whose restart policy asks for it and whose supervisor is gone."""
    from runtime.containers.store import shim_alive

    started = []
    cs = engine.containers
    for cid in cs.store.ids():
        try:
            rec = cs.store.load(cid)
            st = cs.store.load_state(cid)
        except WharfError:
            continue
        policy = (rec["spec"].get("restart") or {}).get("name", "no")
        if st.get("status") in ("running", "paused", "restarting") and shim_alive(st):
            continue
        if policy == "always" or (policy == "unless-stopped" and not st.get("stop_requested")):
            if st.get("status") in ("running", "restarting") or policy == "always":
                try:
                    cs.start(cid)
                    started.append(cid)
                except WharfError as e:
                    log.warning("restart of %s failed: %s", cid[:12], e)
    return started


class Daemon:
    def __init__(self, opts: Options) -> None:
        self.opts = opts
        self.servers: list[Any] = []
        self.threads: list[threading.Thread] = []
        self.unix_paths: list[str] = []
        self.stopping = threading.Event()

    def listen(self, engine) -> None:
        from runtime.api.router import load_routes
        from runtime.api.server import TCP6Server, TCPServer, UnixServer, make_handler

        handler = make_handler(load_routes(), engine, self.opts.cors_header)
        ctx = ssl_context(self.opts)
        for host in self.opts.hosts or [DEFAULT_HOST]:
            kind, addr = parse_host(host, ctx is not None)
            try:
                if kind == "unix":
                    os.makedirs(os.path.dirname(addr) or ".", exist_ok=True)
                    srv = UnixServer(addr, handler)
                    self._secure_socket(addr)
                    self.unix_paths.append(addr)
                else:
                    if ctx is None and addr[0] not in ("127.0.0.1", "localhost", "::1"):
                        log.warning("API listening on %s:%s without TLS: anyone who can reach it is root", *addr)
                    cls = TCP6Server if ":" in addr[0] else TCPServer
                    srv = cls(addr, handler)
                    srv.ssl_context = ctx
            except OSError as e:
                self.close()
                raise RuntimeFailure(f"cannot listen on {host}: {e.strerror or e}") from None
            self.servers.append(srv)
            log.info("API listening on %s", host if kind == "unix" else f"{addr[0]}:{srv.server_address[1]}")

    def _secure_socket(self, path: str) -> None:
        gid = -1
        if self.opts.group:
            try:
                gid = int(self.opts.group) if self.opts.group.isdigit() else grp.getgrnam(self.opts.group).gr_gid
            except KeyError:
                raise InvalidArgument(f"group {self.opts.group!r} does not exist",
                                      hint="create it or pass -G with an existing group") from None
        os.chown(path, 0 if os.geteuid() == 0 else -1, gid)
        os.chmod(path, 0o660)

    def serve(self) -> None:
        for srv in self.servers:
            t = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.5}, daemon=True)
            t.start()
            self.threads.append(t)

    def wait(self) -> None:
        while not self.stopping.wait(1.0):
            pass

    def close(self) -> None:
        for srv in self.servers:
            srv.shutdown() if any(t.is_alive() for t in self.threads) else None
            srv.server_close()
        for path in self.unix_paths:
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        self.servers.clear()


def write_pidfile(path: str) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    try:
        old = int(p.read_text().strip() or 0)
    except (OSError, ValueError):
        old = 0
    if old and old != os.getpid() and Path(f"/proc/{old}").exists():
        raise RuntimeFailure(f"pid file {path} names a running process ({old})",
                             hint="another daemon uses it; stop it or pick another -p")
    tmp = p.with_name(p.name + ".tmp")
    tmp.write_text(f"{os.getpid()}\n")
    os.replace(tmp, p)


def run(opts: Options) -> int:
    from runtime.api import system
    from runtime.api.server import debug_logging

    debug_logging(opts.debug)
    apply_environment(opts)
    system.SETTINGS.update(settings(opts))
    if opts.pidfile:
        write_pidfile(opts.pidfile)
    from runtime.local_engine import LocalEngine

    engine = LocalEngine()
    d = Daemon(opts)
    try:
        d.listen(engine)
        if opts.restore:
            for cid in restore(engine):
                log.info("restarted %s (restart policy)", cid[:12])

        def stop(signum, _frame) -> None:
            log.info("received %s, shutting down (containers keep running)", signal.Signals(signum).name)
            d.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        d.serve()
        d.wait()
    finally:
        d.close()
        if opts.pidfile:
            try:
                os.unlink(opts.pidfile)
            except FileNotFoundError:
                pass
    return 0
