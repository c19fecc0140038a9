"""The guard against server-side request forgery: which addresses a fetch may reach.

A feed's address comes from organisers (and its redirects from anyone's server), so a
fetch must not become a way into the bot's own network: loopback, private, link-local,
shared (CGNAT), unspecified, multicast, reserved and cloud metadata addresses are
refused, in every written form (IPv4-mapped, 6to4 and NAT64 IPv6 are judged by the
IPv4 address inside), unless `[fetching] allow` names a network that contains them.

Every address a name resolves to is checked (one bad record refuses the name), and the
connection goes to the checked addresses themselves: `GuardedResolver` hands aiohttp's
connector the very answer that was checked (pinned for the current task), so a DNS
answer that changes between the check and the connect (rebinding) changes nothing.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network

from aiohttp.abc import AbstractResolver, ResolveResult

from bot.fetching_types import FetchError

log = logging.getLogger(__name__)

Address = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network

# Metadata services answer with credentials to whoever asks from inside the cloud.
_METADATA = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200", "192.0.0.192")
)
_SHARED = IPv4Network("100.64.0.0/10")
_NAT64 = IPv6Network("64:ff9b::/96")

# The answer checked for each host, for the connector of the fetch in this task.
_PINS: ContextVar[Mapping[str, list[ResolveResult]] | None] = ContextVar(
    "samverkan_fetch_pins", default=None
)


def host_key(host: str) -> str:
    return host.rstrip(".").lower()


def literal(host: str) -> Address | None:
    """The address written in a URL's host, or None for a name."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def _embedded_v4(ip: Address) -> IPv4Address | None:
    if not isinstance(ip, IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64:
        return IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _range_of(ip: Address) -> str | None:
    """Which refused range `ip` is in (for the log), or None for a public address."""
    if ip in _METADATA:
        return "a cloud metadata address"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if isinstance(ip, IPv4Address) and ip in _SHARED:
        return "shared (CGNAT)"
    if ip.is_private or (isinstance(ip, IPv6Address) and ip.is_site_local):
        return "private"
    if ip.is_reserved:
        return "reserved"
    if not ip.is_global:
        return "not public"
    return None


class AddressPolicy:
    """Refuses internal addresses unless an allowed network contains them."""

    def __init__(self, allow: Iterable[Network] = ()) -> None:
        self.allow: tuple[Network, ...] = tuple(allow)

    def _allowed(self, ip: Address) -> bool:
        return any(ip.version == net.version and ip in net for net in self.allow)

    def refusal(self, ip: Address) -> str | None:
        """Why `ip` may not be fetched from, or None if it may."""
        if self._allowed(ip):
            return None
        inner = _embedded_v4(ip)
        if inner is not None:
            # ::ffff:127.0.0.1 is 127.0.0.1: the same verdict, the same allow.
            why = self.refusal(inner)
            return None if why is None else f"{why} (written as IPv6)"
        return _range_of(ip)

    def check(self, ip: Address) -> None:
        why = self.refusal(ip)
        if why is not None:
            raise FetchError.address(why)


class Refused(OSError):
    """A refusal raised inside aiohttp's connector (which wraps what it gets in its own
    error); the fetcher unwraps `error`."""

    def __init__(self, error: FetchError) -> None:
        super().__init__(str(error))
        self.error = error


class GuardedResolver(AbstractResolver):
    """Resolves with `inner` and checks every address; to aiohttp's connector it returns
    the answer pinned for the current fetch, so that it connects to what was checked."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner
        self._own_inner = inner is None

    def _resolver(self) -> AbstractResolver:
        if self._inner is None:
            # Made on first use: it needs the running loop.
            from aiohttp import DefaultResolver

            self._inner = DefaultResolver()
        return self._inner

    async def lookup(self, host: str, port: int) -> list[ResolveResult]:
        """Every A and AAAA answer for `host`, each checked; raises FetchError."""
        try:
            found = await self._resolver().resolve(host, port, family=socket.AF_UNSPEC)
        except OSError:
            raise FetchError.no_such_name(host) from None
        if not found:
            raise FetchError.no_such_name(host)
        for answer in found:
            ip = ipaddress.ip_address(answer["host"].split("%", 1)[0])
            why = self.policy.refusal(ip)
            if why is not None:
                log.info("refusing %s: it resolves to %s, %s", host, ip, why)
                raise FetchError.address(why)
        return found

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        pins = _PINS.get()
        pinned = None if pins is None else pins.get(host_key(host))
        if pinned is not None:
            return [{**answer, "port": port} for answer in pinned]
        # Not looked up by the fetcher (it always is): check here all the same.
        try:
            return await self.lookup(host, port)
        except FetchError as exc:
            raise Refused(exc) from None

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()
            if self._own_inner:
                self._inner = None  # made afresh if the fetcher is used again


@contextmanager
def pinned(host: str, answer: Sequence[ResolveResult]) -> Iterator[None]:
    """Within, the connector of this task connects `host` to `answer` and nothing else."""
    token = _PINS.set({host_key(host): list(answer)})
    try:
        yield
    finally:
        _PINS.reset(token)
