"""Pure parts of runtime/network: IPAM, DNS records and answers, /etc files, nft rule text, port flags."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from runtime.engine import EndpointInfo
from runtime.errors import Conflict, InvalidArgument
from runtime.network import dns, dnsctl, etcfiles, firewall, ipam


def test_pick_subnet_skips_used_ranges():
    assert ipam.pick_subnet([]) == IPv4Network("172.17.0.0/16")
    used = [IPv4Network("172.17.0.0/16"), IPv4Network("172.18.5.0/24")]
    assert ipam.pick_subnet(used) == IPv4Network("172.19.0.0/16")
    all16 = [IPv4Network(f"172.{b}.0.0/16") for b in range(17, 32)] + [IPv4Network("192.168.0.0/24")]
    assert ipam.pick_subnet(all16) == IPv4Network("192.168.1.0/24")
    with pytest.raises(Conflict, match="no free subnet"):
        ipam.pick_subnet([IPv4Network("0.0.0.0/0")])


@pytest.mark.parametrize("text,msg", [("10.0.0.0", "prefix length is missing"), ("10.0.0.300/24", "invalid CIDR"),
                                      ("10.0.0.5/24", "host bits"), ("10.0.0.0/31", "too small"),
                                      ("fd00::/64", "only IPv4"), ("nonsense/8", "invalid CIDR")])
def test_parse_subnet_errors(text, msg):
    with pytest.raises(InvalidArgument, match=msg):
        ipam.parse_subnet(text)


def test_allocate_and_static_addresses():
    net = IPv4Network("10.1.0.0/29")
    gw = IPv4Address("10.1.0.1")
    assert ipam.allocate(net, gw, net, set()) == IPv4Address("10.1.0.2")
    used = {IPv4Address(f"10.1.0.{i}") for i in range(2, 6)}
    assert ipam.allocate(net, gw, net, used) == IPv4Address("10.1.0.6")
    with pytest.raises(Conflict, match="no free address"):
        ipam.allocate(net, gw, net, used | {IPv4Address("10.1.0.6")})
    assert ipam.allocate(net, gw, IPv4Network("10.1.0.4/30"), set()) == IPv4Address("10.1.0.5")
    with pytest.raises(Conflict, match="in use"):
        ipam.check_static(IPv4Address("10.1.0.3"), net, gw, {IPv4Address("10.1.0.3")}, "n")
    with pytest.raises(InvalidArgument, match="reserved"):
        ipam.check_static(gw, net, gw, set(), "n")
    assert ipam.mac_for(IPv4Address("172.17.0.2")) == "02:42:ac:11:00:02"


def test_dns_zones_and_answers():
    nets = [{"id": "n1", "gateway": "10.0.0.1", "default": False}, {"id": "d", "gateway": "172.17.0.1", "default": True}]
    eps = [{"id": "c" * 64, "name": "Web", "networks": {"n1": {"ip": "10.0.0.2", "aliases": ["svc"]},
                                                        "d": {"ip": "172.17.0.2"}}}]
    zones = dnsctl.zones(nets, eps)
    assert zones == {"10.0.0.1": {"web": ["10.0.0.2"], "svc": ["10.0.0.2"], "c" * 12: ["10.0.0.2"]}}
    from dnslib import QTYPE, RCODE, DNSRecord

    zone = zones["10.0.0.1"].get
    reply = DNSRecord.parse(dns.answer(DNSRecord.question("WEB.").pack(), zone))
    assert [str(r.rdata) for r in reply.rr] == ["10.0.0.2"] and reply.header.rcode == RCODE.NOERROR
    reply = DNSRecord.parse(dns.answer(DNSRecord.question("svc", "AAAA").pack(), zone))
    assert reply.rr == [] and reply.header.rcode == RCODE.NOERROR
    reply = DNSRecord.parse(dns.answer(DNSRecord.question("example.com").pack(), zone))
    assert reply.header.rcode == RCODE.NXDOMAIN
    assert dns.answer(b"garbage", zone) is None
    assert QTYPE.A == 1


def test_dns_views_span_all_networks_of_the_client():
    nets = [{"id": "n1", "gateway": "10.0.0.1"}, {"id": "n2", "gateway": "10.1.0.1"}]
    eps = [{"id": "a" * 64, "name": "both", "networks": {"n1": {"ip": "10.0.0.2"}, "n2": {"ip": "10.1.0.2"}}},
           {"id": "b" * 64, "name": "web", "networks": {"n1": {"ip": "10.0.0.3"}}}]
    data = {"zones": dnsctl.zones(nets, eps), "views": dnsctl.views(nets, eps)}
    assert dns.lookup(data, "10.1.0.1", "10.1.0.2", "web") == ["10.0.0.3"]  # via its other network
    assert dns.lookup(data, "10.1.0.1", "10.1.0.9", "web") is None  # a client only on n2
    assert dns.lookup(data, "10.0.0.1", "10.0.0.3", "both") == ["10.0.0.2"]


def test_etc_files(tmp_path, monkeypatch):
    ep = EndpointInfo(network="bridge", ip_address="172.17.0.5", prefix_len=16, gateway="172.17.0.1")
    hosts = etcfiles.hosts("box", {"bridge": ep}, ["db:10.0.0.9", "cache=10.0.0.8"])
    assert b"172.17.0.5\tbox\n" in hosts and b"10.0.0.9\tdb\n" in hosts and b"10.0.0.8\tcache\n" in hosts
    assert etcfiles.host_nameservers("nameserver 127.0.0.53\nnameserver 10.0.0.2\nsearch a.b\noptions x\n") == (
        ["nameserver 10.0.0.2"], ["search a.b", "options x"])
    assert etcfiles.resolv_conf("10.9.0.1", [], ["s.test"]) == \
        b"nameserver 10.9.0.1\nsearch s.test\noptions ndots:0\n"
    assert etcfiles.resolv_conf(None, ["10.0.0.53"], [], ["timeout:1"]) == \
        b"nameserver 10.0.0.53\noptions timeout:1\n"


def test_nft_rule_text():
    text = firewall.network_rules("whbr1", "10.3.0.0/16", internal=False)
    assert 'ip saddr 10.3.0.0/16 oifname != "whbr1" masquerade' in text
    assert f"oifgroup {firewall.WHARF_GROUP} drop" in text
    assert "dport 53" not in text
    dns_only = firewall.network_rules("whbr1", "10.3.0.0/16", internal=False, gateway="10.3.0.1")
    assert 'ip daddr 10.3.0.1 iifname != { "whbr1", "lo" }' in dns_only
    assert "masquerade" not in firewall.network_rules("whbr1", "10.3.0.0/16", internal=False, masquerade=False)
    internal = firewall.network_rules("whbr1", "10.3.0.0/16", internal=True)
    assert "masquerade" not in internal and 'iifname "whbr1" drop' in internal
    ports = firewall.port_rules([{"protocol": "udp", "host_port": 5000, "container_port": 53, "host_ip": "127.0.0.1"}],
                                "10.3.0.2", "10.3.0.0/16")
    assert 'udp dport 5000 ip daddr 127.0.0.1 dnat to 10.3.0.2:53 comment "udp:5000:127.0.0.1"' in ports


@pytest.mark.parametrize("options,msg", [({"com.docker.network.bridge.enable_icc": "no"}, "true or false"),
                                         ({"com.docker.network.bridge.enable_ip_masquerade": "maybe"}, "true or false"),
                                         ({"com.docker.network.bridge.host_binding_ipv4": "nope"}, "invalid IPv4"),
                                         ({"com.docker.network.whatever": "1"}, "unknown network option")])
def test_network_options_are_checked(options, msg):
    from runtime.engine import NetworkSpec
    from runtime.network.netspec import new_record

    with pytest.raises(InvalidArgument, match=msg):
        new_record(NetworkSpec(name="n", options=options))
    rec = new_record(NetworkSpec(name="n", options={"com.docker.network.bridge.enable_ip_masquerade": "false"}))
    assert rec["bridge"].startswith("whbr") and len(rec["bridge"]) <= 15 and rec["icc"]
    assert not new_record(NetworkSpec(name="n", options={"com.docker.network.bridge.enable_icc": "false"}))["icc"]


def test_no_icc_rule_text():
    text = firewall.network_rules("whbr1", "10.3.0.0/16", internal=False, icc=False)
    assert 'iifname "whbr1" oifname "whbr1" ct status dnat accept\niifname "whbr1" oifname "whbr1" drop' in text
    assert 'oifname "whbr1" accept' not in text
    assert f"iifgroup {firewall.NO_ICC_GROUP} oifgroup {firewall.NO_ICC_GROUP} ether type {{ ip, ip6 }} drop" \
        in firewall.NO_ICC_RULES


def test_default_network_from_daemon_flags(monkeypatch):
    from runtime.network import netspec

    for var in ("WHARF_BRIDGE_IP", "WHARF_FIXED_CIDR", "WHARF_MTU", "WHARF_ICC", "WHARF_IP_MASQ"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WHARF_BRIDGE", "whq0")
    plain = netspec.default_spec()
    assert (plain.subnet, plain.gateway, plain.ip_range) == (None, None, None)
    assert plain.options == {"com.docker.network.bridge.name": "whq0"}
    assert not any(netspec.spec_config(plain).values())
    monkeypatch.setenv("WHARF_BRIDGE_IP", "10.214.0.1/24")
    monkeypatch.setenv("WHARF_FIXED_CIDR", "10.214.0.128/25")
    monkeypatch.setenv("WHARF_MTU", "1400")
    monkeypatch.setenv("WHARF_ICC", "false")
    monkeypatch.setenv("WHARF_IP_MASQ", "false")
    spec = netspec.default_spec()
    assert (spec.subnet, spec.gateway, spec.ip_range) == ("10.214.0.0/24", "10.214.0.1", "10.214.0.128/25")
    rec = netspec.new_record(spec)
    assert rec["mtu"] == 1400 and not rec["icc"] and rec["default"] and rec["bridge"] == "whq0"
    assert rec["options"]["com.docker.network.bridge.enable_ip_masquerade"] == "false"
    assert netspec.spec_config(spec)["options"] == {"com.docker.network.driver.mtu": "1400",
                                                    "com.docker.network.bridge.enable_icc": "false",
                                                    "com.docker.network.bridge.enable_ip_masquerade": "false"}
    monkeypatch.delenv("WHARF_BRIDGE_IP")  # --fixed-cidr alone is the subnet too (docker)
    assert netspec.default_spec().subnet == "10.214.0.128/25"
    for bip, msg in (("10.214.0.1", "invalid --bip"), ("10.214.0.0/24", "invalid --bip"), ("nope/8", "invalid --bip"),
                     ("10.215.0.1/24", "not inside the bridge's subnet")):
        monkeypatch.setenv("WHARF_BRIDGE_IP", bip)
        with pytest.raises(InvalidArgument, match=msg):
            netspec.default_spec()
    monkeypatch.setenv("WHARF_BRIDGE_IP", "10.214.0.1/24")
    monkeypatch.setenv("WHARF_FIXED_CIDR", "10.214.0.5/25")
    with pytest.raises(InvalidArgument, match="--fixed-cidr"):
        netspec.default_spec()
