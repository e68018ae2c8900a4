"""Network: setup cost per container, and published ports — DNAT vs the userland proxy vs direct.

Measures (medians):
- setup (create_netns + attach) and teardown (release) on the default bridge, in-process (warm) and
  in a fresh process, and how long after release the kernel takes to destroy the veth (background);
- `wharf run --rm busybox true` on the default bridge vs `--network none` (the network's share);
- TCP throughput and connection rate to a server in a netns: direct to its address, through a port
  published with nft DNAT on 127.0.0.1, and through the userland proxy (WHARF_USERLAND_PROXY=1);
- when dockerd is installed: the same server (the host's /usr/bin/python3, bind-mounted) behind a port
  published by a PRIVATE dockerd (bench/peers.py: socket and roots under /tmp/wpd-*, docker0 on 10.214.0.1/24), once
  with its default userland proxy and once with --userland-proxy=false, and its `run --rm busybox true`
  (our image through `wharf save` + `docker load`). Each dockerd runs only for its measurement; then
  it is stopped and docker0, its iptables rules and chains and any nft table it created are removed.

Needs root. Uses a private WHARF_ROOT/WHARF_RUN/WHARF_BRIDGE and removes everything it made.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from peers import private_dockerd

WHARF = str(Path(sys.executable).with_name("wharf"))
SERVER = r"""
import socket, threading
def sink(s):
    buf = bytearray(1 << 20)
    while True:
        c, _ = s.accept()
        def drain(c=c):
            while c.recv_into(buf):
                pass
            c.close()
        threading.Thread(target=drain, daemon=True).start()
def closer(s):
    while True:
        c, _ = s.accept()
        c.close()
socks = []
for port in range(9000, 9010):  # even: sink, odd: closer; each path measured gets its own pair
    fn = closer if port % 2 else sink
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", port)); s.listen(1024)
    threading.Thread(target=fn, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""


def throughput(addr: tuple[str, int], total: int = 512 << 20) -> float:
    """MB/s of one TCP stream of `total` bytes (until the server has read everything)."""
    chunk = b"x" * (1 << 20)
    t = time.perf_counter()
    with socket.create_connection(addr) as s:
        for _ in range(total // len(chunk)):
            s.sendall(chunk)
        s.shutdown(socket.SHUT_WR)
        s.recv(1)  # the server closes after draining
    return total / (time.perf_counter() - t) / 1e6


def conn_rate(addr: tuple[str, int], seconds: float = 1.0) -> float:
    """Connections per second (connect, wait for the server's close)."""
    n, end = 0, time.perf_counter() + seconds
    t = time.perf_counter()
    while time.perf_counter() < end:
        with socket.create_connection(addr) as s:
            s.recv(1)
        n += 1
    return n / (time.perf_counter() - t)


def measure(label: str, host: str, sink: int, closer: int) -> dict[str, float]:
    mbs = statistics.median(throughput((host, sink)) for _ in range(3))
    rate = statistics.median(conn_rate((host, closer)) for _ in range(3))
    print(f"  {label:<28} {mbs:9.0f} MB/s   {rate:8.0f} conn/s")
    return {"mbs": mbs, "rate": rate}


def interleaved(label: str, theirs: tuple[int, int], ours: tuple[int, int], rounds: int = 6
                ) -> tuple[dict[str, float], dict[str, float]]:
    """Theirs and ours (published (sink, closer) host ports on 127.0.0.1) measured in turns, so that both
    see the same load; medians."""
    samples: dict[str, list[float]] = {"tm": [], "tr": [], "om": [], "or": []}
    for i in range(rounds):
        for who, ports in ((("t", theirs), ("o", ours)), (("o", ours), ("t", theirs)))[i % 2]:  # ABBA
            samples[who + "m"].append(throughput(("127.0.0.1", ports[0]), 256 << 20))
            samples[who + "r"].append(conn_rate(("127.0.0.1", ports[1]), 0.5))
    t = {"mbs": statistics.median(samples["tm"]), "rate": statistics.median(samples["tr"])}
    o = {"mbs": statistics.median(samples["om"]), "rate": statistics.median(samples["or"])}
    print(f"  127.0.0.1 via {label:<32} {t['mbs']:6.0f} MB/s {t['rate']:7.0f} conn/s;"
          f" wharf DNAT in turns: {o['mbs']:6.0f} MB/s {o['rate']:7.0f} conn/s"
          f" -> {o['mbs'] / t['mbs']:.2f}x, {o['rate'] / t['rate']:.2f}x")
    return t, o


def setup_cost(nm, n: int = 15) -> None:
    from runtime.engine import EndpointSpec
    from runtime.network import links

    times = []
    for _ in range(n):
        cid = secrets.token_hex(32)
        t = time.perf_counter()
        nm.attach(cid, nm.create_netns(cid), "bridge", EndpointSpec(), "b", "b")
        t1 = time.perf_counter()
        veth = next(iter(nm.store.endpoint(cid)["networks"].values()))["veth"]
        nm.release(cid)
        t2 = time.perf_counter()
        while links.exists(veth) and time.perf_counter() - t2 < 5:
            time.sleep(0.0005)
        times.append((t1 - t, t2 - t1, time.perf_counter() - t2))
    print(f"  setup: netns+attach (warm)   {statistics.median(a for a, _, _ in times) * 1000:7.1f} ms")
    print(f"  teardown: release (warm)     {statistics.median(b for _, b, _ in times) * 1000:7.1f} ms")
    print(f"  ... the kernel destroys the veth {statistics.median(c for _, _, c in times) * 1000:.0f} ms later,"
          " in the background (its address stays reserved until then)")
    code = ("import time, secrets; t = time.perf_counter()\n"
            "from runtime.network.manager import NetworkManager\nfrom runtime.engine import EndpointSpec\n"
            "nm = NetworkManager(); c = secrets.token_hex(32)\n"
            "nm.attach(c, nm.create_netns(c), 'bridge', EndpointSpec(), 'b', 'b'); t1 = time.perf_counter()\n"
            "nm.release(c); print(t1 - t, time.perf_counter() - t1)")
    fresh = [tuple(map(float, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                             check=True).stdout.split())) for _ in range(5)]
    print(f"  setup: fresh process         {statistics.median(a for a, _ in fresh) * 1000:7.1f} ms  (incl. imports)")


def run_cost(n: int = 15) -> float | None:
    """Median `wharf run --rm busybox true` on the default bridge (and its difference to --network none)."""
    def once(args: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run([WHARF, *args], capture_output=True)
        return time.perf_counter() - t

    if subprocess.run([WHARF, "image", "bootstrap", "busybox"], capture_output=True).returncode != 0:
        print("  (no busybox image: skipped)")
        return None
    bridge_args = ["run", "--rm", "busybox", "true"]
    none_args = ["run", "--rm", "--network", "none", "busybox", "true"]
    once(bridge_args)
    once(none_args)
    pairs = [(once(bridge_args), once(none_args)) for _ in range(n)]  # alternated: load drifts equally
    bridge = statistics.median(b for b, _ in pairs)
    none = statistics.median(x for _, x in pairs)
    print(f"  run --rm busybox true        {bridge:7.3f} s")
    print(f"  ... --network none           {none:7.3f} s  -> the network adds {(bridge - none) * 1000:.0f} ms"
          f" (median of the pairs' differences {statistics.median(b - x for b, x in pairs) * 1000:.0f} ms)")
    return bridge


BRIDGE_IP = "10.214.0.1/24"


def docker_measure(server_py: str, ours: Callable[[int], tuple[int, int]]) -> dict[str, dict[str, float]]:
    """docker's published ports (same server, same client) and `docker run --rm busybox true`, with a private
    dockerd (bench/peers.py, bridge=True): its default (userland proxy for 127.0.0.1) and
    --userland-proxy=false (DNAT). Each is measured in turns with a Wharf DNAT port (ours(i) publishes one;
    the others share this machine), stored as results[label + " wharf"]. Each measurement has server ports
    of its own: conntrack keeps closed connections for minutes, and NAT tuples that collide with them make
    new connections slow."""
    results: dict[str, dict[str, float]] = {}
    for i, (label, extra) in enumerate((("docker (docker-proxy)", ()),
                                        ("docker --userland-proxy=false", ("--userland-proxy=false",)))):
        sink, closer = 9002 + 2 * i, 9003 + 2 * i
        try:
            with private_dockerd(bridge=True, bip=BRIDGE_IP, extra=extra, wharf_env=dict(os.environ)) as (env, exe):
                def docker(*args: str, env=env, exe=exe) -> subprocess.CompletedProcess:
                    return subprocess.run([exe, *args], env=env, capture_output=True, text=True, check=True)

                if not extra:
                    docker("run", "--rm", "busybox", "true")
                    runs = []
                    for _ in range(8):
                        t = time.perf_counter()
                        docker("run", "--rm", "busybox", "true")
                        runs.append(time.perf_counter() - t)
                    results["run"] = {"s": statistics.median(runs)}
                py = os.path.realpath(server_py)
                docker("run", "-d", "--name", "h4srv", "-p", str(sink), "-p", str(closer), "-v", "/usr:/usr:ro",
                       "-v", "/lib64:/lib64:ro", "-v", "/lib:/lib:ro", "busybox", py, "-c", SERVER)
                ports = {}
                for cport in (sink, closer):
                    out = docker("port", "h4srv", f"{cport}/tcp").stdout.split()[0]
                    ports[cport] = int(out.rsplit(":", 1)[1])
                deadline = time.monotonic() + 20
                while "ready" not in docker("logs", "h4srv").stdout:
                    if time.monotonic() > deadline:
                        raise RuntimeError("the server in docker did not start: " + docker("logs", "h4srv").stderr)
                    time.sleep(0.05)
                results[label], results[label + " wharf"] = interleaved(label, (ports[sink], ports[closer]), ours(i))
        except (RuntimeError, OSError, subprocess.CalledProcessError) as e:
            err = getattr(e, "stderr", "") or str(e)
            print(f"  {label}: failed: {err.strip()[:300]}")
    return results


def main() -> int:
    if os.geteuid() != 0:
        print("bench_network needs root")
        return 1
    tmp = tempfile.mkdtemp(prefix="wharf-bench-net-")
    os.environ.update(WHARF_ROOT=f"{tmp}/root", WHARF_RUN=f"{tmp}/run", WHARF_BRIDGE="whb" + secrets.token_hex(4))
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)  # the wharf processes measured use .pyc files, as installed
    from runtime.engine import EndpointSpec, PortBinding
    from runtime.network.manager import NetworkManager

    server_py = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable  # same one in docker
    nm = NetworkManager()
    server = None
    cid = secrets.token_hex(32)
    try:
        nm.ensure_default()
        print("network setup and teardown")
        setup_cost(nm)
        run = run_cost()
        path = nm.create_netns(cid)
        ep = nm.attach(cid, path, "bridge", EndpointSpec(), "srv", "srv")
        server = subprocess.Popen(["nsenter", f"--net={path}", server_py, "-c", SERVER], stdout=subprocess.PIPE)
        server.stdout.readline()
        print("published ports (TCP, one stream of 512 MB; connect+close rate)")
        direct = measure("direct to the container", ep.ip_address, 9000, 9001)
        results = {}
        # each path gets its own server ports: conntrack's TIME_WAIT entries of one path must not
        # collide with the NAT tuples of the next
        for mode, sink, closer in (("dnat", 9002, 9003), ("proxy", 9004, 9005)):
            os.environ["WHARF_USERLAND_PROXY"] = "1" if mode == "proxy" else ""
            ports = nm.publish(cid, [PortBinding(sink), PortBinding(closer)], ep.ip_address)  # replaces the last
            results[mode] = measure(f"127.0.0.1 via {mode}", "127.0.0.1", ports[0].host_port, ports[1].host_port)
        d, p = results["dnat"], results["proxy"]
        print(f"  DNAT / proxy: throughput {d['mbs'] / p['mbs']:.2f}x, connection rate {d['rate'] / p['rate']:.2f}x;"
              f" DNAT / direct: {d['mbs'] / direct['mbs']:.2f}x, {d['rate'] / direct['rate']:.2f}x")
        if not shutil.which("dockerd") or not shutil.which("docker"):
            print("  docker: not installed")
            return 0
        os.environ["WHARF_USERLAND_PROXY"] = ""

        def ours(i: int) -> tuple[int, int]:
            again = nm.publish(cid, [PortBinding(9006 + 2 * i), PortBinding(9007 + 2 * i)], ep.ip_address)
            return again[0].host_port, again[1].host_port

        theirs = docker_measure(server_py, ours)
        for label, m in theirs.items():
            if label != "run" and not label.endswith(" wharf"):
                w = theirs[label + " wharf"]
                print(f"  wharf DNAT / {label}: throughput {w['mbs'] / m['mbs']:.2f}x,"
                      f" connection rate {w['rate'] / m['rate']:.2f}x (in turns);"
                      f" wharf proxy (measured before) / {label}: {p['mbs'] / m['mbs']:.2f}x,"
                      f" {p['rate'] / m['rate']:.2f}x")
        if run and "run" in theirs:
            print(f"  run --rm busybox true: wharf {run:.3f} s, docker {theirs['run']['s']:.3f} s"
                  f" ({run / theirs['run']['s']:.2f}x)")
    finally:
        if server:
            server.kill()
            server.wait()
        os.environ.pop("WHARF_USERLAND_PROXY", None)
        nm.teardown()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
