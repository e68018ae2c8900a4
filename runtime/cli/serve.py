"""`wharf serve`: the Docker Engine API daemon (runtime/api), with dockerd's flags."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command(context_settings={"help_option_names": ["--help"]})
    def serve(
        ctx: typer.Context,
        host: list[str] = typer.Option([], "-H", "--host",
                                       help="Socket(s) to listen on: unix:///path or tcp://ADDR:PORT "
                                            "(default unix:///run/wharf/wharf.sock)"),
        tls: bool = typer.Option(False, "--tls", help="Use TLS (implied by --tlsverify)"),
        tlsverify: bool = typer.Option(False, "--tlsverify", help="Use TLS and require client certificates "
                                                                   "signed by --tlscacert"),
        tlscacert: str = typer.Option("", "--tlscacert", help="CA that signs trusted client certificates"),
        tlscert: str = typer.Option("", "--tlscert", help="Server certificate (PEM)"),
        tlskey: str = typer.Option("", "--tlskey", help="Server key (PEM)"),
        group: str = typer.Option("", "-G", "--group", help="Group owning the unix socket(s) (mode 0660)"),
        data_root: str = typer.Option("", "--data-root", help="Root of persistent state (sets WHARF_ROOT)"),
        exec_root: str = typer.Option("", "--exec-root", help="Root of volatile state (sets WHARF_RUN)"),
        pidfile: str = typer.Option("", "-p", "--pidfile", help="Write the daemon's pid here"),
        debug: bool = typer.Option(False, "-D", "--debug", help="Log every request"),
        bip: str = typer.Option("", "--bip", help="Address/prefix of the default bridge"),
        fixed_cidr: str = typer.Option("", "--fixed-cidr", help="Allocate container IPs from this range"),
        mtu: int = typer.Option(0, "--mtu", help="MTU of container interfaces"),
        dns: list[str] = typer.Option([], "--dns", help="Default DNS server for containers"),
        icc: bool = typer.Option(True, "--icc/--no-icc", help="Allow traffic between containers"),
        ip: str = typer.Option("", "--ip", help="Default host address for published ports"),
        ip_masq: bool = typer.Option(True, "--ip-masq/--no-ip-masq", help="Masquerade container traffic"),
        insecure_registry: list[str] = typer.Option([], "--insecure-registry", help="Registry reached over "
                                                                                    "plain HTTP / unverified TLS"),
        registry_mirror: list[str] = typer.Option([], "--registry-mirror", help="Mirror for Docker Hub pulls"),
        default_runtime: str = typer.Option("", "--default-runtime", help="OCI runtime: builtin, runc, crun"),
        live_restore: bool = typer.Option(True, "--live-restore/--no-live-restore",
                                          help="Start containers with restart policies whose supervisor is gone"),
        config_file: str = typer.Option("", "--config-file", help="daemon.json-style options "
                                                                  "(default /etc/wharf/daemon.json if present)"),
        bridge: str = typer.Option("", "-b", "--bridge", help="Name of the default bridge (not with --bip)"),
        dns_search: list[str] = typer.Option([], "--dns-search", help="Default DNS search domain for containers"),
        ip_forward: bool = typer.Option(True, "--ip-forward/--no-ip-forward",
                                        help="Enable net.ipv4.ip_forward when a bridge is set up"),
        api_enable_cors: bool = typer.Option(False, "--api-enable-cors", help="CORS headers in API answers (*)"),
        api_cors_header: str = typer.Option("", "--api-cors-header", help="CORS Access-Control-Allow-Origin"),
        graph: str = typer.Option("", "-g", "--graph", help="Deprecated name of --data-root"),
        daemon: bool = typer.Option(False, "-d", "--daemon", help="Accepted (docker 1.x's `docker -d`): serve is "
                                                                   "the daemon"),
        exec_driver: str = typer.Option("", "-e", "--exec-driver", help="native (= --default-runtime builtin)"),
        storage_driver: str = typer.Option("", "-s", "--storage-driver", help="overlay2 (the only one)"),
        storage_opt: list[str] = typer.Option([], "--storage-opt", help="Not supported by overlay2 here"),
        iptables: bool = typer.Option(True, "--iptables/--no-iptables", help="Firewall rules (always: nftables)"),
        selinux_enabled: bool = typer.Option(False, "--selinux-enabled", help="Not supported (no SELinux)"),
        version: bool = typer.Option(False, "-v", "--version", help="Print the version and exit"),
    ) -> None:
        """Serve the Docker Engine API (docker CLI, docker-py, docker-compose, `wharf --host`)."""
        import os

        from runtime.api.daemon import Options, load_config, run
        from runtime.errors import InvalidArgument

        if version:
            from runtime.cli.system import version_line

            typer.echo(version_line())
            return
        if bridge and bip:
            raise InvalidArgument("-b/--bridge and --bip are mutually exclusive",
                                  hint="-b names the bridge, --bip sets its address: give one")
        if bridge == "none":
            raise InvalidArgument("-b none (no default bridge) is not supported",
                                  hint="run the containers with --network none or a user network")
        if exec_driver and exec_driver != "native":
            raise InvalidArgument(f"exec driver {exec_driver!r} is not supported (lxc is long gone)",
                                  hint="native is the only one; pick an OCI runtime with --default-runtime")
        if storage_driver and storage_driver not in ("overlay2", "overlay"):
            raise InvalidArgument(f"storage driver {storage_driver!r} is not supported",
                                  hint="Wharf stores images as overlay2 snapshots (-s overlay2)")
        if storage_opt:
            raise InvalidArgument(f"--storage-opt {storage_opt[0]!r} is not supported",
                                  hint="overlay2 here takes no options")
        if not iptables:
            raise InvalidArgument("--iptables=false is not supported: bridges, NAT and published ports are "
                                  "nftables rules Wharf always manages", hint="use --network host or none")
        if selinux_enabled:
            raise InvalidArgument("--selinux-enabled is not supported: Wharf applies no SELinux labels",
                                  hint="containers are confined by namespaces, capabilities and seccomp")
        if (tls or tlsverify) and not (tlscert and tlskey):  # docker's defaults: DOCKER_CERT_PATH or ~/.docker
            certs = os.environ.get("DOCKER_CERT_PATH") or os.path.expanduser("~/.docker")
            tlscacert = tlscacert or (os.path.join(certs, "ca.pem") if tlsverify else "")
            tlscert, tlskey = tlscert or os.path.join(certs, "cert.pem"), tlskey or os.path.join(certs, "key.pem")

        if os.environ.get("WHARF_HOST"):  # `wharf --host URL serve`: the daemon is not a client of an engine
            from runtime.errors import InvalidArgument

            raise InvalidArgument("`wharf serve` is the engine API itself; --host / WHARF_HOST selects an engine to "
                                  "use, not where to listen", hint="unset WHARF_HOST; listen with `wharf serve -H URL`")

        opts = Options(hosts=list(host), tls=tls or tlsverify, tlsverify=tlsverify, tlscacert=tlscacert,
                       tlscert=tlscert, tlskey=tlskey, group=group, data_root=data_root, exec_root=exec_root,
                       pidfile=pidfile, debug=debug, bip=bip, fixed_cidr=fixed_cidr, mtu=mtu, dns=list(dns),
                       icc=icc, ip=ip, ip_masq=ip_masq, insecure_registries=list(insecure_registry),
                       registry_mirrors=list(registry_mirror),
                       default_runtime=default_runtime or ("builtin" if exec_driver else ""),
                       restore=live_restore, bridge=bridge, dns_search=list(dns_search), ip_forward=ip_forward,
                       cors_header=api_cors_header or ("*" if api_enable_cors else ""))
        if graph and not data_root:
            opts.data_root = graph
        path = config_file or ("/etc/wharf/daemon.json" if os.path.exists("/etc/wharf/daemon.json") else "")
        if path:
            names = {"host": "hosts", "insecure_registry": "insecure_registries",
                     "registry_mirror": "registry_mirrors", "live_restore": "restore", "graph": "data_root",
                     "api_cors_header": "cors_header", "api_enable_cors": "cors_header"}
            explicit = {names.get(p, p) for p in ctx.params
                        if getattr(ctx.get_parameter_source(p), "name", "") == "COMMANDLINE"}
            load_config(path, opts, explicit)
            opts.tls = opts.tls or opts.tlsverify
        raise typer.Exit(run(opts))
