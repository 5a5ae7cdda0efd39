"""What a stranger can make us store is small and bounded: registrations keep only the fields
we use, `state` and every other free-form field are capped, registrations are slower to mint,
and global caps evict the oldest unused rows, counted in a metric.

Measured on main before the bounds: a registration stored ~16 KB (jwks and other free-form
fields, up to 151 per minute per address); a pending authorization held a 63 KB state."""

from __future__ import annotations

import json

from sqlalchemy import select

from auth_mcp.authorization.provider import MAX_STATE_LENGTH
from auth_mcp.http.rate_limit import default_limits
from auth_mcp.storage import schema
from tests.support.oauth import authorize_url, new_client, pkce, query, register
from tests.support.server import in_process

BULKY = {
    "jwks": {"keys": [{"kty": "RSA", "n": "x" * 6000, "e": "AQAB"}]},
    "contacts": ["a@example.com"] * 50,
    "software_statement": "y" * 2000,
    "client_uri": "https://client.example/" + "z" * 1500,
    "logo_uri": "https://client.example/logo.png",
    "tos_uri": "https://client.example/tos",
    "policy_uri": "https://client.example/policy",
    "software_id": "s" * 500,
    "software_version": "1",
}


async def test_a_registration_stores_only_the_fields_this_server_uses(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await register(env.http, **BULKY)
        assert response.status_code == 201
        body = response.json()
        for field in BULKY:
            assert field not in body  # the answer says what was registered (RFC 7591 §3.2.1)
        async with env.services.store.engine.connect() as conn:
            info = (await conn.execute(select(schema.clients.c.info))).scalar_one()
        assert set(info) <= {
            "client_name", "redirect_uris", "grant_types", "response_types", "token_endpoint_auth_method",
            "client_id", "scope", "client_id_issued_at", "client_secret_expires_at",
        }  # fmt: skip
        assert len(json.dumps(info)) < 1024


async def test_a_state_over_the_bound_is_an_error_at_the_client_not_a_stored_row(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        client = await new_client(env)
        _, challenge = pkce()
        response = await env.http.get(authorize_url(env, client, challenge, state="s" * (MAX_STATE_LENGTH + 1)))
        assert response.status_code == 302 and query(response.headers["location"])["error"] == "invalid_request"
        async with env.services.store.engine.connect() as conn:
            assert (await conn.execute(select(schema.pending_authorizations))).first() is None
        fits = await env.http.get(authorize_url(env, client, challenge, state="s" * MAX_STATE_LENGTH))
        assert fits.headers["location"].startswith(env.issuer + "/consent")


def test_registration_is_limited_to_ten_a_minute_per_address_by_default() -> None:
    assert default_limits(600)["/register"].per_minute == 10


async def test_the_pending_authorization_cap_evicts_the_oldest_and_counts_it(db_url: str) -> None:
    async with in_process(database_url=db_url, max_pending_authorizations=2, metrics_token="m" * 32) as env:
        client = await new_client(env)
        _, challenge = pkce()
        consent_urls = []
        for _ in range(3):
            response = await env.http.get(authorize_url(env, client, challenge))
            consent_urls.append(response.headers["location"])
        assert (await env.http.get(consent_urls[0])).status_code == 400  # the oldest was evicted
        assert (await env.http.get(consent_urls[2])).status_code == 200
        metrics = (await env.http.get("/metrics", headers={"authorization": "Bearer " + "m" * 32})).text
        assert 'auth_mcp_storage_evictions_total{table="pending_authorizations"} 1.0' in metrics


async def test_the_unused_registration_cap_evicts_the_oldest_unused(db_url: str) -> None:
    async with in_process(database_url=db_url, max_unused_clients=2) as env:
        ids = [(await register(env.http)).json()["client_id"] for _ in range(3)]
        stored = {record.client_id for record in await env.services.store.list_clients()}
        assert stored == set(ids[1:])
