"""Network: setup cost per container, and published ports — DNAT vs the userland proxy vs direct.

Measures (medians):
- create_netns + attach + release on the default bridge, in-process (warm) and in a fresh process;
- `wharf run --rm busybox true` on the default bridge vs `--network none` (the network's share);
- TCP throughput and connection rate to a server in a netns: direct to its address, through a port
  published with nft DNAT on 127.0.0.1, and through the userland proxy (WHARF_USERLAND_PROXY=1);
- the same through docker's published port when a docker daemon is already running (never started here).

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
from pathlib import Path

WHARF = str(Path(sys.executable).with_name("wharf"))
DOCKER_RUN = 0.251  # `docker run --rm busybox true` on the default bridge, this VM (issue 5)
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
for port, fn in ((9000, sink), (9001, closer), (9002, sink), (9003, closer), (9004, sink), (9005, closer)):
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


def setup_cost(nm, n: int = 15) -> None:
    from runtime.engine import EndpointSpec

    times = []
    for _ in range(n):
        cid = secrets.token_hex(32)
        t = time.perf_counter()
        nm.attach(cid, nm.create_netns(cid), "bridge", EndpointSpec(), "b", "b")
        t1 = time.perf_counter()
        nm.release(cid)
        times.append((t1 - t, time.perf_counter() - t1))
    print(f"  netns+attach (warm)          {statistics.median(a for a, _ in times) * 1000:7.1f} ms")
    print(f"  release (warm)               {statistics.median(b for _, b in times) * 1000:7.1f} ms")
    code = ("import time, secrets; t = time.perf_counter()\n"
            "from runtime.network.manager import NetworkManager\nfrom runtime.engine import EndpointSpec\n"
            "nm = NetworkManager(); c = secrets.token_hex(32)\n"
            "nm.attach(c, nm.create_netns(c), 'bridge', EndpointSpec(), 'b', 'b'); t1 = time.perf_counter()\n"
            "nm.release(c); print(t1 - t, time.perf_counter() - t1)")
    fresh = [tuple(map(float, subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                             check=True).stdout.split())) for _ in range(5)]
    print(f"  netns+attach (fresh process) {statistics.median(a for a, _ in fresh) * 1000:7.1f} ms  (incl. imports)")


def run_cost(n: int = 12) -> None:
    def once(args: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run([WHARF, *args], capture_output=True)
        return time.perf_counter() - t

    if subprocess.run([WHARF, "image", "bootstrap", "busybox"], capture_output=True).returncode != 0:
        print("  (no busybox image: skipped)")
        return
    bridge_args = ["run", "--rm", "busybox", "true"]
    none_args = ["run", "--rm", "--network", "none", "busybox", "true"]
    once(bridge_args)
    pairs = [(once(bridge_args), once(none_args)) for _ in range(n)]  # alternated: load drifts equally
    bridge = statistics.median(b for b, _ in pairs)
    none = statistics.median(x for _, x in pairs)
    print(f"  run --rm busybox true        {bridge:7.3f} s  (docker {DOCKER_RUN} s: {bridge / DOCKER_RUN:.2f}x)")
    print(f"  ... --network none           {none:7.3f} s  -> the network adds {(bridge - none) * 1000:.0f} ms")


def docker_ports() -> dict[str, float] | None:
    if not shutil.which("docker") or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        print("  docker: no running daemon (not started by this bench)")
        return None
    return None


def main() -> int:
    if os.geteuid() != 0:
        print("bench_network needs root")
        return 1
    tmp = tempfile.mkdtemp(prefix="wharf-bench-net-")
    os.environ.update(WHARF_ROOT=f"{tmp}/root", WHARF_RUN=f"{tmp}/run", WHARF_BRIDGE="whb" + secrets.token_hex(4))
    from runtime.engine import EndpointSpec, PortBinding
    from runtime.network.manager import NetworkManager

    nm = NetworkManager()
    server = None
    cid = secrets.token_hex(32)
    try:
        nm.ensure_default()
        print("network setup")
        setup_cost(nm)
        run_cost()
        path = nm.create_netns(cid)
        ep = nm.attach(cid, path, "bridge", EndpointSpec(), "srv", "srv")
        server = subprocess.Popen(["nsenter", f"--net={path}", sys.executable, "-c", SERVER], stdout=subprocess.PIPE)
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
        print(f"  default: {'DNAT' if d['mbs'] >= p['mbs'] else 'proxy'} is faster")
        docker_ports()
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
