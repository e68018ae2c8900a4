"""NetworkManager against the real kernel: bridges, veths, netns, nft, the embedded DNS, published ports.

Endpoints are plain network namespaces of ours with real processes in them (busybox httpd / nc /
wget via nsenter), no container engine needed. Traffic goes only to 127.0.0.1 and our own addresses.
"""

from __future__ import annotations

import os
import random
import secrets
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from runtime.engine import EndpointSpec, NetworkSpec, PortBinding
from runtime.errors import Conflict, InvalidArgument, NotFound

pytestmark = [pytest.mark.root, pytest.mark.network]

BB = "/bin/busybox"


def _links() -> set[str]:
    return set(os.listdir("/sys/class/net"))


def _tables() -> set[str]:
    from runtime.network import nft

    return set(nft.tables())


@pytest.fixture
def nm(wharf_root: Path, monkeypatch: pytest.MonkeyPatch):
    """A NetworkManager on a private root and default bridge; afterwards nothing of it may remain."""
    from runtime.network import dnsctl
    from runtime.network.manager import NetworkManager

    monkeypatch.setenv("WHARF_BRIDGE", "whd" + secrets.token_hex(4))
    mgr = NetworkManager()
    try:
        yield mgr
    finally:
        recs = mgr.store.networks()
        veths = {ep["veth"] for e in mgr.store.endpoints() + [r for r, _ in mgr.store.released()]
                 for ep in e["networks"].values()}
        mgr.teardown()
        from runtime.network.firewall import network_table

        left = {r["bridge"] for r in recs} | veths
        assert not (left & _links()), f"links left behind: {left & _links()}"
        assert not ({network_table(r["id"]) for r in recs} & _tables())
        assert not os.listdir(mgr.store.dir / "endpoints") if (mgr.store.dir / "endpoints").exists() else True
        assert dnsctl.daemon_pid(dnsctl.state_dir()) is None
        nsdir = Path(os.environ["WHARF_RUN"]) / "netns"
        assert not nsdir.exists() or not os.listdir(nsdir)


def cid() -> str:
    return secrets.token_hex(32)


def ns_run(netns: str, *cmd: str, timeout: float = 10, files: dict[str, bytes] | None = None,
           tmp: Path | None = None, **kw) -> subprocess.CompletedProcess:
    """Run cmd in `netns`; with `files`, in a private mount ns where they cover /etc/* (like a container)."""
    argv = ["nsenter", f"--net={netns}", *cmd]
    if files:
        assert tmp is not None
        binds = []
        for dest, data in files.items():
            src = tmp / f"{secrets.token_hex(4)}-{os.path.basename(dest)}"
            src.write_bytes(data)
            binds.append(f"mount --bind {src} {dest}")
        script = " && ".join(binds + ['exec "$@"'])
        argv = ["unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, **kw)


def wait_listening(netns: str, port: int, udp: bool = False) -> None:
    deadline = time.monotonic() + 5
    proto_file = "udp" if udp else "tcp"
    while time.monotonic() < deadline:
        out = ns_run(netns, "cat", f"/proc/net/{proto_file}", f"/proc/net/{proto_file}6").stdout
        if f":{port:04X} " in out:
            return
        time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port} in {netns}")


@pytest.fixture
def httpd(tmp_path: Path):
    procs: list[subprocess.Popen] = []
    www = tmp_path / "www"
    www.mkdir()

    def start(netns: str, text: str, port: int = 80) -> None:
        (www / "index.html").write_text(text)
        p = subprocess.Popen(["nsenter", f"--net={netns}", BB, "httpd", "-f", "-p", str(port), "-h", str(www)])
        procs.append(p)
        wait_listening(netns, port)

    yield start
    for p in procs:
        p.kill()
        p.wait()


def free_subnet(first: int, nm=None, prefix: int = 24) -> IPv4Network:
    """A random 10.<first..first+49>.x.0/prefix that neither the host nor nm's networks use (tests run in parallel)."""
    from runtime.network import links, rtnl

    ipr = rtnl.iproute()
    try:
        taken = links.host_subnets(ipr) + [IPv4Network(n.subnet) for n in (nm.list() if nm else [])]
    finally:
        ipr.close()
    return next(n for n in (IPv4Network(f"10.{random.randrange(first, first + 50)}.{random.randrange(256)}.0/{prefix}")
                            for _ in range(1000)) if not any(n.overlaps(t) for t in taken))


def endpoint(nm, network: str, name: str, aliases=(), ip=None):
    c = cid()
    path = nm.create_netns(c)
    ep = nm.attach(c, path, network, EndpointSpec(aliases=list(aliases), ipv4_address=ip), name, name)
    return c, path, ep


def test_netns_has_lo_and_is_removed(nm):
    c = cid()
    path = nm.create_netns(c)
    assert nm.create_netns(c) == path  # idempotent
    out = ns_run(path, "ip", "-o", "link").stdout
    assert "lo:" in out and "UP" in out and "eth0" not in out
    nm.delete_netns(c)
    assert not os.path.exists(path)
    nm.delete_netns(c)


def test_names_and_aliases_resolve_through_embedded_dns(nm, httpd, tmp_path):
    net = nm.create(NetworkSpec(name="n" + secrets.token_hex(3)))
    a, pa, ea = endpoint(nm, net.name, "alpha", aliases=["web", "svc"])
    b, pb, eb = endpoint(nm, net.name, "beta")
    assert ea.ip_address != eb.ip_address and ea.gateway == net.gateway
    httpd(pa, "hello from alpha\n")
    files = nm.container_files(b, "beta", {net.name: eb}, [], [], [])
    assert files["/etc/resolv.conf"].startswith(f"nameserver {net.gateway}\n".encode())
    assert files["/etc/hostname"] == b"beta\n"
    for name in ("alpha", "web", "svc", a[:12]):
        r = ns_run(pb, BB, "wget", "-qO-", f"http://{name}/", files=files, tmp=tmp_path)
        assert r.stdout == "hello from alpha\n", (name, r.stderr)
    look = ns_run(pb, BB, "nslookup", "web", net.gateway)
    assert ea.ip_address in look.stdout
    # nothing outside the network is answered (never forwarded)
    miss = ns_run(pb, BB, "nslookup", "example.com", net.gateway)
    assert miss.returncode != 0 and "NXDOMAIN" in (miss.stdout + miss.stderr)
    # over TCP too
    from dnslib import DNSRecord

    q = DNSRecord.question("alpha").pack()
    with socket.create_connection((net.gateway, 53), timeout=3) as s:
        s.sendall(len(q).to_bytes(2, "big") + q)
        n = int.from_bytes(s.recv(2), "big")
        reply = DNSRecord.parse(s.recv(n, socket.MSG_WAITALL))
    assert [str(r.rdata) for r in reply.rr] == [ea.ip_address]
    # a disconnected container disappears from DNS
    nm.detach(a, net.name)
    assert "NXDOMAIN" in "".join(ns_run(pb, BB, "nslookup", "alpha", net.gateway).stdout)
    nm.release(a)
    nm.release(b)


@pytest.fixture(params=["dnat", "proxy"])
def port_mode(request, monkeypatch):
    """Published ports through nft DNAT (default) or the userland proxy (WHARF_USERLAND_PROXY=1)."""
    monkeypatch.setenv("WHARF_USERLAND_PROXY", "1" if request.param == "proxy" else "")
    return request.param


def test_published_tcp_udp_and_hairpin(nm, httpd, tmp_path, port_mode):
    net = nm.create(NetworkSpec(name="p" + secrets.token_hex(3)))
    a, pa, ea = endpoint(nm, net.name, "web")
    b, pb, _ = endpoint(nm, net.name, "client")
    httpd(pa, "published\n")
    ports = nm.publish(a, [PortBinding(80), PortBinding(5353, "udp")], ea.ip_address)
    tcp, udp = ports[0].host_port, ports[1].host_port
    assert tcp and udp
    r = subprocess.run([BB, "wget", "-qO-", f"http://127.0.0.1:{tcp}/"], capture_output=True, text=True, timeout=10)
    assert r.stdout == "published\n", r.stderr
    # hairpin: another container through the gateway
    r = ns_run(pb, BB, "nc", "-w", "3", net.gateway, str(tcp), input="GET / HTTP/1.0\r\n\r\n")
    assert "published" in r.stdout
    # UDP (Debian's busybox nc has no -u): a UDP echo process in the container's netns
    echo = "import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', 5353))\n" \
           "while True:\n    d, p = s.recvfrom(100); s.sendto(b'echo ' + d, p)"
    srv = subprocess.Popen(["nsenter", f"--net={pa}", sys.executable, "-c", echo])
    try:
        wait_listening(pa, 5353, udp=True)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.2)
            got = b""
            for _ in range(25):
                s.sendto(b"ping", ("127.0.0.1", udp))
                try:
                    got = s.recv(100)
                    break
                except TimeoutError:
                    continue
        assert got == b"echo ping"
    finally:
        srv.kill()
        srv.wait()
    nm.release(a)
    from runtime.network.firewall import port_table

    assert port_table(a) not in _tables()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine, a listener is not
        s.bind(("0.0.0.0", tcp))  # the port is free again (the proxy is gone)
        s.listen()
    nm.release(b)


def test_random_ports_are_free_and_conflicts_are_refused(nm, port_mode):
    net = nm.create(NetworkSpec(name="r" + secrets.token_hex(3)))
    a, _, ea = endpoint(nm, net.name, "a")
    b, _, eb = endpoint(nm, net.name, "b")
    got = nm.publish(a, [PortBinding(80), PortBinding(81), PortBinding(82, "udp")], ea.ip_address)
    assert len({p.host_port for p in got if p.protocol == "tcp"}) == 2
    # a port taken by Wharf
    with pytest.raises(Conflict, match="already published" if port_mode == "dnat" else "in use"):
        nm.publish(b, [PortBinding(80, host_port=got[0].host_port)], eb.ip_address)
    # a port taken by a host process
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        with pytest.raises(Conflict, match="in use on the host"):
            nm.publish(b, [PortBinding(80, host_port=busy)], eb.ip_address)
    from runtime.network.firewall import port_table

    assert port_table(b) not in _tables()  # nothing half-configured
    # random ports for b do not collide with a's
    more = nm.publish(b, [PortBinding(80) for _ in range(5)], eb.ip_address)
    assert not {p.host_port for p in more} & {p.host_port for p in got}
    # publishing again replaces: the old ports are free, the new ones taken
    again = nm.publish(a, [PortBinding(80, host_port=got[0].host_port)], ea.ip_address)
    assert again[0].host_port == got[0].host_port
    if port_mode == "proxy":
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("0.0.0.0", got[1].host_port))
            s.listen()
    nm.release(a)
    nm.release(b)


def test_networks_are_isolated(nm, httpd):
    n1 = nm.create(NetworkSpec(name="i" + secrets.token_hex(3)))
    n2 = nm.create(NetworkSpec(name="j" + secrets.token_hex(3)))
    a, pa, ea = endpoint(nm, n1.name, "a")
    b, pb, _ = endpoint(nm, n2.name, "b")
    c, pc, _ = endpoint(nm, n1.name, "c")
    httpd(pa, "ok\n")
    assert ns_run(pc, BB, "nc", "-w", "2", ea.ip_address, "80", input="GET / HTTP/1.0\r\n\r\n").stdout
    blocked = ns_run(pb, BB, "nc", "-w", "1", ea.ip_address, "80", input="GET / HTTP/1.0\r\n\r\n")
    assert "ok" not in blocked.stdout
    # other networks do not resolve each other's names either
    assert ea.ip_address not in ns_run(pb, BB, "nslookup", "a", n2.gateway).stdout
    # ... but a published port is reachable from another network, through its own gateway
    port = nm.publish(a, [PortBinding(80)], ea.ip_address)[0].host_port
    r = ns_run(pb, BB, "nc", "-w", "3", n2.gateway, str(port), input="GET / HTTP/1.0\r\n\r\n")
    assert "ok" in r.stdout
    assert "ok" not in ns_run(pb, BB, "nc", "-w", "1", ea.ip_address, "80", input="GET / HTTP/1.0\r\n\r\n").stdout
    for x in (a, b, c):
        nm.release(x)


@pytest.fixture
def outside():
    """A stand-in for 'the internet': a netns of ours behind a host veth with a /30 nobody uses."""
    from runtime.network import links, netns, rtnl
    from runtime.network.netlink import Netlink

    name = "whx" + secrets.token_hex(4)
    path = netns.create("outside-" + name)
    subnet = free_subnet(200, prefix=30)
    host_ip, far_ip = (str(h) for h in subnet.hosts())
    nl = Netlink()
    try:
        fd = os.open(path, os.O_RDONLY)
        try:
            nl.add_veth(name, "eth0", fd)
        finally:
            os.close(fd)
        idx = nl.index(name)
        nl.add_address(idx, host_ip, 30)
        nl.set_link(idx, up=True)

        def inside(n):
            i = n.index("eth0")
            n.add_address(i, far_ip, 30)
            n.set_link(i, up=True)

        rtnl.in_netns(path, inside)
        yield path, far_ip
    finally:
        links.delete(nl, name)
        nl.close()
        netns.delete("outside-" + name)


def test_outbound_nat_and_internal_networks(nm, httpd, outside):
    ext, far_ip = outside
    httpd(ext, "outside\n")
    pub = nm.create(NetworkSpec(name="o" + secrets.token_hex(3)))
    internal = nm.create(NetworkSpec(name="q" + secrets.token_hex(3), internal=True))
    a, pa, _ = endpoint(nm, pub.name, "a")
    b, pb, eb = endpoint(nm, internal.name, "b")
    assert eb.gateway == ""
    r = ns_run(pa, BB, "nc", "-w", "3", far_ip, "80", input="GET / HTTP/1.0\r\n\r\n")
    assert "outside" in r.stdout  # masqueraded: the outside has no route back to the subnet
    r = ns_run(pb, BB, "nc", "-w", "1", far_ip, "80", input="GET / HTTP/1.0\r\n\r\n")
    assert "outside" not in r.stdout
    assert "default" not in ns_run(pb, "ip", "route").stdout
    nm.release(a)
    nm.release(b)


def test_twenty_parallel_attaches_get_distinct_addresses(nm):
    net = nm.create(NetworkSpec(name="par" + secrets.token_hex(3), subnet=None))
    ids = [cid() for _ in range(20)]

    def one(c: str):
        return nm.attach(c, nm.create_netns(c), net.name, EndpointSpec(), c[:8], c[:8]).ip_address

    with ThreadPoolExecutor(20) as pool:
        ips = list(pool.map(one, ids))
    assert len(set(ips)) == 20
    assert len(nm.inspect(net.name).containers) == 20
    with ThreadPoolExecutor(20) as pool:
        list(pool.map(nm.release, ids))
    assert nm.inspect(net.name).containers == {}


ATTACHER = r"""
import sys
from runtime.engine import EndpointSpec
from runtime.network.manager import NetworkManager
nm = NetworkManager()
c = sys.argv[1]
print(nm.attach(c, nm.create_netns(c), sys.argv[2], EndpointSpec(), c[:8], c[:8]).ip_address)
"""


def test_twenty_parallel_processes_get_distinct_addresses(nm):
    net = nm.create(NetworkSpec(name="pp" + secrets.token_hex(3)))
    ids = [cid() for _ in range(20)]
    procs = [subprocess.Popen([sys.executable, "-c", ATTACHER, c, net.name], stdout=subprocess.PIPE, text=True)
             for c in ids]
    ips = [p.communicate(timeout=120)[0].strip() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert len(set(ips)) == 20 and all(ips)
    for c in ids:
        nm.release(c)


def test_static_ip_ip_range_gateway_and_options(nm):
    name = "s" + secrets.token_hex(3)
    subnet = free_subnet(100, nm)
    base = str(subnet.network_address)[:-1]
    br = "whs" + secrets.token_hex(4)
    net = nm.create(NetworkSpec(name=name, subnet=str(subnet), gateway=base + "254", ip_range=base + "128/25",
                                labels={"k": "v"}, options={"com.docker.network.bridge.name": br,
                                                            "com.docker.network.driver.mtu": "1400"}))
    assert net.gateway == base + "254" and net.labels == {"k": "v"}
    assert Path(f"/sys/class/net/{br}/mtu").read_text().strip() == "1400"
    a, pa, ea = endpoint(nm, name, "a")
    assert ea.ip_address == base + "129"  # first of --ip-range
    b, pb, eb = endpoint(nm, name, "b", ip=base + "7")
    assert eb.ip_address == base + "7"
    assert "mtu 1400" in ns_run(pb, "ip", "link", "show", "eth0").stdout
    with pytest.raises(Conflict, match="already in use"):
        endpoint(nm, name, "c", ip=base + "7")
    with pytest.raises(InvalidArgument, match="not in the subnet"):
        endpoint(nm, name, "d", ip="10.250.250.250")
    assert len(nm.inspect(name).containers) == 2  # the failed ones left nothing
    with pytest.raises(Conflict, match="already connected"):
        nm.attach(a, pa, name, EndpointSpec(), "a", "a")
    # -o host_binding_ipv4: the host IP of published ports that name none
    lo = nm.create(NetworkSpec(name="h" + secrets.token_hex(3),
                               options={"com.docker.network.bridge.host_binding_ipv4": "127.0.0.1"}))
    h, _, eh = endpoint(nm, lo.name, "h")
    assert nm.publish(h, [PortBinding(80)], eh.ip_address)[0].host_ip == "127.0.0.1"
    nm.release(h)
    nm.release(a)
    nm.release(b)
    for leftover in nm.store.endpoints():
        nm.release(leftover["id"])


def test_second_network_on_one_container_gets_eth1(nm):
    n1 = nm.create(NetworkSpec(name="m" + secrets.token_hex(3)))
    n2 = nm.create(NetworkSpec(name="m" + secrets.token_hex(3)))
    a, pa, e1 = endpoint(nm, n1.name, "a")
    e2 = nm.attach(a, pa, n2.name, EndpointSpec(), "a", "a")
    out = ns_run(pa, "ip", "-o", "-4", "addr").stdout
    assert f"eth0    inet {e1.ip_address}/" in out and f"eth1    inet {e2.ip_address}/" in out
    routes = ns_run(pa, "ip", "route").stdout
    assert f"default via {n1.gateway}" in routes
    nm.detach(a, n1.name)
    assert "eth0" not in ns_run(pa, "ip", "-o", "link").stdout
    with pytest.raises(NotFound):
        nm.detach(a, n1.name)
    nm.release(a)


def test_default_bridge(nm, tmp_path):
    d = nm.ensure_default()
    assert d.name == "bridge" and d.options["com.docker.network.bridge.name"] == os.environ["WHARF_BRIDGE"]
    assert nm.ensure_default().id == d.id
    a, pa, ea = endpoint(nm, "bridge", "a")
    files = nm.container_files(a, "host-a", {"bridge": ea}, [], [], ["db:10.9.9.9"])
    assert f"{ea.ip_address}\thost-a\n".encode() in files["/etc/hosts"]
    assert b"10.9.9.9\tdb\n" in files["/etc/hosts"]
    assert b"127.0.0.1" not in files["/etc/resolv.conf"]
    assert not files["/etc/resolv.conf"].startswith(f"nameserver {d.gateway}".encode())
    custom = nm.container_files(a, "h", {"bridge": ea}, ["10.1.1.1"], ["example.test"], [])
    assert custom["/etc/resolv.conf"] == b"nameserver 10.1.1.1\nsearch example.test\n"
    with pytest.raises(Conflict, match="pre-defined"):
        nm.remove("bridge")
    nm.release(a)
    # another live WHARF_ROOT must not share this default bridge (its IPAM would hand out the same addresses)
    from runtime.network.manager import NetworkManager

    with pytest.raises(Conflict, match="belongs to the Wharf state"):
        NetworkManager(tmp_path / "other-root").ensure_default()
    # ... while a leftover of a state dir that is gone is adopted (same subnet)
    gone = NetworkManager(tmp_path / "other-root")
    import shutil

    shutil.rmtree(nm.store.dir)
    try:
        assert gone.ensure_default().subnet == d.subnet
        from runtime.network.firewall import network_table

        assert network_table(d.id) not in _tables()  # the dead owner's rules went with it
    finally:
        gone.teardown()


def test_bad_input_leaves_nothing_behind(nm):
    net = nm.create(NetworkSpec(name="b" + secrets.token_hex(3)))
    br = "whz" + secrets.token_hex(4)
    with pytest.raises(Conflict, match="overlaps"):
        nm.create(NetworkSpec(name="x" + secrets.token_hex(3), subnet=net.subnet,
                              options={"com.docker.network.bridge.name": br}))
    assert br not in _links()
    with pytest.raises(InvalidArgument, match="invalid CIDR"):
        nm.create(NetworkSpec(name="x", subnet="10.0.0.300/24"))
    with pytest.raises(InvalidArgument, match="prefix length is missing"):
        nm.create(NetworkSpec(name="x", subnet="10.0.0.0"))
    with pytest.raises(InvalidArgument, match="need --subnet"):
        nm.create(NetworkSpec(name="x", gateway="10.0.0.1"))
    with pytest.raises(InvalidArgument, match="network name"):
        nm.create(NetworkSpec(name="bad name"))
    with pytest.raises(InvalidArgument, match="MTU"):
        nm.create(NetworkSpec(name="x", options={"com.docker.network.driver.mtu": "big"}))
    with pytest.raises(Conflict, match="already exists"):
        nm.create(NetworkSpec(name=net.name))
    with pytest.raises(Conflict, match="already exists on the host"):
        nm.create(NetworkSpec(name="x" + secrets.token_hex(3), options={"com.docker.network.bridge.name": "lo"}))
    with pytest.raises(NotFound):
        nm.inspect("no-such-network")
    with pytest.raises(NotFound):
        nm.attach(cid(), "/nonexistent", "no-such-network", EndpointSpec(), "x", "x")
    a, _, _ = endpoint(nm, net.name, "busy")
    with pytest.raises(Conflict, match="active endpoints"):
        nm.remove(net.name)
    assert [n.name for n in nm.list()] == [net.name]
    nm.release(a)
    from runtime.network.firewall import network_table

    bridge = net.options["com.docker.network.bridge.name"]
    nm.remove(net.id[:12])
    assert bridge not in _links() and network_table(net.id) not in _tables()
    assert nm.list() == []


def test_list_filters_and_prune(nm):
    keep = nm.create(NetworkSpec(name="k" + secrets.token_hex(3), labels={"io.wharf.project": "p1"}))
    gone = nm.create(NetworkSpec(name="g" + secrets.token_hex(3)))
    a, _, _ = endpoint(nm, keep.name, "a")
    assert [n.name for n in nm.list({"label": ["io.wharf.project=p1"]})] == [keep.name]
    assert [n.name for n in nm.list({"name": [gone.name]})] == [gone.name]
    assert nm.prune() == [gone.name]
    assert [n.name for n in nm.list()] == [keep.name]
    nm.release(a)


def test_proxy_whose_pid_was_never_recorded_is_found(nm, monkeypatch):
    """A crash between starting the proxy and recording its pid: release() still stops it."""
    from runtime.network import ports as ports_mod
    from runtime.network import procs

    monkeypatch.setenv("WHARF_USERLAND_PROXY", "1")
    net = nm.create(NetworkSpec(name="x" + secrets.token_hex(3)))
    a, _, ea = endpoint(nm, net.name, "a")
    port = nm.publish(a, [PortBinding(80)], ea.ip_address)[0].host_port
    rec = nm.store.endpoint(a)
    pid = rec.pop("proxy_pid")
    nm.store.save_endpoint(rec)
    assert procs.find(b"runtime.network.proxy", a.encode()) == [pid]
    nm.release(a)
    assert not procs.alive(pid) and ports_mod.firewall.port_table(a) not in _tables()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("0.0.0.0", port))
        s.listen()


CRASHER = r"""
import os, signal, sys
from runtime.network import links
from runtime.network.manager import NetworkManager
from runtime.engine import EndpointSpec
nm = NetworkManager()
c, net, where = sys.argv[1:4]
path = nm.create_netns(c)
if where == "mid-attach":
    def boom(*a, **k):
        os.kill(os.getpid(), signal.SIGKILL)
    links.configure_peer = boom
nm.attach(c, path, net, EndpointSpec(), "crash", "crash")
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("where", ["mid-attach", "after-attach"])
def test_kill_9_is_repaired(nm, where):
    net = nm.create(NetworkSpec(name="c" + secrets.token_hex(3)))
    c = cid()
    r = subprocess.run([sys.executable, "-c", CRASHER, c, net.name, where], timeout=60)
    assert r.returncode == -9
    rec = nm.store.endpoint(c)
    veth = next(iter(rec["networks"].values()))["veth"]
    assert veth in _links()  # the crash left a veth (and a netns) behind
    if where == "mid-attach":  # attaching the same container again repairs the leftovers
        again = nm.attach(c, nm.create_netns(c), net.name, EndpointSpec(), "crash", "crash")
        assert again.ip_address == next(iter(rec["networks"].values()))["ip"]
        assert "eth0" in ns_run(nm.create_netns(c), "ip", "-o", "link").stdout
    else:
        with pytest.raises(Conflict, match="already connected"):
            nm.attach(c, nm.create_netns(c), net.name, EndpointSpec(), "crash", "crash")
    nm.release(c)
    nm.wait_released()
    assert veth not in _links()
    assert nm.store.endpoint(c) is None and nm.inspect(net.name).containers == {}
    nm.release(c)  # idempotent


def test_dns_daemon_survives_its_starter_and_stops_with_the_last_network(nm):
    from runtime.network import dnsctl

    name = "d" + secrets.token_hex(3)
    code = f"from runtime.network.manager import NetworkManager; from runtime.engine import NetworkSpec; " \
           f"NetworkManager().create(NetworkSpec(name={name!r}))"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    pid = dnsctl.daemon_pid(dnsctl.state_dir())
    assert pid and os.path.exists(f"/proc/{pid}")
    nm.remove(name)
    assert dnsctl.daemon_pid(dnsctl.state_dir()) is None


def test_released_address_stays_reserved_until_its_veth_is_gone(nm, monkeypatch):
    """release() leaves the veths to the kernel's netns cleanup; their addresses are not handed out
    again until the veths are gone (here a held netns fd keeps them alive)."""
    from runtime.network import manager

    def veth_of(c: str) -> str:
        return next(iter(nm.store.endpoint(c)["networks"].values()))["veth"]

    net = nm.create(NetworkSpec(name="v" + secrets.token_hex(3)))
    a, pa, ea = endpoint(nm, net.name, "a")
    d, pd, _ = endpoint(nm, net.name, "d")
    veth_a, veth_d = veth_of(a), veth_of(d)
    holders = [os.open(pa, os.O_RDONLY), os.open(pd, os.O_RDONLY)]  # like processes still in the netns
    try:
        nm.release(a)
        nm.release(d)
        assert nm.store.endpoint(a) is None and {veth_a, veth_d} <= _links()
        assert nm.inspect(net.name).containers == {}
        b, _, eb = endpoint(nm, net.name, "b")
        assert eb.ip_address != ea.ip_address  # the old interface still answers for its address
        assert veth_a in _links()
        # a static --ip takes a released address at once (its old veth is deleted)
        c, _, ec = endpoint(nm, net.name, "c", ip=ea.ip_address)
        assert ec.ip_address == ea.ip_address and veth_a not in _links() and veth_d in _links()
        # a veth that outlives the grace period (its netns kept alive) is deleted by the next attach
        monkeypatch.setattr(manager, "RELEASE_GRACE", 0.0)
        e, _, _ = endpoint(nm, net.name, "e")
        assert veth_d not in _links()
    finally:
        for fd in holders:
            os.close(fd)
    for x in (b, c, e):
        nm.release(x)
    nm.wait_released()
    assert nm.store.released() == []
    # normally the kernel destroys the veth by itself once the netns is unmounted
    f, _, ef = endpoint(nm, net.name, "f")
    veth = veth_of(f)
    nm.release(f)
    deadline = time.monotonic() + 5
    while veth in _links() and time.monotonic() < deadline:
        time.sleep(0.005)
    assert veth not in _links()
    g, _, eg = endpoint(nm, net.name, "g")
    assert eg.ip_address == ef.ip_address and nm.store.released() == []
    nm.release(g)


def talks(netns: str, ip: str, port: int = 80, wait: int = 1) -> bool:
    return "ok" in ns_run(netns, BB, "nc", "-w", str(wait), ip, str(port), input="GET / HTTP/1.0\r\n\r\n").stdout


def test_icc_false_blocks_containers_of_one_bridge_but_not_ports_or_outbound(nm, httpd, outside):
    ext, far_ip = outside
    httpd(ext, "ok outside\n")
    net = nm.create(NetworkSpec(name="icc" + secrets.token_hex(3),
                                options={"com.docker.network.bridge.enable_icc": "false"}))
    other = nm.create(NetworkSpec(name="icd" + secrets.token_hex(3)))  # icc on: unaffected
    a, pa, ea = endpoint(nm, net.name, "a")
    b, pb, _ = endpoint(nm, net.name, "b")
    c, pc, ec = endpoint(nm, other.name, "c")
    d, pd, _ = endpoint(nm, other.name, "d")
    httpd(pa, "ok\n")
    httpd(pc, "ok\n", port=80)
    assert not talks(pb, ea.ip_address)  # same bridge, icc off
    assert talks(pd, ec.ip_address, wait=3)  # same bridge, icc on
    assert talks(pa, far_ip, wait=3)  # outbound (masqueraded) still works
    port = nm.publish(a, [PortBinding(80)], ea.ip_address)[0].host_port
    r = subprocess.run([BB, "wget", "-qO-", f"http://127.0.0.1:{port}/"], capture_output=True, text=True, timeout=10)
    assert r.stdout == "ok\n", r.stderr  # a published port from the host
    assert talks(pb, net.gateway, port, wait=3)  # ... and through the gateway (hairpin)
    assert not talks(pb, ea.ip_address)
    from runtime.network.firewall import network_table

    table = network_table(net.id)
    assert "bridge" in subprocess.run(["nft", "list", "tables", "bridge"], capture_output=True, text=True).stdout \
        and table in _tables()
    for x in (a, b, c, d):
        nm.release(x)
    nm.remove(net.name)
    assert table not in _tables()


DAEMON_ENV = ("WHARF_BRIDGE_IP", "WHARF_FIXED_CIDR", "WHARF_MTU", "WHARF_ICC", "WHARF_IP_MASQ")


def test_default_bridge_follows_the_daemon_flags(nm, httpd, outside, monkeypatch):
    """--bip, --fixed-cidr, --mtu, --icc=false, --ip-masq=false as `wharf serve` exports them."""
    ext, far_ip = outside
    httpd(ext, "ok outside\n")
    subnet = free_subnet(150, nm)
    base = str(subnet.network_address)[:-1]
    monkeypatch.setenv("WHARF_BRIDGE_IP", base + "254/24")
    monkeypatch.setenv("WHARF_FIXED_CIDR", base + "64/26")
    monkeypatch.setenv("WHARF_MTU", "1400")
    monkeypatch.setenv("WHARF_ICC", "false")
    monkeypatch.setenv("WHARF_IP_MASQ", "false")
    d = nm.ensure_default()
    bridge = os.environ["WHARF_BRIDGE"]
    assert (d.subnet, d.gateway) == (str(subnet), base + "254")
    assert f"inet {base}254/24" in subprocess.run(["ip", "-4", "addr", "show", bridge], capture_output=True,
                                                  text=True).stdout
    a, pa, ea = endpoint(nm, "bridge", "a")
    b, pb, _ = endpoint(nm, "bridge", "b")
    assert ea.ip_address == base + "65" and ea.gateway == base + "254"  # from --fixed-cidr
    assert "mtu 1400" in ns_run(pa, "ip", "link", "show", "eth0").stdout
    httpd(pa, "ok\n")
    assert not talks(pb, ea.ip_address)  # --icc=false
    assert not talks(pa, far_ip)  # --ip-masq=false: the outside sees 10.x and has no way back
    # other flags while the network is in use: refused, nothing changed
    monkeypatch.setenv("WHARF_MTU", "1300")
    with pytest.raises(Conflict, match="in use"):
        nm.ensure_default()
    nm.release(a)
    nm.release(b)
    # ... and re-created with them once it is idle; without any flag the network is kept as it is
    monkeypatch.setenv("WHARF_IP_MASQ", "true")
    monkeypatch.delenv("WHARF_ICC")
    again = nm.ensure_default()
    assert again.id != d.id and again.subnet == d.subnet
    assert Path(f"/sys/class/net/{bridge}/mtu").read_text().strip() == "1300"
    a, pa, ea = endpoint(nm, "bridge", "a")
    b, pb, _ = endpoint(nm, "bridge", "b")
    httpd(pa, "ok\n")
    assert talks(pb, ea.ip_address, wait=3) and talks(pa, far_ip, wait=3)
    monkeypatch.setenv("WHARF_IP", "127.0.0.1")  # --ip: the host IP of bindings that name none (-P too)
    got = nm.publish(a, [PortBinding(80), PortBinding(81, host_ip="0.0.0.0")], ea.ip_address)
    assert [p.host_ip for p in got] == ["127.0.0.1", "0.0.0.0"]
    for var in DAEMON_ENV:
        monkeypatch.delenv(var, raising=False)
    assert nm.ensure_default().id == again.id
    nm.release(a)
    nm.release(b)


ECHO = r"""
import socket, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(("0.0.0.0", 7)); s.listen(16)
def echo(c):
    while data := c.recv(1 << 16):
        c.sendall(data)
    c.close()  # after the client's half-close: everything was echoed
while True:
    threading.Thread(target=echo, args=(s.accept()[0],), daemon=True).start()
"""


def test_published_port_carries_bulk_data_both_ways_with_half_close(nm, port_mode):
    import hashlib
    import threading

    net = nm.create(NetworkSpec(name="e" + secrets.token_hex(3)))
    a, pa, ea = endpoint(nm, net.name, "echo")
    srv = subprocess.Popen(["nsenter", f"--net={pa}", sys.executable, "-c", ECHO])
    try:
        wait_listening(pa, 7)
        port = nm.publish(a, [PortBinding(7)], ea.ip_address)[0].host_port
        blob = os.urandom(3 << 20) * 4  # 12 MB: the pipes and socket buffers fill up on the way
        got = bytearray()
        with socket.create_connection(("127.0.0.1", port), timeout=20) as s:
            def send() -> None:
                s.sendall(blob)
                s.shutdown(socket.SHUT_WR)

            t = threading.Thread(target=send)
            t.start()
            while chunk := s.recv(1 << 20):
                got += chunk
            t.join()
        assert hashlib.sha256(got).digest() == hashlib.sha256(blob).digest()
        for _ in range(200):  # many short connections: none is lost or left open
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.sendall(b"ping")
                s.shutdown(socket.SHUT_WR)
                assert s.recv(16) == b"ping" and s.recv(16) == b""
        if port_mode == "proxy":  # every connection's sockets and pipes were closed
            pid = nm.store.endpoint(a)["proxy_pid"]
            deadline = time.monotonic() + 5
            while len(os.listdir(f"/proc/{pid}/fd")) > 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(os.listdir(f"/proc/{pid}/fd")) <= 10
    finally:
        srv.kill()
        srv.wait()
    nm.release(a)


def test_full_network_takes_back_a_released_address_at_once(nm):
    subnet = free_subnet(100, nm, prefix=29)
    base = str(subnet.network_address)[:-1]
    net = nm.create(NetworkSpec(name="f" + secrets.token_hex(3), subnet=str(subnet), ip_range=f"{base}4/30"))
    a, pa, ea = endpoint(nm, net.name, "a")
    b, _, eb = endpoint(nm, net.name, "b")
    with pytest.raises(Conflict, match="no free address"):
        endpoint(nm, net.name, "x")
    veth = next(iter(nm.store.endpoint(a)["networks"].values()))["veth"]
    holder = os.open(pa, os.O_RDONLY)  # keeps a's veth alive after its release
    try:
        nm.release(a)
        c, _, ec = endpoint(nm, net.name, "c")  # a recreated container must not wait for the kernel
        assert ec.ip_address == ea.ip_address and veth not in _links()
    finally:
        os.close(holder)
    for x in (b, c):
        nm.release(x)
