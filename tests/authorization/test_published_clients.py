"""The clients people use, through the metadata documents they publish (shapes copied from the
published documents), served by a fake network: ChatGPT signs in with private_key_jwt and keys at
its jwks_uri; Codex, VS Code and Claude are public clients. No real network is used."""

from __future__ import annotations

import json
import secrets
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from auth_mcp.authorization.cimd import MetadataDocumentClients
from tests.support.clock import FakeClock
from tests.support.oauth import Client, authorize, call_tool, exchange
from tests.support.server import InProcess, in_process

PUBLIC_IP = "93.184.215.14"

CHATGPT_ID = "https://chatgpt.com/oauth/client.json"
CHATGPT_CALLBACK = "https://chatgpt.com/connector_platform_oauth_redirect"
CHATGPT_JWKS = "https://chatgpt.com/oauth/jwks.json"
CHATGPT_DOCUMENT = {
    "client_id": CHATGPT_ID,
    "client_uri": "https://chatgpt.com/",
    "redirect_uris": [CHATGPT_CALLBACK],
    "token_endpoint_auth_method": "private_key_jwt",
    "token_endpoint_auth_methods_supported": ["none", "private_key_jwt"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "client_name": "ChatGPT",
    "logo_uri": "https://persistent.oaistatic.com/sonic/misc/openai-logo.png",
    "token_endpoint_auth_signing_alg": "RS256",
    "jwks_uri": CHATGPT_JWKS,
}
CODEX_ID = "https://chatgpt.com/oauth/codex/client.json"
CODEX_DOCUMENT = {
    "client_id": CODEX_ID,
    "client_name": "Codex",
    "application_type": "native",
    "redirect_uris": ["http://127.0.0.1/callback", "http://localhost/callback"],
    "grant_types": ["authorization_code", "refresh_token"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}
VSCODE_ID = "https://vscode.dev/oauth/client-metadata.json"
VSCODE_DOCUMENT = {
    "application_type": "native",
    "client_id": VSCODE_ID,
    "client_name": "Visual Studio Code",
    "client_uri": "https://vscode.dev/product",
    "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"],
    "response_types": ["code"],
    "redirect_uris": ["https://vscode.dev/redirect", "http://127.0.0.1:33418/"],
    "token_endpoint_auth_method": "none",
}
CLAUDE_ID = "https://claude.ai/oauth/mcp-oauth-client-metadata"
CLAUDE_DOCUMENT = {
    "client_id": CLAUDE_ID,
    "client_name": "Claude",
    "client_uri": "https://claude.ai",
    "redirect_uris": ["https://claude.ai/api/mcp/auth_callback", "https://claude.com/api/mcp/auth_callback"],
    "grant_types": ["authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:jwt-bearer"],
    "response_types": ["code"],
    "token_endpoint_auth_method": "none",
}


class ChatGPTKey:
    """ChatGPT's signing key: the private half signs assertions, the public half is at its jwks_uri."""

    def __init__(self, kid: str = "chatgpt-2026") -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        self.jwk = {**public, "kid": kid, "use": "sig", "alg": "RS256"}

    def assertion(self, env: InProcess, **claims: Any) -> str:
        now = int(env.clock.now())
        body = {"iss": CHATGPT_ID, "sub": CHATGPT_ID, "aud": env.issuer + "/token", "iat": now, "exp": now + 300, "jti": secrets.token_urlsafe(16), **claims}
        return jwt.encode(body, self.private, algorithm="RS256", headers={"kid": self.kid})


class FakeInternet:
    """chatgpt.com, vscode.dev and claude.ai on one public address, serving the given documents."""

    HOSTS = frozenset({"chatgpt.com", "vscode.dev", "claude.ai"})

    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents
        self.requested: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        if host not in self.HOSTS or port != 443:
            raise OSError(f"no such host {host}")
        return [PUBLIC_IP]

    def handler(self, request: httpx.Request) -> httpx.Response:
        assert request.url.host == PUBLIC_IP  # the checked address, never a name
        url = f"https://{request.headers['host']}{request.url.path}"
        self.requested.append(url)
        if url not in self.documents:
            return httpx.Response(404)
        return httpx.Response(200, content=json.dumps(self.documents[url]).encode(), headers={"cache-control": "max-age=600"})

    def fetcher(self, clock: FakeClock) -> MetadataDocumentClients:
        return MetadataDocumentClients(clock=clock, resolver=self.resolve, transport=httpx.MockTransport(self.handler))


def chatgpt_internet(key: ChatGPTKey) -> FakeInternet:
    return FakeInternet({CHATGPT_ID: CHATGPT_DOCUMENT, CHATGPT_JWKS: {"keys": [key.jwk]}})


def _token_form(env: InProcess, code: str, verifier: str, redirect_uri: str) -> dict[str, str]:
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri, "code_verifier": verifier, "resource": env.mcp_url}


async def test_metadata_advertises_private_key_jwt_its_algorithms_and_offline_access(db_url: str) -> None:
    clock = FakeClock()
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": FakeInternet({}).fetcher(clock)}) as env:
        metadata = (await env.http.get("/.well-known/oauth-authorization-server")).json()
    assert metadata["token_endpoint_auth_methods_supported"] == ["none", "client_secret_post", "client_secret_basic", "private_key_jwt"]
    assert "RS256" in metadata["token_endpoint_auth_signing_alg_values_supported"]
    assert not {"none", "HS256"} & set(metadata["token_endpoint_auth_signing_alg_values_supported"])
    assert "offline_access" in metadata["scopes_supported"]
    assert metadata["client_id_metadata_document_supported"] is True
    assert metadata["registration_endpoint"] == env.issuer + "/register"


async def test_chatgpt_signs_in_with_private_key_jwt_refreshes_and_revokes(db_url: str) -> None:
    clock, key = FakeClock(), ChatGPTKey()
    internet = chatgpt_internet(key)
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": internet.fetcher(clock)}) as env:
        chatgpt = Client(client_id=CHATGPT_ID, redirect_uri=CHATGPT_CALLBACK)
        outcome, verifier = await authorize(env, chatgpt, scope="read:user offline_access")
        assertion = key.assertion(env)
        form = {**_token_form(env, outcome["code"], verifier, CHATGPT_CALLBACK), "client_id": CHATGPT_ID}
        proof = {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": assertion}
        response = await env.http.post("/token", data={**form, **proof})
        assert response.status_code == 200, response.text
        tokens = response.json()
        assert tokens["refresh_token"] and tokens["scope"] == "read:user"  # offline_access asks for what we always issue
        whoami = (await call_tool(env, tokens["access_token"], "whoami")).json()["result"]["structuredContent"]
        assert whoami["client_id"] == CHATGPT_ID and whoami["client_name"] == "ChatGPT"
        assert CHATGPT_JWKS in internet.requested

        # The same assertion again is a replay (RFC 7523 §3 item 7).
        refresh = {"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": CHATGPT_ID, "resource": env.mcp_url}
        replayed = await env.http.post("/token", data={**refresh, **proof})
        assert replayed.status_code == 401 and replayed.json()["error"] == "invalid_client"
        assert "already used" in replayed.json()["error_description"]
        # Without an assertion, the document's private_key_jwt is not negotiable.
        unsigned = await env.http.post("/token", data=refresh)
        assert unsigned.status_code == 401 and "private_key_jwt" in unsigned.json()["error_description"]
        # A fresh assertion refreshes; client_id may be left out (RFC 6749 §4.1.3), taken from iss.
        fresh = {**proof, "client_assertion": key.assertion(env)}
        refreshed = await env.http.post("/token", data={**{k: v for k, v in refresh.items() if k != "client_id"}, **fresh})
        assert refreshed.status_code == 200, refreshed.text
        revoked = await env.http.post(
            "/revoke", data={"token": refreshed.json()["refresh_token"], "client_id": CHATGPT_ID, **proof, "client_assertion": key.assertion(env)}
        )
        assert revoked.status_code == 200
        assert (await call_tool(env, refreshed.json()["access_token"], "whoami")).status_code == 401


async def test_an_assertion_signed_by_anyone_but_chatgpt_gets_no_token(db_url: str) -> None:
    clock, key, impostor = FakeClock(), ChatGPTKey(), ChatGPTKey()
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": chatgpt_internet(key).fetcher(clock)}) as env:
        chatgpt = Client(client_id=CHATGPT_ID, redirect_uri=CHATGPT_CALLBACK)
        outcome, verifier = await authorize(env, chatgpt)
        form = {**_token_form(env, outcome["code"], verifier, CHATGPT_CALLBACK), "client_id": CHATGPT_ID}
        forged = {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": impostor.assertion(env)}
        response = await env.http.post("/token", data={**form, **forged})
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
        wrong_audience = {**forged, "client_assertion": key.assertion(env, aud="https://other.example/token")}
        response = await env.http.post("/token", data={**form, **wrong_audience})
        assert response.status_code == 401 and "aud" in response.json()["error_description"]


@pytest.mark.parametrize(
    ("client_id", "document", "redirect_uri", "name"),
    [
        (CODEX_ID, CODEX_DOCUMENT, "http://127.0.0.1:49152/callback", "Codex"),
        (CODEX_ID, CODEX_DOCUMENT, "http://localhost:1455/callback", "Codex"),
        (VSCODE_ID, VSCODE_DOCUMENT, "http://127.0.0.1:33418/", "Visual Studio Code"),
        (VSCODE_ID, VSCODE_DOCUMENT, "https://vscode.dev/redirect", "Visual Studio Code"),
        (CLAUDE_ID, CLAUDE_DOCUMENT, "https://claude.com/api/mcp/auth_callback", "Claude"),
    ],
)
async def test_public_metadata_document_clients_sign_in_as_published(
    db_url: str, client_id: str, document: dict[str, Any], redirect_uri: str, name: str
) -> None:
    clock = FakeClock()
    internet = FakeInternet({client_id: document})
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": internet.fetcher(clock)}) as env:
        client = Client(client_id=client_id, redirect_uri=redirect_uri)
        outcome, verifier = await authorize(env, client)
        assert "code" in outcome, outcome
        response = await exchange(env, client, outcome["code"], verifier)
        assert response.status_code == 200, response.text
        whoami = (await call_tool(env, response.json()["access_token"], "whoami")).json()["result"]["structuredContent"]
        assert whoami["client_name"] == name


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"jwks_uri": None}, "jwks"),
        ({"jwks_uri": "http://chatgpt.com/oauth/jwks.json"}, "jwks_uri"),
        ({"token_endpoint_auth_signing_alg": "HS256"}, "token_endpoint_auth_signing_alg"),
        ({"token_endpoint_auth_method": "tls_client_auth", "token_endpoint_auth_methods_supported": ["tls_client_auth"]}, "not supported"),
    ],
)
async def test_a_private_key_jwt_document_that_cannot_be_verified_is_refused_with_a_reason(
    db_url: str, overrides: dict[str, Any], reason: str
) -> None:
    clock = FakeClock()
    document = {k: v for k, v in {**CHATGPT_DOCUMENT, **overrides}.items() if v is not None}
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": FakeInternet({CHATGPT_ID: document}).fetcher(clock)}) as env:
        response = await env.http.get(
            "/authorize",
            params={"client_id": CHATGPT_ID, "redirect_uri": CHATGPT_CALLBACK, "response_type": "code", "code_challenge": "x" * 43, "code_challenge_method": "S256"},
        )
    assert response.status_code == 400 and "location" not in response.headers
    assert reason in response.text


async def test_a_document_offering_a_choice_gets_the_method_we_support(db_url: str) -> None:
    clock = FakeClock()
    choosy = {**CHATGPT_DOCUMENT, "token_endpoint_auth_method": "tls_client_auth", "jwks_uri": None}
    choosy = {k: v for k, v in choosy.items() if v is not None}
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": FakeInternet({CHATGPT_ID: choosy}).fetcher(clock)}) as env:
        chatgpt = Client(client_id=CHATGPT_ID, redirect_uri=CHATGPT_CALLBACK)
        outcome, verifier = await authorize(env, chatgpt)
        response = await exchange(env, chatgpt, outcome["code"], verifier)
        assert response.status_code == 200, response.text


async def test_registration_and_metadata_documents_can_be_turned_off(db_url: str) -> None:
    clock = FakeClock()
    internet = FakeInternet({CODEX_ID: CODEX_DOCUMENT})
    settings = {"dynamic_registration": False, "client_metadata_documents": False}
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": internet.fetcher(clock)}, **settings) as env:
        metadata = (await env.http.get("/.well-known/oauth-authorization-server")).json()
        assert "registration_endpoint" not in metadata
        assert metadata["client_id_metadata_document_supported"] is False
        assert "private_key_jwt" not in metadata["token_endpoint_auth_methods_supported"]
        assert (await env.http.post("/register", json={"redirect_uris": ["http://127.0.0.1:1/cb"]})).status_code == 404
        response = await env.http.get(
            "/authorize",
            params={"client_id": CODEX_ID, "redirect_uri": "http://127.0.0.1:5/callback", "response_type": "code", "code_challenge": "x" * 43, "code_challenge_method": "S256"},
        )
        assert response.status_code == 400 and internet.requested == []



async def test_a_jwks_uri_that_resolves_inward_is_never_fetched(db_url: str) -> None:
    clock, key = FakeClock(), ChatGPTKey()
    internet = chatgpt_internet(key)
    public_resolve = internet.resolve

    async def resolve(host: str, port: int) -> list[str]:
        return ["10.0.0.5"] if host == "keys.chatgpt.com" else await public_resolve(host, port)

    document = {**CHATGPT_DOCUMENT, "jwks_uri": "https://keys.chatgpt.com/oauth/jwks.json"}
    internet.documents[CHATGPT_ID] = document
    fetcher = MetadataDocumentClients(clock=clock, resolver=resolve, transport=httpx.MockTransport(internet.handler))
    async with in_process(database_url=db_url, clock=clock, create={"metadata_documents": fetcher}) as env:
        chatgpt = Client(client_id=CHATGPT_ID, redirect_uri=CHATGPT_CALLBACK)
        outcome, verifier = await authorize(env, chatgpt)
        form = {**_token_form(env, outcome["code"], verifier, CHATGPT_CALLBACK), "client_id": CHATGPT_ID}
        proof = {"client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer", "client_assertion": key.assertion(env)}
        response = await env.http.post("/token", data={**form, **proof})
    assert response.status_code == 401 and "non-public address" in response.json()["error_description"]
    assert not [url for url in internet.requested if "keys.chatgpt.com" in url]
