"""Per-tool rules: how a tool is decided for a caller, and policy mistakes that stop start-up."""

from __future__ import annotations

import pytest

from auth_mcp.policy import Membership, Policies, PolicyError, read_policies
from auth_mcp.scopes import SUPPORTED_SCOPES

GATEWAY = """\
[upstreams.alpha]
url = "http://127.0.0.1:9001/mcp"

[[upstreams.alpha.tools]]
match = "*"
users = ["mallory"]
allow = false

[[upstreams.alpha.tools]]
match = "delete_*"
teams = ["acme/admins"]
scopes = ["read:org"]

[[upstreams.alpha.tools]]
match = "*"
orgs = ["acme"]

[upstreams.beta]
url = "http://127.0.0.1:9002/mcp"

[[upstreams.beta.tools]]
match = "echo"
users = [583231, "@1234"]

[upstreams.gamma]
url = "http://127.0.0.1:9003/mcp"

[[builtin.tools]]
match = "whoami"
"""


def policies(text: str = GATEWAY) -> Policies:
    return read_policies(text, source="gateway.toml", supported_scopes=SUPPORTED_SCOPES)


def decide(tool: str, *, upstream: str = "alpha", user_id: int = 1, login: str = "someone", membership: Membership | None = None):
    rules = policies().for_upstream(upstream) if upstream != "builtin" else policies().builtin
    return rules.decide(tool, user_id=user_id, login=login, membership=membership or Membership())


ACME = Membership(orgs=frozenset({"acme"}))
ADMIN = Membership(orgs=frozenset({"acme"}), teams=frozenset({"acme/admins"}))


def test_a_caller_outside_the_organisation_may_call_nothing() -> None:
    for tool in ("search", "delete_repo"):
        verdict = decide(tool)
        assert not verdict.allowed and "someone" in verdict.reason


def test_an_organisation_member_may_call_what_the_organisation_rule_covers() -> None:
    assert decide("search", membership=ACME).allowed


def test_the_first_allow_rule_that_matches_decides_even_when_a_later_one_would_admit() -> None:
    assert not decide("delete_repo", membership=ACME).allowed
    verdict = decide("delete_repo", membership=ADMIN)
    assert verdict.allowed and verdict.scopes == ("read:org",)


def test_a_deny_rule_refuses_the_people_it_names_and_lets_the_others_read_on() -> None:
    assert not decide("search", login="Mallory", membership=ADMIN).allowed
    assert decide("search", login="alice", membership=ADMIN).allowed


def test_numeric_ids_and_at_logins_name_people_unambiguously() -> None:
    assert decide("echo", upstream="beta", user_id=583231, login="renamed").allowed
    assert decide("echo", upstream="beta", user_id=7, login="1234").allowed
    assert not decide("echo", upstream="beta", user_id=1234, login="other").allowed


def test_a_tool_no_rule_matches_is_refused_and_an_upstream_without_rules_serves_everything() -> None:
    assert not decide("other_tool", upstream="beta", user_id=583231).allowed
    assert decide("anything", upstream="gamma").allowed
    assert decide("anything", upstream="not-configured").allowed


def test_membership_github_hid_fails_closed_and_says_why() -> None:
    hidden = Membership(hidden={"acme": "SAML SSO is enforced for acme; authorize the app for it"})
    verdict = decide("search", membership=hidden)
    assert not verdict.allowed and "SAML SSO" in verdict.reason


def test_a_deny_rule_naming_a_hidden_organisation_refuses() -> None:
    deny = '\n[[upstreams.gamma.tools]]\nmatch = "*"\norgs = ["rivals"]\nallow = false\n'
    text = GATEWAY + deny + '\n[[upstreams.gamma.tools]]\nmatch = "*"\n'
    rules = policies(text).for_upstream("gamma")
    assert rules.decide("x", user_id=1, login="a", membership=Membership()).allowed
    hidden = Membership(hidden={"rivals": "OAuth App access restrictions"})
    assert not rules.decide("x", user_id=1, login="a", membership=hidden).allowed


def test_an_unreachable_github_refuses_for_now() -> None:
    verdict = decide("search", membership=Membership(unavailable="GitHub could not be asked (timeout)"))
    assert not verdict.allowed and "GitHub could not be asked" in verdict.reason


def test_policies_needing_membership_ask_github_for_read_org() -> None:
    assert policies().github_scopes == ("read:org",)
    assert policies('[[builtin.tools]]\nmatch = "*"\nusers = [1]\n').github_scopes == ()


@pytest.mark.parametrize(
    ("rule", "line", "words"),
    [
        ('match = "*"\nusers = ["12345"]', 3, 'write a numeric GitHub id as a number'),
        ('match = "*"\nscopes = ["repo"]', 3, "unknown scope 'repo'"),
        ('match = "*"\nteams = ["platform"]', 3, "ORGANIZATION/TEAM-SLUG"),
        ('match = "*"\nmembers = ["x"]', 3, "unknown key `members`"),
        ('users = [1]', 1, "`match` is missing"),
        ('match = "*"\nallow = "no"', 3, "`allow`"),
        ('match = "*"\nallow = false\nscopes = ["read:org"]', 4, "deny rule"),
        ('match = ""', 2, "`match` is empty"),
    ],
)
def test_a_policy_mistake_stops_start_up_with_a_sentence_naming_its_line(rule: str, line: int, words: str) -> None:
    text = f"[[builtin.tools]]\n{rule}\n"
    with pytest.raises(PolicyError) as caught:
        policies(text)
    assert f"gateway.toml, line {line}:" in str(caught.value)
    assert words in str(caught.value)


def test_the_line_is_that_of_the_rule_in_its_own_upstream() -> None:
    text = GATEWAY + '\n[[upstreams.gamma.tools]]\nmatch = "*"\norgs = ["not an org"]\n'
    line = text.splitlines().index('orgs = ["not an org"]') + 1
    with pytest.raises(PolicyError, match=rf"gateway.toml, line {line}: \[\[upstreams.gamma.tools\]\] rule 1: 'not an org'"):
        policies(text)


def test_an_unknown_key_in_the_builtin_table_is_refused_with_its_line() -> None:
    with pytest.raises(PolicyError, match=r"line 2: unknown key `tool`"):
        policies('[builtin]\ntool = []\n')
