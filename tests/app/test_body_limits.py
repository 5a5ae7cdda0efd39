"""Every endpoint that reads a request body stops reading at a small bound, before parsing.

Measured on main before the bound: a 256 MB consent form grew the server by 222 MiB. Here the
body is streamed into the real app (its ASGI interface, lifespan entered) and the test counts
the bytes the app pulls: a refusal must come after at most the bound plus one chunk.
"""

from __future__ import annotations

from typing import Any

import pytest

from auth_mcp.app.authorization import CONSENT_BODY_LIMIT, OAUTH_BODY_LIMIT, REGISTRATION_BODY_LIMIT
from auth_mcp.app.github import DEV_GITHUB_BODY_LIMIT
from tests.support.server import InProcess, in_process

CHUNK = 64 * 1024
HUGE = 256 * 1024 * 1024  # what the attack sent


async def stream_post(env: InProcess, path: str, *, total: int, content_type: str, declare_length: bool = False) -> tuple[int, int]:
    """POST `total` bytes to `path` in 64 KiB chunks (chunked unless `declare_length`); returns
    (status, bytes the app read)."""
    headers = [(b"host", b"127.0.0.1:8000"), (b"content-type", content_type.encode())]
    if declare_length:
        headers.append((b"content-length", str(total).encode()))
    scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    read = 0
    statuses: list[int] = []

    async def receive() -> dict[str, Any]:
        nonlocal read
        if read >= total:
            return {"type": "http.disconnect"}
        chunk = min(CHUNK, total - read)
        read += chunk
        body = b"a=" + b"x" * (chunk - 2) if read == chunk else b"x" * chunk
        return {"type": "http.request", "body": body, "more_body": read < total}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    await env.app(scope, receive, send)
    return statuses[0], read


FORM = "application/x-www-form-urlencoded"
ENDPOINTS = [
    ("/consent", FORM, CONSENT_BODY_LIMIT),
    ("/authorize", FORM, OAUTH_BODY_LIMIT),
    ("/token", FORM, OAUTH_BODY_LIMIT),
    ("/revoke", FORM, OAUTH_BODY_LIMIT),
    ("/register", "application/json", REGISTRATION_BODY_LIMIT),
    ("/_dev/github/login/oauth/authorize", FORM, DEV_GITHUB_BODY_LIMIT),
]


@pytest.mark.parametrize(("path", "content_type", "limit"), ENDPOINTS)
async def test_a_huge_body_gets_413_after_reading_at_most_the_bound(db_url: str, path: str, content_type: str, limit: int) -> None:
    async with in_process(database_url=db_url) as env:
        status, read = await stream_post(env, path, total=HUGE, content_type=content_type)
        assert status == 413
        assert read <= limit + CHUNK


@pytest.mark.parametrize(("path", "content_type", "limit"), ENDPOINTS)
async def test_a_declared_huge_length_is_refused_before_reading(db_url: str, path: str, content_type: str, limit: int) -> None:
    async with in_process(database_url=db_url) as env:
        status, read = await stream_post(env, path, total=HUGE, content_type=content_type, declare_length=True)
        assert status == 413 and read == 0


def test_the_consent_form_bound_is_a_few_kilobytes() -> None:
    # The form is three short fields: a request id, a CSRF token and the decision.
    assert CONSENT_BODY_LIMIT <= 4096


async def test_a_consent_form_with_many_fields_or_a_file_part_is_refused(db_url: str) -> None:
    async with in_process(database_url=db_url) as env:
        many = "&".join(f"f{i}=1" for i in range(500))
        response = await env.http.post("/consent", content=many, headers={"content-type": FORM})
        assert response.status_code == 400
        files = {"request": (None, "r"), "csrf": (None, "c"), "decision": (None, "approve"), "upload": ("a.txt", b"x" * 100)}
        response = await env.http.post("/consent", files=files)
        assert response.status_code == 400
