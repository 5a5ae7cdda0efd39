"""Adding query parameters to URLs (urls.py)."""

from __future__ import annotations

from auth_mcp.urls import with_query


def test_the_urls_own_parameters_are_kept_blank_ones_included() -> None:
    assert with_query("http://127.0.0.1:3000/cb?tenant=&x=1", code="abc") == "http://127.0.0.1:3000/cb?tenant=&x=1&code=abc"


def test_a_named_parameter_replaces_the_urls_own() -> None:
    assert with_query("https://app.example/cb?iss=forged&a=1", iss="https://as.example") == (
        "https://app.example/cb?a=1&iss=https%3A%2F%2Fas.example"
    )


def test_none_adds_nothing_and_an_empty_string_is_a_value() -> None:
    assert with_query("cursor://cb", state=None, code="c") == "cursor://cb?code=c"
    assert with_query("cursor://cb", state="") == "cursor://cb?state="
