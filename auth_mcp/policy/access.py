"""The policy of one resource applied to one caller: what they may see, call, and with which scopes.

This is the public face of the policy for the gateway's proxy and for the built-in tools:

    view = await access.view(caller)          # membership looked up (cached) once
    view.visible("delete_repo")               # shown in tools/list?
    verdict = view.verdict("delete_repo")     # allowed? why not?
    view.missing_scopes("delete_repo")        # scopes to step up to (403 insufficient_scope)

A resource without rules costs nothing: `restricted` is False and callers need not ask.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Protocol

from auth_mcp.policy.membership import NO_MEMBERSHIP, Membership, Memberships
from auth_mcp.policy.rules import ToolRules, Verdict


class Caller(Protocol):
    """Who is calling: `auth_mcp.resource.verifier.McpAccessToken` is one."""

    @property
    def grant_id(self) -> str: ...
    @property
    def github_user_id(self) -> int: ...
    @property
    def github_login(self) -> str: ...
    @property
    def scopes(self) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class CallerView:
    rules: ToolRules
    user_id: int
    login: str
    granted: Collection[str]
    membership: Membership

    def verdict(self, tool: str) -> Verdict:
        return self.rules.decide(tool, user_id=self.user_id, login=self.login, membership=self.membership)

    def visible(self, tool: str) -> bool:
        """Listed in tools/list: the caller may call it (perhaps after a scope step-up)."""
        return self.verdict(tool).allowed

    def missing_scopes(self, tool: str) -> tuple[str, ...]:
        """Every scope the policy needs for `tool` that the token lacks (all of them, for one challenge)."""
        needed = self.rules.scopes_for(tool)
        return needed if any(scope not in self.granted for scope in needed) else ()


class ToolAccess:
    def __init__(self, *, rules: ToolRules, memberships: Memberships | None) -> None:
        if rules.needs_membership and memberships is None:
            raise ValueError("a policy naming organizations or teams needs a membership look-up")
        self._rules = rules
        self._memberships = memberships if rules.needs_membership else None

    @property
    def rules(self) -> ToolRules:
        return self._rules

    @property
    def restricted(self) -> bool:
        return self._rules.restricted

    def scopes_for(self, tool: str) -> tuple[str, ...]:
        return self._rules.scopes_for(tool)

    async def view(self, caller: Caller) -> CallerView:
        membership = NO_MEMBERSHIP if self._memberships is None else await self._memberships.of(caller.grant_id)
        return CallerView(
            rules=self._rules,
            user_id=caller.github_user_id,
            login=caller.github_login,
            granted=frozenset(caller.scopes),
            membership=membership,
        )
