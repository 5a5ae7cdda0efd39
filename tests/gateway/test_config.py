"""The gateway file: what it accepts, and the one sentence each mistake stops start-up with."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from auth_mcp.gateway.config import (
    GatewayConfigError,
    load_gateway_config,
    parse_gateway_config,
)
from tests.support.tls import private_authority


def parse(text: str):
    return parse_gateway_config(text, source="gateway.toml")


def refusal(text: str) -> str:
    with pytest.raises(GatewayConfigError) as raised:
        parse(text)
    return str(raised.value)


def test_a_five_line_file_serves_an_upstream_with_safe_defaults() -> None:
    config = parse('[upstreams.notes]\nurl = "https://notes.example/mcp"\n')
    notes = config.upstreams["notes"]
    assert notes.path == "/mcp/notes"
    assert notes.forward == "jwt"
    assert notes.scopes == ("read:user",)
    assert notes.read_timeout > 0 and notes.max_request_bytes > 0 and notes.max_streams_per_person > 0


def test_every_setting_of_an_upstream_can_be_given() -> None:
    config = parse(
        """
        [upstreams.gh]
        url = "http://127.0.0.1:9000/mcp"
        forward = "github-token"
        scopes = ["read:user", "read:org"]
        connect_timeout = 1.5
        read_timeout = 30
        max_request_bytes = 65536
        max_response_bytes = 1048576
        max_streams_per_person = 4

        [[upstreams.gh.tools]]
        name = "search_*"

        [builtin]
        anything = "for the policy"
        """
    )
    gh = config.upstreams["gh"]
    assert (gh.forward, gh.scopes, gh.connect_timeout, gh.read_timeout) == ("github-token", ("read:user", "read:org"), 1.5, 30)
    assert (gh.max_request_bytes, gh.max_response_bytes, gh.max_streams_per_person) == (65536, 1048576, 4)
    assert gh.tools == ({"name": "search_*"},)
    assert config.builtin == {"anything": "for the policy"}


def test_a_missing_url_is_named_with_its_upstream() -> None:
    assert refusal("[upstreams.notes]\nforward = 'jwt'\n") == "gateway.toml: [upstreams.notes]: url is required"


def test_an_unknown_key_is_named_with_its_upstream() -> None:
    message = refusal("[upstreams.notes]\nurl = 'https://n.example/mcp'\nread_timout = 3\n")
    assert message == "gateway.toml: [upstreams.notes]: unknown key 'read_timout'"


def test_a_url_that_is_not_http_is_refused() -> None:
    message = refusal("[upstreams.notes]\nurl = 'file:///etc/passwd'\n")
    assert message.startswith("gateway.toml: [upstreams.notes]: url: must be an http(s) URL")


def test_a_bad_number_names_the_key() -> None:
    message = refusal("[upstreams.notes]\nurl = 'https://n.example/mcp'\nread_timeout = 0\n")
    assert message.startswith("gateway.toml: [upstreams.notes]: read_timeout:")


def test_an_unknown_scope_is_refused() -> None:
    message = refusal("[upstreams.notes]\nurl = 'https://n.example/mcp'\nscopes = ['repo']\n")
    assert "[upstreams.notes]: scopes:" in message and "repo" in message


def test_a_name_that_is_not_a_url_slug_is_refused() -> None:
    message = refusal("[upstreams.'Notes/../x']\nurl = 'https://n.example/mcp'\n")
    assert "[upstreams.Notes/../x]: the name must be lower-case letters" in message


def test_the_github_token_never_goes_over_plain_http_to_another_host() -> None:
    message = refusal("[upstreams.gh]\nurl = 'http://ghes.example/mcp'\nforward = 'github-token'\n")
    assert message == (
        'gateway.toml: [upstreams.gh]: forward = "github-token" needs an https:// url (or a loopback address), '
        "got 'http://ghes.example/mcp'"
    )


def test_the_github_token_may_go_over_http_to_loopback() -> None:
    config = parse("[upstreams.gh]\nurl = 'http://127.0.0.1:8080/mcp'\nforward = 'github-token'\n")
    assert config.upstreams["gh"].forward == "github-token"


def test_a_file_without_upstreams_is_refused() -> None:
    assert "declares no upstream" in refusal("[builtin]\n")


def test_broken_toml_is_refused_with_the_parser_s_position() -> None:
    assert refusal("[upstreams.notes\n").startswith("gateway.toml is not valid TOML: ")


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(GatewayConfigError, match=r"cannot read .*missing\.toml"):
        load_gateway_config(tmp_path / "missing.toml")


def test_a_ca_file_is_read_beside_the_file_and_must_be_certificates_for_an_https_url(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes(private_authority(tmp_path / "tls").ca.read_bytes())
    config = tmp_path / "gateway.toml"
    config.write_text('[upstreams.ghes]\nurl = "https://127.0.0.1:8443/mcp"\nca_file = "ca.pem"\n')
    assert load_gateway_config(config).upstreams["ghes"].ca_file == str(tmp_path / "ca.pem")
    (tmp_path / "not.pem").write_text("not a certificate")
    for table, sentence in (
        (
            'url = "https://127.0.0.1:8443/mcp"\nca_file = "missing.pem"',
            "ca_file: cannot be read as PEM certificates (No such file or directory)",
        ),
        ('url = "https://127.0.0.1:8443/mcp"\nca_file = "not.pem"', "ca_file: cannot be read as PEM certificates"),
        (
            'url = "http://127.0.0.1:8000/mcp"\nca_file = "ca.pem"',
            "ca_file is for https:// urls, and this url is 'http://127.0.0.1:8000/mcp'",
        ),
    ):
        config.write_text(f"[upstreams.ghes]\n{table}\n")
        with pytest.raises(GatewayConfigError, match=re.escape(f"{config}: [upstreams.ghes]: {sentence}")):
            load_gateway_config(config)
