"""auth-mcp: an MCP server that is its own OAuth 2.1 authorization server and delegates login to GitHub.

The library surface: `create_app(settings, tools=[...])` builds the server; `scoped_tool`
declares a tool and the MCP scopes it needs; `PersonsGitHub` is what a tool receives to call
GitHub's REST API as the person behind the calling token.
"""

from auth_mcp.app import create_app
from auth_mcp.settings import Settings
from auth_mcp.tools.kit import PersonsGitHub, scoped_tool

__all__ = ["PersonsGitHub", "Settings", "create_app", "scoped_tool"]
