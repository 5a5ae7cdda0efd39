"""Finding the line of a table or key in a TOML file, which tomllib does not tell."""

from __future__ import annotations

from auth_mcp.policy.source import TomlLines

TEXT = '''\
# a gateway file
[upstreams."my api"]
url = "http://127.0.0.1:9/mcp"
notes = """
[[upstreams."my api".tools]]
match = "not a rule"
"""

[[ upstreams . 'my api' . tools ]]
match = "read_*"

[[upstreams."my api".tools]]
  users = [1]
match = "write_*"

[builtin]
tools = [{ match = "*" }]
'''


def test_headers_are_found_however_their_keys_are_quoted_and_spaced() -> None:
    lines = TomlLines(TEXT)
    assert lines.table(("upstreams", "my api")) == 2
    assert lines.table(("upstreams", "my api", "tools"), 0) == 9
    assert lines.table(("upstreams", "my api", "tools"), 1) == 12


def test_text_inside_a_multi_line_string_is_not_taken_for_a_table() -> None:
    lines = TomlLines(TEXT)
    assert lines.key(("upstreams", "my api", "tools"), "match", 0) == 10


def test_a_key_is_found_in_its_own_element_of_an_array_of_tables() -> None:
    lines = TomlLines(TEXT)
    assert lines.key(("upstreams", "my api", "tools"), "match", 1) == 14
    assert lines.key(("upstreams", "my api", "tools"), "users", 1) == 13
    assert lines.key(("upstreams", "my api", "tools"), "users", 0) is None


def test_an_inline_table_is_located_at_the_key_that_holds_it() -> None:
    lines = TomlLines(TEXT)
    assert lines.locate(("builtin", "tools"), "match", 0) == 17
