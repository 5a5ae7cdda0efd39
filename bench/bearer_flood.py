"""What a flood of random bearer tokens from one address does to everyone else's latency.

Method: auth-mcp as users run it (`python -m auth_mcp`, dev mode, a fresh SQLite database) once
with the failure budget off (AUTH_MCP_RATE_LIMIT_PER_MINUTE=0) and once at the default (600).
A person logs in over HTTP (registration, PKCE, consent, the stand-in's login, /token). Their
`whoami` latency is measured over sequential calls, first on a quiet server, then while one
attacker address sends random tokens on ATTACKERS concurrent connections. Output: median and
p95 of each phase, the ratio, and how the attacker's requests were answered.

    uv run python bench/bearer_flood.py [--calls 300] [--attackers 32]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator

import httpx

from tests.support.oauth import login, mcp_call
from tests.support.remote import Remote
from tests.support.server import free_port


@contextlib.contextmanager
def server(per_minute: int) -> Iterator[str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("AUTH_MCP_")},
        "AUTH_MCP_SERVER_URL": url,
        "AUTH_MCP_LOG_LEVEL": "WARNING",
        "AUTH_MCP_RATE_LIMIT_PER_MINUTE": str(per_minute),
    }
    with tempfile.TemporaryDirectory() as directory:
        process = subprocess.Popen([sys.executable, "-m", "auth_mcp", "--port", str(port)], cwd=directory, env=env)
        try:
            for _ in range(600):
                with contextlib.suppress(httpx.TransportError):
                    if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                        break
                time.sleep(0.1)
            yield url
        finally:
            process.terminate()
            process.wait(timeout=30)


async def latencies(http: httpx.AsyncClient, token: str, calls: int) -> list[float]:
    headers, body = mcp_call("whoami")
    headers["Authorization"] = f"Bearer {token}"
    measured = []
    for _ in range(calls):
        started = time.perf_counter()
        response = await http.post("/mcp", json=body, headers=headers)
        measured.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return measured


async def attack(url: str, stop: asyncio.Event, answers: Counter[int]) -> None:
    headers, body = mcp_call("whoami")
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        while not stop.is_set():
            headers["Authorization"] = "Bearer amcp_at_" + secrets.token_urlsafe(32)
            answers[(await http.post("/mcp", json=body, headers=headers)).status_code] += 1


def summary(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.95) - 1] * 1000


async def measure(per_minute: int, calls: int, attackers: int) -> None:
    with server(per_minute) as url:
        remote = Remote(url)
        try:
            _, tokens = await login(remote, login="bench")  # type: ignore[arg-type]
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                await latencies(http, tokens.access_token, 50)  # warm-up
                quiet = summary(await latencies(http, tokens.access_token, calls))
                stop, answers = asyncio.Event(), Counter[int]()
                flood = [asyncio.create_task(attack(url, stop, answers)) for _ in range(attackers)]
                await asyncio.sleep(1)
                loud = summary(await latencies(http, tokens.access_token, calls))
                stop.set()
                await asyncio.gather(*flood)
        finally:
            await remote.aclose()
    label = "budget off" if per_minute == 0 else f"budget {per_minute}/min"
    print(
        f"{label:>18}: quiet median {quiet[0]:.2f} ms p95 {quiet[1]:.2f} ms | under attack median {loud[0]:.2f} ms "
        f"p95 {loud[1]:.2f} ms | x{loud[0] / quiet[0]:.1f} median, x{loud[1] / quiet[1]:.1f} p95 | attacker got {dict(answers)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--attackers", type=int, default=32)
    args = parser.parse_args()
    for per_minute in (0, 600):
        asyncio.run(measure(per_minute, args.calls, args.attackers))


if __name__ == "__main__":
    main()
