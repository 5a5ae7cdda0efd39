"""An example package of GitHub-backed MCP tools served by auth-mcp (see README.md beside it)."""
