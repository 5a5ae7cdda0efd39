"""The MCP tools. Each is one module; this list is what the server serves."""

from auth_mcp.tools.emails import get_user_emails
from auth_mcp.tools.kit import ToolSpec
from auth_mcp.tools.orgs import list_user_orgs
from auth_mcp.tools.profile import get_user_profile
from auth_mcp.tools.whoami import whoami

ALL_TOOLS: tuple[ToolSpec, ...] = (get_user_profile, whoami, get_user_emails, list_user_orgs)

__all__ = ["ALL_TOOLS", "ToolSpec"]
