"""`get_user_profile`: the signed-in person's GitHub profile, with GitHub's own field names."""

from __future__ import annotations

from auth_mcp.github.models import GitHubUser
from auth_mcp.tools.kit import PersonsGitHub, scoped_tool


@scoped_tool(scopes=("read:user",), title="GitHub profile")
async def get_user_profile(github: PersonsGitHub) -> GitHubUser:
    """The signed-in person's GitHub profile (GET /user): login, id, name and the rest of GitHub's fields."""
    return await github.get_model("/user", GitHubUser)
