from __future__ import annotations

import pytest

from auth_mcp.resource.audience import Audience

AUDIENCE = Audience(issuer="https://mcp.example.com", endpoint_path="/mcp")


def test_the_canonical_resource_is_the_mcp_endpoint() -> None:
    assert AUDIENCE.canonical == "https://mcp.example.com/mcp"


@pytest.mark.parametrize(
    "resource",
    [
        None,
        "https://mcp.example.com/mcp",
        "https://mcp.example.com/mcp/",
        "HTTPS://MCP.EXAMPLE.COM/mcp",
        "https://mcp.example.com:443/mcp",
        "https://mcp.example.com",
        "https://mcp.example.com/sse",
    ],
)
def test_spellings_of_this_server_are_accepted(resource: str | None) -> None:
    assert AUDIENCE.accepts(resource)


@pytest.mark.parametrize(
    "resource",
    [
        "https://other.example.com/mcp",
        "https://mcp.example.com/other",
        "https://mcp.example.com/MCP",
        "http://mcp.example.com/mcp",
        "https://mcp.example.com:8443/mcp",
        "https://mcp.example.com/mcp#fragment",
        "https://api.github.com",
        "mcp.example.com/mcp",
        "",
    ],
)
def test_other_resources_are_refused(resource: str) -> None:
    assert not AUDIENCE.accepts(resource)
