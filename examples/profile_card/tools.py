"""One tool of our own, served beside auth-mcp's built-in ones.

    AUTH_MCP_TOOLS=profile_card.tools:TOOLS uv run main.py     # with examples/ on PYTHONPATH
"""

from __future__ import annotations

from pydantic import BaseModel

from auth_mcp import PersonsGitHub, scoped_tool
from auth_mcp.tools import BUILTIN_TOOLS


class ProfileCard(BaseModel):
    login: str
    name: str | None
    public_repos: int
    followers: int
    summary: str


@scoped_tool(scopes=("read:user",), title="Profile card")
async def profile_card(github: PersonsGitHub) -> ProfileCard:
    """A one-line card of the signed-in person's GitHub account."""
    user = await github.get("/user")
    name = user.get("name") or user["login"]
    return ProfileCard(
        login=user["login"],
        name=user.get("name"),
        public_repos=user.get("public_repos", 0),
        followers=user.get("followers", 0),
        summary=f"{name} (@{user['login']}): {user.get('public_repos', 0)} public repositories, "
        f"{user.get('followers', 0)} followers",
    )


# What AUTH_MCP_TOOLS names: the built-in tools and ours.
TOOLS = (*BUILTIN_TOOLS, profile_card)
