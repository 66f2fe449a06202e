"""Where a webhook may be posted, decided once per post. The host is resolved once; every address it resolves to
is checked (loopback, private, link-local, reserved, and the IPv6 forms that carry such an IPv4 address: mapped
::ffff:0:0/96, NAT64 64:ff9b::/96, 6to4 2002::/16, Teredo); and the connection goes to the address that was
checked, through a pinned network backend, so a name that resolves elsewhere a moment later (DNS rebinding)
changes nothing. TLS still checks the certificate against the host name."""

import ipaddress
import socket

import httpcore
import httpx

_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class AddressRefused(Exception):
    pass


def resolve(host: str) -> list[str]:
    """Every address the host resolves to, in the resolver's order; AddressRefused when it resolves to none."""
    try:
        infos = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError, OSError):
        infos = []
    addresses = list(dict.fromkeys(info[4][0].split("%")[0] for info in infos))
    if not addresses:
        raise AddressRefused(f"{host} does not resolve to any address; check the webhook's URL")
    return addresses


def _embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    found = [address.ipv4_mapped, address.sixtofour, *(address.teredo or ())]
    if address in _NAT64:
        found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
    return [a for a in found if a is not None]


def is_internal(text: str) -> bool:
    """Not a public address, or an IPv6 address that carries one that is not."""
    address = ipaddress.ip_address(text)
    if not address.is_global:
        return True
    return address.version == 6 and any(not v4.is_global for v4 in _embedded_ipv4(address))


def internal_address(host: str) -> str | None:
    """The first internal address the host resolves to, else None (also None when it does not resolve: that is
    refused when a post is made, see checked_address)."""
    try:
        return next((a for a in resolve(host) if is_internal(a)), None)
    except AddressRefused:
        return None


def refusal(host: str, address: str) -> str:
    return (
        f"{host} is an internal address ({address}); webhooks go to public addresses only "
        "(an operator can allow internal ones with WEBHOOK_ALLOW_INTERNAL=true)"
    )


def checked_addresses(host: str, *, allow_internal: bool) -> list[str]:
    """The addresses to connect to, in turn: the host resolved once, every address it gave checked."""
    addresses = resolve(host)
    if not allow_internal and (bad := next((a for a in addresses if is_internal(a)), None)):
        raise AddressRefused(refusal(host, bad))
    return addresses


class _PinnedBackend(httpcore.SyncBackend):
    """Connects the checked host to the checked addresses (the first that answers), and nothing else anywhere."""

    def __init__(self, host: str, addresses: list[str]):
        self.host, self.addresses = host, addresses

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):
        if host.strip("[]") != self.host.strip("[]"):
            raise httpcore.ConnectError(f"{host} is not the host that was checked ({self.host})")
        for address in self.addresses[:-1]:
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout):
                continue
        return super().connect_tcp(self.addresses[-1], port, timeout, local_address, socket_options)


def pinned_client(url: str, *, timeout: float, allow_internal: bool) -> httpx.Client:
    """An httpx client that can reach only this URL's host, at the one address checked now."""
    host = httpx.URL(url).host  # as httpcore will name it (an international name in its ASCII form)
    addresses = checked_addresses(host, allow_internal=allow_internal)
    transport = httpx.HTTPTransport()
    # httpx takes no network backend of its own; its connection pool (httpcore) does.
    transport._pool._network_backend = _PinnedBackend(host, addresses)
    return httpx.Client(transport=transport, timeout=timeout, follow_redirects=False)
