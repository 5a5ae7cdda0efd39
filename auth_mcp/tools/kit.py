"""What a GitHub-backed tool needs, in one import.

A tool is one small module with one async function:

    from auth_mcp.tools.kit import PersonsGitHub, scoped_tool

    @scoped_tool(scopes=("user:email",), title="E-mail addresses")
    async def get_user_emails(github: PersonsGitHub) -> Emails:
        \"\"\"The signed-in person's e-mail addresses.\"\"\"
        return Emails(emails=await github.get("/user/emails"))

`github` is filled by the MCP SDK's resolver injection (never by the model): a client for
GitHub's REST API acting as the person whose MCP token made this call, with their GitHub token,
which never leaves the server. `scopes` are the MCP scopes the tool needs; they are checked at
the HTTP layer (403 insufficient_scope, so clients can step up), again here, listed in the
tool's description and `_meta`, and asked of GitHub at login. Pass it to `create_app(settings, tools=[...])`, or add it to `BUILTIN_TOOLS`
in `auth_mcp/tools/__init__.py`.

`github.get(path)` answers with GitHub's JSON; `github.get_model(path, Model)` with it parsed into
a pydantic model that is kept with the ETag, so a repeated read GitHub answers 304 costs no
parsing (the model is shared between those reads: copy it before changing it).
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, ParamSpec, TypeVar

from mcp.server.auth.middleware.auth_context import auth_context_var
from mcp.server.elicitation import AcceptedElicitation
from mcp.server.mcpserver import Context
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.resolve import Resolve

from auth_mcp.github.models import GitHubError
from auth_mcp.github.person import PersonGitHub
from auth_mcp.http.outage import note_outage
from auth_mcp.resource.verifier import McpAccessToken
from auth_mcp.storage.availability import StorageUnavailable

P = ParamSpec("P")
R = TypeVar("R")

SCOPES_META_KEY = "io.github.auth-mcp/requiredScopes"


@dataclass(frozen=True)
class ToolServices:
    """What tools reach through the MCP server's lifespan context (built once in app.py)."""

    people: Callable[[str], PersonGitHub]  # grant id -> GitHub as that person


def caller() -> McpAccessToken:
    """The verified MCP token of the current call (set by bearer.py for every request)."""
    user = auth_context_var.get()  # what the SDK's get_access_token() reads, without its call
    token = user.access_token if user is not None else None
    if not isinstance(token, McpAccessToken):
        raise ToolError("This tool needs an authenticated caller")
    return token


async def _persons_github(ctx: Context) -> PersonGitHub:
    services = ctx.request_context.lifespan_context
    if not isinstance(services, ToolServices):
        raise ToolError("This tool runs only inside auth-mcp's server")
    # One per verified token, kept as long as the verifier keeps the token (which it drops when the
    # grant is revoked): what it learns of the grant serves the token's next calls (github/person.py).
    return caller().answer(_PERSONS_GITHUB, lambda token: services.people(token.grant_id))


_PERSONS_GITHUB = "auth_mcp.tools.kit:PersonsGitHub"


PersonsGitHub = Annotated[PersonGitHub, Resolve(_persons_github)]

# The SDK wraps each resolved value (`github` above) in `AcceptedElicitation[Any]`, a pydantic
# generic class that pydantic caches only weakly: whenever the garbage collector freed it, the next
# tool call built it again, schema and all (37 times in 300 calls of get_user_profile, profiled).
# Holding the class keeps pydantic's cache entry alive.
_RESOLVED_VALUE = AcceptedElicitation[Any]


@dataclass(frozen=True)
class ToolSpec:
    fn: Callable[..., Awaitable[Any]]
    scopes: tuple[str, ...]
    title: str

    @property
    def name(self) -> str:
        return self.fn.__name__

    @property
    def description(self) -> str:
        doc = " ".join((self.fn.__doc__ or "").split())
        return f"{doc} Requires the scope {' and '.join(self.scopes)}."


def scoped_tool(*, scopes: tuple[str, ...], title: str) -> Callable[[Callable[P, Awaitable[R]]], ToolSpec]:
    """Declare a tool: its required MCP scopes, and GitHub failures turned into tool errors that
    say what happened (rate limit and when to retry, SSO, a dead grant) instead of a traceback."""

    required = frozenset(scopes)

    def declare(fn: Callable[P, Awaitable[R]]) -> ToolSpec:
        @functools.wraps(fn)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            granted = caller().scopes
            if not required.issubset(granted):
                missing = [scope for scope in scopes if scope not in granted]
                raise ToolError(f"insufficient_scope: this tool needs {' '.join(missing)}; authorize again with it")
            try:
                return await fn(*args, **kwargs)
            except GitHubError as exc:
                raise ToolError(str(exc)) from None
            except StorageUnavailable as exc:
                # The SDK would make this an error result under HTTP 200 (and log a traceback):
                # the outage layer answers 503 with Retry-After instead, so clients retry.
                note_outage(exc)
                raise ToolError(f"{exc.message} Retry in {exc.retry_after} seconds.") from None

        return ToolSpec(fn=guarded, scopes=scopes, title=title)

    return declare
