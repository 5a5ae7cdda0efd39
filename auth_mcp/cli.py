"""The command line: `auth-mcp` serves; its commands operate on the same database.

The admin commands build only what they need (storage, revocation, GitHub) and never the MCP
server, so they act at once and print nothing but their answer.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import resource
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from auth_mcp import admin
from auth_mcp.audit.events import OUTCOMES
from auth_mcp.audit.report import parse_since
from auth_mcp.settings import Settings
from auth_mcp.settings_problems import ConfigurationError, Sources, load_settings, unknown_setting_names
from auth_mcp.storage.audit import AuditQuery
from auth_mcp.storage.database_errors import explain_database_failure
from auth_mcp.storage.migrate import SchemaError
from auth_mcp.version import package_version

if TYPE_CHECKING:
    import uvicorn  # imported when serving: admin commands start without it

logger = logging.getLogger("auth_mcp")

ADMIN_COMMANDS = ("clients", "grants", "revoke-user", "purge", "upstreams", "audit")
SETTINGS_HELP = (
    "Settings come from AUTH_MCP_* environment variables or a .env file in the working directory "
    "(the environment wins); .env.example lists every one. With none, auth-mcp runs in dev mode on "
    "http://localhost:8000 with a built-in GitHub stand-in and ./auth-mcp.db."
)


def _parser() -> argparse.ArgumentParser:
    serving = argparse.ArgumentParser(add_help=False)
    serving.add_argument(
        "--transport",
        choices=["streamable-http", "sse"],
        default=argparse.SUPPRESS,
        help="MCP transport (default streamable-http, or AUTH_MCP_TRANSPORT)",
    )
    serving.add_argument("--host", default=argparse.SUPPRESS, help="address to listen on (default 127.0.0.1, or AUTH_MCP_HOST)")
    serving.add_argument("--port", type=int, default=argparse.SUPPRESS, help="port to listen on (default 8000, or AUTH_MCP_PORT)")
    parser = argparse.ArgumentParser(
        prog="auth-mcp",
        description=(
            "An MCP server that is its own OAuth 2.1 authorization server and signs people in with GitHub.\n"
            "Without a command, auth-mcp serves MCP clients (the same as `auth-mcp serve`)."
        ),
        epilog=SETTINGS_HELP,
        parents=[serving],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"auth-mcp {package_version()}")
    commands = parser.add_subparsers(dest="command", title="commands (optional; without one, auth-mcp serves)", metavar="COMMAND")
    commands.add_parser("serve", parents=[serving], help="serve MCP clients (the default)", epilog=SETTINGS_HELP)
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print JSON instead of a table or sentence")

    db = commands.add_parser("db", help="database schema")
    db_commands = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    db_commands.add_parser("upgrade", help="apply pending schema migrations")

    clients = commands.add_parser("clients", help="registered MCP clients")
    client_commands = clients.add_subparsers(dest="clients_command", required=True, metavar="ACTION")
    client_commands.add_parser("list", parents=[as_json], help="list registered clients with their names")
    delete = client_commands.add_parser(
        "delete", parents=[as_json], help="delete a client and revoke its grants (also at GitHub)"
    )
    delete.add_argument("client_id", metavar="CLIENT_ID")

    grants = commands.add_parser("grants", help="people's authorizations of clients")
    grant_commands = grants.add_subparsers(dest="grants_command", required=True, metavar="ACTION")
    listing = grant_commands.add_parser("list", parents=[as_json], help="list grants")
    listing.add_argument("--user", metavar="LOGIN|ID", help="only this GitHub login or numeric id")
    revoke = grant_commands.add_parser("revoke", parents=[as_json], help="revoke one grant (also at GitHub)")
    revoke.add_argument("grant", metavar="GRANT", help="the grant id, or its first characters as `grants list` shows them")

    person = commands.add_parser("revoke-user", parents=[as_json], help="revoke every grant of a person (also at GitHub)")
    person.add_argument("user", metavar="LOGIN|ID", help="GitHub login or numeric id")
    commands.add_parser(
        "purge", parents=[as_json], help="delete expired codes, tokens, sign-ins, unused registrations and old audit events now"
    )
    commands.add_parser("upstreams", parents=[as_json], help="the gateway's upstreams and whether each answers now")
    _audit_parser(commands, as_json)
    return parser


def _audit_parser(commands: Any, as_json: argparse.ArgumentParser) -> None:
    audit = commands.add_parser("audit", parents=[as_json], help="tool calls through auth-mcp, newest first")
    audit.add_argument("--user", help="only this GitHub login or numeric id")
    audit.add_argument("--client", help="only this MCP client id")
    audit.add_argument("--upstream", help='only this upstream ("builtin" for the tools at /mcp)')
    audit.add_argument("--tool", help="only tools matching this glob (* and ?, case-insensitive)")
    audit.add_argument("--outcome", choices=OUTCOMES, help="only this outcome")
    audit.add_argument("--since", type=_since, help="only calls since: 30m, 12h, 7d, or a date such as 2026-11-30 (UTC)")
    audit.add_argument("--limit", type=_limit, default=100, help="at most this many calls (default 100)")


def _since(text: str) -> float:
    try:
        return parse_since(text, now=time.time())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 100_000:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number from 1 to 100000")
    return int(text)


def settings_from(args: argparse.Namespace) -> tuple[Settings, Sources]:
    flags = {name: getattr(args, name) for name in ("transport", "host", "port") if getattr(args, name, None) is not None}
    sources = Sources.read(flags=flags)
    try:
        return load_settings(sources), sources
    except ConfigurationError as exc:
        # A misspelt name often explains the mistake (the intended setting kept its default).
        problems = [*exc.problems, *unknown_setting_names(sources)]
        lines = "\n".join(f"  - {problem}" for problem in problems)
        raise SystemExit(f"auth-mcp cannot start; its configuration needs fixing:\n{lines}\n{SETTINGS_HELP}") from None


def main(argv: Sequence[str] | None = None) -> None:
    from auth_mcp.http.logs import configure_logging

    args = _parser().parse_args(argv)
    settings, sources = settings_from(args)
    administering = args.command in (*ADMIN_COMMANDS, "db")
    # The admin commands print their answer; the log says only what went wrong (or all, at DEBUG).
    configure_logging(
        settings.log_level if settings.log_level == "DEBUG" or not administering else "WARNING",
        settings.log_format,
        log_sql=settings.log_sql,
    )
    for warning in unknown_setting_names(sources):
        logger.warning(warning)
    if args.command == "db":
        _run(_db_upgrade(settings), settings)
        return
    if args.command in ADMIN_COMMANDS:
        report = _run(_admin(settings, args), settings)
        _print(report, as_json=args.json)
        if not report.ok:
            raise SystemExit(1)
        return
    serve(settings)


def _run(coroutine: Any, settings: Settings) -> Any:
    """Run a command; a database that cannot be opened ends it with a sentence, not a traceback."""
    try:
        return asyncio.run(coroutine)
    except SchemaError as exc:
        raise SystemExit(f"auth-mcp: {exc}") from None
    except Exception as exc:
        sentence = explain_database_failure(exc, settings.database_url)
        if sentence is None:
            raise
        raise SystemExit(f"auth-mcp cannot open its database: {sentence}") from None


def _print(report: admin.Report, *, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.data if report.ok else {"error": " ".join(report.problems)}, indent=2))
    else:
        for line in report.lines:
            print(line)
    for problem in report.problems:
        print(f"auth-mcp: {problem}", file=sys.stderr)


@contextlib.asynccontextmanager
async def _operator(settings: Settings) -> AsyncIterator[admin.Operator]:
    """Storage and revocation, built without the server (no MCP server, no routes): the commands
    start in a fraction of the server's time and print nothing of its start-up."""
    import httpx

    from auth_mcp.authorization.expiry import Purger
    from auth_mcp.authorization.revocation import Revoker
    from auth_mcp.clock import SystemClock
    from auth_mcp.crypto import Keyring, resolve_secret
    from auth_mcp.github.client import DEFAULT_TIMEOUT, GitHubClient
    from auth_mcp.storage.audit import AuditStore
    from auth_mcp.storage.engine import create_engine
    from auth_mcp.storage.migrate import prepare_schema
    from auth_mcp.storage.notifications import Announcer
    from auth_mcp.storage.store import SqlStore

    clock = SystemClock()
    engine = create_engine(settings.database_url)
    nothing_cached = admin.NothingCached()
    announcer = Announcer(engine=engine, on_revoked=nothing_cached.forget_grant, on_gap=nothing_cached.forget_all)
    # The real GitHub, to give revoked people's tokens back; in dev mode the stand-in lives in the
    # server's process and keeps nothing this one could revoke.
    http = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT)
    github = GitHubClient(
        http=http,
        web_url=settings.github_url,
        api_url=settings.github_api_url,
        client_id=settings.github_client_id or "dev-mode",
        client_secret=settings.github_client_secret or SecretStr(""),
        clock=clock,
    )
    store = SqlStore(engine=engine, clock=clock)
    revoker = Revoker(
        store=store,
        verifier=nothing_cached,
        github=github,
        keyring=Keyring.from_setting(resolve_secret(settings.secret_key, key_file=settings.key_file)),
        revoke_at_github=settings.revoke_github_tokens and not settings.dev_mode,
        announce=announcer.announce,
    )
    try:
        await prepare_schema(engine, upgrade_outdated=settings.is_sqlite)
        audit = AuditStore(engine=engine, clock=clock, retention_days=settings.audit_retention_days)
        yield admin.Operator(store=store, revoker=revoker, purger=Purger(store=store, revoker=revoker, clock=clock), audit=audit)
    finally:
        await http.aclose()
        await engine.dispose()


async def _upstreams(settings: Settings) -> admin.Report:
    """No database needed: the file, and one probe per upstream."""
    from auth_mcp.clock import SystemClock
    from auth_mcp.gateway.builder import upstream_targets
    from auth_mcp.gateway.config import load_gateway_config
    from auth_mcp.gateway.health import UpstreamHealth
    from auth_mcp.gateway.upstream_http import UpstreamHttp

    if settings.gateway_config is None:
        return await admin.list_upstreams(None, None)
    config = load_gateway_config(settings.gateway_config)
    upstreams = list(config.upstreams.values())
    http = UpstreamHttp()
    try:
        health = UpstreamHealth(upstreams=upstreams, targets=upstream_targets(upstreams), http=http, clock=SystemClock())
        return await admin.list_upstreams(config, health)
    finally:
        await http.aclose()


async def _admin(settings: Settings, args: argparse.Namespace) -> admin.Report:
    if args.command == "upstreams":
        return await _upstreams(settings)
    async with _operator(settings) as operator:
        if args.command == "clients":
            if args.clients_command == "list":
                return await admin.list_clients(operator)
            return await admin.delete_client(operator, args.client_id)
        if args.command == "grants":
            if args.grants_command == "list":
                return await admin.list_grants(operator, args.user)
            return await admin.revoke_grant(operator, args.grant)
        if args.command == "revoke-user":
            return await admin.revoke_person(operator, args.user)
        if args.command == "audit":
            query = AuditQuery(
                user=args.user,
                client_id=args.client,
                upstream=args.upstream,
                tool=args.tool,
                outcome=args.outcome,
                since=args.since,
                limit=args.limit,
            )
            return await admin.audit_trail(operator, query)
        return await admin.purge(operator)


async def _db_upgrade(settings: Settings) -> None:
    from auth_mcp.storage.engine import create_engine
    from auth_mcp.storage.migrate import upgrade

    engine = create_engine(settings.database_url)
    try:
        await upgrade(engine)
    finally:
        await engine.dispose()
    print(f"The database schema is up to date ({_safe_url(settings.database_url)}).")


async def _check_schema(settings: Settings) -> None:
    from auth_mcp.storage.engine import create_engine
    from auth_mcp.storage.migrate import prepare_schema

    engine = create_engine(settings.database_url)
    try:
        await prepare_schema(engine, upgrade_outdated=settings.is_sqlite)
    finally:
        await engine.dispose()


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


class _ReadyLine(logging.Filter):
    """uvicorn's "Uvicorn running on http://127.0.0.1:8000" names the socket, not the URL clients
    must use (the issuer's; OAuth compares it as a string). Its line becomes ours."""

    def __init__(self, mcp_url: str) -> None:
        super().__init__()
        self._mcp_url = mcp_url

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Uvicorn running on"):
            record.msg = "auth-mcp is ready: connect MCP clients to %s (press Ctrl+C to stop)"
            record.args = (self._mcp_url,)
            record.__dict__.pop("color_message", None)
        return True


def serve(settings: Settings) -> None:
    import uvicorn

    from auth_mcp.app import create_app

    if settings.issuer_warning:
        logger.warning(settings.issuer_warning)
    _run(_check_schema(settings), settings)
    try:
        app = create_app(settings)
    except PermissionError as exc:
        raise SystemExit(f"auth-mcp cannot start: {explain_database_failure(exc, settings.database_url) or exc}") from None
    except ValueError as exc:
        raise SystemExit(f"auth-mcp cannot start: {exc}") from None
    endpoint = "/mcp" if settings.transport == "streamable-http" else "/sse"
    mode = "dev (built-in GitHub stand-in)" if settings.dev_mode else f"GitHub ({settings.github_url})"
    logger.info(
        "auth-mcp %s serving %s%s over %s on %s:%d; store %s; mode %s",
        package_version(),
        settings.issuer,
        endpoint,
        settings.transport,
        settings.host,
        settings.port,
        _safe_url(settings.database_url),
        mode,
    )
    key_file = settings.key_file
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
    logging.getLogger("uvicorn.error").addFilter(_ReadyLine(settings.issuer + endpoint))
    _raise_open_file_limit()
    uvicorn.Server(server_config(app, settings)).run()


def server_config(app: Any, settings: Settings) -> uvicorn.Config:
    """How uvicorn serves the app (tests/support/server.py serves it the same way)."""
    import uvicorn

    from auth_mcp.http.one_write import one_write_per_turn
    from auth_mcp.http.read_deadlines import read_deadline_protocol

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
        # Connections that send their headers or body too slowly are closed (http/read_deadlines.py);
        # a response's head and body leave in one write (http/one_write.py).
        http=one_write_per_turn(read_deadline_protocol(settings.header_timeout, settings.body_timeout)),
    )


def _raise_open_file_limit() -> None:
    """Every connection is a file descriptor: use all the kernel allows this process, not the
    shell's customary 1,024, so that slow clients (cut off after AUTH_MCP_HEADER_TIMEOUT) cannot
    use them all up in the meantime."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else max(soft, 65536), hard))
