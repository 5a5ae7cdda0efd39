"""Why the database could not be opened, as a sentence an operator can act on.

Start-up and the admin commands open the database first; a mistake there (nothing listening,
an unknown database or role, a wrong password, TLS the server does not offer, a SQLite path that
cannot be written) used to end in a driver traceback. `explain_database_failure` names the host,
database, role or path and what to do, or returns None for failures it does not recognise
(those keep their traceback: they are bugs, not configuration).
"""

from __future__ import annotations

import errno
import os
import socket
import sqlite3
import ssl
from collections.abc import Iterator
from pathlib import Path

from auth_mcp.storage.database_url import DatabaseTarget, database_target

_VARIABLE = "AUTH_MCP_DATABASE_URL"


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """The exception, what SQLAlchemy wrapped (`orig`), and its causes, innermost last."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        orig = getattr(current, "orig", None)
        current = orig if isinstance(orig, BaseException) else (current.__cause__ or current.__context__)


def explain_database_failure(exc: BaseException, database_url: str) -> str | None:
    target = database_target(database_url)
    for cause in _causes(exc):
        sentence = _explain_sqlite(cause, target) if target.kind == "sqlite" else _explain_postgres(cause, target)
        if sentence is not None:
            return sentence
    return None


def _explain_postgres(exc: BaseException, target: DatabaseTarget) -> str | None:
    import asyncpg  # PostgreSQL only; imported on failure, not at start-up

    where = f"PostgreSQL at {target.server}"
    role, database = target.user or "(none given)", target.database or "(none given)"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return (
            f'{where} has no database "{database}". Create it (for example `createdb -h {target.host} -p '
            f'{target.port or 5432} -U {role} {database}`, or `CREATE DATABASE "{database}" OWNER "{role}";`), '
            f"or correct the database name at the end of {_VARIABLE}."
        )
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f'{where} refused the password of role "{role}". Correct the password in {_VARIABLE}.'
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        if "does not exist" in str(exc):
            return (
                f'{where} has no role "{role}" (the user name in {_VARIABLE}). Create it '
                f"(`CREATE ROLE \"{role}\" LOGIN PASSWORD '…';`) or correct the user name."
            )
        return f'{where} refused role "{role}" on database "{database}": {exc}. Check pg_hba.conf, or the user in {_VARIABLE}.'
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return (
            f'role "{role}" may not create or change auth-mcp\'s tables in database "{database}" at {target.server}: {exc}. '
            f'Make it the database\'s owner (`ALTER DATABASE "{database}" OWNER TO "{role}";`) or grant it CREATE on schema public.'
        )
    if isinstance(exc, asyncpg.TooManyConnectionsError):
        return f"{where} has no free connection for role \"{role}\": {exc}. Raise max_connections or stop idle clients."
    if isinstance(exc, asyncpg.PostgresError):
        return f'{where} refused database "{database}" for role "{role}": {exc}.'
    if isinstance(exc, asyncpg.ClientConfigurationError) and "root certificate" in str(exc):
        return (
            f"{_VARIABLE} asks to verify the certificate of {where} (sslmode verify-ca or verify-full) but names no CA "
            f"certificate, and asyncpg's default does not exist ({exc}). Give your provider's CA certificate as "
            "sslrootcert=/path/to/ca.pem, or use sslmode=require (encrypted, not verified)."
        )
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return f"{_VARIABLE} cannot be used to connect to {where}: {exc}."
    if isinstance(exc, FileNotFoundError | IsADirectoryError | PermissionError):
        return (
            f"a certificate or key file named in {_VARIABLE} (sslrootcert, sslcert or sslkey) cannot be read: "
            f"{exc.strerror}. Correct its path, or make it readable by this user."
        )
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (
            f"the TLS certificate of {where} could not be verified ({exc.verify_message}). Give your provider's CA "
            f"certificate as sslrootcert=/path/to/ca.pem in {_VARIABLE}, or use sslmode=require (encrypted, not verified)."
        )
    if isinstance(exc, ssl.SSLError):
        return f"TLS with {where} failed: {exc}. Check sslmode and the ssl* parameters in {_VARIABLE}."
    if isinstance(exc, ConnectionError) and "SSL" in str(exc):
        return (
            f"{where} does not offer TLS, but {_VARIABLE} asks for it (sslmode require or stricter). Turn on ssl in "
            "PostgreSQL, or use sslmode=prefer (or disable) if the connection never leaves a private network."
        )
    if isinstance(exc, socket.gaierror):
        return f'the host name "{target.host}" in {_VARIABLE} cannot be resolved ({exc.strerror}). Correct the host.'
    if isinstance(exc, ConnectionRefusedError) or (isinstance(exc, OSError) and exc.errno == errno.ECONNREFUSED):
        return (
            f"nothing is listening at {target.server}, where {_VARIABLE} says PostgreSQL is. Start PostgreSQL "
            "there, or correct the host and port."
        )
    if isinstance(exc, TimeoutError):
        return (
            f"{where} did not answer in time. Check the host, port and firewall in between, "
            f"or raise connect_timeout in {_VARIABLE}."
        )
    if isinstance(exc, OSError) and exc.strerror:
        return f"auth-mcp cannot connect to {where}: {exc.strerror}. Check the host and port in {_VARIABLE}."
    return None


def _explain_sqlite(exc: BaseException, target: DatabaseTarget) -> str | None:
    path = Path(target.path) if target.path is not None else None
    # The database file itself could not be created (engine.py creates it 0600 before SQLite opens it).
    creating = path is not None and isinstance(exc, OSError) and exc.filename == str(path)
    if isinstance(exc, PermissionError) and exc.filename and not creating:
        # The key file beside the database (crypto.resolve_secret).
        return (
            f"auth-mcp cannot write {exc.filename}: permission denied for this user (uid {os.getuid()}). "
            f"Make its directory writable, or point {_VARIABLE} at a directory this user can write."
        )
    if path is None or not (creating or isinstance(exc, sqlite3.Error)):
        return None
    directory = path.parent.resolve() if path.parent != Path("") else Path.cwd()
    message = str(exc)
    if creating or "unable to open database file" in message:
        if not directory.exists():
            return (
                f"the SQLite database {path} cannot be created: the directory {directory} does not exist. "
                f"Create it, or point {_VARIABLE} at an existing directory."
            )
        if not directory.is_dir():
            return f"the SQLite database {path} cannot be created: {directory} is not a directory. Correct {_VARIABLE}."
        if path.is_dir():
            return f"{path} is a directory, not a SQLite database file. Name a file in {_VARIABLE}, e.g. sqlite:///{path}/auth-mcp.db."
        return (
            f"the SQLite database {path} cannot be opened: the directory {directory} is not writable by this user "
            f"(uid {os.getuid()}), and SQLite needs to create files beside the database. Make it writable, or point "
            f"{_VARIABLE} at a directory this user can write."
        )
    if "readonly database" in message:
        return (
            f"the SQLite database {path} (or its directory {directory}) is read-only for this user (uid {os.getuid()}). "
            "Make both writable: SQLite writes a journal beside the database."
        )
    if "file is not a database" in message:
        return f"{path} is not a SQLite database. Point {_VARIABLE} at auth-mcp's database file, or at a new path."
    if "database is locked" in message:
        return f"the SQLite database {path} stayed locked by another process. Stop the other process, or try again."
    return f"the SQLite database {path} failed: {message}."
