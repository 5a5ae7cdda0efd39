"""Two (or more) auth-mcp replicas on one PostgreSQL behind nginx with round-robin balancing,
as real processes: for end-to-end tests and the soak benchmark."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.server import free_port
from tests.support.tooling import install_missing_tooling

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

METRICS_TOKEN = "replicas-metrics-scrape-token"


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


@dataclass
class Deployment:
    issuer: str  # nginx's URL: the public base URL of the deployment
    replicas: list[str]  # each replica's own URL, bypassing nginx
    pids: list[int]  # the replicas' process ids


class NginxMissing(RuntimeError):
    pass


@contextlib.contextmanager
def deployment(tmp_path: Path, database_url: str, **extra_env: str) -> Iterator[Deployment]:
    if not os.access(NGINX, os.X_OK):
        outcome = install_missing_tooling()
        if not os.access(NGINX, os.X_OK):
            raise NginxMissing(f"nginx is not installed (Debian: apt-get install nginx-light): {outcome}")
    port, a, b = free_port(), free_port(), free_port()
    issuer = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTH_MCP_")},
        "AUTH_MCP_DATABASE_URL": database_url,
        "AUTH_MCP_SECRET_KEY": "replicas-share-this-key-" + "x" * 20,
        "AUTH_MCP_SERVER_URL": issuer,
        "AUTH_MCP_TRUSTED_PROXIES": "127.0.0.1",
        "AUTH_MCP_RATE_LIMIT_PER_MINUTE": "0",
        "AUTH_MCP_METRICS_TOKEN": METRICS_TOKEN,
        **extra_env,
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
        yield Deployment(issuer, [f"http://127.0.0.1:{a}", f"http://127.0.0.1:{b}"], [p.pid for p in processes[:2]])
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


