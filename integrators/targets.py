"""Which addresses integrations may connect to (``[targets]`` in the config).

A webhook URL is chosen by whoever may create integrations, and ``/test`` answers SUCCESS or
FAILURE: without a limit the gateway would reach, and probe, anything it can reach itself (its
own API on 127.0.0.1, a cloud metadata service on 169.254.169.254, hosts of the private
network). So by default a target must be a public address: loopback, link-local, private
(RFC 1918, CGNAT, IPv6 ULA, documentation and other non-global ranges), multicast and
unspecified addresses are refused. ``allow_private`` (private-APN and local deployments) and
``allow_loopback`` (local tests, the demo) open those classes; ``allow`` opens single networks
and ``deny`` closes networks whatever else says (checked first).

The host name is resolved **when the connection is opened** and every resolved address is
checked; the connection goes to a checked address (with the name kept for TLS), so a name that
resolves differently later (DNS rebinding) cannot slip past the check.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(OSError):
    """The target's address is not allowed by ``[targets]``; the message says why and what allows it."""


def parse_networks(items: Iterable[str], where: str) -> tuple[Network, ...]:
    """``["10.20.0.0/16", "2001:db8::1"]`` → networks; ValueError naming ``where`` otherwise."""
    out = []
    for item in items:
        try:
            out.append(ipaddress.ip_network(item.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{where}: {item!r} is not an address or network (e.g. 10.20.0.0/16)") from None
    return tuple(out)


@dataclass(frozen=True)
class TargetPolicy:
    allow_loopback: bool = False
    allow_private: bool = False
    allow: tuple[Network, ...] = ()
    deny: tuple[Network, ...] = ()

    def refusal(self, address: str) -> str | None:
        """Why ``address`` (an IP literal) may not be connected to, or None when it may."""
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        if any(ip in net for net in self.deny):
            return f"{ip} is in targets.deny"
        if any(ip in net for net in self.allow):
            return None
        if ip.is_loopback:
            return None if self.allow_loopback else f"{ip} is a loopback address (targets.allow_loopback = true allows it)"
        if ip.is_link_local:
            return f"{ip} is a link-local address (only targets.allow can allow it)"
        if ip.is_multicast or ip.is_unspecified:
            return f"{ip} is not a unicast address"
        if not ip.is_global:
            return None if self.allow_private else (
                f"{ip} is a private or non-public address (targets.allow_private = true allows it)")
        return None

    def check_literal(self, host: str) -> str | None:
        """The refusal of a host that is an IP literal or ``localhost`` (checked when a target is
        configured, for a clear error at once); None for names (checked when connecting)."""
        host = host.strip("[]")
        if host.lower() == "localhost" or host.lower().endswith(".localhost"):
            return self.refusal("127.0.0.1")
        try:
            ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return None
        return self.refusal(host)

