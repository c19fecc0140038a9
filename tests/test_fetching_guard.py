"""The guard against request forgery: internal addresses refused in every written form,
names checked on every record they resolve to, the connection pinned to what was
checked, and `[fetching] allow` the one way in. Names resolve through a table (or the
system's `localhost`): nothing leaves the machine."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from ipaddress import ip_address, ip_network
from pathlib import Path
from types import SimpleNamespace

import aiohttp
import pytest

from bot.fetching import Fetcher, FetchError
from bot.fetching_guard import AddressPolicy, GuardedResolver, Refused
from bot.settings import ConfigError, load_settings
from tests.fetching_server import FEED, FeedServer, TableResolver, feed_server

LOOPBACK = [ip_network("127.0.0.0/8")]


@pytest.fixture
async def server() -> AsyncIterator[FeedServer]:
    async with feed_server() as state:
        yield state


class Connections:
    """Counts the connections and requests a fetcher starts (aiohttp's tracing)."""

    def __init__(self) -> None:
        self.opened = 0
        self.requests = 0
        self.config = aiohttp.TraceConfig()
        self.config.on_connection_create_start.append(self._opened)
        self.config.on_request_start.append(self._requested)

    async def _opened(self, session: object, ctx: SimpleNamespace, params: object) -> None:
        self.opened += 1

    async def _requested(self, session: object, ctx: SimpleNamespace, params: object) -> None:
        self.requests += 1


async def refused(fetcher: Fetcher, location: str) -> FetchError:
    with pytest.raises(FetchError) as caught:
        await fetcher.fetch(location)
    assert caught.value.kind == "blocked", str(caught.value)
    assert caught.value.reason_key == "fetching.internal"
    return caught.value


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fc00::1", "private"),
        ("fd12:3456::1", "private"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("169.254.169.254", "a cloud metadata address"),
        ("fd00:ec2::254", "a cloud metadata address"),
        ("100.64.0.1", "shared (CGNAT)"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "private"),
        ("::ffff:127.0.0.1", "loopback (written as IPv6)"),
        ("::ffff:10.0.0.1", "private (written as IPv6)"),
        ("2002:7f00:1::", "loopback (written as IPv6)"),
        ("64:ff9b::a9fe:a9fe", "a cloud metadata address (written as IPv6)"),
        ("93.184.215.14", None),
        ("2606:4700::1", None),
        ("::ffff:93.184.215.14", None),
    ],
)
def test_the_policy_refuses_internal_ranges_in_every_form(address: str, why: str | None) -> None:
    assert AddressPolicy().refusal(ip_address(address)) == why


def test_allow_lets_in_exactly_the_networks_it_names() -> None:
    policy = AddressPolicy([ip_network("127.0.0.0/8"), ip_network("fd00:1::/32")])
    assert policy.refusal(ip_address("127.0.0.2")) is None
    assert policy.refusal(ip_address("::ffff:127.0.0.1")) is None  # the same address
    assert policy.refusal(ip_address("fd00:1::5")) is None
    assert policy.refusal(ip_address("::1")) == "loopback"  # not in 127.0.0.0/8
    assert policy.refusal(ip_address("10.0.0.1")) == "private"
    assert policy.refusal(ip_address("169.254.169.254")) == "a cloud metadata address"


@pytest.mark.parametrize(
    "location",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/feed",
        "http://[::ffff:127.0.0.1]/feed",
        "http://[fd00:ec2::254]/",
        "http://127.0.0.1/feed",
        "https://10.0.0.8/feed",
        "http://[fe80::1%25eth0]/feed",
    ],
)
async def test_a_literal_address_is_refused_without_any_connection_attempt(
    location: str,
) -> None:
    seen = Connections()
    table = TableResolver({})
    fetcher = Fetcher(resolver=table, trace_configs=[seen.config])
    try:
        await refused(fetcher, location)
    finally:
        await fetcher.close()
    assert (seen.requests, seen.opened, table.asked) == (0, 0, [])


async def test_a_name_resolving_to_loopback_is_refused_unless_allowed(
    server: FeedServer, caplog: pytest.LogCaptureFixture
) -> None:
    seen = Connections()
    plain = Fetcher(trace_configs=[seen.config])  # the system's resolver
    try:
        with caplog.at_level(logging.INFO, logger="bot.fetching_guard"):
            err = await refused(plain, server.url("/feed", host="localhost"))
        assert str(err) == "the address is loopback and not allowed"
        assert "refusing localhost: it resolves to 127.0.0.1, loopback" in caplog.text
    finally:
        await plain.close()
    assert (seen.requests, seen.opened, server.seen) == (0, 0, [])

    allowed = Fetcher(LOOPBACK)
    try:
        got = await allowed.fetch(server.url("/feed", host="localhost"))
    finally:
        await allowed.close()
    assert got.body == FEED and server.seen[0].headers["Host"].startswith("localhost:")


async def test_every_record_of_a_name_is_checked(server: FeedServer) -> None:
    table = TableResolver(
        {
            "intranet.example": [["10.20.30.40"]],
            "mixed.example": [["127.0.0.1", "10.0.0.7"]],
            "six.example": [["127.0.0.1", "fd00::7"]],
            "feeds.example": [["127.0.0.1"]],
        }
    )
    seen = Connections()
    fetcher = Fetcher(LOOPBACK, resolver=table, trace_configs=[seen.config])
    try:
        for name in ("intranet.example", "mixed.example", "six.example"):
            await refused(fetcher, server.url("/feed", host=name))
        assert (seen.opened, server.seen) == (0, [])
        got = await fetcher.fetch(server.url("/feed", host="feeds.example"))
        assert got.body == FEED
        with pytest.raises(FetchError) as unknown:
            await fetcher.fetch(server.url("/feed", host="nowhere.example"))
        assert (unknown.value.kind, unknown.value.reason_key) == ("offline", "fetching.no_name")
    finally:
        await fetcher.close()


async def test_the_connection_goes_to_the_checked_answer(server: FeedServer) -> None:
    # The first answer is allowed; any later one is not (127.0.0.2 is outside the
    # allowed /32; nothing listens there either). One lookup per fetch, pinned.
    table = TableResolver({"rebind.example": [["127.0.0.1"], ["127.0.0.2"]]})
    fetcher = Fetcher([ip_network("127.0.0.1/32")], resolver=table)
    try:
        got = await fetcher.fetch(server.url("/feed", host="rebind.example"))
        assert got.body == FEED and table.asked == ["rebind.example"]
        # The name now points elsewhere: the next fetch checks again and refuses, though
        # a kept-alive connection to the old address is still in the pool.
        err = await refused(fetcher, server.url("/feed", host="rebind.example"))
        assert str(err) == "the address is loopback and not allowed"
    finally:
        await fetcher.close()


async def test_the_connector_resolving_on_its_own_is_checked_too() -> None:
    guard = GuardedResolver(AddressPolicy(), TableResolver({"db.example": [["10.0.0.5"]]}))
    with pytest.raises(Refused) as caught:
        await guard.resolve("db.example", 80)
    assert caught.value.error.kind == "blocked"


async def test_a_redirect_to_a_name_inside_is_refused(server: FeedServer) -> None:
    table = TableResolver({"feeds.example": [["127.0.0.1"]], "admin.example": [["10.0.0.9"]]})
    fetcher = Fetcher(LOOPBACK, resolver=table)
    try:
        start = server.url("/go", host="feeds.example") + "?to=http://admin.example/secret"
        await refused(fetcher, start)
    finally:
        await fetcher.close()
    assert len(server.seen) == 1


def write_config(tmp_path: Path, allow: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'[bot]\ndatabase = "{tmp_path / "bot.db"}"\n[fetching]\nallow = {allow}\n',
        encoding="utf-8",
    )
    return path


def test_the_allow_setting_takes_networks_and_names_a_bad_one_without_its_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    good = load_settings(write_config(tmp_path, '["127.0.0.0/8", "fc00::/7", "10.1.2.3/8"]'))
    assert [str(n) for n in good.fetching.allow] == ["127.0.0.0/8", "fc00::/7", "10.0.0.0/8"]
    assert load_settings(write_config(tmp_path, "[]")).fetching.allow == []

    with pytest.raises(ConfigError) as bad:
        load_settings(write_config(tmp_path, '["127.0.0.0/8", "intranät-hemlig"]'))
    ((key, reason),) = bad.value.problems
    assert key == "fetching.allow.1"
    assert "hemlig" not in str(bad.value) and "127.0.0.0/8 or fc00::/7" in reason

    monkeypatch.setenv("SAMVERKAN_FETCHING__ALLOW", '["192.168.0.0/16"]')
    from_env = load_settings(write_config(tmp_path, "[]"))
    assert [str(n) for n in from_env.fetching.allow] == ["192.168.0.0/16"]
