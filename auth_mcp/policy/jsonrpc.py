"""Policy on the wire: JSON-RPC messages of MCP, one at a time.

The gateway's proxy hands each message it relays here (a JSON body, or the `data:` of one SSE
event, parsed): tools/list results are cut to what the caller may see, and a refused tools/call
is answered here and never forwarded. The tool a call runs is the body's `params.name`; the
proxy must also refuse a request whose `Mcp-Name` header names another tool (`routing_mismatch`),
as the SDK does for the built-in tools, so that what is checked, logged and run is one name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# JSON-RPC 2.0 §5.1: -32000 to -32099 are for implementation-defined server errors.
POLICY_REFUSED = -32003


def tool_call_name(message: Any) -> str | None:
    """The tool a `tools/call` request message runs, or None for any other message."""
    if not isinstance(message, dict) or message.get("method") != "tools/call":
        return None
    params = message.get("params")
    name = params.get("name") if isinstance(params, dict) else None
    return name if isinstance(name, str) else ""


def routing_mismatch(mcp_name: str | None, message: Any) -> str | None:
    """Why a tools/call whose `Mcp-Name` header (decoded) disagrees with its body is refused."""
    name = tool_call_name(message)
    if name is None or mcp_name is None or mcp_name == name:
        return None
    return "the Mcp-Name header names another tool than the request body"


def refusal(message: Any, reason: str) -> dict[str, Any]:
    """The JSON-RPC error answering a refused request `message`."""
    request_id = message.get("id") if isinstance(message, dict) else None
    tool = tool_call_name(message)
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "error": {"code": POLICY_REFUSED, "message": f"Refused: {reason}", "data": {"tool": tool, "reason": reason}},
    }


def filter_tools_list(message: Any, visible: Callable[[str], bool]) -> Any:
    """A tools/list result message with only the tools `visible` admits; others unchanged.

    Give it only responses to a tools/list request (match their `id`): other results are not
    inspected for a `tools` key here, but a reply to another request has no business with one."""
    if not isinstance(message, dict):
        return message
    result = message.get("result")
    if not isinstance(result, dict) or not isinstance(result.get("tools"), list):
        return message
    tools = result["tools"]
    kept = [tool for tool in tools if isinstance(tool, dict) and isinstance(tool.get("name"), str) and visible(tool["name"])]
    if len(kept) == len(tools):
        return message  # nothing hidden: the upstream's bytes pass as they came
    return {**message, "result": {**result, "tools": kept}}
