"""Liveness and readiness endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

READINESS_TIMEOUT = 5.0

# A readiness check: (ready?, details for the response body). Raising means "not ready" too.
ReadinessCheck = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


async def healthz(_request: Request) -> Response:
    """Alive: the process answers HTTP."""
    return JSONResponse({"status": "ok"})


def readyz(check: ReadinessCheck) -> Callable[[Request], Awaitable[Response]]:
    """Ready: `check` says so within READINESS_TIMEOUT seconds."""

    async def endpoint(_request: Request) -> Response:
        try:
            async with asyncio.timeout(READINESS_TIMEOUT):
                ready, details = await check()
        except Exception as exc:  # noqa: BLE001 - any failure to answer means not ready, and says which
            return JSONResponse({"status": "unavailable", "database": type(exc).__name__}, status_code=503)
        if not ready:
            return JSONResponse({"status": "unavailable", **details}, status_code=503)
        return JSONResponse({"status": "ok", **details})

    return endpoint
