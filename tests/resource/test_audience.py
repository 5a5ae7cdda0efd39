from __future__ import annotations

import pytest

from auth_mcp.resource.audience import Audience, Resources

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


NOTES = Audience(issuer="https://mcp.example.com", endpoint_path="/mcp/notes", aliases=False)
RESOURCES = Resources([AUDIENCE, NOTES])


def test_a_gateway_upstream_accepts_only_its_own_resource() -> None:
    assert NOTES.accepts("https://mcp.example.com/mcp/notes")
    assert NOTES.accepts("HTTPS://MCP.EXAMPLE.COM/mcp/notes/")
    for other in (
        "https://mcp.example.com",
        "https://mcp.example.com/mcp",
        "https://mcp.example.com/sse",
        "https://mcp.example.com/mcp/tickets",
    ):
        assert not NOTES.accepts(other), other


def test_the_built_in_endpoint_does_not_accept_an_upstream_s_resource() -> None:
    assert not AUDIENCE.accepts("https://mcp.example.com/mcp/notes")


def test_resources_name_the_audience_a_request_asks_for() -> None:
    assert RESOURCES.find(None) is AUDIENCE  # no resource: the built-in endpoint
    assert RESOURCES.find("https://mcp.example.com") is AUDIENCE
    assert RESOURCES.find("https://mcp.example.com/mcp/notes") is NOTES
    assert RESOURCES.find("https://mcp.example.com/mcp/nope") is None
    assert RESOURCES.find("https://elsewhere.example/mcp/notes") is None
