"""Where webhooks may go: public addresses over HTTPS, checked when the connection is made.

A subscription names any URL, so without a check a merchant (or whoever holds its key) could make
the notifier POST to 127.0.0.1, the cloud metadata service at 169.254.169.254 or the internal
network. The transport here resolves the host itself, refuses the request when any of its addresses
is loopback, link-local, private, shared (CGNAT), unique-local, multicast, reserved, unspecified,
IPv4-mapped or NAT64, and connects to the address it checked (the URL's host is replaced by that
address; the Host header and the TLS server name stay the host's, so certificates are verified
against it). A second DNS answer cannot switch the connection to another address (DNS rebinding).
Redirects are never followed: a 3xx is the endpoint's answer.

Local receivers (the demo's, tests') are reached only through an explicit allow-list of networks
(``PARCELSTREAM_NOTIFIER_EGRESS_ALLOW``); plain ``http://`` is allowed only to those.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: Networks refused on top of what ``ipaddress`` calls not global, each with the word shown in reasons.
_REFUSED: Final[tuple[tuple[IPNetwork, str], ...]] = (
    (ipaddress.ip_network("100.64.0.0/10"), "shared (CGNAT)"),
    (ipaddress.ip_network("64:ff9b::/96"), "NAT64"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "NAT64"),
    (ipaddress.ip_network("::ffff:0:0/96"), "IPv4-mapped"),
    (ipaddress.ip_network("fc00::/7"), "unique-local"),
    (ipaddress.ip_network("2002::/16"), "6to4"),
)


class EgressRefusedError(httpx.TransportError):
    """The webhook's URL or address is not allowed; the message names the kind, never the address."""


def refusal(address: IPAddress) -> str | None:
    """Why ``address`` may not be reached by default, or None for a public address."""
    for network, kind in _REFUSED:
        if address in network:
            return f"{kind} address"
    for kind in ("unspecified", "loopback", "link_local", "multicast", "private", "reserved"):
        if getattr(address, f"is_{kind}"):
            return f"{kind.replace('_', '-')} address"
    if not address.is_global:
        return "non-public address"
    return None


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """``127.0.0.1/32,::1`` → networks; raises ValueError naming the bad entry."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (e.g. 127.0.0.1/32)") from None
    return tuple(networks)


@dataclass(frozen=True)
class EgressPolicy:
    """Which addresses and schemes webhooks may use: public HTTPS, plus the ``allowed`` networks."""

    allowed: tuple[IPNetwork, ...] = ()

    def is_allowed(self, address: IPAddress) -> bool:
        return any(address in network for network in self.allowed)

    def check(self, scheme: str, addresses: Iterable[IPAddress]) -> str | None:
        """None when the request may go, else why not (no address in the text)."""
        addresses = list(addresses)
        if not addresses:
            return "the host has no address"
        if all(self.is_allowed(address) for address in addresses):
            return None  # an explicitly allowed local receiver, http or https
        if scheme != "https":
            return "plain http:// is allowed only to PARCELSTREAM_NOTIFIER_EGRESS_ALLOW networks; use https://"
        for address in addresses:
            reason = None if self.is_allowed(address) else refusal(address)
            if reason is not None:
                return f"the host resolves to a {reason}"
        return None


async def resolve(host: str, port: int) -> list[IPAddress]:
    """Every address of ``host`` (a literal is its own address)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    # Scope ids (fe80::1%eth0) are cut: the address itself decides.
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


class PinnedTransport(httpx.AsyncBaseTransport):
    """Resolve, check, and connect to the checked address (see the module's docstring)."""

    def __init__(self, policy: EgressPolicy, inner: httpx.AsyncBaseTransport | None = None) -> None:
        self.policy = policy
        self.inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise EgressRefusedError(f"scheme {url.scheme!r} is not allowed", request=request)
        host = url.host
        port = url.port or (443 if url.scheme == "https" else 80)
        connect_timeout = request.extensions.get("timeout", {}).get("connect")
        try:
            addresses = await asyncio.wait_for(resolve(host, port), connect_timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout("name resolution timed out", request=request) from None
        except OSError as error:
            raise httpx.ConnectError(f"name resolution failed ({type(error).__name__})", request=request) from None
        reason = self.policy.check(url.scheme, addresses)
        if reason is not None:
            raise EgressRefusedError(f"egress refused: {reason}", request=request)
        if _is_literal(host):
            return await self.inner.handle_async_request(request)
        extensions = dict(request.extensions)
        if url.scheme == "https":
            extensions["sni_hostname"] = host  # TLS name and certificate check stay the host's
        # Each checked address in turn (as a client's happy eyeballs would), never a fresh lookup.
        for number, address in enumerate(addresses, start=1):
            pinned = httpx.Request(
                request.method,
                url.copy_with(host=str(address)),
                headers=request.headers,  # Host: the original host
                stream=request.stream,
                extensions=extensions,
            )
            try:
                return await self.inner.handle_async_request(pinned)
            except httpx.ConnectError:
                if number == len(addresses):
                    raise
        raise AssertionError("unreachable: check() refuses a host without addresses")

    async def aclose(self) -> None:
        await self.inner.aclose()


def _is_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def egress_client(policy: EgressPolicy, timeout: float) -> httpx.AsyncClient:
    """The notifier's webhook client: pinned, checked addresses and no redirects."""
    return httpx.AsyncClient(transport=PinnedTransport(policy), timeout=httpx.Timeout(timeout), follow_redirects=False)
