"""What runs for as long as the server does: schema check, revocation notices, the purge loop."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette

from auth_mcp.app.audit import AuditSide
from auth_mcp.http.log_writer import LogWriter
from auth_mcp.storage.availability import StorageUnavailable
from auth_mcp.storage.migrate import prepare_schema, schema_status
from auth_mcp.storage.notifications import Announcer
from auth_mcp.storage.records import PurgeCounts
from auth_mcp.storage.store import SqlStore

logger = logging.getLogger("auth_mcp.app")

PURGE_INTERVAL = 300  # seconds between sweeps of expired rows

Closer = Callable[[], Awaitable[None]]


def lifespan(
    *,
    engine: AsyncEngine,
    purge: Callable[[], Awaitable[PurgeCounts]],
    announcer: Announcer,
    mcp: MCPServer[Any],
    streamable: bool,
    upgrade_outdated: bool,
    closers: list[Closer],
    audit: AuditSide,
    log_writer: LogWriter,
) -> Callable[[Starlette], contextlib.AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def run(_app: Starlette) -> AsyncIterator[None]:
        await prepare_schema(engine, upgrade_outdated=upgrade_outdated)
        log_writer.start()
        await announcer.start()
        await audit.recorder.start()
        purger = asyncio.create_task(_purge_forever(purge, audit))
        try:
            async with contextlib.AsyncExitStack() as transport:
                if streamable:
                    await transport.enter_async_context(mcp.session_manager.run())
                # Everything built so far lives as long as the process (the transport's task group
                # and the anyio modules it imports included): move it out of the cyclic garbage
                # collector's generations, so collections during traffic scan per-request objects.
                gc.collect()
                gc.freeze()
                yield
        finally:
            purger.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await purger
            # After the MCP transport stopped (no more calls): write every audit event still waiting.
            await audit.recorder.stop()
            await announcer.stop()
            for close in closers:
                await close()
            await engine.dispose()
            log_writer.stop()  # last: every access and audit line of the run is written

    return run


async def database_readiness(store: SqlStore) -> tuple[bool, dict[str, Any]]:
    """Ready: the database answers, its schema is the one this code needs, and a write commits.

    The write probe matters: a full disk or a read-only database still answers reads.
    """
    status = await schema_status(store.engine)
    if status.state != "current":
        return False, {"schema": status.state, "current": status.current, "needed": status.head}
    if not await store.probe_write():
        return False, {"schema": status.current, "writes": "failing"}
    return True, {"schema": status.current}


async def _purge_forever(purge: Callable[[], Awaitable[PurgeCounts]], audit: AuditSide) -> None:
    while True:
        try:
            counts = await purge()
            if counts.total:
                logger.info("purged %d expired rows (%s)", counts.total, counts)
        except StorageUnavailable as exc:
            logger.warning("purging expired rows failed, retrying in %d s: %s", PURGE_INTERVAL, exc.reason)
        except Exception:
            logger.exception("purging expired rows failed")
        try:
            events = await audit.purge()
            if events:
                logger.info("purged %d audit events past AUTH_MCP_AUDIT_RETENTION_DAYS", events)
        except StorageUnavailable as exc:
            logger.warning("purging old audit events failed, retrying in %d s: %s", PURGE_INTERVAL, exc.reason)
        except Exception:
            logger.exception("purging old audit events failed")
        await asyncio.sleep(PURGE_INTERVAL)
