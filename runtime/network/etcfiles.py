"""/etc/hosts, /etc/resolv.conf and /etc/hostname for a container, as Docker writes them."""

from __future__ import annotations

from runtime.engine import EndpointInfo

LOCALHOST = (b"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
             b"fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def host_nameservers(text: str) -> tuple[list[str], list[str]]:
    """(nameserver lines without localhost servers, other lines) of the host's resolv.conf."""
    servers, other = [], []
    for line in text.splitlines():
        words = line.split()
        if words[:1] == ["nameserver"] and len(words) > 1:
            if not (words[1].startswith("127.") or words[1] == "::1"):
                servers.append(line)
        elif words[:1] in (["search"], ["options"]):
            other.append(line)
    return servers, other


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def hosts(hostname: str, networks: dict[str, EndpointInfo], extra_hosts: list[str]) -> bytes:
    out = LOCALHOST
    for ep in networks.values():
        if ep.ip_address:
            out += f"{ep.ip_address}\t{hostname}\n".encode()
            break
    for entry in extra_hosts:  # "name:ip" (docker) or "name=ip" (compose)
        name, sep, ip = entry.partition("=") if "=" in entry else entry.partition(":")
        if sep and name and ip:
            out += f"{ip}\t{name}\n".encode()
    return out


def resolv_conf(dns_gateway: str | None, dns: list[str], dns_search: list[str],
                dns_options: list[str] | None = None) -> bytes:
    """User networks: the embedded DNS server on the gateway first; default bridge: the host's servers."""
    host_servers, host_other = host_nameservers(_read("/etc/resolv.conf"))
    lines = []
    if dns_gateway:
        lines.append(f"nameserver {dns_gateway}")
        lines += [f"nameserver {d}" for d in dns]
        lines += [f"search {' '.join(dns_search)}"] if dns_search else []
        lines.append("options " + " ".join(["ndots:0", *(dns_options or [])]))
    else:
        lines += [f"nameserver {d}" for d in dns] or host_servers
        if dns_search:
            lines.append(f"search {' '.join(dns_search)}")
        else:
            lines += [ln for ln in host_other if ln.startswith("search")]
        if dns_options:
            lines.append("options " + " ".join(dns_options))
        else:
            lines += [ln for ln in host_other if ln.startswith("options")]
    return ("\n".join(lines) + "\n").encode()


def hostname_file(hostname: str) -> bytes:
    return f"{hostname}\n".encode()
