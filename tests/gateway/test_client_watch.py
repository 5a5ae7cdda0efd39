"""ClientGone: the client's disconnect ends the block quietly; nobody else's cancellation is lost."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from auth_mcp.gateway.client_watch import ClientGone


class Client:
    """An ASGI `receive` whose disconnect comes when the test says so."""

    def __init__(self) -> None:
        self.leave = asyncio.Event()

    async def receive(self) -> dict:
        await self.leave.wait()
        return {"type": "http.disconnect"}


async def test_a_disconnect_cancels_the_block_which_then_ends_quietly() -> None:
    client, reached = Client(), []

    async def request() -> str:
        async with ClientGone(client.receive) as watch:
            client.leave.set()
            await asyncio.sleep(30)  # the upstream's answer, which never comes
            reached.append("after the answer")
        assert watch.gone
        await asyncio.sleep(0)  # no cancellation is left over for later awaits
        return "done"

    async with asyncio.timeout(5):
        assert await asyncio.create_task(request()) == "done"
    assert reached == []


async def test_without_a_disconnect_the_block_runs_to_its_end_and_the_watcher_stops() -> None:
    client = Client()

    def watchers() -> list[asyncio.Task]:
        return [task for task in asyncio.all_tasks() if task.get_coro().__qualname__ == "ClientGone._watch"]

    async def request() -> str:
        async with ClientGone(client.receive) as watch:
            await asyncio.sleep(0.01)
            assert len(watchers()) == 1
        assert not watch.gone
        return "answered"

    async with asyncio.timeout(5):
        assert await asyncio.create_task(request()) == "answered"
    await asyncio.sleep(0)  # the watcher's cancellation is delivered
    assert watchers() == []


async def test_a_cancellation_swallowed_inside_the_block_is_not_counted_against_the_task() -> None:
    client = Client()

    async def request() -> int:
        async with ClientGone(client.receive):
            client.leave.set()
            with contextlib.suppress(asyncio.CancelledError):  # a library that swallows cancellation
                await asyncio.sleep(30)
        await asyncio.sleep(0)  # nothing left over lands here
        task = asyncio.current_task()
        assert task is not None
        return task.cancelling()

    async with asyncio.timeout(5):
        assert await asyncio.create_task(request()) == 0


async def waiting_request(client: Client) -> asyncio.Task[None]:
    """A request inside `ClientGone`, waiting on something slow."""
    inside = asyncio.Event()

    async def request() -> None:
        async with ClientGone(client.receive):
            inside.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(request())
    await inside.wait()
    return task


async def test_someone_else_s_cancellation_still_goes_through() -> None:
    client = Client()
    task = await waiting_request(client)
    task.cancel()  # e.g. the server shutting down
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_shutdown_that_coincides_with_the_disconnect_is_not_swallowed() -> None:
    client = Client()
    task = await waiting_request(client)
    client.leave.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
