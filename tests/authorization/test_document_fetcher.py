"""Fetches on a stranger's behalf cannot be queued against us: one deadline, bounded slots and
waiters, a per-address limit, failures remembered per host and per address, and host names
checked before any lookup."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from auth_mcp.authorization.document_fetcher import (
    FetchRefused,
    PublicDocumentFetcher,
    check_public_url,
)
from tests.support.clock import FakeClock

PUBLIC = "93.184.215.14"


class SilentHosts:
    """A network where chosen hosts never answer (until released) and others answer at once."""

    def __init__(self, *, silent: set[str], addresses: dict[str, str] | None = None) -> None:
        self.silent = silent
        self.addresses = addresses or {}
        self.release = asyncio.Event()
        self.lookups: list[str] = []
        self.requests: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        return [self.addresses.get(host, PUBLIC)]

    async def handler(self, request: httpx.Request) -> httpx.Response:
        host = request.headers["host"]
        self.requests.append(host)
        if host in self.silent:
            await self.release.wait()
        return httpx.Response(200, content=b'{"ok": true}')

    def fetcher(self, clock: FakeClock, **limits: float) -> PublicDocumentFetcher:
        return PublicDocumentFetcher(
            clock=clock, resolver=self.resolve, transport=httpx.MockTransport(self.handler), **limits  # type: ignore[arg-type]
        )


async def test_a_request_behind_silent_hosts_fails_fast_instead_of_queueing() -> None:
    silent = {f"silent{i}.example" for i in range(40)}
    addresses = {host: f"93.184.{i}.1" for i, host in enumerate(sorted(silent))}
    network = SilentHosts(silent=silent, addresses=addresses)
    fetcher = network.fetcher(FakeClock(), deadline=0.5, slots=4, max_waiting=4)
    loop = asyncio.get_running_loop()
    attackers = [asyncio.create_task(fetcher.fetch(f"https://{host}/c.json", max_bytes=1024)) for host in sorted(silent)]
    await asyncio.sleep(0)  # let them take the slots and the waiting places
    started = loop.time()
    with pytest.raises(FetchRefused) as refused:
        await fetcher.fetch("https://legit.example/c.json", max_bytes=1024)
    assert refused.value.busy and "too many" in str(refused.value)
    assert loop.time() - started < 0.1  # refused at once, not after the others
    results = await asyncio.gather(*attackers, return_exceptions=True)
    assert all(isinstance(result, FetchRefused) for result in results)
    # Only the slots' worth of hosts were ever contacted; the rest were turned away.
    assert len(network.requests) <= 4 + 4
    assert loop.time() - started < 0.5 * 2 + 0.5  # one deadline covers waiting and fetching
    await fetcher.aclose()


async def test_a_silent_host_is_remembered_so_repeats_cost_nothing() -> None:
    clock = FakeClock()
    network = SilentHosts(silent={"slow.example", "alias.example"})
    fetcher = network.fetcher(clock, deadline=0.2)
    with pytest.raises(FetchRefused, match="within"):
        await fetcher.fetch("https://slow.example/a.json", max_bytes=1024)
    for _ in range(5):
        with pytest.raises(FetchRefused, match="recent attempt"):
            await fetcher.fetch("https://slow.example/b.json", max_bytes=1024)
    # Another name for the same silent address is not tried either.
    with pytest.raises(FetchRefused, match="its address"):
        await fetcher.fetch("https://alias.example/c.json", max_bytes=1024)
    assert network.requests == ["slow.example"]
    clock.advance(61)
    network.release.set()
    assert (await fetcher.fetch("https://slow.example/a.json", max_bytes=1024)).body == b'{"ok": true}'
    await fetcher.aclose()


async def test_a_failing_address_is_remembered_for_every_name_that_resolves_to_it() -> None:
    clock = FakeClock()
    network = SilentHosts(silent=set(), addresses={"a.example": "198.51.99.7", "b.example": "198.51.99.7"})

    def refuse(request: httpx.Request) -> httpx.Response:
        network.requests.append(request.headers["host"])
        raise httpx.ConnectError("connection refused")

    fetcher = PublicDocumentFetcher(clock=clock, resolver=network.resolve, transport=httpx.MockTransport(refuse))
    with pytest.raises(FetchRefused, match="ConnectError"):
        await fetcher.fetch("https://a.example/c.json", max_bytes=1024)
    with pytest.raises(FetchRefused, match="its address"):
        await fetcher.fetch("https://b.example/c.json", max_bytes=1024)
    assert network.requests == ["a.example"]
    await fetcher.aclose()


async def test_concurrent_fetches_to_one_address_are_limited() -> None:
    hosts = {f"h{i}.example" for i in range(3)}
    network = SilentHosts(silent=hosts)  # every name resolves to the same address
    fetcher = network.fetcher(FakeClock(), deadline=5, slots=4, per_address=2)
    first = [asyncio.create_task(fetcher.fetch(f"https://h{i}.example/c.json", max_bytes=1024)) for i in range(2)]
    await asyncio.sleep(0.01)
    with pytest.raises(FetchRefused) as refused:
        await fetcher.fetch("https://h2.example/c.json", max_bytes=1024)
    assert refused.value.busy and "address" in str(refused.value)
    network.release.set()
    assert all(result.body for result in await asyncio.gather(*first))
    await fetcher.aclose()


@pytest.mark.parametrize(
    "url",
    [
        "https://a..b/x",
        "https://.a.example/x",
        "https://a.example./x",
        "https://" + "a" * 64 + ".example/x",
        "https://" + ".".join(["abcdefghij"] * 24) + "/x",
        "https://exa\u202emple.com/x",
        "https://bücher.example/x",
        "https://a_b.example/x",
        "https://-a.example/x",
        "https://127.0.0.1/x",
        "https://[::1]/x",
        "https://ex\x00ample.com/x",
        "https://user:pw@a.example/x",
        "http://a.example/x",
        "https://a.example/x#f",
        "https://a.example:99999/x",
    ],
)
async def test_urls_whose_host_would_fail_idna_or_dns_rules_are_refused_before_any_lookup(url: str) -> None:
    network = SilentHosts(silent=set())
    fetcher = network.fetcher(FakeClock())
    with pytest.raises(FetchRefused):
        check_public_url(url)
    with pytest.raises(FetchRefused):
        await fetcher.fetch(url, max_bytes=1024)
    assert network.lookups == []
    await fetcher.aclose()


async def test_a_resolver_that_raises_on_a_strange_name_is_a_refusal_not_a_crash() -> None:
    async def resolve(host: str, port: int) -> list[str]:
        raise UnicodeError("label empty or too long")

    fetcher = PublicDocumentFetcher(clock=FakeClock(), resolver=resolve, transport=httpx.MockTransport(lambda r: httpx.Response(200)))
    with pytest.raises(FetchRefused, match="does not resolve"):
        await fetcher.fetch("https://a.example/x", max_bytes=10)
    await fetcher.aclose()
