"""auth-mcp: an MCP server that is its own OAuth 2.1 authorization server and delegates login to GitHub."""

from auth_mcp.app import create_app
from auth_mcp.settings import Settings

__all__ = ["Settings", "create_app"]
