"""Client ID Metadata Documents: a URL as client_id, fetched without opening an SSRF hole."""

from __future__ import annotations

import contextlib
import json
from typing import Any

import httpx
import pytest

from auth_mcp.authorization.cimd import ClientMetadataError, MetadataDocumentClients, is_metadata_document_url
from tests.support.clock import FakeClock
from tests.support.oauth import Client, authorize, authorize_url, call_tool, exchange, pkce
from tests.support.server import in_process

CLIENT_ID = "https://client.example/.well-known/mcp-client.json"
REDIRECT = "http://127.0.0.1:7777/callback"
PUBLIC_IP = "93.184.215.14"


def document(**overrides: Any) -> dict[str, Any]:
    return {
        "client_id": CLIENT_ID,
        "client_name": "Example Desktop",
        "redirect_uris": [REDIRECT],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        **overrides,
    }


class FakeNetwork:
    """DNS answers and an HTTPS origin for the document, with a log of what was fetched."""

    def __init__(self, *, addresses: list[str] | None = None, status: int = 200, body: bytes | None = None, headers: dict[str, str] | None = None) -> None:
        self.addresses = addresses or [PUBLIC_IP]
        self.status = status
        self.body = body if body is not None else json.dumps(document()).encode()
        self.headers = headers or {"cache-control": "max-age=600"}
        self.requests: list[httpx.Request] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        assert host == "client.example" and port == 443
        return self.addresses

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status, content=self.body, headers=self.headers)

    def clients(self, clock: FakeClock) -> MetadataDocumentClients:
        return MetadataDocumentClients(clock=clock, resolver=self.resolve, transport=httpx.MockTransport(self.handler))


async def test_a_valid_document_becomes_a_public_client() -> None:
    network = FakeNetwork()
    client = await network.clients(FakeClock()).get(CLIENT_ID)
    assert client.client_id == CLIENT_ID and client.client_name == "Example Desktop"
    assert client.token_endpoint_auth_method == "none" and client.client_secret is None
    request = network.requests[0]
    # Connected to the address that was checked, for the named host.
    assert request.url.host == PUBLIC_IP and request.headers["host"] == "client.example"
    assert request.extensions["sni_hostname"] == "client.example"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_id": "https://other.example/client.json"}, "not its own URL"),
        ({"client_name": None}, "no client_name"),
        ({"redirect_uris": ["javascript:alert(1)"]}, "not acceptable"),
        ({"redirect_uris": []}, "not acceptable"),
        ({"token_endpoint_auth_method": "client_secret_basic"}, "shared secret"),
        ({"client_secret": "s"}, "shared secret"),
        ({"token_endpoint_auth_method": "private_key_jwt"}, "exactly one of jwks and jwks_uri"),
        ({"token_endpoint_auth_method": "tls_client_auth"}, "not supported"),
        ({"grant_types": ["urn:ietf:params:oauth:grant-type:device_code"]}, "do not include authorization_code"),
    ],
)
async def test_documents_that_break_the_rules_are_refused_with_a_reason(overrides: dict[str, Any], message: str) -> None:
    network = FakeNetwork(body=json.dumps(document(**overrides)).encode())
    with pytest.raises(ClientMetadataError, match=message):
        await network.clients(FakeClock()).get(CLIENT_ID)


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'{"client_id": '])
async def test_a_document_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(ClientMetadataError, match="JSON"):
        await FakeNetwork(body=body).clients(FakeClock()).get(CLIENT_ID)


@pytest.mark.parametrize(
    "address",
    [
        "10.0.0.5", "172.16.3.4", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1", "0.0.0.0", "::1",
        "fe80::1", "fc00::1", "::ffff:127.0.0.1", "224.0.0.1",
        "64:ff9b::a9fe:a9fe", "2002:a00:1::", "::7f00:1", "2001::1",  # IPv6 forms carrying IPv4 (NAT64, 6to4, ...)
    ],
)
async def test_no_request_is_made_to_an_address_that_is_not_public(address: str) -> None:
    # SSRF: the name resolves inward (or to a mix including an inward address).
    network = FakeNetwork(addresses=[PUBLIC_IP, address])
    with pytest.raises(ClientMetadataError, match="non-public"):
        await network.clients(FakeClock()).get(CLIENT_ID)
    assert network.requests == []


async def test_redirects_are_not_followed() -> None:
    network = FakeNetwork(status=302, headers={"location": "http://169.254.169.254/latest/meta-data"})
    with pytest.raises(ClientMetadataError, match="HTTP 302"):
        await network.clients(FakeClock()).get(CLIENT_ID)
    assert len(network.requests) == 1


async def test_large_documents_are_refused() -> None:
    padded = document(software_id="x" * 6000)
    with pytest.raises(ClientMetadataError, match="larger than"):
        await FakeNetwork(body=json.dumps(padded).encode()).clients(FakeClock()).get(CLIENT_ID)


@pytest.mark.parametrize(
    "client_id",
    ["http://client.example/c.json", "https://client.example", "https://client.example/", "https://u:p@client.example/c", "https://client.example/a/../c", "https://client.example/c#f"],
)
def test_only_https_urls_with_a_path_are_metadata_document_client_ids(client_id: str) -> None:
    assert not is_metadata_document_url(client_id)


async def test_documents_are_cached_for_their_freshness_lifetime_and_failures_for_a_minute() -> None:
    clock = FakeClock()
    network = FakeNetwork(headers={"cache-control": "public, max-age=600"})
    clients = network.clients(clock)
    await clients.get(CLIENT_ID)
    await clients.get(CLIENT_ID)
    assert len(network.requests) == 1
    clock.advance(601)
    await clients.get(CLIENT_ID)
    assert len(network.requests) == 2

    broken = FakeNetwork(status=500)
    broken_clients = broken.clients(clock)
    with pytest.raises(ClientMetadataError):
        await broken_clients.get(CLIENT_ID)
    broken.status = 200
    with pytest.raises(ClientMetadataError, match="not retried yet"):
        await broken_clients.get(CLIENT_ID)  # a failing host is not asked again at once
    assert len(broken.requests) == 1
    clock.advance(61)
    await broken_clients.get(CLIENT_ID)
    assert len(broken.requests) == 2


async def test_the_cache_lifetime_is_bounded_both_ways() -> None:
    clock = FakeClock()
    no_store = FakeNetwork(headers={"cache-control": "no-store"})
    clients = no_store.clients(clock)
    await clients.get(CLIENT_ID)
    await clients.get(CLIENT_ID)  # within the one-minute floor
    assert len(no_store.requests) == 1
    clock.advance(61)
    await clients.get(CLIENT_ID)
    assert len(no_store.requests) == 2
    forever = FakeNetwork(headers={"cache-control": "max-age=31536000"})
    clients = forever.clients(clock)
    await clients.get(CLIENT_ID)
    clock.advance(24 * 3600 + 1)
    await clients.get(CLIENT_ID)
    assert len(forever.requests) == 2


async def test_a_document_client_logs_in_and_its_host_is_on_the_consent_page(db_url: str) -> None:
    network = FakeNetwork()
    clock = FakeClock()
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": network.clients(clock)}) as env:
        client = Client(client_id=CLIENT_ID, redirect_uri=REDIRECT)
        pages: list[str] = []
        browser = env.browser()
        browser.on_consent = lambda response: pages.append(response.text)
        outcome, verifier = await authorize(env, client, browser=browser)
        assert "Example Desktop" in pages[0] and "client.example" in pages[0]
        tokens = (await exchange(env, client, outcome["code"], verifier)).json()
        whoami = (await call_tool(env, tokens["access_token"], "whoami")).json()["result"]["structuredContent"]
        assert whoami["client_id"] == CLIENT_ID and whoami["client_name"] == "Example Desktop"


async def test_an_unlisted_redirect_uri_or_a_bad_document_gets_a_page_not_a_redirect(db_url: str) -> None:
    clock = FakeClock()
    network = FakeNetwork()
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": network.clients(clock)}) as env:
        _, challenge = pkce()
        elsewhere = Client(client_id=CLIENT_ID, redirect_uri="http://127.0.0.1:7777/other")
        response = await env.http.get(authorize_url(env, elsewhere, challenge))
        assert response.status_code == 400 and "location" not in response.headers
    clock = FakeClock()
    mismatched = FakeNetwork(body=json.dumps(document(client_id="https://evil.example/c.json")).encode())
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": mismatched.clients(clock)}) as env:
        _, challenge = pkce()
        response = await env.http.get(authorize_url(env, Client(client_id=CLIENT_ID, redirect_uri=REDIRECT), challenge))
        assert response.status_code == 400 and "location" not in response.headers
        assert "not its own URL" in response.text


@pytest.mark.parametrize(
    ("overrides", "headers"),
    [({"token_endpoint_auth_method": []}, None), ({}, {"cache-control": "max-age=60", "age": "abc"})],
)
async def test_hostile_documents_are_refused_or_tolerated_never_a_crash(overrides: dict[str, Any], headers: dict[str, str] | None) -> None:
    network = FakeNetwork(body=json.dumps(document(**overrides)).encode(), headers=headers)
    with contextlib.suppress(ClientMetadataError):
        await network.clients(FakeClock()).get(CLIENT_ID)
