"""`AUTH_MCP_DATABASE_URL` as hosting providers hand it out, turned into what our drivers take.

Providers print libpq-style URLs (`postgres://…?sslmode=require`, `postgresql://…`), and
frameworks SQLAlchemy URLs for other drivers (`postgresql+psycopg://…`, `sqlite:///x.db`). We
run on asyncpg and aiosqlite, so every PostgreSQL spelling becomes `postgresql+asyncpg://` and
every SQLite spelling `sqlite+aiosqlite://`.

Query parameters: SQLAlchemy would hand them to `asyncpg.connect()` as keyword arguments, which
fails for libpq's names (`sslmode`, `sslrootcert`: "unexpected keyword argument"). asyncpg's
own DSN parser understands libpq's TLS parameters exactly as libpq does, so we connect with
the URL as a DSN (`asyncpg_dsn`) and keep in it only what that parser takes; the rest is
translated (`ssl` → `sslmode`, `connect_timeout` → asyncpg's `timeout`) or refused with a
sentence, because asyncpg would pass an unknown name to the server as a setting and fail with
"unrecognized configuration parameter".
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

POSTGRES_DRIVER = "postgresql+asyncpg"
SQLITE_DRIVER = "sqlite+aiosqlite"

_POSTGRES_SCHEMES = {
    "postgres",
    "postgresql",
    "postgresql+asyncpg",
    "postgresql+psycopg",
    "postgresql+psycopg2",
    "postgresql+psycopg2cffi",
    "postgresql+pg8000",
    "postgres+asyncpg",
}
_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite", "sqlite+pysqlite"}

# libpq parameters asyncpg's DSN parser implements itself (asyncpg/connect_utils.py).
_ASYNCPG_DSN_PARAMETERS = {
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "sslcrl",
    "sslpassword",
    "sslnegotiation",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "target_session_attrs",
    "krbsrvname",
    "gsslib",
    "service",
    "passfile",
    # A real server setting: asyncpg sends it in the startup packet, as libpq does.
    "application_name",
}
_SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
# Parameters some providers add that asyncpg has no use for: SCRAM channel binding is
# negotiated by asyncpg on its own; pgbouncer/schema are Prisma's, not libpq's.
_IGNORED = {"channel_binding"}
_VARIABLE = "AUTH_MCP_DATABASE_URL"


class DatabaseUrlError(ValueError):
    """The URL cannot be used; the message is a sentence naming AUTH_MCP_DATABASE_URL."""


@dataclass(frozen=True)
class PostgresConnection:
    """How asyncpg connects: a libpq DSN it parses itself, and keyword arguments."""

    dsn: str
    timeout: float | None


def normalise_database_url(url: str) -> str:
    """The URL in our drivers' spelling, or DatabaseUrlError saying what to change."""
    url = url.strip()
    scheme, separator, rest = url.partition("://")
    if not separator:
        raise DatabaseUrlError(
            f"{_VARIABLE} must be a URL such as sqlite:///auth-mcp.db or postgresql://USER:PASSWORD@HOST/DATABASE, "
            f"got {_shown(url)!r}"
        )
    scheme = scheme.lower()
    if scheme in _SQLITE_SCHEMES:
        return f"{SQLITE_DRIVER}://{rest}"
    if scheme not in _POSTGRES_SCHEMES:
        raise DatabaseUrlError(
            f"{_VARIABLE} names the database kind {scheme!r}; auth-mcp keeps its state in SQLite "
            "(sqlite:///PATH) or PostgreSQL (postgresql://USER:PASSWORD@HOST/DATABASE)"
        )
    parts = urlsplit(f"{POSTGRES_DRIVER}://{rest}")
    query = _postgres_query(parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit(parts._replace(query=urlencode(query)))


def _postgres_query(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    kept: list[tuple[str, str]] = []
    unknown: list[str] = []
    for name, value in pairs:
        if name == "ssl":
            # SQLAlchemy/asyncpg spelling (`?ssl=require`); libpq's name for the same thing.
            name = "sslmode"
            value = {"true": "require", "1": "require", "false": "disable", "0": "disable"}.get(value.lower(), value)
        if name == "sslmode" and value not in _SSL_MODES:
            raise DatabaseUrlError(
                f"{_VARIABLE} has sslmode={value!r}; PostgreSQL's modes are {', '.join(_SSL_MODES)}"
            )
        if name == "connect_timeout":
            try:
                float(value)
            except ValueError:
                raise DatabaseUrlError(f"{_VARIABLE} has connect_timeout={value!r}; give seconds, e.g. 10") from None
        elif name in _IGNORED:
            continue
        elif name not in _ASYNCPG_DSN_PARAMETERS:
            unknown.append(name)
            continue
        kept.append((name, value))
    if unknown:
        raise DatabaseUrlError(
            f"{_VARIABLE} has the query parameter(s) {', '.join(sorted(set(unknown)))}, which auth-mcp's PostgreSQL "
            "driver does not understand; it understands sslmode (disable, prefer, require, verify-ca, verify-full), "
            "sslrootcert, sslcert, sslkey, connect_timeout, application_name and libpq's other ssl* parameters"
        )
    return kept


def postgres_connection(url: str) -> PostgresConnection:
    """What to hand `asyncpg.connect()` for a normalised PostgreSQL URL (password included)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    timeout = next((float(value) for name, value in query if name == "connect_timeout"), None)
    dsn_query = [(name, value) for name, value in query if name != "connect_timeout"]
    dsn = urlunsplit(parts._replace(scheme="postgresql", query=urlencode(dsn_query)))
    return PostgresConnection(dsn=dsn, timeout=timeout)


@dataclass(frozen=True)
class DatabaseTarget:
    """Where a URL points, in words for messages; never the password."""

    kind: str  # "sqlite" or "postgresql"
    host: str | None = None
    port: int | None = None
    database: str | None = None
    user: str | None = None
    path: str | None = None  # SQLite file; None for an in-memory database

    @property
    def server(self) -> str:
        return f"{self.host or 'localhost'}:{self.port or 5432}"


def database_target(url: str) -> DatabaseTarget:
    """Describe a normalised URL (host, port, database, role; or the SQLite path)."""
    if url.startswith("sqlite"):
        path = url.split(":///", 1)[1].split("?", 1)[0] if ":///" in url else ""
        return DatabaseTarget(kind="sqlite", path=None if path in ("", ":memory:") else path)
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    database = parts.path.lstrip("/") or None
    return DatabaseTarget(kind="postgresql", host=parts.hostname, port=port, database=database, user=parts.username)


def _shown(url: str) -> str:
    """A URL fit for a message: a password, if any, replaced by ***."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
        return urlunsplit(parts._replace(netloc=netloc))
    return url
