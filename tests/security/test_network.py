"""No network from inside a cell: every way out fails with an exact error, only ``lo`` exists.

The session library proves the same for one-shot commands (TCP to 1.1.1.1:443,
172.17.0.1:2375, 169.254.169.254:80, DNS, raw ICMP, ``lo`` only) in
tests/docker/test_hardening.py; here the attempts come from the interpreter a notebook
user types into, plus UDP, IPv6 and ``host.docker.internal``.
"""

from __future__ import annotations

import socket
from typing import Any

import pytest

from .conftest import KernelHandle, probe

pytestmark = pytest.mark.docker

PROBE = r'''
import errno, json, os, socket

def err(e):
    return [type(e).__name__, errno.errorcode.get(e.errno, e.errno)]

def tcp(host, port, family=socket.AF_INET):
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(3)
    try:
        s.connect((host, port))
        return "CONNECTED"
    except OSError as e:
        return err(e)
    finally:
        s.close()

def udp(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.sendto(b"\x00" * 12, (host, port))
        return "SENT"
    except OSError as e:
        return err(e)
    finally:
        s.close()

def resolve(name):
    try:
        return ["RESOLVED", socket.getaddrinfo(name, 80)[0][4][0]]
    except socket.gaierror as e:
        return ["gaierror", e.errno]

def raw():
    try:
        socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP).close()
        return "OPENED"
    except OSError as e:
        return err(e)

v6 = "/proc/sys/net/ipv6/conf/all/disable_ipv6"
print(json.dumps({
    "tcp_cloudflare": tcp("1.1.1.1", 443),
    "tcp_docker_gateway": tcp("172.17.0.1", 2375),
    "tcp_metadata": tcp("169.254.169.254", 80),
    "tcp6_cloudflare": tcp("2606:4700:4700::1111", 443, socket.AF_INET6),
    "udp_dns": udp("8.8.8.8", 53),
    "dns_example": resolve("example.com"),
    "dns_host_gateway": resolve("host.docker.internal"),
    "raw_icmp": raw(),
    "ipv6_disabled": open(v6).read().strip() if os.path.exists(v6) else None,
    "interfaces": sorted(os.listdir("/sys/class/net")),
    "if_nameindex": socket.if_nameindex(),
}))
'''


@pytest.fixture(scope="module")
def net(k: KernelHandle) -> dict[str, Any]:
    """Every probe, run once in one cell (each probe fails at once: no network to wait on)."""
    return dict(probe(k, PROBE, timeout=60))


@pytest.mark.parametrize("name", ["tcp_cloudflare", "tcp_docker_gateway", "tcp_metadata",
                                  "udp_dns"])
def test_ipv4_egress_is_unreachable(net: dict[str, Any], name: str) -> None:
    assert net[name] == ["OSError", "ENETUNREACH"]


def test_ipv6_egress_fails(net: dict[str, Any]) -> None:
    # Docker turns IPv6 off in a network-less container: no address to connect from.
    expected = "EADDRNOTAVAIL" if net["ipv6_disabled"] == "1" else "ENETUNREACH"
    assert net["tcp6_cloudflare"] == ["OSError", expected]


@pytest.mark.parametrize("name", ["dns_example", "dns_host_gateway"])
def test_names_do_not_resolve(net: dict[str, Any], name: str) -> None:
    assert net[name] == ["gaierror", socket.EAI_AGAIN]


def test_raw_icmp_socket_is_refused(net: dict[str, Any]) -> None:
    assert net["raw_icmp"] == ["PermissionError", "EPERM"]


def test_only_loopback_exists(net: dict[str, Any]) -> None:
    assert net["interfaces"] == ["lo"]
    assert net["if_nameindex"] == [[1, "lo"]]
