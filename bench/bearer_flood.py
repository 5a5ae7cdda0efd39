"""What a flood of random bearer tokens from one address does to everyone else's latency.

Method: auth-mcp as users run it (`python -m auth_mcp`, dev mode, a fresh SQLite database) once
with the failure budget off (AUTH_MCP_RATE_LIMIT_PER_MINUTE=0) and once with it on (--budget,
default 600 a minute, the default setting).
A person logs in over HTTP (registration, PKCE, consent, the stand-in's login, /token). Their
latency is measured on `get_user_profile` (it reads their grant from the database, then GitHub:
the in-process stand-in, answering 304) and on `whoami` (served from memory), over sequential calls, first on a quiet server, then while one
attacker address sends random tokens on --attackers concurrent connections (for --flood seconds
before the measurement starts, and during it). Output: median and p95 of each phase, the ratio,
and how the attacker's requests were answered.

    uv run python bench/bearer_flood.py [--calls 300] [--attackers 32] [--budget 600] [--flood 5]
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

TOOLS = ("get_user_profile", "whoami")


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


async def latencies(http: httpx.AsyncClient, token: str, calls: int, tool: str) -> list[float]:
    headers, body = mcp_call(tool)
    headers["Authorization"] = f"Bearer {token}"
    measured = []
    for _ in range(calls):
        started = time.perf_counter()
        response = await http.post("/mcp", json=body, headers=headers)
        measured.append(time.perf_counter() - started)
        assert response.status_code == 200 and '"isError":false' in response.text, response.text
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


async def measure(per_minute: int, calls: int, attackers: int, flood_seconds: float) -> None:
    with server(per_minute) as url:
        remote = Remote(url)
        try:
            _, tokens = await login(remote, login="bench")  # type: ignore[arg-type]
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                quiet, loud = {}, {}
                for tool in TOOLS:
                    await latencies(http, tokens.access_token, 50, tool)  # warm-up
                    quiet[tool] = summary(await latencies(http, tokens.access_token, calls, tool))
                stop, answers = asyncio.Event(), Counter[int]()
                flood = [asyncio.create_task(attack(url, stop, answers)) for _ in range(attackers)]
                await asyncio.sleep(flood_seconds)
                for tool in TOOLS:
                    loud[tool] = summary(await latencies(http, tokens.access_token, calls, tool))
                stop.set()
                await asyncio.gather(*flood)
        finally:
            await remote.aclose()
    label = "budget off" if per_minute == 0 else f"budget {per_minute}/min"
    for tool in TOOLS:
        (q50, q95), (l50, l95) = quiet[tool], loud[tool]
        print(
            f"{label:>15} {tool:>16}: quiet median {q50:.2f} ms p95 {q95:.2f} ms | flooded median {l50:.2f} ms "
            f"p95 {l95:.2f} ms | x{l50 / q50:.1f} median, x{l95 / q95:.1f} p95"
        )
    print(f"{label:>15} attacker's answers: {dict(answers)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--attackers", type=int, default=32)
    parser.add_argument("--budget", type=int, default=600, help="failed bearer checks a minute per address")
    parser.add_argument("--flood", type=float, default=5.0, help="seconds of flood before measuring")
    args = parser.parse_args()
    for per_minute in (0, args.budget):
        asyncio.run(measure(per_minute, args.calls, args.attackers, args.flood))


if __name__ == "__main__":
    main()
