"""Policy on single JSON-RPC messages, as the gateway's proxy relays them (JSON body or SSE data)."""

from __future__ import annotations

from auth_mcp.policy.jsonrpc import POLICY_REFUSED, filter_tools_list, refusal, routing_mismatch, tool_call_name

LISTING = {"jsonrpc": "2.0", "id": 7, "result": {"tools": [{"name": "echo"}, {"name": "delete_repo"}], "nextCursor": "c"}}


def test_a_tools_list_result_keeps_only_the_visible_tools_and_everything_else_of_the_message() -> None:
    filtered = filter_tools_list(LISTING, lambda name: name == "echo")
    assert filtered == {"jsonrpc": "2.0", "id": 7, "result": {"tools": [{"name": "echo"}], "nextCursor": "c"}}
    assert LISTING["result"]["tools"][1]["name"] == "delete_repo"  # the input is not changed


def test_messages_that_are_not_tool_listings_pass_unchanged() -> None:
    notification = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progress": 1}}
    error = {"jsonrpc": "2.0", "id": 1, "error": {"code": -1, "message": "x"}}
    for message in (notification, error, [1, 2], "text"):
        assert filter_tools_list(message, lambda name: False) is message


def test_malformed_tool_entries_are_dropped_rather_than_shown() -> None:
    message = {"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"title": "no name"}, "junk", {"name": "ok"}]}}
    assert filter_tools_list(message, lambda name: True)["result"]["tools"] == [{"name": "ok"}]


def test_the_tool_a_call_runs_is_the_body_s_and_a_header_naming_another_is_a_reason_to_refuse() -> None:
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "delete_repo", "arguments": {}}}
    assert tool_call_name(call) == "delete_repo"
    assert tool_call_name({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}) is None
    assert routing_mismatch("echo", call) is not None
    assert routing_mismatch("delete_repo", call) is None
    assert routing_mismatch(None, call) is None


def test_a_refusal_is_a_json_rpc_error_for_the_same_request_id() -> None:
    call = {"jsonrpc": "2.0", "id": "a", "method": "tools/call", "params": {"name": "delete_repo"}}
    answer = refusal(call, "not allowed")
    assert answer["id"] == "a" and answer["error"]["code"] == POLICY_REFUSED
    assert answer["error"]["data"] == {"tool": "delete_repo", "reason": "not allowed"}
