"""The built-in MCP tools, each one module, and the kit for writing more (`kit.py`)."""

from auth_mcp.tools.emails import get_user_emails
from auth_mcp.tools.kit import PersonsGitHub, ToolSpec, scoped_tool
from auth_mcp.tools.orgs import list_user_orgs
from auth_mcp.tools.profile import get_user_profile
from auth_mcp.tools.whoami import whoami

# What `create_app(settings)` serves unless given other tools.
BUILTIN_TOOLS: tuple[ToolSpec, ...] = (get_user_profile, whoami, get_user_emails, list_user_orgs)

__all__ = ["BUILTIN_TOOLS", "PersonsGitHub", "ToolSpec", "scoped_tool"]
