"""Start one container: mount its rootfs, set up its network, write the OCI bundle and the
shim.json the supervisor reads (runtime/containers/supervision.py then asks it to start it).

Everything here is undone by `teardown()` (also after a crash: each step is idempotent).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from runtime.containers import bundle, imagesrc, netsetup
from runtime.containers.codec import mount_from_dict, to_dict
from runtime.containers.events import events_path
from runtime.containers.lean import dumps, write_regenerated
from runtime.containers.store import ContainerStore
from runtime.containers.users import resolve_user
from runtime.engine import ContainerSpec
from runtime.errors import InvalidArgument, NotFound, RuntimeFailure
from runtime.linux import mount as mnt

INIT_CANDIDATES = ("/usr/bin/tini-static", "/usr/bin/dumb-init")


def default_runtime() -> str:
    """WHARF_RUNTIME, else the built-in runtime (runc and crun are drop-in alternatives)."""
    from runtime.oci.runtimes import DEFAULT_RUNTIME

    return os.environ.get("WHARF_RUNTIME") or DEFAULT_RUNTIME


def runtime_argv(name: str) -> list[str]:
    from runtime.oci.runtimes import runtime_argv as oci_argv

    try:
        return oci_argv(name)
    except NotFound as e:
        raise InvalidArgument(str(e.message), hint=e.hint) from None


def is_builtin(name: str) -> bool:
    """The built-in runtime: the supervisor runs its create/start/delete in a forked child, no exec."""
    from runtime.oci.runtimes import CLI

    return runtime_argv(name)[-1:] == [CLI]


def runtime_root(name: str) -> str:
    from runtime import paths

    return str(paths.run_dir() / "runtime" / name)


def rootfs_dir(store: ContainerStore, cid: str) -> Path:
    return store.dir(cid) / "bundle" / "rootfs"


def mount_rootfs(store: ContainerStore, rec: dict[str, Any]) -> Path:
    target = rootfs_dir(store, rec["id"])
    target.mkdir(parents=True, exist_ok=True)
    if not mnt.is_mountpoint(target):
        for m in imagesrc.rootfs_mounts(rec, store.dir(rec["id"])):
            m.mount(target)
    return target


def umount_rootfs(store: ContainerStore, cid: str) -> None:
    mnt.umount_all_under(rootfs_dir(store, cid))


def prepare(store: ContainerStore, rec: dict[str, Any], spec: ContainerSpec, tty_size: str | None = None
            ) -> dict[str, Any]:
    """Mount, network, bundle config.json, shim.json. Returns the updated record."""
    cid = rec["id"]
    image_cfg = rec.get("image_config", {})
    rootfs = mount_rootfs(store, rec)
    hostname = spec.hostname or cid[:12]
    args = bundle.process_args(spec, image_cfg)
    env = bundle.container_env(spec, image_cfg, hostname)
    uid, gid, groups = resolve_user(str(rootfs), spec.user or image_cfg.get("User", ""), spec.group_add)
    cwd = spec.working_dir or image_cfg.get("WorkingDir") or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"the working directory {cwd!r} is invalid, it needs to be an absolute path")
    _mkdir_in_root(rootfs, cwd)
    mounts = [mount_from_dict(m) for m in rec["mounts"]]
    from runtime.volumes.store import VolumeStore

    mounts = VolumeStore().prepare_mounts(mounts, rootfs, cid)
    net = netsetup.setup(store, rec, spec, hostname)
    rec.update(ports=net.ports, networks=net.networks, netns=net.netns or "")
    init = None
    if spec.init:
        init = next((p for p in INIT_CANDIDATES if os.path.exists(p)), None)
        if init is None:
            raise RuntimeFailure("--init needs tini-static or dumb-init on the host",
                                 hint="apt-get install tini")
    inp = bundle.BundleInputs(args=args, env=env, cwd=cwd, uid=uid, gid=gid, groups=groups,
                              hostname=hostname, cgroups_path=f"/wharf/{cid}", mounts=mounts,
                              etc_files=net.etc_files, netns=net.netns, share_uts=net.share_uts,
                              default_sysctls=netns_sysctls(spec),
                              init_binary=init)
    cfg = bundle.oci_config(spec, inp)
    write_regenerated(str(store.dir(cid) / "bundle" / "config.json"), dumps(cfg))
    shim_cfg = {
        "id": cid, "name": rec["name"], "image": rec["image"], "dir": str(store.dir(cid)),
        "run_dir": str(store.run_dir(cid)), "bundle": str(store.dir(cid) / "bundle"),
        "runtime_argv": runtime_argv(rec["runtime"]), "runtime_root": runtime_root(rec["runtime"]),
        "runtime_builtin": is_builtin(rec["runtime"]),
        "log_path": str(store.log_path(cid)), "tty": spec.tty, "stdin_open": spec.stdin_open,
        "stdin_once": spec.stdin_once, "tty_size": tty_size, "restart": to_dict(spec.restart),
        "cgroup": f"/wharf/{cid}", "cleanup": bool(spec.auto_remove or net.needs_release),
        "net_release": net.needs_release, "events_path": events_path(),
    }
    opts = spec.log_options
    if opts.get("max-size"):
        from runtime.containers.flags import parse_bytes

        shim_cfg["log_max_size"] = parse_bytes(opts["max-size"], "--log-opt max-size")
        shim_cfg["log_max_file"] = int(opts.get("max-file", "1"))
    hc = spec.healthcheck
    if hc is None and image_cfg.get("Healthcheck"):
        hc = imagesrc.image_healthcheck(image_cfg["Healthcheck"])
    if hc and hc.test and hc.test[0] != "NONE":
        shim_cfg["healthcheck"] = {**to_dict(hc), "env": env, "uid": uid, "gid": gid, "groups": groups,
                                   "cwd": cwd, "cgroup": f"/wharf/{cid}"}
    write_regenerated(str(store.dir(cid) / "shim.json"), dumps(shim_cfg))
    return rec


# Docker's defaults in a network namespace of the container's own: any user may bind ports below
# 1024 and ping (not with --network host or container:, whose netns belongs to somebody else)
NETNS_SYSCTLS = {"net.ipv4.ip_unprivileged_port_start": "0", "net.ipv4.ping_group_range": "0 2147483647"}


def netns_sysctls(spec: ContainerSpec) -> dict[str, str]:
    if spec.network_mode == "host" or spec.network_mode.startswith("container:"):
        return {}
    return {k: v for k, v in NETNS_SYSCTLS.items() if os.path.exists("/proc/sys/" + k.replace(".", "/"))}


def _mkdir_in_root(rootfs: Path, path: str) -> None:
    from runtime.containers.copy import resolve_in_root

    target = resolve_in_root(str(rootfs), path)
    os.makedirs(target, exist_ok=True)


def attach_socket(store: ContainerStore, cid: str) -> str:
    return str(store.run_dir(cid) / "attach.sock")


def shim_sock_connect(store: ContainerStore, cid: str, request: dict):
    from runtime.containers import stream

    return stream.connect(attach_socket(store, cid), request)
