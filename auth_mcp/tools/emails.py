"""`get_user_emails`: the person's e-mail addresses (GitHub scope user:email)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from auth_mcp.tools.kit import PersonsGitHub, scoped_tool


class EmailAddress(BaseModel):
    model_config = ConfigDict(extra="allow")

    email: str
    primary: bool
    verified: bool
    visibility: str | None = None


class Emails(BaseModel):
    emails: list[EmailAddress]


@scoped_tool(scopes=("user:email",), title="E-mail addresses")
async def get_user_emails(github: PersonsGitHub) -> Emails:
    """The signed-in person's e-mail addresses (GET /user/emails), with the primary and verified ones flagged."""
    return Emails.model_validate({"emails": await github.get("/user/emails?per_page=100")})
