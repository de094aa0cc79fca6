"""Where a webhook may point: a public address, checked after resolving its name.

Staff type a webhook's URL; the worker POSTs to it from inside the deployment. Without a
check, a URL such as ``http://169.254.169.254/...`` or ``http://127.0.0.1:8400/`` makes the
worker talk to the cloud's metadata service or to our own loopback services (SSRF). So a
target is refused unless every address its host resolves to is globally routable; the
check runs when a webhook is made and again on every delivery, and the delivery connects
to the very address that was checked, so a DNS answer that changes in between (rebinding)
cannot redirect it. An administrator may allow named hosts despite their address
(``WEBHOOK_ALLOWED_HOSTS``: an internal police records system, say).

No Flask app needed: callers pass the allow-list (the refusals are lazy texts, read in the
language of whoever reads them). Names are resolved with
``socket.getaddrinfo``, which also turns odd spellings of literal addresses
(``2130706433``, ``0x7f.1``, ``127.1``) into the address the kernel would connect to.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask_babel import lazy_gettext as _l

SCHEMES = {"http": 80, "https": 443}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# NAT64's well-known prefix: a gateway translates 64:ff9b::7f00:1 to 127.0.0.1.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


class TargetRefused(ValueError):
    """The URL may not be posted to; the message says why (shown to staff, translated)."""


class UnresolvedHost(TargetRefused):
    """The host has no address right now: refused when made, retried when delivering."""


@dataclass(frozen=True)
class Target:
    """A checked webhook target: connect to ``address``, speak to ``host`` (Host, SNI)."""

    scheme: str
    host: str
    port: int
    path: str
    address: str


def resolve(host: str, port: int) -> list[str]:
    """Every address ``host`` resolves to (the one place names are looked up)."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise UnresolvedHost(
            _l("The host name %(host)s does not resolve (%(error)s).", host=host, error=str(error))
        ) from error
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers))


def check_target(url: str, allowed_hosts: Iterable[str] = ()) -> Target:
    """The target of ``url`` if it may be posted to; ``TargetRefused`` saying why otherwise.

    Hosts in ``allowed_hosts`` (lower case, as written in URLs) skip the address check but
    are still resolved, so that the delivery connects to the address looked up here.
    """
    scheme, host, port, path = _parts(url)
    addresses = resolve(host, port)
    if not addresses:
        raise UnresolvedHost(_l("The host name %(host)s does not resolve.", host=host))
    if host not in set(allowed_hosts):
        for address in addresses:
            _require_public(host, address)
    return Target(scheme, host, port, path, addresses[0])


def normal_host(host: str) -> str:
    """How a host is compared with the allow-list: lower case, ASCII (IDNA), no final dot."""
    host = host.strip().strip("[]").rstrip(".").lower()
    try:
        return host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as error:
        raise TargetRefused(_l("%(host)s is not a valid host name.", host=host)) from error


def _parts(url: str) -> tuple[str, str, int, str]:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as error:
        raise TargetRefused(_l("The URL is malformed (%(error)s).", error=str(error))) from error
    if parts.scheme not in SCHEMES:
        raise TargetRefused(_l("The URL must start with http:// or https://."))
    if not parts.hostname:
        raise TargetRefused(_l("The URL has no host."))
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return parts.scheme, normal_host(parts.hostname), port or SCHEMES[parts.scheme], path


def _require_public(host: str, address: str) -> None:
    ip = ipaddress.ip_address(address.partition("%")[0])  # drop an IPv6 scope (fe80::1%eth0)
    if not is_public(ip):
        if host == str(ip):
            raise TargetRefused(
                _l(
                    "%(host)s is not a public address (loopback, private, link-local or "
                    "reserved); webhooks may only point to the internet.",
                    host=host,
                )
            )
        raise TargetRefused(
            _l(
                "%(host)s resolves to %(address)s, which is not a public address (loopback, "
                "private, link-local or reserved); webhooks may only point to the internet.",
                host=host,
                address=str(ip),
            )
        )


def is_public(ip: IPAddress) -> bool:
    """Globally routable unicast, including any IPv4 address an IPv6 one carries."""
    if isinstance(ip, ipaddress.IPv6Address):
        if any(not is_public(v4) for v4 in _embedded_ipv4(ip)):
            return False
        if ip.is_site_local:
            return False
    return ip.is_global and not (
        ip.is_multicast
        or ip.is_private
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_reserved
        or ip.is_unspecified
    )


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address stands for: mapped, 6to4, Teredo, NAT64 (RFC 6052)."""
    embedded = [ip.ipv4_mapped, ip.sixtofour, *(ip.teredo or ())]
    if ip in _NAT64:
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return [v4 for v4 in embedded if v4 is not None]
