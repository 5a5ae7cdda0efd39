"""Verification cost against the number of stored tokens: 1,000 against 1,000,000 (PostgreSQL).

For each size, a fresh database holds that many access tokens (one grant; the rows are bulk
copied), then three costs are measured through the real `CachedVerifier` over the real store:
- hot:  verifying a token already in the in-process cache (what every MCP request pays);
- cold: verifying distinct tokens that are not cached (one primary-key lookup each);
- miss: verifying unknown tokens (a lookup that finds nothing).
The target (issue 6): the cost with 1,000,000 tokens within 1.05x of the cost with 1,000.

    uv run python bench/verify_scale.py [--sizes 1000 1000000] [--lookups 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from auth_mcp.clock import SystemClock  # noqa: E402
from auth_mcp.storage.engine import create_engine  # noqa: E402
from auth_mcp.storage.migrate import upgrade  # noqa: E402
from auth_mcp.storage.store import SqlStore  # noqa: E402
from auth_mcp.tokens import new_access_token, token_hash  # noqa: E402
from auth_mcp.verifier import CachedVerifier  # noqa: E402

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/test"
RESULTS = Path(__file__).resolve().parent / "results"
RESOURCE = "http://127.0.0.1:8000/mcp"


async def fill(dsn: str, size: int, sample: int) -> list[str]:
    """Insert `size` access tokens of one grant; return `sample` of their raw values."""
    connection = await asyncpg.connect(dsn)
    now = int(time.time())
    try:
        await connection.execute(
            "INSERT INTO grants (grant_id, client_id, client_name, github_user_id, github_login, scopes, resource, "
            "github_token_enc, github_scopes, created_at, expires_at) "
            "VALUES ('g', 'c', 'bench', 1, 'bench', 'read:user', $1, 'x', 'read:user', $2, $3)",
            RESOURCE,
            now,
            now + 86400,
        )
        known = [new_access_token() for _ in range(sample)]
        rows = [(token_hash(token), "g", "c", "read:user", RESOURCE, now, now + 86400) for token in known]
        batch: list[tuple[object, ...]] = []
        for _ in range(size - sample):
            batch.append((secrets.token_hex(32), "g", "c", "read:user", RESOURCE, now, now + 86400))
            if len(batch) == 100_000:
                await connection.copy_records_to_table("access_tokens", records=batch, columns=COLUMNS)
                batch.clear()
        await connection.copy_records_to_table("access_tokens", records=batch + rows, columns=COLUMNS)
        await connection.execute("ANALYZE access_tokens")
        return known
    finally:
        await connection.close()


COLUMNS = ["token_hash", "grant_id", "client_id", "scopes", "resource", "created_at", "expires_at"]


async def measure(size: int, lookups: int) -> dict[str, float]:
    name = f"auth_mcp_scale_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(ADMIN_DSN)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    engine = create_engine(url)
    try:
        await upgrade(engine)
        started = time.perf_counter()
        known = await fill(f"postgresql://postgres@127.0.0.1:5432/{name}", size, lookups)
        filled = time.perf_counter() - started
        store = SqlStore(engine=engine, clock=SystemClock())
        verifier = CachedVerifier(store=store, clock=SystemClock(), issuer="http://127.0.0.1:8000")
        assert await verifier.verify(known[0]) is not None
        for _ in range(200):  # warm the pool and the caches on both sides
            await verifier.verify(known[0])
        hot = []
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(20_000):
                await verifier.verify(known[0])
            hot.append((time.perf_counter() - t) / 20_000 * 1e6)
        cold = []
        for round_number in range(3):
            fresh = CachedVerifier(store=store, clock=SystemClock(), issuer="http://127.0.0.1:8000")
            t = time.perf_counter()
            for token in known:
                if await fresh.verify(token) is None:
                    raise AssertionError("a stored token did not verify")
            cold.append((time.perf_counter() - t) / len(known) * 1e6)
            del round_number
        miss = []
        for _ in range(3):
            fresh = CachedVerifier(store=store, clock=SystemClock(), issuer="http://127.0.0.1:8000")
            strangers = [new_access_token() for _ in range(lookups)]
            t = time.perf_counter()
            for token in strangers:
                assert await fresh.verify(token) is None
            miss.append((time.perf_counter() - t) / lookups * 1e6)
        return {
            "size": size,
            "fill_seconds": filled,
            "hot_us": statistics.median(hot),
            "cold_us": statistics.median(cold),
            "miss_us": statistics.median(miss),
        }
    finally:
        await engine.dispose()
        admin = await asyncpg.connect(ADMIN_DSN)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--lookups", type=int, default=3_000)
    args = parser.parse_args()
    results = []
    for size in args.sizes:
        result = await measure(size, min(args.lookups, size))
        results.append(result)
        print(
            f"{size:>9} tokens: hot {result['hot_us']:6.2f} us, cold {result['cold_us']:7.1f} us, "
            f"miss {result['miss_us']:7.1f} us (filled in {result['fill_seconds']:.1f} s)",
            flush=True,
        )
    small, large = results[0], results[-1]
    ratios = {kind: large[f"{kind}_us"] / small[f"{kind}_us"] for kind in ("hot", "cold", "miss")}
    print("ratio largest/smallest: " + ", ".join(f"{kind} {ratio:.3f}" for kind, ratio in ratios.items()))
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"verify-scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
