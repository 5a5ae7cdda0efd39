"""Whether a person belongs to the organisations and teams a tool policy names, as GitHub says.

Asked with the person's own GitHub token (it needs `read:org`, which the login asks for when a
policy names organisations or teams):
- organisations: `GET /user/memberships/orgs/{org}`; only an `active` membership counts;
- teams: `GET /user/teams` (every team of the token's owner). Keyed on the token, not on the
  login, because a login can be renamed and taken by someone else.

Answers are kept per grant for `max_age` seconds, the access-token lifetime: the schedule on
which the AUTH_MCP_ALLOWED_ORGS allowlist is re-checked (at every token refresh), so leaving an
organisation or team ends access to its tools within one access-token lifetime, as leaving an
allowed organisation ends access to the server. Concurrent requests of one grant share one look-up.

Fails closed: membership GitHub hides (SAML SSO not authorised for this token, OAuth App access
restrictions: HTTP 403) counts as no membership, with the reason kept so that the refusal can say
why; a GitHub outage is not cached and refuses for now, saying GitHub could not be asked.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from auth_mcp.clock import Clock
from auth_mcp.github.models import GitHubError, GitHubForbidden, OrgMembership

TEAM_PAGES = 10  # /user/teams pages of 100 read at most: a person in more than 1,000 teams is cut off there


class PersonsOrgs(Protocol):
    """GitHub as one person: `auth_mcp.github.person.PersonGitHub` is one."""

    async def get(self, path: str) -> Any:
        """GET a REST path with the person's token; raises `GitHubError` subclasses."""
        ...

    async def org_membership(self, org: str) -> OrgMembership | None:
        """The person's membership of `org`, None when not a member; `GitHubForbidden` when hidden."""
        ...


@dataclass(frozen=True, slots=True)
class Membership:
    """What GitHub said about one person, for the organisations and teams a policy names."""

    orgs: frozenset[str] = frozenset()  # lowercase organisations with an active membership
    teams: frozenset[str] = frozenset()  # lowercase "org/team-slug"
    hidden: Mapping[str, str] = field(default_factory=dict)  # lowercase org -> why GitHub hid it
    unavailable: str | None = None  # set when GitHub could not be asked at all


NO_MEMBERSHIP = Membership()


@dataclass(slots=True)
class _Entry:
    membership: Membership
    checked_at: float


class Memberships:
    """Per-grant membership answers, cached for `max_age` seconds (bounded to `max_entries` grants)."""

    def __init__(
        self,
        *,
        people: Callable[[str], PersonsOrgs],
        orgs: frozenset[str],
        teams: frozenset[str],
        clock: Clock,
        max_age: float,
        max_entries: int = 10_000,
    ) -> None:
        self._people = people
        self._teams = frozenset(team.lower() for team in teams)
        # Team membership only counts together with an active membership of the team's organisation.
        self._orgs = tuple(sorted({org.lower() for org in orgs} | {team.split("/", 1)[0] for team in self._teams}))
        self._clock = clock
        self._max_age = max_age
        self._max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._inflight: dict[str, asyncio.Future[Membership]] = {}

    async def of(self, grant_id: str) -> Membership:
        now = self._clock.now()
        entry = self._entries.get(grant_id)
        if entry is not None and now - entry.checked_at < self._max_age:
            return entry.membership
        pending = self._inflight.get(grant_id)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Membership] = asyncio.get_running_loop().create_future()
        self._inflight[grant_id] = future
        try:
            membership = await self._ask(grant_id)
            if membership.unavailable is None:
                self._remember(grant_id, membership, now)
            future.set_result(membership)
            return membership
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved, so an unawaited future logs nothing
            raise
        finally:
            del self._inflight[grant_id]

    def forget(self, grant_id: str) -> None:
        self._entries.pop(grant_id, None)

    def _remember(self, grant_id: str, membership: Membership, now: float) -> None:
        self._entries[grant_id] = _Entry(membership, now)
        self._entries.move_to_end(grant_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)

    async def _ask(self, grant_id: str) -> Membership:
        person = self._people(grant_id)
        active: set[str] = set()
        hidden: dict[str, str] = {}
        try:
            for org in self._orgs:
                try:
                    member = await person.org_membership(org)
                except GitHubForbidden as exc:
                    hidden[org] = str(exc)
                    continue
                if member is not None and member.state == "active":
                    active.add(org)
            teams = await self._teams_of(person) if self._teams and active else set()
        except GitHubError as exc:
            return Membership(unavailable=f"GitHub could not be asked about your memberships ({exc})")
        # A team counts only where the organisation membership itself is active and visible.
        teams = {team for team in teams if team in self._teams and team.split("/", 1)[0] in active}
        return Membership(orgs=frozenset(active), teams=frozenset(teams), hidden=hidden)

    async def _teams_of(self, person: PersonsOrgs) -> set[str]:
        found: set[str] = set()
        for page in range(1, TEAM_PAGES + 1):
            body = await person.get(f"/user/teams?per_page=100&page={page}")
            if not isinstance(body, list):
                break
            for team in body:
                if not isinstance(team, dict):
                    continue
                org = team.get("organization")
                slug = team.get("slug")
                login = org.get("login") if isinstance(org, dict) else None
                if isinstance(slug, str) and isinstance(login, str):
                    found.add(f"{login.lower()}/{slug.lower()}")
            if len(body) < 100:
                break
        return found
