"""The built parts of one server, and where its secret key comes from."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

import httpx
from mcp.server.mcpserver import MCPServer

from auth_mcp.authorization.expiry import Purger
from auth_mcp.authorization.provider import AuthServerProvider
from auth_mcp.authorization.revocation import Revoker
from auth_mcp.crypto import Keyring, load_or_create_key_file
from auth_mcp.github.client import GitHubClient
from auth_mcp.github.devserver import DevGitHub
from auth_mcp.http.metrics import Metrics
from auth_mcp.resource.audience import Audience
from auth_mcp.resource.verifier import CachedVerifier
from auth_mcp.settings import Settings
from auth_mcp.storage.store import SqlStore


@dataclass
class Services:
    """The built parts, for the lifespan, the admin commands and tests."""

    settings: Settings
    store: SqlStore
    keyring: Keyring
    github: GitHubClient
    verifier: CachedVerifier
    revoker: Revoker
    provider: AuthServerProvider
    audience: Audience
    mcp: MCPServer
    dev_github: DevGitHub | None
    http: httpx.AsyncClient
    metrics: Metrics
    purger: Purger


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
