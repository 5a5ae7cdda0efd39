"""auth-mcp: an MCP server that is its own OAuth 2.1 authorization server and delegates login to GitHub.

The library surface: `create_app(settings, tools=[...])` builds the server; `scoped_tool`
declares a tool and the MCP scopes it needs; `PersonsGitHub` is what a tool receives to call
GitHub's REST API as the person behind the calling token.

The names are imported when first used (PEP 562), so that `import auth_mcp.cli` for an admin
command does not load the whole server.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from auth_mcp.app import create_app
    from auth_mcp.settings import Settings
    from auth_mcp.tools.kit import PersonsGitHub, scoped_tool

__all__ = ["PersonsGitHub", "Settings", "create_app", "scoped_tool"]

_HOMES = {
    "create_app": "auth_mcp.app",
    "Settings": "auth_mcp.settings",
    "PersonsGitHub": "auth_mcp.tools.kit",
    "scoped_tool": "auth_mcp.tools.kit",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'auth_mcp' has no attribute {name!r}")
    return getattr(import_module(home), name)
