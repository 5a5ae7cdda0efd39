"""The command line: `auth-mcp` (serve) and `auth-mcp db upgrade`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import resource
from collections.abc import Sequence
from typing import Any

import uvicorn
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from auth_mcp import admin
from auth_mcp.app import create_app, key_file_path
from auth_mcp.http.logs import configure_logging
from auth_mcp.http.read_deadlines import header_deadline_protocol
from auth_mcp.settings import Settings
from auth_mcp.storage.engine import create_engine
from auth_mcp.storage.migrate import SchemaError, prepare_schema, upgrade

logger = logging.getLogger("auth_mcp")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="auth-mcp",
        description="An MCP server that is its own OAuth 2.1 authorization server and signs people in with GitHub.",
    )
    parser.add_argument("--transport", choices=["streamable-http", "sse"], help="MCP transport (default streamable-http)")
    parser.add_argument("--host", help="address to bind (default 127.0.0.1, or AUTH_MCP_HOST)")
    parser.add_argument("--port", type=int, help="port to bind (default 8000, or AUTH_MCP_PORT)")
    commands = parser.add_subparsers(dest="command")
    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser("upgrade", help="apply pending schema migrations")
    clients = commands.add_parser("clients", help="registered MCP clients")
    client_commands = clients.add_subparsers(dest="clients_command", required=True)
    client_commands.add_parser("list", help="list registered clients")
    delete = client_commands.add_parser("delete", help="delete a client and revoke its grants (also at GitHub)")
    delete.add_argument("client_id")
    grants = commands.add_parser("grants", help="people's authorizations")
    grant_commands = grants.add_subparsers(dest="grants_command", required=True)
    listing = grant_commands.add_parser("list", help="list grants")
    listing.add_argument("--user", help="only this GitHub login or numeric id")
    revoke = commands.add_parser("revoke-user", help="revoke a person's access everywhere (also at GitHub)")
    revoke.add_argument("user", help="GitHub login or numeric id")
    commands.add_parser("purge", help="delete expired codes, tokens, requests and unused registrations now")
    return parser


def load_settings(args: argparse.Namespace) -> Settings:
    overrides = {name: getattr(args, name) for name in ("transport", "host", "port") if getattr(args, name, None) is not None}
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "\n".join(f"  - {error['msg'].removeprefix('Value error, ')}" for error in exc.errors())
        raise SystemExit(f"auth-mcp cannot start, its configuration needs fixing:\n{problems}") from None


def main(argv: Sequence[str] | None = None) -> None:
    args = _parser().parse_args(argv)
    settings = load_settings(args)
    configure_logging(settings.log_level, settings.log_format)
    if args.command == "db":
        asyncio.run(_db_upgrade(settings))
        return
    if args.command in ("clients", "grants", "revoke-user", "purge"):
        asyncio.run(_admin(settings, args))
        return
    serve(settings)


async def _admin(settings: Settings, args: argparse.Namespace) -> None:
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app):
            services = app.state.services
            if args.command == "clients" and args.clients_command == "list":
                lines = admin.list_clients(services)
            elif args.command == "clients":
                lines = admin.delete_client(services, args.client_id)
            elif args.command == "grants":
                lines = admin.list_grants(services, args.user)
            elif args.command == "revoke-user":
                lines = admin.revoke_person(services, args.user)
            else:
                lines = admin.purge(services)
            for line in await lines:
                print(line)
    except SchemaError as exc:
        raise SystemExit(f"auth-mcp: {exc}") from None


async def _db_upgrade(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    logger.info("database schema is up to date (%s)", _safe_url(settings.database_url))


async def _check_schema(settings: Settings) -> None:
    engine = create_engine(settings.database_url)
    try:
        await prepare_schema(engine, upgrade_outdated=settings.is_sqlite)
    finally:
        await engine.dispose()


def _safe_url(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def serve(settings: Settings) -> None:
    try:
        asyncio.run(_check_schema(settings))
    except SchemaError as exc:
        raise SystemExit(f"auth-mcp cannot start: {exc}") from None
    try:
        app = create_app(settings)
    except ValueError as exc:
        raise SystemExit(f"auth-mcp cannot start: {exc}") from None
    endpoint = "/mcp" if settings.transport == "streamable-http" else "/sse"
    mode = "dev (built-in GitHub stand-in)" if settings.dev_mode else f"GitHub ({settings.github_url})"
    logger.info(
        "auth-mcp serving %s%s over %s on %s:%d; store %s; mode %s",
        settings.issuer,
        endpoint,
        settings.transport,
        settings.host,
        settings.port,
        _safe_url(settings.database_url),
        mode,
    )
    key_file = key_file_path(settings)
    if key_file is not None:
        logger.info("encryption key file: %s (back it up with the database)", key_file)
    if settings.dev_mode:
        logger.warning(
            "\n"
            "  ==================================================================\n"
            "   DEV MODE: no AUTH_MCP_GITHUB_CLIENT_ID / _SECRET are set, so this\n"
            "   server signs people in with a built-in GitHub STAND-IN where\n"
            "   anyone can pick any user name. For local development only.\n"
            "   Set the GitHub OAuth App credentials to use the real GitHub.\n"
            "  ==================================================================",
        )
    if settings.metrics and settings.metrics_token is None:
        logger.info("/metrics is not served: set AUTH_MCP_METRICS_TOKEN to let Prometheus scrape it with that bearer token")
    _raise_open_file_limit()
    uvicorn.Server(server_config(app, settings)).run()


def server_config(app: Any, settings: Settings) -> uvicorn.Config:
    """How uvicorn serves the app (tests/support/server.py serves it the same way)."""
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,
        access_log=False,
        proxy_headers=False,  # handled in create_app, only for AUTH_MCP_TRUSTED_PROXIES
        timeout_graceful_shutdown=20,
        server_header=False,
        lifespan="on",
        # Connections that send their headers too slowly are closed (http/read_deadlines.py).
        http=header_deadline_protocol(settings.header_timeout),
    )


def _raise_open_file_limit() -> None:
    """Every connection is a file descriptor: use all the kernel allows this process, not the
    shell's customary 1,024, so that slow clients (cut off after AUTH_MCP_HEADER_TIMEOUT) cannot
    use them all up in the meantime."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536), hard))
