"""Per-tool policy: who may see and call which tools of one MCP resource.

Each resource (an upstream at /mcp/NAME, or the built-in tools at /mcp) has an ordered list of
rules, written in the gateway file as arrays of tables:

    [[upstreams.github.tools]]
    match = "delete_*"            # a glob over tool names (fnmatch: * ? [seq]), case-sensitive
    teams = ["acme/admins"]       # who: users, orgs, teams (any of them; none = everyone signed in)
    scopes = ["read:org"]         # MCP scopes the call needs (missing: 403 insufficient_scope)

How a tool is decided for a caller, reading the rules top to bottom:
- a deny rule (`allow = false`) that matches the tool refuses the people it names (everyone, if
  it names no one); the others read on;
- the first allow rule that matches the tool decides: the people it names may see and call the
  tool (with its scopes); everyone else is refused, whatever later rules say;
- a tool no allow rule matches is refused. A resource without rules serves every tool to every
  signed-in caller, as before policies existed.
Membership GitHub hides or cannot tell fails closed: an allow rule does not admit, a deny rule
that names the organisation refuses.

People: a TOML integer is a GitHub numeric id (the safe form: ids are never reused), a string
is a login (case-insensitive; renamable, so a login can later belong to someone else). A string
of digits alone is refused as ambiguous: write the id as a number, or a digits-only login as
"@12345".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictBool, StrictInt, StrictStr, ValidationError

from auth_mcp.policy.membership import Membership
from auth_mcp.policy.source import TomlLines

_LOGIN = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$")
_TEAM_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class PolicyError(ValueError):
    """A policy the server cannot serve; the message names the file and line to change."""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    reason: str = ""  # why not, for the caller: names no organisation or person but their own
    scopes: tuple[str, ...] = ()  # the MCP scopes the deciding rule needs


@dataclass(frozen=True, slots=True)
class Rule:
    match: str
    allow: bool
    user_ids: frozenset[int]
    logins: frozenset[str]  # lowercase
    orgs: frozenset[str]  # lowercase
    teams: frozenset[str]  # lowercase "org/team-slug"
    scopes: tuple[str, ...]
    line: int | None

    @property
    def names_anyone(self) -> bool:
        return not (self.user_ids or self.logins or self.orgs or self.teams)

    def applies_to(self, tool: str) -> bool:
        return fnmatchcase(tool, self.match)

    def names(self, *, user_id: int, login: str, membership: Membership) -> tuple[bool, str | None]:
        """Whether the caller is among the people named, and if not for sure, why not."""
        if self.names_anyone or user_id in self.user_ids or login.lower() in self.logins:
            return True, None
        if self.orgs & membership.orgs or self.teams & membership.teams:
            return True, None
        if not (self.orgs or self.teams):
            return False, None
        if membership.unavailable is not None:
            return False, membership.unavailable
        asked = self.orgs | {team.split("/", 1)[0] for team in self.teams}
        hidden = [f"{org}: {membership.hidden[org]}" for org in sorted(asked) if org in membership.hidden]
        return False, ("GitHub hid your membership (" + "; ".join(hidden) + ")") if hidden else None


class ToolRules:
    """The ordered rules of one resource."""

    def __init__(self, rules: Sequence[Rule] = ()) -> None:
        self._rules = tuple(rules)
        self.orgs = frozenset(org for rule in self._rules for org in rule.orgs)
        self.teams = frozenset(team for rule in self._rules for team in rule.teams)

    @property
    def rules(self) -> tuple[Rule, ...]:
        return self._rules

    @property
    def restricted(self) -> bool:
        return bool(self._rules)

    @property
    def needs_membership(self) -> bool:
        return bool(self.orgs or self.teams)

    def scopes_for(self, tool: str) -> tuple[str, ...]:
        """The scopes a call of `tool` needs under this policy (those of the first allow rule
        that matches it; the same for every caller)."""
        for rule in self._rules:
            if rule.allow and rule.applies_to(tool):
                return rule.scopes
        return ()

    def decide(self, tool: str, *, user_id: int, login: str, membership: Membership) -> Verdict:
        if not self._rules:
            return Verdict(True)
        for rule in self._rules:
            if not rule.applies_to(tool):
                continue
            named, doubt = rule.names(user_id=user_id, login=login, membership=membership)
            if not rule.allow:
                if named:
                    return Verdict(False, f"the policy refuses GitHub user {login} the tool {tool}")
                if doubt is not None:
                    return Verdict(False, f"{login} may not call {tool} until membership can be confirmed: {doubt}")
                continue
            if named:
                return Verdict(True, scopes=rule.scopes)
            why = f": {doubt}" if doubt else ""
            return Verdict(False, f"GitHub user {login} is not among the people allowed to call {tool}{why}", rule.scopes)
        return Verdict(False, f"no rule of the policy allows the tool {tool}")


class _RuleEntry(BaseModel):
    """One `[[...tools]]` table as written."""

    model_config = ConfigDict(extra="forbid", strict=True)

    match: StrictStr
    users: list[StrictInt | StrictStr] = []
    orgs: list[StrictStr] = []
    teams: list[StrictStr] = []
    scopes: list[StrictStr] = []
    allow: StrictBool = True


def read_rules(
    entries: object,
    *,
    table: tuple[str, ...],
    lines: TomlLines,
    source: str,
    supported_scopes: Iterable[str],
) -> ToolRules:
    """The rules at `table` (e.g. ("upstreams", "github", "tools")). Raises `PolicyError`."""
    where = ".".join(table)
    if entries is None:
        return ToolRules()
    if not isinstance(entries, list):
        raise _error(source, lines.locate(table), f"{where} must be an array of tables ([[{where}]]), one per rule")
    supported = tuple(supported_scopes)
    rules = []
    for index, entry in enumerate(entries):

        def fail(key: str | None, problem: str, index: int = index) -> PolicyError:
            return _error(source, lines.locate(table, key, index), f"[[{where}]] rule {index + 1}: {problem}")

        if not isinstance(entry, dict):
            raise fail(None, "each rule is a table with at least `match`")
        try:
            parsed = _RuleEntry.model_validate(entry)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = str(first["loc"][0]) if first["loc"] else None
            raise fail(key, _explain(first)) from None
        rules.append(_rule(parsed, fail=fail, supported=supported, line=lines.locate(table, None, index)))
    return ToolRules(rules)


def _rule(entry: _RuleEntry, *, fail: Any, supported: tuple[str, ...], line: int | None) -> Rule:
    if not entry.match:
        raise fail("match", '`match` is empty; use "*" for every tool')
    user_ids: set[int] = set()
    logins: set[str] = set()
    for user in entry.users:
        if isinstance(user, int):
            if user <= 0:
                raise fail("users", f"{user} is not a GitHub user id")
            user_ids.add(user)
            continue
        login = user.removeprefix("@")
        if user.isdigit():
            raise fail(
                "users",
                f'"{user}" is ambiguous: write a numeric GitHub id as a number (users = [{user}]), '
                f'or a login made only of digits as "@{user}"',
            )
        if not _LOGIN.match(login):
            raise fail("users", f"{user!r} is not a GitHub login")
        logins.add(login.lower())
    for org in entry.orgs:
        if not _LOGIN.match(org):
            raise fail("orgs", f"{org!r} is not a GitHub organization name")
    teams = set()
    for team in entry.teams:
        org, _, slug = team.partition("/")
        if not _LOGIN.match(org) or not _TEAM_SLUG.match(slug):
            raise fail("teams", f'{team!r} is not a team: write ORGANIZATION/TEAM-SLUG, e.g. "acme/platform"')
        teams.add(f"{org.lower()}/{slug.lower()}")
    for scope in entry.scopes:
        if scope not in supported:
            raise fail("scopes", f"unknown scope {scope!r}: the scopes clients can be granted are {', '.join(supported)}")
    if not entry.allow and entry.scopes:
        raise fail("scopes", "a deny rule (allow = false) needs no scopes: it refuses the call whatever the token holds")
    return Rule(
        match=entry.match,
        allow=entry.allow,
        user_ids=frozenset(user_ids),
        logins=frozenset(logins),
        orgs=frozenset(org.lower() for org in entry.orgs),
        teams=frozenset(teams),
        scopes=tuple(dict.fromkeys(entry.scopes)),
        line=line,
    )


def _explain(error: Any) -> str:
    key = ".".join(str(part) for part in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"unknown key `{key}` (a rule has match, users, orgs, teams, scopes, allow)"
    if kind == "missing":
        return f'`{key}` is missing: every rule needs a glob of the tool names it covers, e.g. match = "*"'
    return f"`{key}`: {error['msg']}"


def _error(source: str, line: int | None, problem: str) -> PolicyError:
    where = f"{source}, line {line}" if line is not None else source
    return PolicyError(f"{where}: {problem}")
