"""`list_user_orgs`: the organizations the person belongs to (GitHub scope read:org)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from auth_mcp.tools.kit import PersonsGitHub, scoped_tool


class Organization(BaseModel):
    model_config = ConfigDict(extra="allow")

    login: str
    id: int
    description: str | None = None


class Organizations(BaseModel):
    organizations: list[Organization]


@scoped_tool(scopes=("read:org",), title="Organizations")
async def list_user_orgs(github: PersonsGitHub) -> Organizations:
    """The organizations the signed-in person belongs to (GET /user/orgs)."""
    return Organizations.model_validate({"organizations": await github.get("/user/orgs?per_page=100")})
