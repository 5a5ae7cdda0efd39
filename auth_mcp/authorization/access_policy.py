"""Who may get in: `AUTH_MCP_ALLOWED_USERS` and `AUTH_MCP_ALLOWED_ORGS`.

Checked when a person logs in and again whenever their MCP tokens are refreshed, so removal
from an allowed organisation ends access within one access-token lifetime. Membership that
GitHub hides (SAML SSO not authorized for the token, OAuth App access restrictions) fails
closed, and the reason says so.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from auth_mcp.github.models import GitHubForbidden, GitHubUser, OrgMembership
from auth_mcp.github.person import PersonGitHub
from auth_mcp.storage.store import Store

MembershipLookup = Callable[[str], Awaitable[OrgMembership | None]]
"""org -> the person's membership (None if not a member), asked with the person's own token."""


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reason: str = ""


ALLOWED = Decision(True)


# GitHub logins: letters, digits and single inner hyphens, up to 39 characters.
_LOGIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,37}[A-Za-z0-9])?")


def _user_entry(entry: str) -> tuple[str, str]:
    """One AUTH_MCP_ALLOWED_USERS entry as ("id", digits) or ("login", name).

    `id:123` and `login:123` say which they are; a bare number is an id (a login can be renamed
    and then taken by someone else, an id cannot), a bare name a login. A person whose login is
    all digits is therefore written `login:1234`.
    """
    kind, sep, value = entry.strip().partition(":")
    if not sep:
        kind, value = ("id" if entry.strip().isdigit() else "login"), entry.strip()
    kind = kind.lower()
    if kind == "id" and value.isdigit():
        return "id", value
    if kind == "login" and _LOGIN.fullmatch(value):
        return "login", value
    raise ValueError(
        f"AUTH_MCP_ALLOWED_USERS: {entry!r} is neither a GitHub user id nor a login; write id:123 or login:name "
        "(a bare number is read as an id)"
    )


class AccessPolicy:
    def __init__(self, *, allowed_users: Sequence[str], allowed_orgs: Sequence[str]) -> None:
        self._logins: set[str] = set()
        self._ids: set[int] = set()
        for entry in allowed_users:
            kind, value = _user_entry(entry)
            if kind == "id":
                self._ids.add(int(value))
            else:
                self._logins.add(value.lower())
        self._orgs = list(dict.fromkeys(allowed_orgs))

    @property
    def restricted(self) -> bool:
        return bool(self._logins or self._ids or self._orgs)

    @property
    def github_scopes(self) -> tuple[str, ...]:
        """GitHub scopes the policy itself needs: membership checks need read:org."""
        return ("read:org",) if self._orgs else ()

    async def decide(self, *, user: GitHubUser, membership: MembershipLookup) -> Decision:
        """Raises `GitHubUnavailable` when GitHub cannot answer: that is not a denial."""
        if not self.restricted:
            return ALLOWED
        if user.id in self._ids or user.login.lower() in self._logins:
            return ALLOWED
        hidden: list[str] = []
        for org in self._orgs:
            try:
                member = await membership(org)
            except GitHubForbidden as exc:
                hidden.append(f"{org}: {exc}")
                continue
            if member is not None and member.state == "active":
                return ALLOWED
        who = f"GitHub user {user.login}"
        if hidden:
            return Decision(
                False,
                f"{who} could not be confirmed as a member of an allowed organization, because GitHub hid the "
                f"membership ({'; '.join(hidden)})",
            )
        if self._orgs:
            return Decision(
                False,
                f"{who} is not allowed on this server: not an allowed user and not an active member of "
                f"{', '.join(self._orgs)}",
            )
        return Decision(False, f"{who} is not in this server's list of allowed users")


class MembershipRecheck:
    """The policy again, for a grant at refresh time, asked with the person's own GitHub token."""

    def __init__(self, *, policy: AccessPolicy, store: Store, people: Callable[[str], PersonGitHub]) -> None:
        self._policy = policy
        self._store = store
        self._people = people

    async def __call__(self, grant_id: str) -> Decision:
        """Raises `GitHubUnavailable`, or `GrantEnded` when GitHub no longer accepts the grant."""
        if not self._policy.restricted:
            return ALLOWED
        grant = await self._store.get_grant(grant_id)
        if grant is None:
            return Decision(False, "the authorization was revoked")
        person = self._people(grant_id)
        user = GitHubUser(id=grant.github_user_id, login=grant.github_login)
        return await self._policy.decide(user=user, membership=person.org_membership)
