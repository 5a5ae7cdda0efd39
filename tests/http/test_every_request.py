"""The server's one layer around every request (http/every_request.py): the MCP endpoints'
shortcut past the router, and the request id on answers made by the handler and by the layer."""

from __future__ import annotations

from typing import Any

from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from auth_mcp.http.access_log import AccessLog
from auth_mcp.http.every_request import EveryRequest
from auth_mcp.http.log_writer import LogWriter
from auth_mcp.http.metrics import Metrics
from auth_mcp.http.outage import OutageResponses, Unavailable, note_outage
from auth_mcp.http.pages import Pages
from auth_mcp.http.routing import AsgiEndpoint

OUT = Unavailable(retry_after=7, message="The database is out.", reason="test")


class Reached:
    def __init__(self, name: str, log: list[tuple[str, object]]) -> None:
        self._name = name
        self._log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._log.append((self._name, scope.get("route")))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


def _layer(app: Any, endpoints: list[Route]) -> EveryRequest:
    return EveryRequest(
        app,
        access_log=AccessLog(metrics=Metrics(), lines=LogWriter()),
        loopback_alias=None,
        outages=OutageResponses(classify=lambda error: OUT if isinstance(error, LookupError) else None, pages=Pages(server_name="test")),
        endpoints=endpoints,
    )


async def _nothing() -> dict[str, object]:
    return {}


async def _ignore(message: Any) -> None:
    return None


async def _serve(layer: EveryRequest, path: str = "/mcp") -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def keep(message: Any) -> None:
        sent.append(message)

    scope = {"type": "http", "path": path, "method": "POST", "headers": [(b"x-request-id", b"from-proxy")]}
    await layer(scope, _nothing, keep)
    return sent


async def test_each_endpoint_s_path_goes_straight_to_its_app_with_its_route_and_the_rest_to_the_router() -> None:
    log: list[tuple[str, object]] = []
    builtin = Route("/mcp", AsgiEndpoint(Reached("builtin", log)))
    upstream = Route("/mcp/notes", AsgiEndpoint(Reached("notes", log)))
    layer = _layer(Reached("router", log), [builtin, upstream])
    for path in ("/mcp/notes", "/mcp", "/mcp/notes/", "/mcp/other", "/token"):
        await _serve(layer, path)
    await layer({"type": "websocket", "path": "/mcp"}, _nothing, _ignore)
    assert log == [
        ("notes", upstream),
        ("builtin", builtin),
        ("router", None),
        ("router", None),
        ("router", None),
        ("router", None),
    ]


async def test_an_answer_carries_the_request_id() -> None:
    sent = await _serve(_layer(Reached("router", []), []), "/token")
    assert sent[0]["status"] == 200 and (b"x-request-id", b"from-proxy") in sent[0]["headers"]


async def test_an_answer_made_after_a_noted_outage_is_replaced_by_a_503_with_the_request_id() -> None:
    async def caught(scope: Scope, receive: Receive, send: Send) -> None:
        note_outage(OUT)  # what code that catches an outage does, then answers something else
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b"client not found"})

    sent = await _serve(_layer(caught, []), "/token")
    head = dict(sent[0]["headers"])
    assert sent[0]["status"] == 503 and head[b"retry-after"] == b"7" and head[b"x-request-id"] == b"from-proxy"
    assert b"client not found" not in b"".join(message.get("body", b"") for message in sent)


async def test_an_outage_raised_before_the_answer_is_a_503_and_one_raised_after_ends_the_answer() -> None:
    async def raises(scope: Scope, receive: Receive, send: Send) -> None:
        raise LookupError("out")

    sent = await _serve(_layer(raises, []), "/token")
    assert sent[0]["status"] == 503 and (b"x-request-id", b"from-proxy") in sent[0]["headers"]

    async def raises_late(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise LookupError("out")

    sent = await _serve(_layer(raises_late, []), "/token")
    assert [message.get("status") for message in sent] == [200]


def test_a_proxy_s_request_id_is_kept_only_when_the_whole_value_is_a_plain_token() -> None:
    assert AccessLog.id_for(b"from-proxy.1_A") == "from-proxy.1_A"
    for bad in (b"abc\n", b"abc\r\nx: y", b"", b"a" * 65, b"a b"):
        made = AccessLog.id_for(bad)
        assert made != bad.decode() and made.isalnum()
