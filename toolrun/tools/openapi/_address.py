"""Where a document may send toolrun: never to link-local or cloud metadata addresses by default.

A document picks the URLs its tools call (``servers``, Swagger's ``host``), so
a hostile one could point a tool at ``http://169.254.169.254/`` — the cloud
metadata service that hands out the machine's credentials — and have the
model read them back. :func:`refusal` names such hosts: IPv4 169.254.0.0/16
and IPv6 fe80::/10 (link-local), the metadata services that live elsewhere
(AWS's fd00:ec2::254, Alibaba's 100.100.100.200, Oracle's 192.0.0.192,
Azure's 168.63.129.16) and their names (``metadata.google.internal`` ...),
written any way a resolver would still read them (``2852039166``,
``0xa9fea9fe``, a trailing dot), and inside every IPv6 form that a
translator or tunnel delivers to an IPv4 address: IPv4-mapped and -compatible
(``::ffff:169.254.169.254``), SIIT (``::ffff:0:a9fe:a9fe``), NAT64's
well-known ``64:ff9b::/96`` and local-use ``64:ff9b:1::/48`` (each RFC 6052
prefix length), 6to4 (``2002::/16``) and Teredo (``2001::/32``).

A name can still resolve to such an address (DNS is the attacker's too), so
:class:`GuardedTransport` checks every address a connection would use after
resolving it, and connects to that checked address. Loopback stays allowed:
local APIs and tests live there.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import urllib.request
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote

import anyio
import httpcore
import httpx

#: Names of metadata services (compared without a trailing dot, lower case).
METADATA_HOSTS = frozenset(
    (
        "metadata",
        "metadata.google.internal",
        "metadata.goog",  # Google Cloud
        "instance-data",
        "instance-data.ec2.internal",  # AWS
        "metadata.packet.net",
        "metadata.platformequinix.com",  # Equinix Metal
    )
)
#: Metadata services outside the link-local ranges.
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in (
        "fd00:ec2::254",  # AWS, IPv6
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer
    )
)
ALLOW_HINT = "pass allow_link_local=True to allow it"

_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052 well-known prefix: the IPv4 address is the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215 local use: an operator picks a /48 to /96 in it
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
_SIIT = ipaddress.ip_network("::ffff:0:0:0/96")  # RFC 2765 IPv4-translated: ::ffff:0:a.b.c.d
#: Where RFC 6052 puts the IPv4 address after a NAT64 prefix of each length: (first bit, bit count) runs
#: of the 128-bit address, counted from its most significant bit; bits 64-71 (the "u" octet) never carry it.
_RFC6052_RUNS = {
    48: ((48, 16), (72, 16)),
    56: ((56, 8), (72, 24)),
    64: ((72, 32),),
    96: ((96, 32),),
}
# What glibc's inet_aton reads as an IPv4 address: 1 to 4 parts, decimal, octal (0...) or hex (0x...).
_NUMERIC_HOST = re.compile(r"^(?:0x[0-9a-f]*|[0-9]+)(?:\.(?:0x[0-9a-f]*|[0-9]+)){0,3}$")


def refusal(host: str) -> str | None:
    """Why requests must not go to ``host`` (a URL's host, as httpx gives it), or None."""
    name = unquote(host).strip("[]").lower().rstrip(".")
    if name in METADATA_HOSTS:
        return f"{host} is a cloud metadata service"
    address = _address(name)
    if address is None:
        return None
    return address_refusal(address, host)


def address_refusal(address: ipaddress.IPv4Address | ipaddress.IPv6Address, host: str) -> str | None:
    for candidate in _forms(address):
        shown = host if str(candidate) == host.strip("[]") else f"{host} ({candidate})"
        if candidate in METADATA_ADDRESSES:
            return f"{shown} is a cloud metadata address"
        if candidate.is_link_local:  # 169.254.0.0/16, fe80::/10
            return f"{shown} is a link-local address (where cloud metadata services answer)"
    return None


def _address(name: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(name.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") names no other host
    except ValueError:
        pass
    if _NUMERIC_HOST.match(name):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(name))
        except OSError:
            return None
    return None


def _forms(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> Iterable[Any]:
    """The address, and every IPv4 address an IPv6 one carries: a translator or tunnel on the
    way (NAT64, SIIT, 6to4, Teredo) delivers the packet to that IPv4 address."""
    yield address
    if address.version != 6:
        return
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:  # ::ffff:0:0/96
        yield address.ipv4_mapped
    if address.sixtofour is not None:  # 2002::/16
        yield address.sixtofour
    if address.teredo is not None:  # 2001::/32: (server, client), the client's bits already inverted back
        yield from address.teredo
    value = int(address)
    if address in _NAT64 or address in _SIIT or (address in _IPV4_COMPATIBLE and value > 1):
        yield ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if address in _NAT64_LOCAL:  # the prefix length is the operator's: every length RFC 6052 allows is tried
        yield from (_rfc6052_ipv4(value, length) for length in _RFC6052_RUNS)


def _rfc6052_ipv4(value: int, prefix_length: int) -> ipaddress.IPv4Address:
    """The IPv4 address that RFC 6052 embeds after a NAT64 prefix of ``prefix_length`` bits."""
    ipv4 = 0
    for first, count in _RFC6052_RUNS[prefix_length]:
        ipv4 = (ipv4 << count) | ((value >> (128 - first - count)) & ((1 << count) - 1))
    return ipaddress.IPv4Address(ipv4)


def url_host(url: httpx.URL) -> str:
    """The host as sent (IDNA-encoded); ``url.host`` decodes it and raises for a broken A-label."""
    return url.raw_host.decode("ascii")


def check_url(url: httpx.URL | str, what: str) -> str | None:
    """An error message when ``url`` goes to a refused host, else None."""
    reason = refusal(url_host(httpx.URL(url) if isinstance(url, str) else url))
    return f"{what} {str(url)[:200]!r} is refused: {reason}; {ALLOW_HINT}" if reason else None


# ------------------------------------------------------------------ connecting


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves names itself, refuses when any address is refused, and connects to a checked address."""

    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        reason = refusal(host)
        if reason:
            raise httpcore.ConnectError(f"refused to connect: {reason}")
        if _address(host.lower().rstrip(".")) is not None:
            addresses = [host]
        else:
            addresses = await _resolve(host, port, timeout)
        error: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    address, port, timeout=timeout, local_address=local_address, socket_options=socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc
        raise error or httpcore.ConnectError(f"{host} has no address")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        return await self._inner.connect_unix_socket(path, timeout=timeout, socket_options=socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


async def _resolve(host: str, port: int, timeout: float | None) -> list[str]:  # noqa: ASYNC109
    """The addresses of ``host``, all of them checked; ConnectError if any is refused."""
    try:
        with anyio.fail_after(timeout):
            infos = await resolve(host, port)
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"resolving {host} timed out") from None
    except OSError as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror or exc}") from None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        reason = address_refusal(ipaddress.ip_address(address.split("%", 1)[0]), host)
        if reason:
            raise httpcore.ConnectError(f"refused to connect: {reason}")
    return addresses


async def resolve(host: str, port: int) -> list[Any]:
    """``getaddrinfo`` for TCP (a module function, so that tests can stand in for DNS)."""
    return list(await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM))


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport, whose connections only go to addresses :func:`refusal` allows,
    checked after DNS (so a name that resolves to 169.254.169.254 is refused too).

    Proxies (``HTTP_PROXY`` ...) resolve names themselves: through one, only the URL is checked.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        pool = self._pool  # httpx 0.28: the httpcore pool, whose backend opens every connection
        backend = getattr(pool, "_network_backend", None)
        if backend is None:  # pragma: no cover - a proxy pool, or an httpx that changed its insides
            raise RuntimeError("cannot guard this httpx transport's connections")
        pool._network_backend = _GuardedBackend(backend)


def new_client(*, allow_link_local: bool, **kwargs: Any) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` whose connections are guarded, unless ``allow_link_local``.

    With a proxy in the environment the client uses it, as httpx would (a transport given to
    httpx turns environment proxies off); the URL checks still apply then.
    """
    proxies = urllib.request.getproxies()
    if allow_link_local or any(proxies.get(k) for k in ("http", "https", "all")):
        return httpx.AsyncClient(**kwargs)
    return httpx.AsyncClient(transport=GuardedTransport(), **kwargs)
