"""The order of the ASGI wrappers (SERVER_LAYERS, MCP_ENDPOINT_LAYERS), checked by the reasons
their comments give: each test fails if its two layers are swapped."""

from __future__ import annotations

import logging

import httpx
import pytest

from auth_mcp.app import SERVER_LAYERS
from auth_mcp.app.resource import MCP_ENDPOINT_LAYERS
from tests.support.oauth import call_tool, login
from tests.support.server import in_process
from tests.support.throwaway_postgres import throwaway_postgres

SECRET = "layer-tests-share-this-key-" + "k" * 16


def test_the_layers_are_the_ones_whose_reasons_are_tested_here() -> None:
    assert SERVER_LAYERS == ("proxy_headers", "access_log", "loopback_alias", "outage", "mcp_shortcut")
    assert MCP_ENDPOINT_LAYERS == ("host_origin", "browser_cors", "bearer", "streams")


async def test_host_origin_before_bearer_a_foreign_origin_gets_403_not_401(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        response = await call_tool(env, None, "whoami", origin="https://evil.example")
        assert response.status_code == 403
        assert "www-authenticate" not in response.headers


async def test_browser_cors_before_bearer_a_preflight_needs_no_token(db_url: str) -> None:
    async with in_process(database_url=db_url, allowed_origins="http://localhost:6274") as env:
        response = await env.http.options(
            "/mcp",
            headers={
                "origin": "http://localhost:6274",
                "access-control-request-method": "POST",
                "access-control-request-headers": "authorization, content-type, mcp-protocol-version",
            },
        )
        assert response.status_code == 200
        assert response.headers["access-control-allow-origin"] == "http://localhost:6274"
        assert "authorization" in response.headers["access-control-allow-headers"].lower()
        response = await env.http.post("/mcp", headers={"origin": "http://localhost:6274"})
        assert response.status_code == 401
        assert "www-authenticate" in response.headers["access-control-expose-headers"].lower()


async def test_proxy_headers_before_access_log_the_log_names_the_real_client(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with in_process(database_url=db_url, trusted_proxies="127.0.0.1") as env:
        transport = httpx.ASGITransport(app=env.app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url=env.issuer) as http:
            with caplog.at_level(logging.INFO, logger="auth_mcp.access"):
                await http.get("/healthz", headers={"x-forwarded-for": "203.0.113.7"})
                env.services.log_writer.flush()
        lines = [record.getMessage() for record in caplog.records if record.name == "auth_mcp.access"]
        assert lines and lines[-1].startswith("203.0.113.7 ")


async def test_access_log_outside_the_mcp_shortcut_tool_calls_get_a_request_id_and_a_line(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with in_process(database_url=db_url) as env:
        _, issued = await login(env)
        with caplog.at_level(logging.INFO, logger="auth_mcp.access"):
            response = await call_tool(env, issued.access_token, "whoami")
            env.services.log_writer.flush()
        assert response.status_code == 200
        assert response.headers.get("x-request-id")
        assert any('"POST /mcp"' in record.getMessage() for record in caplog.records if record.name == "auth_mcp.access")


async def test_bearer_before_streams_a_get_without_a_token_is_asked_for_one(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        assert (await env.http.get("/mcp", headers={"accept": "text/event-stream"})).status_code == 401
        _, issued = await login(env)
        response = await env.http.get("/mcp", headers={"authorization": f"Bearer {issued.access_token}"})
        assert response.status_code == 405


async def test_loopback_alias_before_the_mcp_shortcut_and_inside_access_log_a_tool_call_by_the_other_name_is_told_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async with in_process(server_url="http://localhost:8000") as env:
        other = env.client(base_url="http://127.0.0.1:8000")
        with caplog.at_level(logging.INFO, logger="auth_mcp.access"):
            response = await other.post("/mcp", json={})
            env.services.log_writer.flush()
        await other.aclose()
        assert response.status_code == 421 and "use http://localhost:8000/mcp" in response.text
        assert any('"POST /mcp" 421' in record.getMessage() for record in caplog.records if record.name == "auth_mcp.access")


async def test_access_log_outside_outage_a_503_for_an_outage_is_logged_as_503(caplog: pytest.LogCaptureFixture) -> None:
    with throwaway_postgres() as postgres:
        async with in_process(database_url=postgres.url, secret_key=SECRET) as env:
            postgres.stop()
            with caplog.at_level(logging.INFO, logger="auth_mcp.access"):
                response = await env.http.post("/register", json={"redirect_uris": ["http://127.0.0.1:1/cb"]})
                env.services.log_writer.flush()
            assert response.status_code == 503
            assert any(
                '"POST /register" 503' in record.getMessage() for record in caplog.records if record.name == "auth_mcp.access"
            )


async def test_outage_outside_the_mcp_shortcut_tool_calls_get_503_too() -> None:
    with throwaway_postgres() as postgres:
        async with in_process(database_url=postgres.url, secret_key=SECRET) as env:
            _, issued = await login(env)
            postgres.stop()
            env.clock.advance(31)  # past the verification cache: the bearer check reads the database
            response = await call_tool(env, issued.access_token, "whoami")
            assert response.status_code == 503 and response.headers["retry-after"]
