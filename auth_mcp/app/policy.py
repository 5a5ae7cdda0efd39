"""The per-tool policies of the gateway file (`[[upstreams.NAME.tools]]`, `[[builtin.tools]]`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from auth_mcp.app.core import Core
from auth_mcp.policy import Memberships, Policies, PolicyError, ToolAccess, policies_of


@dataclass
class PolicySide:
    policies: Policies
    memberships: Memberships | None  # None when no rule names an organization or team
    builtin: ToolAccess

    def access(self, upstream: str) -> ToolAccess:
        """The policy of one upstream, for its proxy."""
        return ToolAccess(rules=self.policies.for_upstream(upstream), memberships=self.memberships)


def build_policy(core: Core, *, offered_scopes: Sequence[str]) -> PolicySide:
    """The rules of the gateway file `core.gateway_config` was read from: its `[builtin]` table
    and each upstream's raw `tools`. Raises `PolicyError` (a ValueError: start-up stops) naming
    the file and line of a mistake."""
    path, config = core.settings.gateway_config, core.gateway_config
    policies = Policies()
    if path is not None and config is not None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"AUTH_MCP_GATEWAY_CONFIG: cannot read {path}: {exc.strerror or exc}") from None
        rules = {name: upstream.tools for name, upstream in config.upstreams.items()}
        policies = policies_of(config.builtin, rules, text=text, source=str(path), supported_scopes=offered_scopes)
    every = (policies.builtin, *policies.upstreams.values())
    memberships = None
    if any(rules.needs_membership for rules in every):
        memberships = Memberships(
            people=core.people,
            orgs=frozenset(org for rules in every for org in rules.orgs),
            teams=frozenset(team for rules in every for team in rules.teams),
            clock=core.clock,
            # The schedule of the AUTH_MCP_ALLOWED_ORGS re-check: once per access-token lifetime.
            max_age=core.settings.access_token_ttl,
        )
    return PolicySide(
        policies=policies, memberships=memberships, builtin=ToolAccess(rules=policies.builtin, memberships=memberships)
    )
