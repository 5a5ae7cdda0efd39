"""The built parts of one server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import httpx
from mcp.server.mcpserver import MCPServer

from auth_mcp.authorization.expiry import Purger
from auth_mcp.authorization.provider import AuthServerProvider
from auth_mcp.authorization.revocation import Revoker
from auth_mcp.crypto import Keyring
from auth_mcp.gateway.builder import Gateway
from auth_mcp.github.client import GitHubClient
from auth_mcp.github.devserver import DevGitHub
from auth_mcp.http.log_writer import LogWriter
from auth_mcp.http.metrics import Metrics
from auth_mcp.resource.audience import Audience
from auth_mcp.resource.verifier import CachedVerifier
from auth_mcp.settings import Settings
from auth_mcp.storage.store import SqlStore

if TYPE_CHECKING:  # built from core.py's parts, which import this module for secret_key
    from auth_mcp.app.audit import AuditSide
    from auth_mcp.app.policy import PolicySide


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
    policy: PolicySide
    audit: AuditSide
    log_writer: LogWriter  # access and audit lines; tests flush() it to read them at once
    gateway: Gateway | None = None  # the gateway's parts, with AUTH_MCP_GATEWAY_CONFIG
