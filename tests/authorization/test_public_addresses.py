"""The address filter of fetches made for strangers: every non-public range refused, by an
explicit list rather than the interpreter's `is_global`; each range through an injected resolver."""

from __future__ import annotations

import ipaddress

import httpx
import pytest

from auth_mcp.authorization.document_fetcher import FetchRefused, PublicDocumentFetcher
from auth_mcp.authorization.public_addresses import (
    DENIED_IPV4,
    DENIED_IPV6,
    is_public_address,
)
from tests.support.clock import FakeClock

URL = "https://client.example/client.json"


def _samples(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> list[str]:
    """The first, a middle and the last address of a block."""
    middle = network.network_address + network.num_addresses // 2
    return [str(network.network_address), str(middle), str(network.broadcast_address)]


IPV4_SAMPLES = [address for network in DENIED_IPV4 for address in _samples(network)]
IPV6_SAMPLES = [address for network in DENIED_IPV6 for address in _samples(network)]
# IPv6 forms that carry an IPv4 address, each carrying one of the denied IPv4 blocks.
CARRIED = [
    form.format(v4=network.network_address, hi=int(network.network_address) >> 16, lo=int(network.network_address) & 0xFFFF)
    for network in DENIED_IPV4
    for form in ("::ffff:{v4}", "64:ff9b::{v4}", "2002:{hi:x}:{lo:x}::1")
]


async def _fetch_with_dns(answer: list[str]) -> tuple[list[httpx.Request], Exception | None]:
    requests: list[httpx.Request] = []

    async def resolve(host: str, port: int) -> list[str]:
        return answer

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(200, content=b"{}")

    fetcher = PublicDocumentFetcher(clock=FakeClock(), resolver=resolve, transport=httpx.MockTransport(handler))
    try:
        await fetcher.fetch(URL, max_bytes=1024)
    except FetchRefused as exc:
        return requests, exc
    finally:
        await fetcher.aclose()
    return requests, None


@pytest.mark.parametrize("address", IPV4_SAMPLES + IPV6_SAMPLES + CARRIED)
async def test_every_special_purpose_range_is_refused_before_any_request(address: str) -> None:
    requests, refused = await _fetch_with_dns(["93.184.215.14", address])
    assert refused is not None and "non-public" in str(refused)
    assert requests == []


@pytest.mark.parametrize(
    "address",
    ["192.0.0.8", "192.0.0.169", "192.0.0.170", "fec0::1", "fec0:1::53", "100.64.0.1", "198.18.0.1", "240.0.0.1"],
)
def test_ranges_some_interpreters_call_global_are_refused(address: str) -> None:
    # Python 3.11.7's is_global says True for 192.0.0.8-192.0.0.169 and fec0::/10.
    assert not is_public_address(address)


@pytest.mark.parametrize(
    "address",
    ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808", "2002:808:808::1"],
)
async def test_public_addresses_and_ipv6_forms_carrying_one_are_fetched(address: str) -> None:
    requests, refused = await _fetch_with_dns([address])
    assert refused is None and len(requests) == 1


@pytest.mark.parametrize("address", ["fe80::1%eth0", "not-an-ip", "", "4000::1", "::2"])
def test_scoped_unparsable_and_unallocated_addresses_are_not_public(address: str) -> None:
    assert not is_public_address(address)
