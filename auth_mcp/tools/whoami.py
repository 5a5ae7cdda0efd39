"""`whoami`: who this token is. Answered from the verified token alone; GitHub is not called."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import BaseModel

from auth_mcp.resource.verifier import McpAccessToken
from auth_mcp.tools.kit import caller, scoped_tool


class WhoAmI(BaseModel):
    login: str
    id: int
    client_id: str
    client_name: str | None
    scopes: list[str]
    expires_at: int | None
    expires_at_iso: str | None


@scoped_tool(scopes=("read:user",), title="Who am I")
async def whoami() -> WhoAmI:
    """Who this access token belongs to: GitHub login and numeric id, the MCP client's id and name,
    the granted scopes and when the token expires."""
    return caller().answer("whoami", _who)


def _who(token: McpAccessToken) -> WhoAmI:
    expires = token.expires_at
    return WhoAmI(
        login=token.github_login,
        id=token.github_user_id,
        client_id=token.client_id,
        client_name=token.client_name,
        scopes=list(token.scopes),
        expires_at=expires,
        expires_at_iso=datetime.fromtimestamp(expires, UTC).isoformat() if expires else None,
    )
