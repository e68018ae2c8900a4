"""A private dockerd for the benchmarks: the one way every bench starts docker for a same-run ratio.

    from peers import private_dockerd   # bench scripts run as `python bench/bench_x.py`

    with private_dockerd() as (env, docker):
        subprocess.run([docker, "run", "--rm", "--network", "none", "busybox", "true"], env=env)

The daemon has its own unix socket, --data-root, --exec-root, --pidfile and cgroup parent under a
fresh /tmp/wpd-* directory; pulls go to a dead loopback proxy (nothing leaves the machine). Without
`bridge` it runs with --bridge=none and touches no iptables rule, no sysctl. Our busybox image is
moved into it (`wharf save busybox` | `docker load`, tagged busybox:latest). On the way out, also
after a failure, it removes every container and user network (their br-* bridges), stops dockerd, kills what is left of its containerd and
shims, unmounts everything under its directory, removes the directory and its cgroups; with `bridge`
also docker0, every iptables rule and chain dockerd added, the nft tables iptables-nft created for it,
and the filter FORWARD policy it changed. Keep bridge=True runs short: docker0 is a global name.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

WHARF = str(Path(sys.executable).with_name("wharf"))
POOL = "base=10.216.0.0/16,size=24"  # its user networks (compose's): not wharf's 172.17-31, not the tests' 10.214


def docker_cli() -> str | None:
    """The docker CLI when both it and dockerd are installed (what a same-run ratio needs)."""
    return shutil.which("docker") if shutil.which("dockerd") else None


@contextlib.contextmanager
def private_dockerd(bridge: bool = False, bip: str = "10.214.0.1/24", extra: tuple[str, ...] = (),
                    wharf_env: dict[str, str] | None = None) -> Iterator[tuple[dict[str, str], str]]:
    """Yield (env with DOCKER_HOST and a private DOCKER_CONFIG, docker CLI path). `wharf_env` is the
    environment of a wharf root that holds busybox (default: a throwaway root bootstrapped here);
    `extra` goes to dockerd's command line (e.g. "--userland-proxy=false")."""
    dockerd, docker = shutil.which("dockerd"), shutil.which("docker")
    if dockerd is None or docker is None:
        raise RuntimeError("dockerd and the docker CLI are needed (apt-get install docker.io)")
    d = Path(tempfile.mkdtemp(prefix="wpd-", dir="/tmp"))  # short: a socket path has 108 bytes
    sock = d / "docker.sock"
    net = ["--bip", bip] if bridge else ["--bridge=none", "--iptables=false", "--ip6tables=false",
                                         "--ip-forward=false", "--ip-masq=false"]
    before = _host_state() if bridge else None
    (d / "daemon.json").write_text("{}")  # not /etc/docker/daemon.json
    argv = [dockerd, *net, "-H", f"unix://{sock}", "--data-root", str(d / "root"), "--exec-root", str(d / "exec"),
            "--pidfile", str(d / "pid"), "--cgroup-parent", f"/{d.name}", "--config-file", str(d / "daemon.json"),
            "--default-address-pool", POOL, *extra]
    denv = {**os.environ, "HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9",
            "NO_PROXY": "127.0.0.1,localhost"}  # a pull that is not from a loopback registry fails at once
    env = {k: v for k, v in os.environ.items() if k not in ("WHARF_HOST", "DOCKER_CONTEXT")}
    env.update(DOCKER_HOST=f"unix://{sock}", DOCKER_CONFIG=str(d / "cfg"))
    proc = None
    try:
        with open(d / "log", "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=denv,
                                    start_new_session=True)
        deadline = time.monotonic() + 60
        while not sock.exists() or subprocess.run([docker, "version"], env=env, capture_output=True).returncode:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("dockerd did not start: " + (d / "log").read_text(errors="replace")[-1500:])
            time.sleep(0.05)
        _load_busybox(docker, env, wharf_env, d)
        yield env, docker
    finally:
        _stop(proc, docker, env, d)
        if before is not None:
            _undo_bridge(before)


def _load_busybox(docker: str, env: dict[str, str], wharf_env: dict[str, str] | None, d: Path) -> None:
    if wharf_env is None:
        wharf_env = {k: v for k, v in os.environ.items() if k not in ("WHARF_HOST", "DOCKER_HOST")}
        wharf_env.update(WHARF_ROOT=str(d / "wroot"), WHARF_RUN=str(d / "wrun"))
        subprocess.run([WHARF, "image", "bootstrap", "busybox"], env=wharf_env, check=True, capture_output=True)
    save = subprocess.Popen([WHARF, "save", "busybox"], env=wharf_env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    load = subprocess.run([docker, "load"], stdin=save.stdout, env=env, capture_output=True, text=True)
    save.stdout.close()
    err = save.stderr.read().decode(errors="replace")
    if save.wait() or load.returncode:
        raise RuntimeError(f"wharf save busybox | docker load failed: {err.strip()} {load.stderr.strip()}")
    loaded = [ln.split(":", 1)[1].strip() for ln in load.stdout.splitlines() if ln.startswith("Loaded image")]
    if loaded and loaded[0] != "busybox:latest":
        subprocess.run([docker, "tag", loaded[0], "busybox:latest"], env=env, check=True, capture_output=True)


def _stop(proc: subprocess.Popen | None, docker: str, env: dict[str, str], d: Path) -> None:
    if proc is not None and proc.poll() is None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            ids = subprocess.run([docker, "ps", "-aq"], env=env, capture_output=True, text=True,
                                 timeout=30).stdout.split()
            if ids:
                subprocess.run([docker, "rm", "-f", "-v", *ids], env=env, capture_output=True, timeout=120)
            subprocess.run([docker, "network", "prune", "-f"], env=env, capture_output=True, timeout=60)  # br-*
        terminate(proc)
    _kill_unmount_remove(d)  # its containerd, shims, containers that survived
    for cg in Path("/sys/fs/cgroup").glob(f"*/{d.name}"):  # every v1 controller and unified (v2)
        for sub in sorted(cg.glob("**/"), key=lambda p: len(str(p)), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(sub)


def _kill_unmount_remove(d: Path) -> None:
    """SIGKILL every process whose command line names `d`, unmount everything under it, delete it."""
    for pid in _procs_under(d):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for p in sorted((p for p in points if p == str(d) or p.startswith(f"{d}/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", p], capture_output=True)
    shutil.rmtree(d, ignore_errors=True)


def terminate(proc: subprocess.Popen, grace: float = 30) -> None:
    """SIGTERM, then SIGKILL after `grace` seconds; reaped either way."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _procs_under(d: Path) -> list[int]:
    """Processes whose command line names the directory (only ours: its name is random)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if str(d).encode() in f.read() and int(pid) != os.getpid():
                    out.append(int(pid))
        except OSError:
            continue
    return out


def podman_cli() -> str | None:
    return shutil.which("podman")


@contextlib.contextmanager
def private_podman(wharf_env: dict[str, str] | None = None) -> Iterator[tuple[dict[str, str], str]]:
    """Yield (env, podman CLI path) for a podman with its own storage, run root and config under a
    fresh /tmp/wpp-* directory (CONTAINERS_CONF / CONTAINERS_STORAGE_CONF), holding our busybox
    (`wharf save` | `podman load`). The OCI runtime is runc: crun refuses this VM's hybrid cgroups
    (PEERS.md), and the ulimits podman sets by default exceed the VM's hard limits. On the way out
    it removes its containers and images, unmounts and deletes its directory."""
    podman = shutil.which("podman")
    if podman is None:
        raise RuntimeError("podman is not installed")
    d = Path(tempfile.mkdtemp(prefix="wpp-", dir="/tmp"))
    (d / "containers.conf").write_text(
        '[containers]\ndefault_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]\n'
        f'[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
        f'events_logfile_path = "{d}/events.log"\ntmp_dir = "{d}/tmp"\n')
    (d / "storage.conf").write_text(f'[storage]\ndriver = "overlay"\ngraphroot = "{d}/graph"\nrunroot = "{d}/run"\n')
    env = {k: v for k, v in os.environ.items() if k not in ("WHARF_HOST", "DOCKER_HOST", "CONTAINER_HOST")}
    env.update(CONTAINERS_CONF=str(d / "containers.conf"), CONTAINERS_STORAGE_CONF=str(d / "storage.conf"))
    try:
        if wharf_env is None:
            wharf_env = {k: v for k, v in os.environ.items() if k not in ("WHARF_HOST", "DOCKER_HOST")}
            wharf_env.update(WHARF_ROOT=str(d / "wroot"), WHARF_RUN=str(d / "wrun"))
            subprocess.run([WHARF, "image", "bootstrap", "busybox"], env=wharf_env, check=True, capture_output=True)
        subprocess.run([WHARF, "save", "-o", str(d / "busybox.tar"), "busybox"], env=wharf_env, check=True,
                       capture_output=True)
        load = subprocess.run([podman, "load", "-i", str(d / "busybox.tar")], env=env, capture_output=True, text=True)
        if load.returncode:
            raise RuntimeError(f"podman load failed: {load.stderr.strip()[-500:]}")
        subprocess.run([podman, "tag", "localhost/busybox:latest", "busybox:latest"], env=env, capture_output=True)
        yield env, podman
    finally:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            subprocess.run([podman, "rm", "-af", "-t", "0"], env=env, capture_output=True, timeout=120)
            subprocess.run([podman, "rmi", "-af"], env=env, capture_output=True, timeout=60)
        _kill_unmount_remove(d)  # conmon and what survived


# --- with bridge=True: what dockerd changes on the host, and how it is undone ---------------------

def _iptables_lines() -> set[str]:
    out = subprocess.run(["iptables-save"], capture_output=True, text=True).stdout
    return {ln for ln in out.splitlines() if ln and not ln.startswith("#")}


def _forward_policy() -> str:
    """The filter table's FORWARD policy (dockerd sets DROP), "" without a filter table."""
    out = subprocess.run(["iptables-save", "-t", "filter"], capture_output=True, text=True).stdout
    return next((ln.split()[1] for ln in out.splitlines() if ln.startswith(":FORWARD ")), "")


def _nft_tables() -> set[str]:
    out = subprocess.run(["nft", "list", "tables"], capture_output=True, text=True).stdout
    return {ln.strip() for ln in out.splitlines() if ln.strip()}


def _host_state() -> tuple[set[str], str, set[str]]:
    return _iptables_lines(), _forward_policy(), _nft_tables()


def _undo_bridge(before: tuple[set[str], str, set[str]]) -> None:
    rules, policy, tables = before
    if os.path.exists("/sys/class/net/docker0"):
        subprocess.run(["ip", "link", "del", "docker0"], check=False)
    table, chains = "", []
    for ln in subprocess.run(["iptables-save"], capture_output=True, text=True).stdout.splitlines():
        if ln.startswith("*"):
            table = ln[1:]
        elif ln.startswith(":DOCKER"):
            chains.append((table, ln[1:].split()[0]))
        elif ln.startswith("-A ") and ln not in rules and not ln.split()[1].startswith("DOCKER") \
                and ("DOCKER" in ln or "docker0" in ln):
            subprocess.run(["iptables", "-t", table, "-D", *shlex.split(ln)[1:]], check=False)
    for table, chain in chains:
        subprocess.run(["iptables", "-t", table, "-F", chain], check=False)
    for table, chain in chains:
        subprocess.run(["iptables", "-t", table, "-X", chain], check=False)
    if policy and _forward_policy() != policy:
        subprocess.run(["iptables", "-P", "FORWARD", policy], check=False)
    for t in _nft_tables() - tables:  # the tables iptables-nft created for dockerd
        if t in ("table ip nat", "table ip filter"):
            subprocess.run(["nft", "delete", *t.split()], check=False)
    left = {ln for ln in _iptables_lines() - rules if ln.startswith("-A") or ln.startswith(":DOCKER")}
    if left:
        print(f"  warning: iptables rules of dockerd left: {sorted(left)}", file=sys.stderr)
