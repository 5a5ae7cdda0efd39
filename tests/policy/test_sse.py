"""Rewriting SSE events as a stream passes, however the chunks cut them."""

from __future__ import annotations

import json

import pytest

from auth_mcp.policy.sse import SseOverflow, SseRewriter

LISTING = json.dumps({"jsonrpc": "2.0", "id": 1, "result": {"tools": [{"name": "a"}, {"name": "b"}]}}).encode()
STREAM = b"event: message\nid: 7\ndata: " + LISTING + b"\n\n: comment\n\nid: 8\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n"


def only_a(data: bytes) -> bytes:
    message = json.loads(data)
    if "result" not in message:
        return data
    message["result"]["tools"] = [tool for tool in message["result"]["tools"] if tool["name"] == "a"]
    return json.dumps(message).encode()


@pytest.mark.parametrize("size", [1, 3, 17, len(STREAM)])
def test_events_are_rewritten_whatever_the_chunk_boundaries(size: int) -> None:
    rewriter = SseRewriter(only_a, max_event_bytes=10_000)
    out = b"".join(rewriter.feed(STREAM[i : i + size]) for i in range(0, len(STREAM), size)) + rewriter.close()
    events = out.split(b"\n\n")
    assert events[0].startswith(b"event: message\nid: 7\ndata: ")
    assert [tool["name"] for tool in json.loads(events[0].split(b"data: ", 1)[1])["result"]["tools"]] == ["a"]
    # Unchanged events pass byte for byte.
    assert out.endswith(b"\n\n: comment\n\nid: 8\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"x\"}\n\n")


def test_data_split_over_several_lines_is_one_message() -> None:
    seen: list[bytes] = []
    rewriter = SseRewriter(lambda data: seen.append(data) or data, max_event_bytes=100)  # type: ignore[func-returns-value]
    assert rewriter.feed(b"data: {\"a\":\r\ndata: 1}\r\n\r\n") == b"data: {\"a\":\r\ndata: 1}\r\n\r\n"
    assert seen == [b'{"a":\n1}']


def test_an_event_past_the_limit_ends_the_stream_instead_of_passing_unexamined() -> None:
    rewriter = SseRewriter(only_a, max_event_bytes=10)
    with pytest.raises(SseOverflow):
        rewriter.feed(b"data: " + b"x" * 20)
