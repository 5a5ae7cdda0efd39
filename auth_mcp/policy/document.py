"""The policies of a gateway file: `[[upstreams.NAME.tools]]` per upstream, `[[builtin.tools]]`
for the built-in tools at /mcp. Read once at start-up; any mistake stops it, naming the line."""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from auth_mcp.policy.rules import PolicyError, ToolRules, read_rules
from auth_mcp.policy.source import TomlLines

BUILTIN = "builtin"  # the resource name of the built-in tools, in policies and in the audit trail


@dataclass(frozen=True)
class Policies:
    builtin: ToolRules = field(default_factory=ToolRules)
    upstreams: Mapping[str, ToolRules] = field(default_factory=dict)

    def for_upstream(self, name: str) -> ToolRules:
        return self.upstreams.get(name) or ToolRules()

    @property
    def github_scopes(self) -> tuple[str, ...]:
        """GitHub scopes the policies need at login: membership checks need read:org."""
        every = (self.builtin, *self.upstreams.values())
        return ("read:org",) if any(rules.needs_membership for rules in every) else ()


def read_policies(text: str, *, source: str, supported_scopes: Iterable[str]) -> Policies:
    """Every tool policy in a gateway file's text; `source` names the file in errors."""
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"{source}: not valid TOML: {exc}") from None
    upstreams = {name: table.get("tools") for name, table in (document.get("upstreams") or {}).items() if isinstance(table, dict)}
    return policies_of(document.get(BUILTIN, {}), upstreams, text=text, source=source, supported_scopes=supported_scopes)


def policies_of(
    builtin_table: object,
    upstream_rules: Mapping[str, object],
    *,
    text: str,
    source: str,
    supported_scopes: Iterable[str],
) -> Policies:
    """The policies of tables already read (the gateway configuration's `[builtin]` table, and
    each upstream's raw `tools`); `text`, the file they came from, gives errors their line."""
    lines = TomlLines(text)
    scopes = tuple(supported_scopes)
    if not isinstance(builtin_table, Mapping):
        raise PolicyError(f"{source}, line {lines.locate((), BUILTIN)}: `{BUILTIN}` must be a table ([{BUILTIN}])")
    for key in builtin_table:
        if key != "tools":
            line = lines.locate((BUILTIN,), key)
            raise PolicyError(f"{source}, line {line}: unknown key `{key}` in [{BUILTIN}] (it holds [[{BUILTIN}.tools]] rules)")
    builtin = read_rules(
        builtin_table.get("tools"), table=(BUILTIN, "tools"), lines=lines, source=source, supported_scopes=scopes
    )
    upstreams: dict[str, ToolRules] = {}
    for name, entries in upstream_rules.items():
        upstreams[name] = read_rules(
            _as_list(entries), table=("upstreams", name, "tools"), lines=lines, source=source, supported_scopes=scopes
        )
    return Policies(builtin=builtin, upstreams=upstreams)


def _as_list(entries: object) -> object:
    """The configuration model keeps an upstream's rules as a tuple; none at all is no rules."""
    if isinstance(entries, tuple):
        return list(entries) if entries else None
    return entries
