"""Soak: two replicas on PostgreSQL behind nginx under a mixed load for N minutes.

Virtual users, each with its own registered client, repeat: log in (the whole browser flow
through nginx: /authorize, consent, the GitHub stand-in, the callback, /token), call tools
(`whoami`, `get_user_profile`) with the stateless 2026-07-28 POST, refresh, call again, and every
third round revoke and check that the revoked token is refused by a replica directly. Every
response is checked; anything unexpected counts as an error. The replicas' resident memory is
sampled every 10 s. The run passes with zero errors and flat memory (the median of the last
two minutes within 10 % of the median of the second and third minutes, after warm-up).

    uv run python bench/soak.py --minutes 10 --users 8

Needs nginx (apt-get install nginx-light) and PostgreSQL on 127.0.0.1:5432 (trust auth).
Only loopback addresses are used; the run stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg
import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.browser import Browser  # noqa: E402
from tests.support.deployment import deployment  # noqa: E402
from tests.support.oauth import mcp_call, pkce, query  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
RESULTS = Path(__file__).resolve().parent / "results"


class Counters:
    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self.errors: list[str] = []

    def ok(self, what: str) -> None:
        self.counts[what] = self.counts.get(what, 0) + 1

    def error(self, what: str) -> None:
        if len(self.errors) < 50:
            self.errors.append(what)
        self.counts["errors"] = self.counts.get("errors", 0) + 1


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def user(issuer: str, replicas: list[str], number: int, deadline: float, counters: Counters) -> None:
    redirect = f"http://127.0.0.1:{40000 + number}/callback"
    async with httpx.AsyncClient(base_url=issuer, timeout=30) as http:
        registered = await http.post(
            "/register",
            json={"client_name": f"soak {number}", "redirect_uris": [redirect], "token_endpoint_auth_method": "none"},
        )
        if registered.status_code != 201:
            counters.error(f"register {registered.status_code}")
            return
        client_id = registered.json()["client_id"]
        round_number = 0
        while time.monotonic() < deadline:
            round_number += 1
            browser = Browser(login=f"soak-user-{number}")
            try:
                verifier, challenge = pkce()
                state = secrets.token_urlsafe(16)
                params = {
                    "response_type": "code", "client_id": client_id, "redirect_uri": redirect, "state": state,
                    "code_challenge": challenge, "code_challenge_method": "S256", "resource": f"{issuer}/mcp",
                }  # fmt: skip
                final = await browser.go(f"{issuer}/authorize?{httpx.QueryParams(params)}", until=redirect)
                answer = query(final)
                if answer.get("state") != state or "code" not in answer or answer.get("iss") != issuer:
                    counters.error(f"login {answer}")
                    continue
                token = await http.post("/token", data={
                    "grant_type": "authorization_code", "code": answer["code"], "redirect_uri": redirect,
                    "client_id": client_id, "code_verifier": verifier, "resource": f"{issuer}/mcp",
                })  # fmt: skip
                if token.status_code != 200:
                    counters.error(f"token {token.status_code}")
                    continue
                counters.ok("logins")
                tokens = token.json()
                for tool in ("whoami", "get_user_profile", "whoami"):
                    await call(http, tokens["access_token"], tool, f"soak-user-{number}", counters)
                refreshed = await http.post("/token", data={
                    "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": client_id,
                })  # fmt: skip
                if refreshed.status_code != 200:
                    counters.error(f"refresh {refreshed.status_code}")
                    continue
                counters.ok("refreshes")
                tokens = refreshed.json()
                await call(http, tokens["access_token"], "whoami", f"soak-user-{number}", counters)
                if round_number % 3 == 0:
                    revoked = await http.post("/revoke", data={"token": tokens["refresh_token"], "client_id": client_id})
                    if revoked.status_code != 200:
                        counters.error(f"revoke {revoked.status_code}")
                        continue
                    counters.ok("revocations")
                    await asyncio.sleep(1.0)  # the documented bound for other replicas
                    for replica in replicas:
                        headers, body = mcp_call("whoami")
                        refused = await http.post(
                            f"{replica}/mcp", json=body, headers={**headers, "Authorization": f"Bearer {tokens['access_token']}"}
                        )
                        if refused.status_code != 401:
                            counters.error(f"revoked token answered {refused.status_code} on {replica}")
            except Exception as exc:  # noqa: BLE001 - a soak counts every failure and carries on
                counters.error(f"{type(exc).__name__}: {exc}"[:300])
            finally:
                await browser.aclose()


async def call(http: httpx.AsyncClient, token: str, tool: str, login: str, counters: Counters) -> None:
    headers, body = mcp_call(tool)
    response = await http.post("/mcp", json=body, headers={**headers, "Authorization": f"Bearer {token}"})
    result = response.json().get("result", {}) if response.status_code == 200 else {}
    if response.status_code != 200 or result.get("isError") or result.get("structuredContent", {}).get("login") != login:
        counters.error(f"{tool} {response.status_code} {response.text[:200]}")
        return
    counters.ok("tool_calls")


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=8)
    args = parser.parse_args()
    if not (0.1 <= args.minutes <= 60 and 1 <= args.users <= 64):
        sys.exit("--minutes must be 0.1..60 and --users 1..64")
    name = f"auth_mcp_soak_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    samples: list[tuple[float, list[int]]] = []
    counters = Counters()
    started = time.monotonic()
    try:
        with tempfile.TemporaryDirectory(prefix="auth-mcp-soak-") as tmp, deployment(
            Path(tmp), f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}", AUTH_MCP_LOG_LEVEL="WARNING"
        ) as deployed:
            deadline = time.monotonic() + args.minutes * 60

            async def sample() -> None:
                while time.monotonic() < deadline:
                    samples.append((time.monotonic() - started, [rss_kib(pid) for pid in deployed.pids]))
                    await asyncio.sleep(10)

            sampler = asyncio.create_task(sample())
            await asyncio.gather(*(user(deployed.issuer, deployed.replicas, n, deadline, counters) for n in range(args.users)))
            sampler.cancel()
            samples.append((time.monotonic() - started, [rss_kib(pid) for pid in deployed.pids]))
    finally:
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
    elapsed = time.monotonic() - started
    totals = [sum(rss) for _, rss in samples]
    early = [sum(rss) for t, rss in samples if 60 <= t < 180] or totals[: max(1, len(totals) // 4)]
    late = [sum(rss) for t, rss in samples if t >= elapsed - 120] or totals[-max(1, len(totals) // 4) :]
    growth = statistics.median(late) / statistics.median(early) - 1
    flat = growth < 0.10
    summary: dict[str, Any] = {
        "minutes": args.minutes,
        "users": args.users,
        "counts": counters.counts,
        "errors": counters.errors,
        "rss_kib_samples": samples,
        "memory_growth": growth,
        "passed": not counters.errors and flat,
    }
    print(json.dumps({k: v for k, v in summary.items() if k != "rss_kib_samples"}, indent=2))
    print(f"replica RSS (KiB, both): first {totals[0]}, early median {statistics.median(early):.0f}, "
          f"late median {statistics.median(late):.0f}, max {max(totals)}; growth {growth:+.1%}")  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(summary, indent=2) + "\n")
    print(f"wrote {out}")
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
