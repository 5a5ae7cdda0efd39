"""Per-tool policy: who may see and call which tools, per upstream and for the built-in tools."""

from auth_mcp.policy.access import CallerView, ToolAccess
from auth_mcp.policy.document import BUILTIN, Policies, policies_of, read_policies
from auth_mcp.policy.membership import Membership, Memberships
from auth_mcp.policy.rules import PolicyError, Rule, ToolRules, Verdict

__all__ = [
    "BUILTIN",
    "CallerView",
    "Membership",
    "Memberships",
    "Policies",
    "PolicyError",
    "Rule",
    "ToolAccess",
    "ToolRules",
    "Verdict",
    "policies_of",
    "read_policies",
]
