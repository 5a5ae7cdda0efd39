"""Verification cost against the number of stored tokens: 1,000 against 1,000,000 (PostgreSQL).

For each size, a fresh database holds that many access tokens (one grant; the rows are bulk
copied). Then, in rounds interleaved across the sizes (so drift on the machine hits each size
alike), three costs are measured through the real `CachedVerifier` over the real store:
- hot:  verifying a token already in the in-process cache (what every MCP request pays);
- cold: verifying distinct tokens that are not cached (one primary-key lookup each);
- miss: verifying unknown tokens (a lookup that finds nothing).
The figure is the median over the rounds. The target (issue 6): the cost with 1,000,000 tokens
within 1.05x of the cost with 1,000.

    uv run python bench/verify_scale.py [--sizes 1000 1000000] [--lookups 1000] [--rounds 7]
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
from auth_mcp.resource.verifier import CachedVerifier  # noqa: E402
from auth_mcp.storage.engine import create_engine  # noqa: E402
from auth_mcp.storage.migrate import upgrade  # noqa: E402
from auth_mcp.storage.store import SqlStore  # noqa: E402
from auth_mcp.tokens import new_access_token, token_hash  # noqa: E402

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
        # The steady state of a long-running deployment: vacuumed and analysed. Left to itself,
        # autovacuum would process the fresh million rows in the middle of the measurement.
        await connection.execute("VACUUM (ANALYZE) access_tokens")
        return known
    finally:
        await connection.close()


COLUMNS = ["token_hash", "grant_id", "client_id", "scopes", "resource", "created_at", "expires_at"]


class Database:
    """One filled database and a store over it, for the whole run."""

    def __init__(self, size: int, lookups: int) -> None:
        self.size, self.lookups = size, lookups
        self.name = f"auth_mcp_scale_{secrets.token_hex(4)}"
        self.known: list[str] = []
        self.fill_seconds = 0.0
        self.engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:5432/{self.name}")
        self.store = SqlStore(engine=self.engine, clock=SystemClock())

    async def create(self) -> None:
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'CREATE DATABASE "{self.name}"')
        finally:
            await admin.close()
        await upgrade(self.engine)
        started = time.perf_counter()
        self.known = await fill(f"postgresql://postgres@127.0.0.1:5432/{self.name}", self.size, self.lookups)
        self.fill_seconds = time.perf_counter() - started

    async def drop(self) -> None:
        await self.engine.dispose()
        admin = await asyncpg.connect(ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await admin.close()

    def verifier(self) -> CachedVerifier:
        return CachedVerifier(store=self.store, clock=SystemClock(), issuer="http://127.0.0.1:8000")


async def one_round(db: Database) -> dict[str, float]:
    """hot, cold and miss once each, in microseconds per verification."""
    verifier = db.verifier()
    if await verifier.verify(db.known[0]) is None:
        raise AssertionError("a stored token did not verify")
    t = time.perf_counter()
    for _ in range(20_000):
        await verifier.verify(db.known[0])
    hot = (time.perf_counter() - t) / 20_000 * 1e6
    fresh = db.verifier()
    t = time.perf_counter()
    for token in db.known:
        if await fresh.verify(token) is None:
            raise AssertionError("a stored token did not verify")
    cold = (time.perf_counter() - t) / len(db.known) * 1e6
    fresh = db.verifier()
    strangers = [new_access_token() for _ in range(db.lookups)]
    t = time.perf_counter()
    for token in strangers:
        if await fresh.verify(token) is not None:
            raise AssertionError("an unknown token verified")
    miss = (time.perf_counter() - t) / db.lookups * 1e6
    return {"hot": hot, "cold": cold, "miss": miss}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 1_000_000])
    parser.add_argument("--lookups", type=int, default=1_000, help="stored tokens looked up per round (default 1000: every size does the same work)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds per size (default 7)")
    args = parser.parse_args()
    databases = [Database(size, min(args.lookups, size)) for size in args.sizes]
    rounds: dict[int, list[dict[str, float]]] = {db.size: [] for db in databases}
    try:
        for db in databases:
            await db.create()
            print(f"{db.size:>9} tokens stored in {db.fill_seconds:.1f} s", flush=True)
        for db in databases:  # warm the pools and the caches on both sides
            await one_round(db)
        # Interleaved (small, large, small, large, ...) so drift on the machine hits every size alike.
        for number in range(args.rounds):
            for db in databases:
                rounds[db.size].append(await one_round(db))
            print(f"round {number + 1}: " + "; ".join(
                f"{size}: hot {r[-1]['hot']:.2f} cold {r[-1]['cold']:.1f} miss {r[-1]['miss']:.1f} us" for size, r in rounds.items()
            ), flush=True)  # fmt: skip
    finally:
        for db in databases:
            await db.drop()
    results = []
    for db in databases:
        medians = {f"{kind}_us": statistics.median(r[kind] for r in rounds[db.size]) for kind in ("hot", "cold", "miss")}
        results.append({"size": db.size, "fill_seconds": db.fill_seconds, **medians, "rounds": rounds[db.size]})
        print(f"{db.size:>9} tokens (median of {args.rounds}): hot {medians['hot_us']:6.2f} us, "
              f"cold {medians['cold_us']:7.1f} us, miss {medians['miss_us']:7.1f} us")  # fmt: skip
    small, large = results[0], results[-1]
    ratios = {kind: large[f"{kind}_us"] / small[f"{kind}_us"] for kind in ("hot", "cold", "miss")}
    print("ratio largest/smallest: " + ", ".join(f"{kind} {ratio:.3f}" for kind, ratio in ratios.items()) + " (target <= 1.05)")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"verify-scale-{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps({"results": results, "ratios": ratios}, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
