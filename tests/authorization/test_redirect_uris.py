from __future__ import annotations

import pytest

from auth_mcp.authorization.redirect_uris import RedirectUriRejected, check_registrable, matches


@pytest.mark.parametrize(
    "uri",
    [
        "https://client.example.com/callback",
        "https://client.example.com:8443/cb?x=1",
        "http://127.0.0.1/callback",
        "http://127.0.0.1:6274/oauth/callback",
        "http://[::1]:3000/cb",
        "http://localhost:6274/oauth/callback",
        "com.example.app:/oauth2redirect",
        "cursor://anysphere.cursor-retrieval/oauth/user-github/callback",
        "vscode://vscode.github-authentication/did-authenticate",
    ],
)
def test_these_redirect_uris_may_be_registered(uri: str) -> None:
    check_registrable(uri)


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("http://client.example.com/callback", "loopback"),
        ("http://127.0.0.1.evil.example/callback", "loopback"),
        ("http://10.0.0.5/callback", "loopback"),
        ("https://client.example.com/cb#fragment", "fragment"),
        ("https://client.example.com/cb#", "fragment"),
        ("javascript:alert(1)", "javascript"),
        ("JavaScript:alert(document.cookie)//", "javascript"),
        ("data:text/html,<script>alert(1)</script>", "data"),
        ("file:///etc/passwd", "file"),
        ("vbscript:msgbox", "vbscript"),
        ("blob:https://client.example.com/uuid", "blob"),
        ("https://user:pass@client.example.com/cb", "credentials"),
        ("https://*.example.com/cb", "wildcard"),
        ("/relative/path", "absolute"),
        ("https://client.example.com/" + "a" * 2100, "limited"),
        ("https://client.example.com/\ncb", "whitespace"),
    ],
)
def test_these_redirect_uris_are_refused_with_a_reason(uri: str, reason: str) -> None:
    with pytest.raises(RedirectUriRejected, match=reason):
        check_registrable(uri)


def test_redirect_uris_match_exactly() -> None:
    registered = ["https://client.example.com/callback"]
    assert matches("https://client.example.com/callback", registered)
    assert matches("https://client.example.com/callback/", registered) is None
    assert matches("https://client.example.com/callback?x=1", registered) is None
    assert matches("https://client.example.com.evil.example/callback", registered) is None
    assert matches("https://CLIENT.example.com/callback", registered) is None


def test_a_loopback_redirect_may_come_back_on_any_port() -> None:
    # RFC 8252 §7.3 (and localhost too, for clients such as Claude Code)
    assert matches("http://127.0.0.1:51004/callback", ["http://127.0.0.1:3000/callback"])
    assert matches("http://127.0.0.1/callback", ["http://127.0.0.1:3000/callback"])
    assert matches("http://[::1]:9999/cb", ["http://[::1]/cb"])
    assert matches("http://localhost:51004/callback", ["http://localhost/callback"])


def test_only_the_port_may_vary_and_only_on_the_loopback_interface() -> None:
    assert matches("http://127.0.0.1:51004/other", ["http://127.0.0.1:3000/callback"]) is None
    assert matches("http://localhost:51004/callback", ["http://127.0.0.1:3000/callback"]) is None
    assert matches("http://127.0.0.1:51004/callback", ["http://localhost:3000/callback"]) is None
    assert matches("https://127.0.0.1:51004/callback", ["https://127.0.0.1:3000/callback"]) is None
    assert matches("http://127.0.0.2:3000/callback", ["http://127.0.0.1:3000/callback"]) is None
    assert matches("http://[::1]:3000/callback", ["http://127.0.0.1:3000/callback"]) is None


def test_a_port_changed_loopback_redirect_may_not_smuggle_credentials() -> None:
    assert matches("http://:secret@127.0.0.1:9/callback", ["http://127.0.0.1:3000/callback"]) is None
    assert matches("http://user@127.0.0.1:9/callback", ["http://127.0.0.1:3000/callback"]) is None
