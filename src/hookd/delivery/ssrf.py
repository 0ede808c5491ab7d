"""The SSRF guard: which URLs endpoints may have, and which addresses hookd may connect to.

By default only globally routable unicast addresses are allowed: loopback, private, link-local
(which includes cloud metadata at 169.254.169.254), CGNAT, multicast, reserved and unspecified
addresses are refused. Operators allow-list networks (tests and local development allow
loopback). The address is checked after resolution, on the address actually connected to, so a
DNS answer that changes between checks (rebinding) cannot slip through.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from hookd.domain import errors
from hookd.domain.errors import Problem

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

MAX_URL_LENGTH = 2048


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    allowed: tuple[IPNetwork, ...] = ()

    @classmethod
    def allowing(cls, networks: Iterable[str | IPNetwork]) -> AddressPolicy:
        return cls(tuple(ipaddress.ip_network(n, strict=False) for n in networks))

    def is_allowed(self, address: IPAddress) -> bool:
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in self.allowed if net.version == address.version):
            return True
        return address.is_global and not address.is_multicast

    def check(self, address: IPAddress) -> None:
        if not self.is_allowed(address):
            raise errors.DestinationBlocked(
                f"refusing to connect to {address}: not a public address "
                "(allow it with HOOKD_ALLOW_PRIVATE_NETWORKS)"
            )


def validate_url(url: str, *, path: str = "url") -> str:
    """Check an endpoint URL's shape (http/https, a host, no credentials); returns it unchanged."""
    if len(url) > MAX_URL_LENGTH:
        raise errors.InvalidURL(
            "URL too long", [Problem(path, f"at most {MAX_URL_LENGTH} characters")]
        )
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise errors.InvalidURL("malformed URL", [Problem(path, str(exc))]) from None
    problem: str | None = None
    if parts.scheme not in ("http", "https"):
        problem = f"scheme must be http or https, not {parts.scheme or 'missing'!r}"
    elif not parts.hostname:
        problem = "the URL has no host"
    elif parts.username is not None or parts.password is not None:
        problem = "credentials in the URL are not allowed; send them as a custom header"
    elif port == 0:
        problem = "port 0 is not a valid destination"
    elif any(c.isspace() for c in url):
        problem = "the URL contains white space"
    if problem is not None:
        raise errors.InvalidURL(f"invalid endpoint URL: {problem}", [Problem(path, problem)])
    return url


def literal_address(host: str) -> IPAddress | None:
    """The address when `host` is an IP literal (brackets allowed), else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
