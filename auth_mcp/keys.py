"""Where the secret key comes from: AUTH_MCP_SECRET_KEY, or a key generated once beside the SQLite database.

Its own small module so that the admin commands find the key without loading the server.
"""

from __future__ import annotations

import secrets
from pathlib import Path

from auth_mcp.crypto import load_or_create_key_file
from auth_mcp.settings import Settings


def secret_key(settings: Settings) -> str:
    """AUTH_MCP_SECRET_KEY, or the key generated once beside the SQLite database."""
    if settings.secret_key is not None:
        return settings.secret_key.get_secret_value()
    path = key_file_path(settings)
    if path is None:
        # In-memory SQLite: nothing persists, so neither need the key.
        return secrets.token_urlsafe(32)
    return load_or_create_key_file(path)


def key_file_path(settings: Settings) -> Path | None:
    """The generated key file beside the SQLite database, when there is one."""
    path = settings.sqlite_path
    return None if settings.secret_key is not None or path is None else path.with_name(path.name + ".key")
