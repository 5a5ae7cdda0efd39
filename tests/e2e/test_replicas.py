"""Two replicas on one PostgreSQL behind nginx (round robin), the issuer being nginx's URL: any
step of a login and any MCP request may land on either replica."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.browser import Browser
from tests.support.mcp_client import OAuthUser, connect
from tests.support.server import free_port

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"

NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    upstream auth_mcp {{
        server 127.0.0.1:{a};
        server 127.0.0.1:{b};
    }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://auth_mcp;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_buffering off;
        }}
    }}
}}
"""


def _wait(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"{url}: the process exited with {process.returncode}")
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up within 30 seconds")


@contextlib.contextmanager
def deployment(tmp_path: Path, database_url: str) -> Iterator[tuple[str, list[str]]]:
    if not os.access(NGINX, os.X_OK):
        pytest.fail("nginx is not installed (Debian: apt-get install nginx-light); .ci/run installs it")
    port, a, b = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTH_MCP_")},
        "AUTH_MCP_DATABASE_URL": database_url,
        "AUTH_MCP_SECRET_KEY": "replicas-share-this-key-" + "x" * 20,
        "AUTH_MCP_SERVER_URL": issuer,
        "AUTH_MCP_TRUSTED_PROXIES": "127.0.0.1",
        "AUTH_MCP_RATE_LIMIT_PER_MINUTE": "0",
    }
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for replica_port in (a, b):
            log = (tmp_path / f"replica-{replica_port}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [sys.executable, "-m", "auth_mcp", "--port", str(replica_port)],
                    cwd=tmp_path,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
        for replica_port, process in zip((a, b), processes, strict=True):
            _wait(f"http://127.0.0.1:{replica_port}/readyz", process)
        conf = tmp_path / "nginx.conf"
        conf.write_text(NGINX_CONF.format(dir=tmp_path, port=port, a=a, b=b))
        nginx = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(tmp_path)], stderr=subprocess.DEVNULL)
        processes.append(nginx)
        _wait(f"{issuer}/healthz", nginx)
        yield issuer, [f"http://127.0.0.1:{a}", f"http://127.0.0.1:{b}"]
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


async def test_the_whole_flow_across_two_replicas_and_a_revocation_reaches_both(tmp_path: Path, postgres_url: str) -> None:
    with deployment(tmp_path, postgres_url) as (issuer, replicas):
        alice, bob = OAuthUser(browser=Browser(login="alice")), OAuthUser(browser=Browser(login="bob"))
        for user in (alice, bob):
            async with connect(f"{issuer}/mcp", user) as client:
                for _ in range(4):  # round robin: these land on both replicas
                    result = await client.call_tool("get_user_profile", {})
                    assert result.structured_content["login"] == user.browser.login  # type: ignore[index]
        async with httpx.AsyncClient() as http:
            # Both replicas served tool calls, and the login steps were spread over them.
            seen = [(await http.get(f"{replica}/metrics")).text for replica in replicas]
            assert all('route="/mcp"' in metrics for metrics in seen)
            for step in ("/authorize", "/consent", "/github/callback", "/token", "/register"):
                assert any(f'route="{step}"' in metrics for metrics in seen), step
            assert alice.storage.tokens is not None and alice.storage.client_info is not None
            token = alice.storage.tokens.access_token
            call = {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": "whoami",
                    "arguments": {},
                    "_meta": {
                        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                        "io.modelcontextprotocol/clientCapabilities": {},
                    },
                },
            }
            headers = {
                "Authorization": f"Bearer {token}",
                "Accept": "application/json, text/event-stream",
                "MCP-Protocol-Version": "2026-07-28",
                "Mcp-Method": "tools/call",
                "Mcp-Name": "whoami",
            }
            for replica in replicas:  # each replica has the token cached now
                assert (await http.post(f"{replica}/mcp", json=call, headers=headers)).status_code == 200
            revoked = await http.post(
                f"{replicas[0]}/revoke",
                data={"token": alice.storage.tokens.refresh_token, "client_id": alice.storage.client_info.client_id},
            )
            assert revoked.status_code == 200
            started = time.monotonic()
            while (await http.post(f"{replicas[1]}/mcp", json=call, headers=headers)).status_code != 401:
                assert time.monotonic() - started < 1.0, "the other replica still accepts a revoked token"
                await asyncio.sleep(0.05)
            assert (await http.post(f"{replicas[0]}/mcp", json=call, headers=headers)).status_code == 401
            # Bob is untouched.
            assert bob.storage.tokens is not None
            bob_headers = {**headers, "Authorization": f"Bearer {bob.storage.tokens.access_token}"}
            assert (await http.post(f"{issuer}/mcp", json=call, headers=bob_headers)).status_code == 200
