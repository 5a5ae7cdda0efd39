"""The per-request header mapping the guards share."""

from __future__ import annotations

from auth_mcp.http.headers import remove_header, request_headers


def test_the_first_of_a_repeated_header_wins_and_a_replaced_list_is_read_again() -> None:
    scope = {"headers": [(b"host", b"good.example"), (b"x-a", b"1"), (b"host", b"evil.example")]}
    assert request_headers(scope)[b"host"] == b"good.example"
    assert request_headers(scope) is request_headers(scope)  # built once per request
    scope["headers"] = [(b"host", b"other.example")]  # a layer replaced the headers
    assert request_headers(scope) == {b"host": b"other.example"}


def test_a_removed_header_is_gone_from_the_list_and_the_mapping() -> None:
    scope = {"headers": [(b"authorization", b"Bearer secret"), (b"host", b"h"), (b"authorization", b"Bearer again")]}
    assert request_headers(scope)[b"authorization"] == b"Bearer secret"
    remove_header(scope, b"authorization")
    assert scope["headers"] == [(b"host", b"h")]
    assert request_headers(scope) == {b"host": b"h"} and "secret" not in repr(scope)
